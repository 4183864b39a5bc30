"""A small synthetic run directory following docs/ARCHITECTURE.md ("Run directory")."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

V = 91282
NETWORKS = ["Visual1", "Visual2", "Somatomotor", "Cingulo-Opercular", "Dorsal-attention", "Language",
            "Frontoparietal", "Auditory", "Default", "Posterior-Multimodal", "Ventral-Multimodal",
            "Orbito-Affective"]
WARNINGS = ["signal: 12 constant ANs dropped from toy-clip/vision",
            "encoding: <toy-meter/text> 3 grayordinates are constant & were left out"]


def make_run_dir(root, *, untrained=(), surfaces=False, K=4, seed=0):
    """Write a synthetic run directory; returns its path.

    toy-clip: vision significant in the first half of the cortex, text in a band overlapping it
    (so vision-only, shared and text-only are all non-empty). toy-meter: one branch pair too.
    """
    rng = np.random.default_rng(seed)
    run = root / "run"
    for model, branches in (("toy-clip", ("vision", "text")), ("toy-meter", ("image", "text"))):
        for bi, b in enumerate(branches):
            d = run / "encoding" / model / b
            d.mkdir(parents=True)
            beta = rng.standard_normal((K, V)).astype(np.float32)
            np.save(d / "beta.npy", beta)
            np.save(d / "t.npy", (beta * 3).astype(np.float32))
            q = np.ones((K, V), dtype=np.float32)
            sig = np.zeros(V, bool)
            if bi == 0:
                sig[:30000] = True
            else:
                sig[20000:50000] = True
            q[0, sig] = 0.001
            np.save(d / "q.npy", q)
            r = np.where(sig, 0.3, 0.01).astype(np.float32) + 0.01 * rng.standard_normal(V).astype(np.float32)
            np.save(d / "r_cv.npy", r)
            np.save(d / "q_r.npy", np.where(sig, 0.001, 0.9).astype(np.float32))
        stage = run / "activations" / model
        stage.mkdir(parents=True)
        (stage / "_stage.json").write_text(json.dumps(
            {"parameters": {"weights": "random" if model in untrained else "trained"}, "seconds": 1.0}))
    an = run / "analysis"
    an.mkdir()
    rows = []
    for model, branches in (("toy-clip", ("vision", "text")), ("toy-meter", ("image", "text"))):
        for b in branches:
            for i, n in enumerate(NETWORKS):
                rows.append({"model": model, "branch": b, "network": n, "mean_r": 0.02 * i + rng.uniform(0, 0.01),
                             "frac_significant": i / 12, "n_grayordinates": 1000 + i})
    pd.DataFrame(rows).to_csv(an / "prediction.tsv", sep="\t", index=False)
    rows = [{"model": "toy-clip", "branch": "vision", "atom": k, "sign": s, "network": NETWORKS[k % 12],
             "overlap_rate": 0.2 + 0.01 * k, "p_null": 0.001}
            for k in range(K) for s in ("+", "-")]
    pd.DataFrame(rows).to_csv(an / "affiliation.tsv", sep="\t", index=False)
    rows = [{"model": "toy-clip", "branch": "vision", "atom": k, "layer": layer, "side": side,
             "value": (layer if side.endswith("+") else 11 - layer) / 11 + 0.01 * k}
            for k in range(K) for layer in range(12) for side in ("AN+", "AN-", "BN+", "BN-")]
    pd.DataFrame(rows).to_csv(an / "polarity.tsv", sep="\t", index=False)
    rows = [{"model": "toy-clip", "branch": "vision", "atom": k, "network": NETWORKS[k % 3],
             "centroid_layer": 2.0 + k} for k in range(K)]
    pd.DataFrame(rows).to_csv(an / "hierarchy.tsv", sep="\t", index=False)
    # redundancy and crossmodal deliberately absent -> "not computed"
    nd = run / "networks" / "toy-clip" / "vision"
    nd.mkdir(parents=True)
    pd.DataFrame({"atom": range(K), "network": NETWORKS[:K], "overlap_rate": np.linspace(0.1, 0.4, K)}).to_csv(
        nd / "affiliation.tsv", sep="\t", index=False)
    cfg = {"seed": 0, "stimulus": {"kind": "demo", "tr": 1.0}, "fmri": {"kind": "demo", "paths": []},
           "models": [{"name": "toy-clip"}, {"name": "toy-meter"}],
           "encoding": {"q": 0.05, "n_shifts": 50}, "networks": {"atlas": "cabnp"},
           "report": {"surface_figures": surfaces}}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "versions.json").write_text(json.dumps({"vlmbrain": "0.1.0", "numpy": np.__version__,
                                                   "nilearn": "0.14"}))
    (run / "warnings.json").write_text(json.dumps(WARNINGS))
    (run / "stimulus").mkdir()
    pd.DataFrame({"tr_index": range(6), "run": ["R1"] * 3 + ["R2"] * 3, "rest": [False] * 6}).to_csv(
        run / "stimulus" / "timeline.tsv", sep="\t", index=False)
    demo = run / "demo"
    demo.mkdir()
    pd.DataFrame({"network": ["Visual1", "Auditory", "Language"], "model": "toy-clip",
                  "expected_sign": ["+", "+", "-"], "recovered_sign": ["+", "+", "+"]}).to_csv(
        demo / "recovery.tsv", sep="\t", index=False)
    return run


@pytest.fixture
def run_dir(tmp_path):
    return make_run_dir(tmp_path)


@pytest.fixture(scope="session")
def make_run():
    """The run-directory factory :func:`make_run_dir`."""
    return make_run_dir


@pytest.fixture(scope="session")
def built_report(tmp_path_factory):
    """``(run_dir, html_path, html_text)`` of a report built once per session (figures='fast')."""
    from vlmbrain.report import build_report

    run = make_run_dir(tmp_path_factory.mktemp("report"), untrained=("toy-meter",))
    out = build_report(run, figures="fast")
    return run, out, out.read_text(encoding="utf-8")
