"""A small synthetic run directory written in the forms of vlmbrain.artifacts (layout, model.json, table schemas)."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from vlmbrain.artifacts import BranchInfo, ModelInfo, RunLayout, write_model_json, write_table

NETWORKS = ["Visual1", "Visual2", "Somatomotor", "Cingulo-Opercular", "Dorsal-attention", "Language",
            "Frontoparietal", "Auditory", "Default", "Posterior-Multimodal", "Ventral-Multimodal",
            "Orbito-Affective"]
WARNINGS = ["signal: 12 constant ANs dropped from toy-clip/vision",
            "encoding: <toy-meter/text> 3 grayordinates are constant & were left out"]


#: model folder -> its branches and their modality
MODELS = {"toy-clip": (("vision", "image"), ("text", "text")), "toy-meter": (("image", "image"), ("text", "text"))}


def _full_timeline(n, runs, rest):
    return pd.DataFrame({"tr_index": range(n), "run": runs, "run_index": [0] * 3 + [1] * 3,
                         "run_tr": [0, 1, 2] * 2, "onset": np.arange(n, dtype=float),
                         "frame_time": np.arange(n, dtype=float), "clip": "c", "rest": rest, "caption": ""})


def make_run_dir(root, *, untrained=(), surfaces=False, K=4, seed=0, space=None):
    """Write a synthetic run directory; returns its path.

    toy-clip: vision significant in the first half of the cortex, text in a band overlapping it
    (so vision-only, shared and text-only are all non-empty). toy-meter: one branch pair too.
    ``space``: the BrainSpace saved as brain/space.json (default the HCP 91k space); the maps
    have its number of grayordinates.
    """
    from vlmbrain.brain.space import BrainSpace

    space = BrainSpace.hcp91k() if space is None else space
    V = space.n_grayordinates
    rng = np.random.default_rng(seed)
    run = root / "run"
    layout = RunLayout(run)
    for model, branches in MODELS.items():
        for bi, (b, _) in enumerate(branches):
            d = layout.encoding_dir(model, b)
            d.mkdir(parents=True)
            beta = rng.standard_normal((K, V)).astype(np.float32)
            np.save(d / "beta.npy", beta)
            np.save(d / "t.npy", (beta * 3).astype(np.float32))
            q = np.ones((K, V), dtype=np.float32)
            sig = np.zeros(V, bool)
            if bi == 0:
                sig[: int(V * 30000 / 91282)] = True
            else:
                sig[int(V * 20000 / 91282): int(V * 50000 / 91282)] = True
            q[0, sig] = 0.001
            np.save(d / "q.npy", q)
            r = np.where(sig, 0.3, 0.01).astype(np.float32) + 0.01 * rng.standard_normal(V).astype(np.float32)
            np.save(d / "r_cv.npy", r)
            np.save(d / "q_r.npy", np.where(sig, 0.001, 0.9).astype(np.float32))
        write_model_json(ModelInfo(name=model, folder=model, weights_hash="abc123", trained=model not in untrained,
                                   branches=[BranchInfo(name=b, modality=m, stream=m, n_neurons=48)
                                             for b, m in branches],
                                   description=f"{model} test double"), layout.model_json(model))
    # analysis tables in the schemas of vlmbrain.artifacts
    rows = []
    for model, branches in MODELS.items():
        for b, _ in branches:
            rows.append({"model": model, "branch": b, "network_id": -1, "network": "all", "n_grayordinates": V,
                         "n_valid": V, "mean_r": 0.5, "median_r": 0.5, "n_significant": 10,
                         "fraction_significant": 0.5})
            for i, n in enumerate(NETWORKS):
                rows.append({"model": model, "branch": b, "network_id": i + 1, "network": n, "n_grayordinates": 1000 + i,
                             "n_valid": 1000 + i, "mean_r": 0.02 * i + rng.uniform(0, 0.01), "median_r": 0.02 * i,
                             "n_significant": i, "fraction_significant": i / 12})
    write_table(pd.DataFrame(rows), "prediction", layout)
    rows = [{"model": "toy-clip", "branch": "vision", "atom": k, "sign": s, "network_id": j + 1, "network": n,
             "n_map": 100, "n_network": 1000, "n_overlap": 20 + k, "overlap_rate": 0.2 + 0.01 * k, "dice": 0.03,
             "jaccard": 0.02, "p_null": 0.001, "is_max": j == k % 12, "affiliated": (j == k % 12) and s == "+",
             "null": "spin"}
            for k in range(K) for s in ("+", "-") for j, n in enumerate(NETWORKS)]
    write_table(pd.DataFrame(rows), "affiliation", layout)
    rows = [{"model": "toy-clip", "branch": "vision", "atom": k, "side": side, "layer": layer,
             "value": (layer if side.endswith("+") else 11 - layer) / 11 + 0.01 * k, "n_layer": 768}
            for k in range(K) for layer in range(12) for side in ("AN+", "AN-")]
    write_table(pd.DataFrame(rows), "polarity_profiles", layout)
    rows = [{"model": "toy-clip", "branch": "vision", "atom": k, "side": side, "an_sign": an_sign, "layer": layer,
             "value": (0.5 if an_sign != "all" else (0.1 if side == "BN+" else -0.1)) * layer / 11, "n_neurons": 5}
            for k in range(K) for side in ("BN+", "BN-") for an_sign in ("+", "-", "all") for layer in range(12)]
    write_table(pd.DataFrame(rows), "polarity_bn", layout)
    write_table(pd.DataFrame({"model": "toy-clip", "branch": "vision", "atom": range(K), "n_bn_pos": 10, "n_bn_neg": 5,
                  "n_an_pos": 7, "n_an_neg": 3, "n_layers": 12, "r_mirror": [-0.9, -0.8, 0.2, np.nan][:K] + [0.1] * (K - 4),
                  "p_mirror": [0.001, 0.2, 0.5, np.nan][:K] + [0.5] * (K - 4),
                  "mirrored": [True, False, False, False][:K] + [False] * (K - 4)}), "polarity", layout)
    rows = [{"model": "toy-clip", "branch": "vision", "atom": k, "sign": "+", "network_id": k % 3 + 1,
             "network": NETWORKS[k % 3], "centroid_layer": 2.0 + k, "depth": (2.0 + k) / 11} for k in range(K)]
    rows.append({"model": "toy-clip", "branch": "vision", "atom": 0, "sign": "-", "network_id": 0, "network": "",
                 "centroid_layer": 2.0, "depth": 2 / 11})
    write_table(pd.DataFrame(rows), "hierarchy", layout)
    # redundancy and crossmodal deliberately absent -> "skipped"
    cfg = {"seed": 0, "stimulus": {"kind": "demo", "tr": 1.0}, "fmri": {"kind": "demo", "paths": []},
           "models": [{"name": "toy-clip"}, {"name": "toy-meter"}],
           "encoding": {"q": 0.05, "n_shifts": 50}, "networks": {"atlas": "cabnp"},
           "report": {"surface_figures": surfaces}}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "versions.json").write_text(json.dumps({"vlmbrain": "0.1.0", "numpy": np.__version__,
                                                   "nilearn": "0.14"}))
    (run / "warnings.json").write_text(json.dumps(WARNINGS))
    write_table(_full_timeline(6, ["R1"] * 3 + ["R2"] * 3, [False] * 5 + [True]), "timeline", layout)
    layout.brain_dir.mkdir()
    (layout.brain_dir / "meta.json").write_text(json.dumps(
        {"run_names": ["R1", "R2"], "tr": 1.0, "meta": {"source": "vlmbrain.demo phantom", "subjects": 1}}))
    space.save(layout.brain_dir)
    demo = run / "demo"
    demo.mkdir()
    pd.DataFrame({"network": ["Visual1", "Auditory", "Language"], "attribute": ["brightness", "loudness", "negation"],
                  "planted_sign": [1, 1, -1], "n_grayordinates": [100, 100, 100],
                  "n_responsive": [70, 70, 70]}).to_csv(demo / "truth.tsv", sep="\t", index=False)
    pd.DataFrame({"network": ["Visual1", "Auditory", "Language"], "planted_sign": [1, 1, -1],
                  "recovered_sign": [1, 1, 1], "recovered": [True, True, False],
                  "attribute": ["brightness", "loudness", "negation"],
                  "by": ["toy-clip/vision", "toy-clip/vision", "-"]}).to_csv(demo / "recovery.tsv", sep="\t", index=False)
    pd.DataFrame({"network": ["Visual1", "Auditory", "Language"], "planted_sign": [1, 1, -1],
                  "recovered_sign": [1, 1, 1], "recovered": [True, True, False], "model": "toy-clip",
                  "branch": "vision", "attribute": ["brightness", "loudness", "negation"], "atom": [0, 1, 2],
                  "atom_driver_r": [0.8, 0.5, 0.4], "overlap_rate": [0.3, 0.2, 0.2]}).to_csv(
        demo / "recovery_by_branch.tsv", sep="\t", index=False)
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

    from vlmbrain.report.sections import _registry

    run = make_run_dir(tmp_path_factory.mktemp("report"), untrained=("toy-meter",))
    recovery = _registry._SECTIONS.pop("recovery", None)   # see the fixture below
    try:
        out = build_report(run, figures="fast")
    finally:
        if recovery is not None:
            _registry._SECTIONS["recovery"] = recovery
    return run, out, out.read_text(encoding="utf-8")


@pytest.fixture(autouse=True)
def _sections_as_the_report_package_registers_them():
    """A pipeline run in the same process loads the demo plug-in, which adds its recovery section to
    every later report; the report tests start from the report package's own sections."""
    from vlmbrain.report.sections import _registry

    saved = dict(_registry._SECTIONS)
    _registry._SECTIONS.pop("recovery", None)
    yield
    _registry._SECTIONS.clear()
    _registry._SECTIONS.update(saved)
