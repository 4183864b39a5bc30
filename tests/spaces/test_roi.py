"""ROI time courses as .npy columns: without any atlas, and with a column → network TSV."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from spaces_helpers import assert_planted, phantom, read, run, study_config, assert_renders_in_chromium


def _npy_runs(folder, rng, n_columns, plus, minus):
    paths = []
    for r, y in enumerate(phantom(rng, n_columns, plus, minus)):
        p = folder / f"roi_run{r + 1}.npy"
        np.save(p, y)
        paths.append(str(p))
    return paths


def test_roi_columns_without_an_atlas_reach_the_report(tmp_path, rng, plant_model):
    """487 ROI columns, the default atlas: no atlas fits, the network analyses are skipped, the rest computed."""
    paths = _npy_runs(tmp_path, rng, 487, slice(0, 120), slice(300, 400))
    out = tmp_path / "run"
    assert run(study_config(tmp_path, {"kind": "npy", "paths": paths}), out) == 0
    assert (out / "report" / "index.html").is_file()
    assert_renders_in_chromium(out)
    skipped = read(out, "skipped")
    assert "affiliation" in set(skipped["analysis"]) and skipped["reason"].str.contains("487 columns").all()
    info = json.loads((out / "analysis" / "atlas.json").read_text())
    assert info["atlas"] is None and info["requested"] == "auto"
    pred = read(out, "prediction")
    assert list(pred["network"]) == ["all"] and int(pred["n_significant"].iloc[0]) >= 150
    assert len(read(out, "affiliation")) == 0
    assert len(read(out, "polarity")) == 1 and len(read(out, "polarity_profiles")) > 0
    red = read(out, "redundancy")
    assert {"AN", "BN"} <= set(red["side"])
    assert len(read(out, "hierarchy")) == 2  # 1 atom x 2 signs, unaffiliated
    # the maps of array data are written as .npy and TSV
    assert (out / "encoding" / "plant-text" / "text" / "r_cv.npy").is_file()
    # the report says which space and why there is no atlas, and draws the columns' prediction
    page = (out / "report" / "index.html").read_text()
    assert "No network atlas" in page and "analysis/skipped.tsv" in page
    assert "prediction over the columns" in page


def test_an_atlas_that_does_not_fit_fails_before_extraction(tmp_path, rng, plant_model, capsys):
    paths = _npy_runs(tmp_path, rng, 487, slice(0, 10), slice(10, 20))
    out = tmp_path / "run"
    assert run(study_config(tmp_path, {"kind": "npy", "paths": paths}, {"atlas": "cabnp"}), out) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "91282" in err and "487" in err, err
    assert not (out / "activations").exists()


def test_roi_columns_with_a_network_table(tmp_path, rng, plant_model):
    """A TSV names the network (and position) of every column; the planted networks come back with their signs."""
    n = 300
    paths = _npy_runs(tmp_path, rng, n, slice(100, 200), slice(200, 300))
    names = np.repeat(["Visual", "Language", "Default"], 100)
    # every network is five patches of 20 ROIs spread over the brain, interleaved with the others' patches
    centres = rng.uniform(-60, 60, size=(15, 3)) * np.array([1.0, 1.4, 0.9])
    xyz = centres[np.repeat(np.arange(15), 20)] + rng.normal(scale=5, size=(n, 3))
    table = pd.DataFrame({"name": [f"roi{i}" for i in range(n)], "network": names,
                          "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]})
    table.to_csv(tmp_path / "rois.tsv", sep="\t", index=False)
    out = tmp_path / "run"
    assert run(study_config(tmp_path, {"kind": "npy", "paths": paths}, {"atlas": "rois.tsv"}), out) == 0
    assert (out / "report" / "index.html").is_file()
    assert_renders_in_chromium(out)
    assert_planted(out, {"Language": +1, "Default": -1})
    info = json.loads((out / "analysis" / "atlas.json").read_text())
    assert info["atlas"]["form"] == "tsv" and info["null"] == "moran"
    assert len(read(out, "skipped")) == 0
    labels = pd.read_csv(out / "networks" / "plant-text" / "text" / "affiliation.tsv", sep="\t", keep_default_na=False)
    assert len(labels) == n and list(labels.columns[1:]) == ["atom-0 +", "atom-0 -"]
    assert set(labels["atom-0 +"][100:200]) | set(labels["atom-0 -"][100:200]) >= {"Language"}
