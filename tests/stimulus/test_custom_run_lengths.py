"""A custom run without ``n_trs`` takes its length from the same fMRI run, whatever the fMRI source."""

import numpy as np
import pytest

from vlmbrain.config import validate_config
from vlmbrain.errors import ConfigError
from vlmbrain.stages.checks import custom_run_lengths, custom_stimulus_facts
from vlmbrain.stages.stimulus import _custom_files


def _gifti(path, n_trs, n_vertices, hemi):
    import nibabel as nib

    structure = {"L": "CortexLeft", "R": "CortexRight"}[hemi]
    img = nib.gifti.GiftiImage(meta=nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary": structure}))
    rng = np.random.default_rng(0)
    for _ in range(n_trs):
        img.add_gifti_data_array(nib.gifti.GiftiDataArray(
            rng.standard_normal(n_vertices).astype(np.float32), intent="NIFTI_INTENT_TIME_SERIES",
            datatype="NIFTI_TYPE_FLOAT32", meta=nib.gifti.GiftiMetaData({"TimeStep": "1500.000000"})))
    nib.save(img, str(path))
    return str(path)


def _config(tmp_path, fmri, n_trs=(None, None)):
    runs = []
    for i, n in enumerate(n_trs):
        (tmp_path / f"r{i}.tsv").write_text("onset\tduration\ttext\n0\t3\ta red circle\n")
        runs.append({"name": f"r{i}", "captions": str(tmp_path / f"r{i}.tsv"), **({"n_trs": n} if n else {})})
    return validate_config({"stimulus": {"kind": "custom", "tr": 1.5, "runs": runs}, "fmri": fmri,
                            "models": [{"name": "minilm"}]})


def test_gifti_runs_give_the_lengths(tmp_path):
    """Two files per run (hemispheres): run i is the i-th run, not the i-th file."""
    paths = []
    for r, n in enumerate((12, 9)):
        for hemi in ("L", "R"):
            paths.append(_gifti(tmp_path / f"sub-01_task-m_run-{r + 1}_hemi-{hemi}_space-fsaverage3_bold.func.gii",
                                n, 642, hemi))
    cfg = _config(tmp_path, {"kind": "gifti", "paths": paths})
    assert custom_run_lengths(cfg) == [12, 9]
    assert custom_stimulus_facts(cfg).run_lengths == [12, 9]
    assert {str(p) for p in _custom_files(cfg)} >= set(paths)


def test_subjects_npy_give_the_lengths_and_n_trs_wins(tmp_path):
    subjects = []
    for s in range(2):
        files = []
        for r, n in enumerate((20, 15)):
            p = tmp_path / f"s{s}r{r}.npy"
            np.save(p, np.zeros((n, 5), np.float32))
            files.append(str(p))
        subjects.append(files)
    assert custom_run_lengths(_config(tmp_path, {"kind": "npy", "subjects": subjects})) == [20, 15]
    assert custom_run_lengths(_config(tmp_path, {"kind": "npy", "subjects": subjects}, n_trs=(20, 14))) == [20, 14]


def test_a_missing_length_says_which_run(tmp_path):
    p = tmp_path / "only.npy"
    np.save(p, np.zeros((10, 4), np.float32))
    cfg = _config(tmp_path, {"kind": "npy", "paths": [str(p)]})
    with pytest.raises(ConfigError, match=r"stimulus\.runs\.1\.n_trs is missing .*has no run 2.*run r1"):
        custom_run_lengths(cfg)
