"""Atom cards on the fast demo: the stimulus at an atom's peaks is the one its network was planted on."""

import json

import numpy as np
import pandas as pd
import pytest

from vlmbrain.artifacts import RunLayout, read_map
from vlmbrain.report.cards import CARD_VERSION, atoms_dir, card_path, read_index

pytestmark = pytest.mark.slow


def _tsv(path):
    return pd.read_csv(path, sep="\t", keep_default_na=False)


def _card(run, model, unit, k):
    return json.loads(card_path(RunLayout(run), model, unit, int(k)).read_text())


def test_peaks_show_the_planted_attribute(demo_run):
    """For every recovered network, its atom's strongest moments are when its planted attribute is high.

    ``demo/drivers.tsv`` holds, per planted network, the HRF-convolved attribute the phantom
    planted into it (``demo/truth.tsv`` names it), on the atoms' TR grid. The atom drives its
    network up at its peaks when it is affiliated through its β⁺ map, at its troughs through
    its β⁻ map; there the planted attribute, times the planted sign, is above its movie mean.
    """
    run, _ = demo_run
    truth = _tsv(run / "demo" / "truth.tsv").set_index("network")
    recovered = _tsv(run / "demo" / "recovery.tsv")
    recovered = recovered[recovered["recovered"].astype(str) == "True"]
    by_branch = _tsv(run / "demo" / "recovery_by_branch.tsv")
    by_branch = by_branch[by_branch["recovered"].astype(str) == "True"]
    drivers = _tsv(run / "demo" / "drivers.tsv")
    k = read_index(RunLayout(run))["peaks_per_atom"]
    assert len(recovered) >= 3, recovered
    for net in recovered["network"]:
        rows = by_branch[by_branch["network"] == net]
        best = rows.loc[rows["atom_driver_r"].astype(float).abs().idxmax()]
        card = _card(run, best["model"], best["branch"], best["atom"])
        signs = {a["sign"] for a in card["affiliations"] if a["network"] == net}
        assert signs, f"the card of {best['model']}/{best['branch']} atom {best['atom']} does not list {net}"
        if len(signs) == 1:
            sign = signs.pop()
        else:  # affiliated through both maps: the one the recovery scored
            sign = "+" if int(best["recovered_sign"]) * np.sign(float(best["atom_driver_r"])) > 0 else "-"
        moments = card["peaks"] if sign == "+" else card["troughs"]
        trs = [m["tr"] for m in moments]
        assert len(trs) == k
        planted = int(truth.loc[net, "planted_sign"])
        driver = drivers[net].to_numpy(float)
        at_moments, movie = planted * driver[trs].mean(), planted * driver.mean()
        assert at_moments > movie, (net, truth.loc[net, "attribute"], trs, at_moments, movie)


def test_cards_hold_what_the_report_shows(demo_run):
    run, _ = demo_run
    layout = RunLayout(run)
    index = read_index(layout)
    assert index["version"] == CARD_VERSION and index["frames"] > 0 and index["no_frames"] is None
    timeline = _tsv(run / "stimulus" / "timeline.tsv")
    q = json.loads((run / "analysis" / "atoms" / "index.json").read_text())
    assert q["hrf_lag_trs"] > 0  # SPM HRF: the stimulus of a peak is a few TRs earlier
    for unit in index["units"]:
        model, name, K = unit["model"], unit["unit"], unit["n_atoms"]
        beta = read_map(layout.encoding_map(model, name, "beta"))
        qmap = read_map(layout.encoding_map(model, name, "q"))
        codes = np.load(layout.dictionary_dir(model, name) / "codes.npy")
        atoms = np.load(layout.dictionary_dir(model, name) / "atoms.npy")
        stability = json.loads((layout.dictionary_dir(model, name) / "summary.json").read_text())["stability"]
        assert unit["stability_mean"] == pytest.approx(np.mean(stability["per_atom"]))
        for k in range(K):
            card = _card(run, model, name, k)
            assert (card["model"], card["unit"], card["atom"], card["n_atoms"]) == (model, name, k, K)
            course = np.array([np.nan if v is None else v for v in card["timecourse"]])
            assert course.shape == (len(timeline),)
            np.testing.assert_allclose(course, atoms[:, k], atol=1e-4)  # the demo fits every TR
            assert [r["stop"] - r["start"] for r in card["runs"]] == timeline.groupby("run_index").size().tolist()
            rest = np.zeros(len(timeline), bool)
            for a, b in card["rest"]:
                rest[a:b] = True
            assert (rest == timeline["rest"].astype(str).eq("True")).all()
            peaks = [m["value"] for m in card["peaks"]]
            troughs = [m["value"] for m in card["troughs"]]
            assert peaks == sorted(peaks, reverse=True) and troughs == sorted(troughs)
            assert peaks[0] == pytest.approx(atoms[:, k].max(), abs=1e-6)
            assert troughs[0] == pytest.approx(atoms[:, k].min(), abs=1e-6)
            for m in card["peaks"] + card["troughs"]:
                assert m["tr"] - m["stimulus_tr"] <= q["hrf_lag_trs"]
                assert m["caption"] == timeline["caption"].iloc[m["stimulus_tr"]]
                assert (atoms_dir(layout) / m["frame"]).is_file()
            members = card["members"]
            assert members["n"] == np.count_nonzero(codes[k])
            assert np.sum(members["by_layer_head"]["n"]) == members["n"]
            assert sum(r["n"] for r in members["by_module"]) == members["n"]
            top = [abs(r["code"]) for r in members["top"]]
            assert top == sorted(top, reverse=True) and top[0] == pytest.approx(np.abs(codes[k]).max())
            sig = qmap[k] < 0.05
            assert card["map"]["n_positive"] == int((sig & (beta[k] > 0)).sum())
            assert card["map"]["n_negative"] == int((sig & (beta[k] < 0)).sum())
            assert card["stability"] == pytest.approx(stability["per_atom"][k])
            assert all(a["overlap_rate"] >= 0 for a in card["affiliations"])


def test_report_has_every_card(demo_run):
    run, _ = demo_run
    html = (run / "report" / "index.html").read_text(encoding="utf-8")
    index = read_index(RunLayout(run))
    from vlmbrain.report.sections.atoms import card_id

    for unit in index["units"]:
        for k in range(unit["n_atoms"]):
            assert f'id="{card_id(unit["model"], unit["unit"], k)}"' in html
    # findings come first, provenance / parameters / versions last
    order = [html.index(f'<section id="{s}">') for s in ("summary", "models", "atoms", "provenance", "parameters",
                                                          "versions")]
    assert order == sorted(order)
    assert html.count('id="sv-plotly"') == 1  # plotly.js once, however many maps
