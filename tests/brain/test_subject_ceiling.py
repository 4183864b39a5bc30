"""Noise ceilings across subjects (split-half, leave-one-subject-out) against their analytic values.

Phantom: every subject's run is a shared signal s (unit variance) plus its own noise of SD σ_v
(AR(1) in time, as fMRI noise is). One subject's reliability is ρ₁ = 1 / (1 + σ²), the mean of
n subjects has ρ_n = n ρ₁ / (1 + (n − 1) ρ₁) (Spearman–Brown) and its ceiling is √ρ_n: the
correlation of the true signal with the group mean.
"""

import json

import numpy as np
import pytest

from vlmbrain.brain.ceiling import (
    reliability_from_halves,
    reliability_from_loso,
    spearman_brown,
    subject_method,
)
from vlmbrain.brain.group import group_average


def _ar1(rng, shape, rho):
    e = rng.normal(size=shape)
    out = np.empty(shape)
    out[0] = e[0]
    for t in range(1, shape[0]):
        out[t] = rho * out[t - 1] + np.sqrt(1 - rho**2) * e[t]
    return out


def _phantom(tmp_path, n_subjects, sigma, lengths=(600, 600), seed=0):
    rng = np.random.default_rng(seed)
    T, V = sum(lengths), sigma.size
    signal = _ar1(rng, (T, V), 0.6)
    subjects = []
    for s in range(n_subjects):
        x = signal + sigma * _ar1(rng, (T, V), 0.4)
        paths, a = [], 0
        for k, n in enumerate(lengths):
            p = tmp_path / f"sub{s}_run{k}.npy"
            np.save(p, x[a:a + n].astype(np.float32))
            paths.append(str(p))
            a += n
        subjects.append(paths)
    return subjects, signal


def _analytic(sigma, n):
    return np.sqrt(spearman_brown(1 / (1 + sigma**2), n))


def test_reliability_formulas_invert_spearman_brown():
    """ρ₁ → the correlation each estimator sees → ρ₁ again, for equal and unequal halves."""
    rho1 = np.array([0.02, 0.1, 0.3, 0.6, 0.9])
    for n_a, n_b in ((3, 3), (4, 3), (10, 1)):
        r = np.sqrt(spearman_brown(rho1, n_a) * spearman_brown(rho1, n_b))
        np.testing.assert_allclose(reliability_from_halves(r, n_a, n_b), rho1, rtol=1e-9)
    for n in (2, 5, 40):
        r = np.sqrt(rho1 * spearman_brown(rho1, n - 1))
        np.testing.assert_allclose(reliability_from_loso(r, n), rho1, rtol=1e-9)
    # equal halves of m: the classic closed form ρ₁ = r / (m − (m − 1) r)
    r, m = 0.5, 4
    assert reliability_from_halves(r, m, m) == pytest.approx(r / (m - (m - 1) * r))
    assert np.isnan(reliability_from_halves(-0.1, 3, 3)) and np.isnan(reliability_from_loso(0.0, 5))


@pytest.mark.parametrize("method", ["split-half", "loso"])
def test_subject_ceiling_matches_the_analytic_one(tmp_path, method):
    """Seven subjects (halves of 4 and 3), noise SD 0.5–3 across grayordinates: √ρ_7 recovered."""
    sigma = np.repeat([0.5, 1.0, 2.0, 3.0], 60)
    subjects, signal = _phantom(tmp_path, 7, sigma)
    brain = group_average(subjects, tr=1.0, ceiling=method, chunk_size=100)
    nc = brain.ceiling
    assert nc is not None and nc.source == method and nc.n_repeats == 7
    expected = _analytic(sigma, 7)
    for level in np.unique(sigma):
        sel = sigma == level
        assert np.nanmedian(nc.ceiling[sel]) == pytest.approx(expected[sel][0], abs=0.02), (method, level)
    # the true signal is the best possible prediction: its r with the group mean is the ceiling, never above
    x = np.asarray(brain.data, dtype=float)
    s = signal - signal.mean(axis=0)
    r_true = (s * (x - x.mean(axis=0))).sum(0) / np.sqrt((s * s).sum(0) * ((x - x.mean(0)) ** 2).sum(0))
    assert np.mean(r_true) == pytest.approx(np.nanmean(nc.ceiling), abs=0.02)
    assert np.nanmean(r_true / nc.ceiling) <= 1.02
    assert json.dumps(nc.info())  # JSON-ready, with the subject count
    assert nc.info()["n_subjects"] == 7


def test_pure_noise_subjects_have_no_reliable_ceiling(tmp_path):
    """No shared signal: about half the grayordinates have r ≤ 0 (ceiling undefined), the rest small."""
    rng = np.random.default_rng(3)
    subjects = []
    for s in range(6):
        paths = []
        for k in range(2):
            p = tmp_path / f"n{s}_{k}.npy"
            np.save(p, rng.normal(size=(300, 400)).astype(np.float32))
            paths.append(str(p))
        subjects.append(paths)
    for method in ("split-half", "loso"):
        nc = group_average(subjects, tr=1.0, ceiling=method).ceiling
        assert 0.3 < np.isnan(nc.ceiling).mean() < 0.7, method
        assert np.nanmedian(nc.ceiling) < 0.45, method


def test_subject_method_follows_the_config_choice():
    assert subject_method("auto", 5) == "split-half"
    assert subject_method("loso", 5) == "loso"
    assert subject_method("repeats", 5) is None and subject_method("none", 5) is None
    assert subject_method("auto", 1) is None and subject_method("split-half", 1) is None


def test_one_subject_asked_for_a_subject_ceiling_fails_before_anything_runs(tmp_path, capsys):
    import yaml

    from vlmbrain._testing import write_caption_study
    from vlmbrain.cli import main

    cfg_path, subjects = write_caption_study(tmp_path, np.random.default_rng(0), 1, 50)
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["fmri"] = {"kind": "npy", "paths": subjects[0], "ceiling": "loso"}
    cfg_path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(cfg_path), "--out", str(tmp_path / "out"), "-q"]) == 2
    assert "fmri.ceiling = 'loso'" in capsys.readouterr().err
    assert not (tmp_path / "out" / "brain").exists()


def test_group_run_writes_the_subject_ceiling_and_reports_it(tmp_path):
    """Four subjects through `vlmbrain run`: ceiling.json says split-half, the table and the report section exist."""
    import yaml

    from vlmbrain._testing import echo_loader
    from vlmbrain.cli import main
    from vlmbrain.models import registry as models

    sigma = np.full(120, 1.0)
    subjects, _ = _phantom(tmp_path, 4, sigma, lengths=(60, 60), seed=2)
    for run in ("r1", "r2"):
        lines = ["onset\tduration\ttext"] + [f"{4 * i}\t4\tword{i % 5} thing{i % 3}" for i in range(15)]
        (tmp_path / f"{run}.tsv").write_text("\n".join(lines) + "\n")
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({
        "stimulus": {"kind": "custom", "tr": 1.0, "runs": [{"name": "r1", "n_trs": 60, "captions": "r1.tsv"},
                                                          {"name": "r2", "n_trs": 60, "captions": "r2.tsv"}]},
        "fmri": {"kind": "npy", "subjects": subjects}, "models": [{"name": "echo-text-ceiling"}],
        "dictionary": {"n_atoms": 3}, "encoding": {"n_shifts": 0}, "report": {"surface_figures": False}}))
    models.register_model("echo-text-ceiling", "echo", "none", echo_loader)
    try:
        out = tmp_path / "run"
        assert main(["run", str(cfg), "--out", str(out), "-q"]) == 0
    finally:
        models._REGISTRY.pop("echo-text-ceiling", None)
    info = json.loads((out / "brain" / "ceiling.json").read_text())
    assert info["available"] and info["source"] == "split-half" and info["n_subjects"] == 4
    ceiling = np.load(out / "brain" / "ceiling.npy")
    assert np.nanmedian(ceiling) == pytest.approx(_analytic(1.0, 4), abs=0.06)
    assert (out / "analysis" / "noise_ceiling.tsv").is_file()
    html = (out / "report" / "index.html").read_text()
    assert "split-half across subjects" in html
    # asked for no ceiling, in the same run directory: nothing of the earlier ceiling is left
    cfg_none = yaml.safe_load(cfg.read_text())
    cfg_none["fmri"]["ceiling"] = "none"
    cfg.write_text(yaml.safe_dump(cfg_none))
    models.register_model("echo-text-ceiling", "echo", "none", echo_loader)
    try:
        assert main(["run", str(cfg), "--out", str(out), "-q"]) == 0
    finally:
        models._REGISTRY.pop("echo-text-ceiling", None)
    assert json.loads((out / "brain" / "ceiling.json").read_text())["available"] is False
    assert not (out / "brain" / "ceiling.npy").exists()
    assert not (out / "analysis" / "noise_ceiling.tsv").exists()
    assert "split-half across subjects" not in (out / "report" / "index.html").read_text()


def test_an_unknown_subject_estimator_is_refused(tmp_path):
    from vlmbrain.errors import ConfigError

    subjects, _ = _phantom(tmp_path, 2, np.ones(4), lengths=(20, 20))
    with pytest.raises(ConfigError, match=r"ceiling must be 'split-half', 'loso' or None, got 'halves'"):
        group_average(subjects, tr=1.0, ceiling="halves")
