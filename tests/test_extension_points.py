"""Each extension point is one module plus one registration: registered here, run through `vlmbrain run`.

Everything a new model family, encoding method, atlas, analysis or report section needs is in
this file; nothing in the package is edited. Each test runs the whole pipeline from a YAML
file through the command line on a small study (two runs of captions, .npy fMRI).
"""

from __future__ import annotations

import json
import numpy as np
import pandas as pd
import pytest
import yaml

from vlmbrain._testing import echo_loader as _echo_loader
from vlmbrain.artifacts import read_map
from vlmbrain.cli import main

N_COLUMNS = 300


# ----------------------------------------------------------------------------- an atlas for 300 columns
def _block_atlas():
    from vlmbrain.networks import Atlas

    labels = np.repeat([1, 2, 3], N_COLUMNS // 3)
    return Atlas("test-blocks", labels, {1: "Visual1", 2: "Language", 3: "Default"},
                 {1: (1, 0, 0, 1), 2: (0, 1, 0, 1), 3: (0, 0, 1, 1)}, labels.size)


@pytest.fixture
def registered():
    """Register the test's model family, atlas and solver; remove them afterwards."""
    from vlmbrain.encoding.solvers import SOLVERS, register_solver
    from vlmbrain.models import registry as models
    from vlmbrain.networks import atlas as atlases

    models.register_model("echo-text", "echo", "none", _echo_loader, "test family")
    atlases.register_atlas("test-blocks", _block_atlas, "three blocks of 100 columns", replace=True)

    def half_ols(stats):
        G, C, _ = stats.totals()
        return 0.5 * np.linalg.solve(G, C)

    register_solver("half-ols", half_ols)
    yield
    models._REGISTRY.pop("echo-text", None)
    atlases._REGISTRY.pop("test-blocks", None)
    SOLVERS.pop("half-ols", None)


def _study(tmp_path, rng, **sections):
    """Two runs x 60 TRs of caption cues; one subject of .npy runs whose columns follow word counts."""
    words = ["a red circle", "two blue squares above a green triangle", "one small yellow square",
             "three large purple circles move left", "the dog runs", "rain on the window"]
    paths = []
    for r, run in enumerate(("r1", "r2")):
        lines = ["onset\tduration\ttext"] + [f"{3 * i}\t3\t{words[(i + r) % len(words)]}" for i in range(20)]
        (tmp_path / f"{run}.tsv").write_text("\n".join(lines) + "\n")
        length = np.repeat([len(words[(i + r) % len(words)].split()) for i in range(20)], 3).astype(np.float32)
        data = rng.normal(size=(60, N_COLUMNS)).astype(np.float32)
        data[:, 100:200] += 0.8 * (length - length.mean())[:, None]   # "Language" follows caption length
        p = tmp_path / f"{run}.npy"
        np.save(p, data)
        paths.append(str(p))
    cfg = {
        "stimulus": {"kind": "custom", "tr": 1.0,
                     "runs": [{"name": "r1", "n_trs": 60, "captions": "r1.tsv"},
                              {"name": "r2", "n_trs": 60, "captions": "r2.tsv"}]},
        "fmri": {"kind": "npy", "paths": paths},
        "models": [{"name": "echo-text"}],
        "dictionary": {"n_atoms": 3},
        "encoding": {"n_shifts": 0},
        "networks": {"atlas": "test-blocks", "null": "permutation", "n_perm": 20},
        "report": {"surface_figures": False},
    }
    for section, values in sections.items():
        cfg.setdefault(section, {}).update(values)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(path, out):
    return main(["run", str(path), "--out", str(out), "-q"])


def test_a_model_family_registered_from_a_test_file(tmp_path, rng, registered):
    out = tmp_path / "run"
    assert _run(_study(tmp_path, rng), out) == 0
    info = json.loads((out / "activations" / "echo-text" / "model.json").read_text())
    # a plug-in readout that does not say what its weights are is "unknown" (null), never trained
    assert info["family"] == "EchoTextReadout" and info["trained"] is None
    assert info["branches"] == [{"name": "text", "modality": "text", "stream": "text", "n_neurons": 24}]
    acts = np.load(out / "activations" / "echo-text" / "text.npy")
    assert acts.shape == (120, 24) and np.isfinite(acts).all() and acts.std() > 0
    assert (out / "report" / "index.html").is_file()
    pred = pd.read_csv(out / "analysis" / "prediction.tsv", sep="\t")
    assert set(pred["network"]) >= {"Visual1", "Language", "Default"}


def test_an_encoding_method_registered_from_a_test_file(tmp_path, rng, registered):
    out = tmp_path / "run"
    # no drift basis, so that the reference below is plain OLS with per-run intercepts
    assert _run(_study(tmp_path, rng, encoding={"method": "half-ols", "n_shifts": 20, "high_pass": "none"}), out) == 0
    beta = read_map(out / "encoding" / "echo-text" / "text" / "beta")
    summary = json.loads((out / "encoding" / "echo-text" / "text" / "summary.json").read_text())
    assert summary["method"] == "half-ols"
    # reference: OLS with per-run intercepts on the per-run z-scored atoms, halved
    from vlmbrain.signal import zscore_runs

    atoms = np.load(out / "dictionary" / "echo-text" / "text" / "atoms.npy")
    runs = np.load(out / "brain" / "runs.npy")
    Y = np.load(out / "brain" / "data.npy")
    X, _ = zscore_runs(atoms, runs)
    design = np.column_stack([X, (runs == 0).astype(float), (runs == 1).astype(float)])
    ols = np.linalg.lstsq(design, Y.astype(np.float64), rcond=None)[0][: X.shape[1]]
    np.testing.assert_allclose(beta, 0.5 * ols, rtol=1e-4, atol=1e-5)


def test_an_unknown_method_fails_before_any_work(tmp_path, rng, registered):
    out = tmp_path / "run"
    assert _run(_study(tmp_path, rng, encoding={"method": "quarter-ols"}), out) == 2
    assert not (out / "activations").exists()


def test_an_analysis_with_its_report_section_registered_from_a_test_file(tmp_path, rng, registered):
    """A new analysis: its table schema, its computation and its report section; nothing else changes."""
    from vlmbrain.analysis import ANALYSES, Analysis, register_analysis
    from vlmbrain.artifacts import TABLES, TableSchema, register_table
    from vlmbrain.report.sections import register_section, unregister_section

    register_table(TableSchema("atom_energy", (("model", "str"), ("branch", "str"), ("atom", "int"),
                                               ("energy", "float")), "sum of squared betas per atom"))

    def compute(inputs, shared):
        rows = [{"model": b.model, "branch": b.branch, "atom": k, "energy": float(np.nansum(b.beta[k] ** 2))}
                for b in inputs.branches for k in range(b.beta.shape[0])]
        return {"atom_energy": pd.DataFrame(rows)}

    register_analysis(Analysis("atom_energy", ("atom_energy",), compute))

    def render(ctx):
        table = ctx.table("atom_energy")
        if table is None:
            return ctx.missing("atom_energy")
        return ctx.render_string("<p id='energy-total'>total energy {{ '%.6f' | format(total) }}</p>",
                                 total=float(table["energy"].sum()))

    register_section("atom_energy", render, order=650, title="Atom energy")
    try:
        out = tmp_path / "run"
        assert _run(_study(tmp_path, rng), out) == 0
    finally:
        ANALYSES.unregister("atom_energy")
        TABLES.pop("atom_energy", None)
        unregister_section("atom_energy")
    table = pd.read_csv(out / "analysis" / "atom_energy.tsv", sep="\t")
    beta = read_map(out / "encoding" / "echo-text" / "text" / "beta")
    np.testing.assert_allclose(table["energy"], np.nansum(beta**2, axis=1), rtol=1e-5)
    html = (out / "report" / "index.html").read_text()
    import re

    shown = re.search(r"total energy ([0-9.]+)</p>", html)
    assert shown and float(shown.group(1)) == pytest.approx(float(np.nansum(beta**2)), rel=1e-5)
    assert html.index("Layer hierarchy") < html.index("Atom energy") < html.index("Model comparison")
