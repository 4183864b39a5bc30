"""The HTML report: self-contained, every section, warnings, figures, untrained banner, not-computed."""

import json
import re

import pytest

from vlmbrain.errors import ConfigError, InputFileError
from vlmbrain.report import build_report
from vlmbrain.report.html import ANALYSIS_SECTIONS, table_html


HEADINGS = ["Overview", "Parameters", *[t for _, t in ANALYSIS_SECTIONS], "Per-network tables",
            "Demo: planted truth vs recovered", "Warnings", "Versions"]

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
    assert "<script" not in html.lower()
    # the detector itself does catch external resources
    assert _EXTERNAL.search('<img src="https://cdn.example/x.png">')
    assert _EXTERNAL.search("<script src='//cdn.plot.ly/plotly.js'></script>")


def test_every_section_heading(built):
    _, _, html = built
    for h in HEADINGS:
        assert f"<h2>{h}</h2>" in html, h


def test_figures_embedded(built):
    run, _, html = built
    svgs = sorted((run / "report" / "figures").glob("*.svg"))
    # no surfaces: every figure is inline SVG; one per saved file
    # bars r, bars frac, affiliation, polarity, 2 compositions, model comparison, hierarchy, recovery
    assert len(svgs) == 9
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
    trained = build_report(make_run(tmp_path), figures="none").read_text()
    assert "untrained-banner" not in trained
    assert "UNTRAINED" not in trained


def test_tables_and_numbers(built):
    run, _, html = built
    import pandas as pd

    pred = pd.read_csv(run / "analysis" / "prediction.tsv", sep="\t")
    assert f"<td>{pred['mean_r'].iloc[5]:.3f}</td>" in html
    assert "analysis/prediction.tsv" in html
    assert "networks/toy-clip/vision/affiliation.tsv" in html
    # optional tables absent -> not computed, no crash
    assert "Not computed: analysis/redundancy.tsv" in html
    assert "analysis/crossmodal.tsv: not computed" in html  # figures from encoding, table absent
    # demo recovery: 2 of 3 signs recovered in the synthetic table
    assert "<b>2 of 3</b> planted networks recovered with the planted sign" in html
    # polarity: mirroring summary from analysis/polarity.tsv (r < 0 for atoms 0, 1; p < 0.05 for atom 0)
    assert "Mirrored profiles: 2 of 3 atoms have r(P⁺, P⁻) &lt; 0, 1 with p &lt; 0.05." in html
    assert "<summary>Table analysis/polarity_profiles.tsv</summary>" in html
    assert "<summary>Table analysis/polarity_bn.tsv</summary>" in html


def test_provenance_and_versions(built):
    _, _, html = built
    assert "phantom (planted ground truth)" in html
    assert "6 TRs in 2 run(s): R1, R2" in html
    assert "<th>nilearn</th><td>0.14</td>" in html
    assert "<th>brain space</th><td>kind=cifti, name=hcp91k, n_grayordinates=91282</td>" in html
    assert "subcortical voxel positions are placeholders" in html
    assert "<th>fMRI runs</th><td>R1, R2</td>" in html
    assert "phantom fMRI planted from toy-world attributes" in html
    assert "Planted truth (demo/truth.tsv)" in html
    assert "<td>negation</td>" in html
    assert "n_shifts: 50" in html  # resolved config shown
    assert re.search(r"generated \d{4}-\d\d-\d\d \d\d:\d\d UTC", html)


def test_overlap_caption_counts(built):
    _, _, html = built
    # vision [0, 30000), text [20000, 50000): 20000 vision-only, 10000 shared, 20000 text-only
    assert "20000 vision-only, 10000 shared, 20000 text-only (Dice 0.333)" in html


def test_empty_run_dir_says_not_computed(tmp_path):
    run = tmp_path / "empty"
    run.mkdir()
    html = build_report(run).read_text()
    for h in HEADINGS:
        assert f"<h2>{h}</h2>" in html
    assert html.count("Not computed") >= len(ANALYSIS_SECTIONS) + 2
    assert "versions.json not found" in html
    assert "config.yaml not found" in html


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


def test_warnings_as_dicts(run_dir):
    (run_dir / "warnings.json").write_text(json.dumps([{"stage": "encoding", "message": "few TRs"}]))
    assert "[encoding] few TRs" in build_report(run_dir, figures="none").read_text()


def test_surfaces_shorthand(run_dir):
    """``surfaces=False`` (as the pipeline passes it) means figures='fast': no surface PNGs."""
    html = build_report(run_dir, surfaces=False, max_surface_maps=0).read_text()
    assert 'src="data:image/png;base64,' not in html
    assert html.count("<svg") == 9


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
    shutil.rmtree(run / "demo")
    html = build_report(run, figures="all", max_surface_maps=1).read_text()
    assert html.count('src="data:image/png;base64,') == 1
    assert "surface maps beyond max_surface_maps=1 were not drawn" in html
    assert (run / "report" / "figures" / "surface_r_toy-clip_text.svg").is_file()
    assert (run / "report" / "figures" / "surface_r_toy-clip_text.png").is_file()


def test_weights_status_reading():
    from vlmbrain.report.html import _flag_untrained

    assert _flag_untrained({"name": "m", "trained": False}) is True
    assert _flag_untrained({"name": "m", "trained": True}) is False
    assert _flag_untrained({"parameters": {"weights": "random"}}) is True
    assert _flag_untrained({"weights": "9f2c1ab0"}) is None  # a weights hash says nothing
    assert _flag_untrained({}) is None


def test_weights_not_recorded(run_dir):
    import shutil

    shutil.rmtree(run_dir / "activations")
    html = build_report(run_dir, figures="none").read_text()
    assert "not recorded" in html and "untrained-banner" not in html
