"""The HTML report: self-contained, every section, warnings, figures, untrained banner, skipped sections."""

import re

import pytest

from vlmbrain.errors import ConfigError, InputFileError
from vlmbrain.report import build_report, registered_sections
from vlmbrain.report.sections import table_html

ANALYSES = ["Brain space and atlas", "Prediction across networks", "Prediction against the noise ceiling", "Surface maps",
            "Maps in the native space", "Network affiliation of atoms", "Atom explorer", "Redundancy",
            "Polarity", "Cross-modal mapping", "Layer hierarchy", "Model comparison"]
HEADINGS = ["Findings", "Models and weights", *ANALYSES, "Warnings", "Data provenance", "Parameters", "Versions"]

_EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import""", re.I)


WARNINGS = ["signal: 12 constant ANs dropped from toy-clip/vision",
            "encoding: <toy-meter/text> 3 grayordinates are constant & were left out"]


@pytest.fixture
def built(built_report):
    return built_report


def test_written_where_documented(built):
    run, out, _ = built
    assert out == run / "report" / "index.html"
    assert (run / "report" / "figures" / "prediction_network_bars.svg").is_file()
    assert (run / "report" / "figures" / "prediction_network_bars.png").is_file()


def test_self_contained(built):
    _, _, html = built
    assert _EXTERNAL.search(html) is None, _EXTERNAL.search(html)
    # scripts are inline only: the interactive viewer's data and code travel inside the page
    assert re.search(r"<script[^>]*\bsrc\s*=", html, re.I) is None
    # the detector itself does catch external resources
    assert _EXTERNAL.search('<img src="https://cdn.example/x.png">')
    assert _EXTERNAL.search("<script src='//cdn.plot.ly/plotly.js'></script>")


def test_every_section_heading(built):
    _, _, html = built
    titles = [s.title for s in registered_sections() if s.title]
    assert titles == HEADINGS  # the built-in sections, in page order
    positions = [html.index(f"<h2>{h}</h2>") for h in HEADINGS]
    assert positions == sorted(positions)


def test_figures_embedded(built):
    run, _, html = built
    svgs = sorted((run / "report" / "figures").glob("*.svg"))
    # no surfaces: every figure is inline SVG; one per saved file
    # bars r, bars frac, affiliation, polarity, 2 compositions, model comparison, hierarchy
    assert len(svgs) == 8
    assert html.count("<svg") == len(svgs)
    assert '<img alt=' not in html  # surface maps (base64 PNG) are off
    assert "<?xml" not in html


def test_warnings_listed_and_escaped(built):
    _, _, html = built
    assert WARNINGS[0] in html
    assert "&lt;toy-meter/text&gt; 3 grayordinates are constant &amp; were left out" in html
    assert "<toy-meter/text>" not in html


def test_untrained_banner(built, tmp_path, make_run):
    _, _, html = built
    assert 'id="untrained-banner"' in html
    assert "UNTRAINED WEIGHTS: toy-meter" in html
    assert '<td class="untrained">UNTRAINED (random)</td>' in html
    trained = build_report(make_run(tmp_path), figures="none").read_text()
    assert "untrained-banner" not in trained
    assert "UNTRAINED" not in trained


def test_tables_and_numbers(built):
    run, _, html = built
    import pandas as pd

    pred = pd.read_csv(run / "analysis" / "prediction.tsv", sep="\t")
    assert f"<td>{pred['mean_r'].iloc[5]:.3f}</td>" in html
    assert "analysis/prediction.tsv" in html
    # optional tables absent -> skipped, no crash
    assert "Skipped: analysis/redundancy.tsv is not in this run directory." in html
    assert "Not in this run directory: analysis/crossmodal.tsv." in html  # figures from the maps, table absent
    # the demo's section is not part of the default page
    assert 'id="recovery"' not in html
    # modality and weights of every unit come from model.json
    assert re.search(r"<td>toy-meter</td>\s*<td>image</td>\s*<td>image</td>\s*<td>UNTRAINED \(random\)</td>", html)
    assert re.search(r"<td>toy-clip</td>\s*<td>text</td>\s*<td>text</td>\s*<td>trained</td>", html)
    # polarity: mirroring summary from analysis/polarity.tsv (r < 0 for atoms 0, 1; p < 0.05 for atom 0)
    assert "Mirrored profiles: 2 of 3 atoms have r(P⁺, P⁻) &lt; 0, 1 with p &lt; 0.05." in html
    assert "<summary>Table analysis/polarity_profiles.tsv</summary>" in html
    assert "<summary>Table analysis/polarity_bn.tsv</summary>" in html


def test_provenance_and_versions(built):
    _, _, html = built
    assert "phantom (planted ground truth)" in html
    assert "6 TRs in 2 run(s): R1, R2" in html
    assert "<th>nilearn</th><td>0.14</td>" in html
    assert "<th>rest TRs</th><td>1</td>" in html
    assert "<th>brain space</th><td>kind=cifti, name=hcp91k, n_grayordinates=91282</td>" in html
    assert "VOXEL POSITIONS ARE PLACEHOLDERS" in html  # the space's own notes
    assert "<th>fMRI runs</th><td>R1, R2</td>" in html
    assert "<th>fMRI data</th><td>vlmbrain.demo phantom</td>" in html
    assert "n_shifts: 50" in html  # resolved config shown
    assert re.search(r"generated \d{4}-\d\d-\d\d \d\d:\d\d UTC", html)


def test_overlap_caption_counts(built):
    _, _, html = built
    # vision [0, 30000), text [20000, 50000): 20000 vision-only, 10000 shared, 20000 text-only
    assert "20000 vision-only, 10000 shared, 20000 text-only (Dice 0.333)" in html


def test_empty_run_dir_says_skipped(tmp_path):
    run = tmp_path / "empty"
    run.mkdir()
    html = build_report(run).read_text()
    for h in HEADINGS:
        assert f"<h2>{h}</h2>" in html
    # every section but the warnings says why it is empty
    assert html.count('<p class="notcomputed">Skipped: ') == len(HEADINGS) - 1
    assert "Skipped: versions.json not found" in html
    assert "Skipped: config.yaml not found" in html
    assert "Skipped: no activations/&lt;model&gt;/model.json in this run directory." in html
    assert "No warnings were raised." in html


def test_custom_out_path(tmp_path, run_dir):
    out = build_report(run_dir, tmp_path / "elsewhere" / "r.html", figures="none", max_surface_maps=0)
    assert out.is_file()
    assert "<svg" not in out.read_text()  # figures="none": tables only


def test_missing_run_dir_error(tmp_path):
    with pytest.raises(InputFileError, match=r"run directory .*nope does not exist"):
        build_report(tmp_path / "nope")


def test_corrupt_json_error(run_dir):
    (run_dir / "versions.json").write_text("{not json")
    with pytest.raises(InputFileError, match=r"versions.json is not valid JSON"):
        build_report(run_dir, figures="none")


def test_malformed_model_json_error(run_dir):
    (run_dir / "activations" / "toy-clip" / "model.json").write_text('{"name": "toy-clip", "trained": "yes"}')
    with pytest.raises(InputFileError, match=r"model.json: not a vlmbrain model.json"):
        build_report(run_dir, figures="none")


def test_table_off_schema_error(run_dir):
    """A table whose columns are not its schema's is an error, not a guess."""
    (run_dir / "analysis" / "hierarchy.tsv").write_text("model\tbranch\tlayer_centroid\nm\tb\t1.0\n")
    with pytest.raises(InputFileError, match=r"hierarchy.tsv: columns .* do not match the schema"):
        build_report(run_dir, figures="none")


def test_surfaces_shorthand(run_dir):
    """``surfaces=False`` (as the pipeline passes it) means figures='fast': no surface PNGs."""
    html = build_report(run_dir, surfaces=False, max_surface_maps=0).read_text()
    assert 'src="data:image/png;base64,' not in html
    assert html.count("<svg") == 8


def test_bad_figures_option(run_dir):
    with pytest.raises(ConfigError, match="figures must be 'all', 'fast' or 'none', got 'some'"):
        build_report(run_dir, figures="some")


def test_table_number_formatting():
    import pandas as pd

    html = table_html(pd.DataFrame({"a": [0.123456, 1e-5, 12345.0, float("nan")], "n": [1, 2, 3, 4]}))
    for s in ("<td>0.123</td>", "<td>1e-05</td>", "<td>12345</td>", "<td>—</td>"):
        assert s in html
    assert "First 2 of 4 rows" in table_html(pd.DataFrame({"a": range(4)}), max_rows=2)


def test_one_surface_figure(tmp_path, make_run):
    import shutil

    run = make_run(tmp_path)
    shutil.rmtree(run / "analysis")
    html = build_report(run, figures="all", max_surface_maps=1).read_text()
    assert html.count('src="data:image/png;base64,') == 1
    assert "surface maps beyond max_surface_maps=1 were not drawn" in html
    # the first unit of the first model.json: toy-clip / vision
    assert (run / "report" / "figures" / "surface_r_toy-clip_vision.png").is_file()
    # the mesh is a bitmap in any format: a surface map is saved once, as PNG
    assert not (run / "report" / "figures" / "surface_r_toy-clip_vision.svg").exists()


def test_weights_not_recorded(run_dir):
    import shutil

    shutil.rmtree(run_dir / "activations")
    html = build_report(run_dir, figures="none").read_text()
    assert "Skipped: no activations/&lt;model&gt;/model.json in this run directory." in html
    assert "untrained-banner" not in html
