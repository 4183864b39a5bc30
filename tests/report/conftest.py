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
        (stage / "model.json").write_text(json.dumps(
            {"name": model, "branches": list(branches), "trained": model not in untrained,
             "weights_hash": "abc123", "description": f"{model} test double"}))
    an = run / "analysis"
    an.mkdir()
    # analysis tables with the columns vlmbrain.analysis writes
    rows = []
    for model, branches in (("toy-clip", ("vision", "text")), ("toy-meter", ("image", "text"))):
        for b in branches:
            rows.append({"model": model, "branch": b, "network_id": -1, "network": "all", "n_grayordinates": V,
                         "n_valid": V, "mean_r": 0.5, "median_r": 0.5, "n_significant": 10,
                         "fraction_significant": 0.5})
            for i, n in enumerate(NETWORKS):
                rows.append({"model": model, "branch": b, "network_id": i + 1, "network": n, "n_grayordinates": 1000 + i,
                             "n_valid": 1000 + i, "mean_r": 0.02 * i + rng.uniform(0, 0.01), "median_r": 0.02 * i,
                             "n_significant": i, "fraction_significant": i / 12})
    pd.DataFrame(rows).to_csv(an / "prediction.tsv", sep="\t", index=False)
    rows = [{"model": "toy-clip", "branch": "vision", "atom": k, "sign": s, "network_id": j + 1, "network": n,
             "overlap_rate": 0.2 + 0.01 * k, "p_null": 0.001, "is_max": j == k % 12,
             "affiliated": (j == k % 12) and s == "+"}
            for k in range(K) for s in ("+", "-") for j, n in enumerate(NETWORKS)]
    pd.DataFrame(rows).to_csv(an / "affiliation.tsv", sep="\t", index=False)
    rows = [{"model": "toy-clip", "branch": "vision", "atom": k, "side": side, "layer": layer,
             "value": (layer if side.endswith("+") else 11 - layer) / 11 + 0.01 * k, "n_layer": 768}
            for k in range(K) for layer in range(12) for side in ("AN+", "AN-")]
    pd.DataFrame(rows).to_csv(an / "polarity_profiles.tsv", sep="\t", index=False)
    rows = [{"model": "toy-clip", "branch": "vision", "atom": k, "side": side, "an_sign": an_sign, "layer": layer,
             "value": (0.5 if an_sign != "all" else (0.1 if side == "BN+" else -0.1)) * layer / 11, "n_neurons": 5}
            for k in range(K) for side in ("BN+", "BN-") for an_sign in ("+", "-", "all") for layer in range(12)]
    pd.DataFrame(rows).to_csv(an / "polarity_bn.tsv", sep="\t", index=False)
    pd.DataFrame({"model": "toy-clip", "branch": "vision", "atom": range(K), "n_bn_pos": 10, "n_bn_neg": 5,
                  "n_an_pos": 7, "n_an_neg": 3, "n_layers": 12, "r_mirror": [-0.9, -0.8, 0.2, np.nan][:K] + [0.1] * (K - 4),
                  "p_mirror": [0.001, 0.2, 0.5, np.nan][:K] + [0.5] * (K - 4)}).to_csv(
        an / "polarity.tsv", sep="\t", index=False)
    rows = [{"model": "toy-clip", "branch": "vision", "atom": k, "sign": "+", "network_id": k % 3 + 1,
             "network": NETWORKS[k % 3], "centroid_layer": 2.0 + k, "depth": (2.0 + k) / 11} for k in range(K)]
    rows.append({"model": "toy-clip", "branch": "vision", "atom": 0, "sign": "-", "network_id": 0, "network": "",
                 "centroid_layer": 2.0, "depth": 2 / 11})
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
    (run / "brain").mkdir()
    (run / "brain" / "meta.json").write_text(json.dumps(
        {"run_names": ["R1", "R2"], "tr": 1.0, "meta": {"source": "vlmbrain.demo phantom", "subjects": 1}}))
    (run / "brain" / "space.json").write_text(json.dumps(
        {"kind": "cifti", "name": "hcp91k", "n_grayordinates": V, "notes": "subcortical voxel positions are placeholders"}))
    demo = run / "demo"
    demo.mkdir()
    (demo / "truth.json").write_text(json.dumps({"planted": [], "note": "phantom fMRI planted from toy-world attributes"}))
    pd.DataFrame({"network": ["Visual1", "Auditory", "Language"], "attribute": ["brightness", "loudness", "negation"],
                  "planted_sign": [1, 1, -1]}).to_csv(demo / "truth.tsv", sep="\t", index=False)
    pd.DataFrame({"network": ["Visual1", "Auditory", "Language"], "planted_sign": [1, 1, -1],
                  "recovered_sign": [1, 1, 1], "recovered": [True, True, False], "model": "toy-clip",
                  "branch": "vision", "attribute": ["brightness", "loudness", "negation"], "atom": [0, 1, 2],
                  "atom_driver_r": [0.8, 0.5, 0.4], "overlap_rate": [0.3, 0.2, 0.2]}).to_csv(
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
