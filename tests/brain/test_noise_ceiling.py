"""Noise ceilings from a repeated clip: the analytic ceiling of a phantom, and r never above it on average."""

import numpy as np
import pandas as pd
import pytest

from vlmbrain.brain.ceiling import noise_ceiling, repeat_ceiling, repeated_segments


def _timeline(n_runs=4, clip_len=120, other=60, prefix="testretest"):
    rows, t = [], 0
    for r in range(n_runs):
        names = [f"movie{r}"] * other + [f"{prefix}{r + 1}"] * clip_len
        for i, c in enumerate(names):
            rows.append({"tr_index": t, "run": f"run{r}", "run_tr": i, "clip": c})
            t += 1
    return pd.DataFrame(rows)


def test_repeated_segments_find_the_montage_and_same_named_clips():
    table = _timeline()
    seg = repeated_segments(table)
    assert list(seg) == ["testretest"] and len(seg["testretest"]) == 4
    assert all(len(s) == 120 for s in seg["testretest"])
    same = _timeline(prefix="rep")
    same["clip"] = same["clip"].str.replace(r"rep\d", "rep", regex=True)
    assert "rep" in repeated_segments(same)
    none = _timeline(n_runs=1)
    assert noise_ceiling(np.zeros((len(none), 3)), none) is None


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_ceiling_matches_the_analytic_one(sigma):
    """Signal s (var 1) repeated with noise e (var sigma^2): ceiling = 1 / sqrt(1 + sigma^2)."""
    rng = np.random.default_rng(3)
    table = _timeline()
    T, V = len(table), 3000
    seg = repeated_segments(table)["testretest"]
    data = rng.normal(size=(T, V)).astype(np.float32)
    s = rng.normal(size=(120, V))
    for idx in seg:
        data[idx] = s + sigma * rng.normal(size=(120, V))
    nc = repeat_ceiling(data, seg)
    expected = 1 / np.sqrt(1 + sigma**2)
    assert np.nanmedian(nc.ceiling) == pytest.approx(expected, abs=0.02)
    assert np.nanmedian(nc.reliability) == pytest.approx(expected**2, abs=0.02)
    # a model that knows the signal exactly reaches the ceiling, never more on average
    r_true = np.array([np.corrcoef(s[:, v], data[seg[0], v])[0, 1] for v in range(V)])
    assert np.nanmean(r_true) == pytest.approx(np.nanmean(nc.ceiling), abs=0.02)
    assert np.nanmean(r_true / nc.ceiling) <= 1.02


def test_pure_noise_has_no_reliable_signal():
    rng = np.random.default_rng(4)
    table = _timeline()
    data = rng.normal(size=(len(table), 2000)).astype(np.float32)
    nc = noise_ceiling(data, table)
    assert abs(float(np.median(nc.reliability))) < 0.02
    # about half the grayordinates have rho <= 0 by chance: their ceiling is undefined
    assert 0.3 < np.isnan(nc.ceiling).mean() < 0.7


def test_normalised_prediction_table():
    from vlmbrain.analysis.ceiling import normalised_prediction
    from vlmbrain.networks import Atlas

    labels = np.repeat([1, 2], 50)
    atlas = Atlas("t", labels, {1: "a", 2: "b"}, {1: (1, 0, 0, 1), 2: (0, 1, 0, 1)}, 100)
    r = np.full(100, 0.2)
    c = np.full(100, 0.4)
    c[:10] = np.nan
    t = normalised_prediction(r, c, atlas, "m", "b").set_index("network")
    assert t.loc["a", "n_reliable"] == 40 and t.loc["b", "n_reliable"] == 50
    assert t.loc["all", "mean_r_normalized"] == pytest.approx(0.5)


def test_hcp7t_run_writes_the_ceiling_and_normalised_prediction(tmp_path):
    """HCP 7T layout (WordNet captions), .npy runs with a planted repeated montage: ceiling and table written."""
    import json

    import yaml

    from vlmbrain._testing import echo_loader
    from vlmbrain.cli import main
    from vlmbrain.models import registry as models
    from vlmbrain.stimulus.hcp7t import hcp7t_timeline

    names = {"MOVIE1_CC1": 921, "MOVIE2_HO1": 918, "MOVIE3_CC2": 915, "MOVIE4_HO2": 901}
    words = ["road.n.01", "sky.n.01", "dog.n.01", "car.n.01", "tree.n.01"]
    for k, stem in enumerate(names):
        lines = [f'{s:06d}:{{"{words[(s + k) % 5]}","{words[(s // 3) % 5]}"}}' for s in range(20, 900)]
        (tmp_path / f"WordNet_{stem}.txt").write_text("\n".join(lines) + "\n")
    timeline = hcp7t_timeline()
    table = timeline.table
    seg = repeated_segments(table)["testretest"]
    rng = np.random.default_rng(5)
    V, sigma = 200, 1.0
    data = rng.normal(size=(len(table), V)).astype(np.float32)
    s = rng.normal(size=(len(seg[0]), V))
    for idx in seg:
        data[idx] = s + sigma * rng.normal(size=s.shape)
    paths = []
    for r, (a, b) in enumerate(zip(np.cumsum([0, *timeline.run_lengths[:-1]]), np.cumsum(timeline.run_lengths))):
        p = tmp_path / f"run{r}.npy"
        np.save(p, data[a:b])
        paths.append(str(p))
    cfg = tmp_path / "hcp.yaml"
    cfg.write_text(yaml.safe_dump({
        "stimulus": {"kind": "hcp7t", "tr": 1.0, "wordnet_dir": str(tmp_path)},
        "fmri": {"kind": "npy", "paths": paths}, "models": [{"name": "echo-text"}],
        "dictionary": {"n_atoms": 3}, "encoding": {"n_shifts": 0},
        "networks": {"atlas": "ceiling-blocks", "null": "none"}, "report": {"surface_figures": False}}))
    from vlmbrain.networks import Atlas
    from vlmbrain.networks import atlas as atlases

    labels = np.repeat([1, 2], V // 2)
    atlases.register_atlas("ceiling-blocks", lambda: Atlas("ceiling-blocks", labels, {1: "a", 2: "b"},
                                                           {1: (1, 0, 0, 1), 2: (0, 1, 0, 1)}, V), replace=True)
    models.register_model("echo-text", "echo", "none", echo_loader)
    try:
        out = tmp_path / "run"
        assert main(["run", str(cfg), "--out", str(out), "-q"]) == 0
    finally:
        models._REGISTRY.pop("echo-text", None)
        atlases._REGISTRY.pop("ceiling-blocks", None)
    info = json.loads((out / "brain" / "ceiling.json").read_text())
    assert info["available"] and info["n_repeats"] == 4
    ceiling = np.load(out / "brain" / "ceiling.npy")
    assert np.nanmedian(ceiling) == pytest.approx(1 / np.sqrt(1 + sigma**2), abs=0.05)
    nc = pd.read_csv(out / "analysis" / "noise_ceiling.tsv", sep="\t")
    assert set(nc["network"]) == {"a", "b", "all"} and (nc["n_reliable"] > 0).all()
    html = (out / "report" / "index.html").read_text()
    assert "Prediction against the noise ceiling" in html and "Skipped: no noise ceiling" not in html
