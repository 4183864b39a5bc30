"""Findings first, the atom explorer and the interactive maps, on the synthetic run directory."""

import json
import re

import numpy as np
import pytest
from PIL import Image

from vlmbrain.artifacts import RunLayout
from vlmbrain.report import build_report
from vlmbrain.report.cards import CARD_VERSION, atoms_dir, card_path, frame_relpath
from vlmbrain.report.sections.atoms import card_id
from vlmbrain.report.viewer import NO_VALUE, pack, quantize, unpack

N_VERTICES = 2 * 32492


def write_cards(run, model="toy-clip", unit="vision", K=4, T=6):
    """Cards in the fields of vlmbrain.report.cards, two of them sharing a thumbnail."""
    layout = RunLayout(run)
    folder = atoms_dir(layout)
    for t, colour in ((1, (200, 30, 30)), (3, (30, 200, 30))):
        path = folder / frame_relpath(t)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16, 16), colour).save(path)
    for k in range(K):
        card = {
            "version": CARD_VERSION, "model": model, "unit": unit, "branches": [unit], "stream": "image",
            "site": "head-unit", "atom": k, "n_atoms": K, "tr": 1.0, "hrf_lag_trs": 1,
            "timecourse": [0.1 * k, 0.5, None, -0.4, 0.2, 0.0][:T],
            "runs": [{"name": "R1", "start": 0, "stop": 3}, {"name": "R2", "start": 3, "stop": 6}],
            "rest": [[5, 6]],
            "peaks": [{"tr": 1, "value": 0.5, "run": "R1", "run_tr": 1, "stimulus_tr": 1 if k else 3,
                       "caption": "a <red> square", "frame": frame_relpath(1 if k else 3)}],
            "troughs": [{"tr": 3, "value": -0.4, "run": "R2", "run_tr": 0, "stimulus_tr": 3, "caption": "",
                         "frame": None}],
            "members": {"n": 3, "n_positive": 2, "n_negative": 1, "n_neurons": 48,
                        "by_layer_head": {"rows": ["L0", "L1"], "heads": ["0", "1"], "n": [[1, 0], [1, 1]]},
                        "by_module": [{"branch": unit, "module": "self_attn", "n": 3, "n_positive": 2,
                                       "n_negative": 1}],
                        "top": [{"branch": unit, "layer": 1, "head": 1, "module": "self_attn", "unit": 7, "column": 19,
                                 "code": -0.9}]},
            "map": {"q": 0.05, "n_positive": 10, "n_negative": 0, "mean_r": 0.3},
            "affiliations": ([{"sign": "+", "network": "Visual1", "network_id": 1, "overlap_rate": 0.4,
                               "dice": None, "p_null": 0.01, "n_overlap": 4, "n_map": 10, "affiliated": True}]
                             if k == 0 else []),
            "strongest_overlaps": [{"sign": "+", "network": "Visual2", "network_id": 2, "overlap_rate": 0.1,
                                    "dice": 0.01, "p_null": 0.5, "n_overlap": 1, "n_map": 10, "affiliated": False}],
            "polarity": None, "stability": 0.9 if k == 0 else None,
        }
        path = card_path(layout, model, unit, k)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(card))
    (folder / "index.json").write_text(json.dumps({
        "version": CARD_VERSION, "units": [{"model": model, "unit": unit, "n_atoms": K, "stability_mean": None}],
        "n_timepoints": T, "hrf": "spm", "hrf_lag_trs": 1, "peaks_per_atom": 1, "min_separation_trs": 3,
        "frames": 2, "no_frames": None}))


@pytest.fixture(scope="module")
def carded_report(tmp_path_factory, make_run):
    run = make_run(tmp_path_factory.mktemp("explorer"))
    write_cards(run)
    out = build_report(run, figures="fast")
    return run, out.read_text(encoding="utf-8")


def test_pack_round_trip():
    values = np.array([0.0, 1.5, -3.0, np.nan, 2.25], dtype=np.float64)
    codes, scale = quantize(values)
    assert codes[3] == NO_VALUE and scale == pytest.approx(3.0 / 32767)
    back = unpack(pack(codes), "<i2").astype(float) * scale
    np.testing.assert_allclose(back[[0, 1, 2, 4]], values[[0, 1, 2, 4]], atol=scale)
    assert unpack(pack(np.arange(5, dtype="<i4"), 9), "<i4").tolist() == [0, 1, 2, 3, 4]


def test_findings_first_and_linked(carded_report):
    _, html = carded_report
    sections = re.findall(r'<section id="([^"]+)">', html)
    assert sections[0] == "summary" and sections[-3:] == ["provenance", "parameters", "versions"]
    summary = html[html.index('<section id="summary">'):html.index('<section id="models">')]
    for anchor in ("#prediction", "#affiliation", "#polarity", "#atoms"):
        assert f'href="{anchor}"' in summary
    # every unit has a row; toy-clip / vision names its affiliated atom and links to its card
    for unit in ("toy-clip / vision", "toy-clip / text", "toy-meter / image", "toy-meter / text"):
        assert unit in summary
    assert f'href="#{card_id("toy-clip", "vision", 0)}"' in summary
    assert "1 of 3 atoms" in summary  # polarity: mirrored among tested atoms
    assert "UNTRAINED" not in summary


def test_atom_explorer_cards(carded_report):
    run, html = carded_report
    for k in range(4):
        assert f'id="{card_id("toy-clip", "vision", k)}"' in html
        assert f'href="#{card_id("toy-clip", "vision", k)}"' in html
    # each thumbnail embedded once, whichever cards show it; captions escaped
    assert html.count(".fr-tr_00001{") == 1 and html.count(".fr-tr_00003{") == 1
    assert "a &lt;red&gt; square" in html and "<red>" not in html
    assert "no frame" in html
    # atom 0 has a significant β map in the synthetic run: a picture and an interactive map
    card0 = html[html.index(f'id="{card_id("toy-clip", "vision", 0)}"'):html.index(f'id="{card_id("toy-clip", "vision", 1)}"')]
    assert '<img class="atom-map"' in card0 and 'class="sv"' in card0
    assert "Visual1 (+)" in card0 and "0.900" in card0  # affiliation badge, stability
    assert (run / "report" / "figures" / "atoms" / "toy-clip_vision_atom0.png").is_file()
    card1 = html[html.index(f'id="{card_id("toy-clip", "vision", 1)}"'):html.index(f'id="{card_id("toy-clip", "vision", 2)}"')]
    assert "No grayordinate is significant for this atom." in card1
    assert "Strongest overlaps" in card1 and "not computed" in card1


def test_interactive_maps_once_and_decodable(carded_report):
    _, html = carded_report
    assert html.count('id="sv-plotly"') == 1 and html.count('id="sv-mesh"') == 1
    maps = re.findall(r'<div class="sv" ([^>]*)><script type="application/octet-stream" class="sv-data">([^<]+)<',
                      html)
    # 4 prediction maps, 2 branch-overlap maps, atom 0's map
    assert len(maps) == 7
    for attrs, data in maps:
        dtype = "u1" if 'data-kind="categorical"' in attrs else "<i2"
        assert unpack(data, dtype).shape == (N_VERTICES,)
    mesh = json.loads(re.search(r'<script type="application/json" id="sv-mesh">(.+?)</script>', html, re.S).group(1))
    gray = np.cumsum(unpack(mesh["gray_delta"], "<i4"))
    assert gray.shape == (N_VERTICES,) and gray.max() == 59411  # the 91k space's last cortical grayordinate
    assert mesh["network_names"][1] == "Visual1"


def test_interactive_off(tmp_path, make_run):
    run = make_run(tmp_path)
    write_cards(run)
    html = build_report(run, figures="fast", interactive=False).read_text(encoding="utf-8")
    assert "<script" not in html and 'class="sv"' not in html
    assert "report.interactive: false" in html
    assert '<img class="atom-map"' in html  # the small static picture stays


def test_explorer_skipped_without_cards(built_report):
    _, _, html = built_report
    assert "Skipped: analysis/atoms/ is not in this run directory" in html


def test_surface_thumbnail():
    import io

    from vlmbrain.report.surface import surface_thumbnail

    vec = np.full(91282, np.nan)
    vec[:5000] = np.linspace(-1, 1, 5000)
    img = Image.open(io.BytesIO(surface_thumbnail(vec, panel=(100, 70)))).convert("RGB")
    assert img.size == (400, 70)
    px = np.asarray(img).astype(int)
    coloured = (np.abs(px[..., 0] - px[..., 2]) > 40).sum()
    assert coloured > 100  # the coloured vertices show, the rest is grey shading
