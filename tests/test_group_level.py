"""Per-subject first level (resumable tasks) and the random-effects second level."""

import json

import numpy as np
import pytest
from scipy import stats as sps

from vlmbrain.artifacts import read_map
from vlmbrain.errors import ConfigError
from vlmbrain.encoding.inference import second_level


def test_second_level_equals_scipy_one_sample_t(tmp_path, rng):
    S, K, V = 6, 3, 50
    betas = rng.normal(0.3, 1.0, size=(S, K, V))
    rs = np.tanh(rng.normal(0.1, 0.2, size=(S, V)))
    betas[2, 1, 7] = np.nan                      # a grayordinate missing in one subject
    bp, rp = [], []
    for s in range(S):
        np.save(tmp_path / f"b{s}.npy", betas[s].astype(np.float32))
        np.save(tmp_path / f"r{s}.npy", rs[s].astype(np.float32))
        bp.append(tmp_path / f"b{s}.npy")
        rp.append(tmp_path / f"r{s}.npy")
    res = second_level(bp, rp)
    ref = sps.ttest_1samp(betas.astype(np.float32).astype(np.float64), 0.0, axis=0, nan_policy="omit")
    np.testing.assert_allclose(res["t"], np.asarray(ref.statistic), rtol=1e-4)
    np.testing.assert_allclose(res["p"], np.asarray(ref.pvalue), rtol=1e-4, atol=1e-12)
    np.testing.assert_allclose(res["beta"], np.nanmean(betas, axis=0), rtol=1e-5)
    z = np.arctanh(rs.astype(np.float32).astype(np.float64))
    ref_r = sps.ttest_1samp(z, 0.0, axis=0, alternative="greater")
    np.testing.assert_allclose(res["p_r"], ref_r.pvalue, rtol=1e-4, atol=1e-12)


def _per_subject_config(tmp_path, rng, n_subjects):
    from vlmbrain._testing import write_caption_study

    return write_caption_study(tmp_path, rng, n_subjects, 300, n_atoms=3,
                               fmri_extra={"group": "per-subject", "scheduler": "threads", "n_jobs": 2})


def test_per_subject_pipeline_matches_a_direct_second_level(tmp_path, rng):
    from vlmbrain.config import load_config
    from vlmbrain.pipeline import run_pipeline
    from vlmbrain.signal import zscore_runs

    path, subjects = _per_subject_config(tmp_path, rng, 3)
    out = tmp_path / "run"
    run_pipeline(load_config(path), out, stages=["encoding"])
    enc = out / "encoding" / "minilm" / "text"
    info = json.loads((enc / "summary.json").read_text())
    assert info["group"] == "per-subject" and info["n_subjects"] == 3
    # direct: z-score each subject's runs, OLS with run intercepts, mean and t across subjects
    atoms = np.load(out / "dictionary" / "minilm" / "text" / "atoms.npy")
    runs = np.repeat([0, 1], 60)
    X, _ = zscore_runs(atoms, runs)
    design = np.c_[X, runs == 0, runs == 1].astype(np.float64)
    betas = []
    for paths in subjects:
        Y, _ = zscore_runs(np.concatenate([np.load(p) for p in paths]), runs)
        betas.append(np.linalg.lstsq(design, Y.astype(np.float64), rcond=None)[0][:3])
    betas = np.array(betas)
    np.testing.assert_allclose(read_map(enc / "beta"), betas.mean(0), atol=2e-4)
    ref = sps.ttest_1samp(betas, 0.0, axis=0)
    np.testing.assert_allclose(read_map(enc / "t"), ref.statistic, rtol=2e-3, atol=2e-3)
    # the subjects are resumable tasks: a second run skips them all
    done = (enc / "subjects.tsv").read_text()
    assert done.count("done") == 3


def test_per_subject_needs_three_subjects(tmp_path, rng):
    from vlmbrain.config import load_config
    from vlmbrain.pipeline import run_pipeline

    path, _ = _per_subject_config(tmp_path, rng, 2)
    with pytest.raises(ConfigError, match="needs at least 3 subjects"):
        run_pipeline(load_config(path), tmp_path / "run", stages=["encoding"])
