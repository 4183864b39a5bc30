"""End to end: the demo through the CLI, CIFTI outputs, skip on re-run, resume after a failure."""

import json
import shutil
import time

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

from vlmbrain.artifacts import read_map
from vlmbrain.cli import main
from vlmbrain.config import ModelConfig, demo_config
from vlmbrain.pipeline import Pipeline, run_pipeline, stage_names


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The full demo through the CLI. Its static surface figures are off through the environment
    (a third of the run's CPU; surface drawing has its own tests in tests/report): the rerun
    test below runs under the same variable, so the configuration and its keys stay the same."""
    out = tmp_path_factory.mktemp("demo") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VLMBRAIN_REPORT__SURFACE_FIGURES", "false")
        t0 = time.perf_counter()
        code = main(["demo", "--out", str(out), "-q"])
        seconds = time.perf_counter() - t0
    assert code == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["report"]["surface_figures"] is False
    return out, seconds


def test_demo_writes_report_maps_and_recovery(demo_run):
    out, _ = demo_run
    assert (out / "report" / "index.html").is_file()
    for name in ("beta", "r_cv"):
        maps = sorted(out.glob(f"encoding/*/*/{name}.dscalar.nii"))
        assert maps, name
        img = nib.load(maps[0])
        bm = img.header.get_axis(1)
        assert len(bm) == 91282
        data = img.get_fdata()
        assert data.shape[1] == 91282 and np.isfinite(data).any()
    rec = pd.read_csv(out / "demo" / "recovery.tsv", sep="\t")
    assert list(rec.columns[:4]) == ["network", "planted_sign", "recovered_sign", "recovered"]
    assert set(rec["network"]) == {"Visual1", "Visual2", "Dorsal Attention", "Language", "Default"}
    # every planted network is affiliated, with the planted sign, by some branch of some model
    assert rec.groupby("network")["recovered"].any().all(), rec
    hits = rec[rec["recovered"]]
    assert (hits["recovered_sign"] == hits["planted_sign"]).all()
    # the architecture finding: CLIP's towers overlap less than METER's streams
    cm = pd.read_csv(out / "analysis" / "crossmodal.tsv", sep="\t")
    whole = cm[cm["network"] == "all"].set_index("model_a")["dice"]
    assert whole["toy-clip"] < whole["toy-meter"]
    for name in ("affiliation", "redundancy", "polarity", "crossmodal", "hierarchy", "prediction"):
        assert (out / "analysis" / f"{name}.tsv").is_file()
    saved = (out / "config.yaml").read_text()
    assert "n_atoms" in saved
    assert "numpy" in json.loads((out / "versions.json").read_text())
    sidecar = json.loads((out / "brain" / "_stage.json").read_text())
    assert {"key", "params", "versions", "seconds"} <= set(sidecar)


def test_rerun_recomputes_nothing(demo_run, capsys, monkeypatch):
    out, first = demo_run
    monkeypatch.setenv("VLMBRAIN_REPORT__SURFACE_FIGURES", "false")
    t0 = time.perf_counter()
    code = main(["demo", "--out", str(out)])
    second = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert code == 0
    assert "nothing recomputed" in err
    assert "running" not in err
    assert second < first and second < 10   # the finished demo: every step skipped in seconds


def _fast_minilm():
    cfg = demo_config(out_fast=True)
    cfg.models = [ModelConfig(name="minilm")]
    return cfg


@pytest.fixture(scope="module")
def minilm_signal(tmp_path_factory):
    """The fast demo on minilm up to its signal step (stimulus, phantom brain, activations, signal),
    run once: the tests below copy it and go on from there. The demo's steps have no input files,
    so their keys do not depend on the run directory and the copied steps are skipped."""
    out = tmp_path_factory.mktemp("minilm") / "run"
    run_pipeline(_fast_minilm(), out, stages=["signal"])
    return out


def _from_signal(minilm_signal, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(minilm_signal, out)
    return out


def test_failed_stage_resumes_where_it_stopped(tmp_path, monkeypatch, minilm_signal):
    cfg = _fast_minilm()
    cfg.report.surface_figures = False
    out = _from_signal(minilm_signal, tmp_path)

    import vlmbrain.stages.encoding as encoding_stage

    def boom(*a, **k):
        raise RuntimeError("killed")

    monkeypatch.setattr(encoding_stage, "encode_unit", boom)
    with pytest.raises(RuntimeError, match="killed"):
        run_pipeline(cfg, out)
    assert not (out / "encoding" / "minilm" / "text" / "_stage.json").exists()
    monkeypatch.undo()
    results = Pipeline(cfg, out).run(["encoding"])
    ran = {r.name for r in results if not r.skipped}
    assert ran == {"encoding:minilm/text"}
    assert (out / "encoding" / "minilm" / "text" / "_stage.json").is_file()


def test_changed_parameter_reruns_only_downstream(tmp_path, minilm_signal):
    cfg = _fast_minilm()
    out = _from_signal(minilm_signal, tmp_path)
    run_pipeline(cfg, out, stages=["dictionary"])
    cfg.dictionary.alpha = 0.2
    results = run_pipeline(cfg, out, stages=["dictionary"])
    ran = {r.name for r in results if not r.skipped}
    assert ran == {"dictionary:minilm/text"}


def test_unknown_stage():
    from vlmbrain.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown stage"):
        Pipeline(demo_config(), "unused").run(["fit"])
    assert stage_names()[0] == "stimulus" and stage_names()[-1] == "report"


def test_custom_captions_and_group_npy_through_encoding(tmp_path, rng):
    """A user's own data: TSV captions per run, two subjects of .npy runs on 91,282 grayordinates."""
    from vlmbrain._testing import STUDY_WORDS, write_caption_study

    from vlmbrain.config import load_config

    words = STUDY_WORDS
    cfg_path, _ = write_caption_study(tmp_path, rng, 2, 91282, fmri_extra={"n_grayordinates": 91282})
    cfg = load_config(cfg_path)
    out = tmp_path / "run"
    run_pipeline(cfg, out, stages=["encoding"])
    table = pd.read_csv(out / "stimulus" / "timeline.tsv", sep="\t", keep_default_na=False)
    assert table["caption"].iloc[0] == "a red circle" and table["caption"].iloc[5] == words[1]
    meta = json.loads((out / "brain" / "meta.json").read_text())
    assert meta["run_names"] == ["r1", "r2"]
    enc = out / "encoding" / "minilm" / "text"
    beta = read_map(enc / "beta")  # stored once, as the dscalar
    assert beta.shape == (4, 91282) and np.isfinite(beta).all()
    assert nib.load(enc / "beta.dscalar.nii").shape == (4, 91282) and not (enc / "beta.npy").exists()


def test_encoding_options_through_the_pipeline(tmp_path, minilm_signal):
    """AR(1), ridge and max-statistic FWER all run in the encoding stage on the same dictionary."""
    cfg = _fast_minilm()
    cfg.dictionary.n_atoms = 4
    out = _from_signal(minilm_signal, tmp_path)
    run_pipeline(cfg, out, stages=["dictionary"])
    enc = out / "encoding" / "minilm" / "text"
    # ridge refits every shifted design: the fewest shifts the encoding accepts (20) keep it cheap
    for method, n_shifts, correction, null_pvalues in (("ar1", 0, "fdr", "calibrated"),
                                                        ("ridge", 20, "fdr", "empirical"),
                                                        ("ols", 40, "fwer", "calibrated")):
        cfg.encoding.method, cfg.encoding.n_shifts = method, n_shifts
        cfg.encoding.correction, cfg.encoding.null_pvalues = correction, null_pvalues
        results = run_pipeline(cfg, out, stages=["encoding"])
        assert [r.name for r in results if not r.skipped] == ["encoding:minilm/text"]
        info = json.loads((enc / "summary.json").read_text())
        assert info["method"] == method and info["correction"] == correction
        q = read_map(enc / "q")
        assert q.shape == (4, 91282) and np.nanmin(q) >= 0 and np.nanmax(q) <= 1
        if method == "ridge":
            assert np.isfinite(read_map(enc / "alpha")).all()
            assert np.isnan(read_map(enc / "t")).all()     # ridge has no t-values
