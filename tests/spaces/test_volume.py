"""Volumetric runs: 4-D NIfTI with a mask and a NIfTI label atlas (parcels grouped into networks)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
from spaces_helpers import assert_planted, read, run, study_config, volume_atlas, volume_runs, assert_renders_in_chromium


def test_nifti_runs_with_a_nifti_label_atlas(tmp_path, rng, plant_model):
    atlas, lookup, network = volume_atlas(tmp_path)
    paths, mask = volume_runs(tmp_path, rng, network)
    out = tmp_path / "run"
    cfg = study_config(tmp_path, {"kind": "nifti", "paths": paths, "mask": mask},
                       {"atlas": atlas.name, "labels": lookup.name})
    assert run(cfg, out) == 0
    assert (out / "report" / "index.html").is_file()
    assert_renders_in_chromium(out)
    assert_planted(out, {"Language": +1, "Default": -1})
    info = json.loads((out / "analysis" / "atlas.json").read_text())
    assert info["atlas"]["form"] == "nifti" and info["null"] == "moran"
    assert [n["name"] for n in info["atlas"]["networks"]] == ["Visual", "Language", "Default"]
    # outputs in the data's own form: NIfTI labels with their lookup, next to the CIFTI maps
    labels = nib.load(out / "networks" / "plant-text" / "text" / "affiliation.nii.gz")
    assert labels.shape[:3] == (12, 14, 10) and np.allclose(labels.affine, nib.load(mask).affine)
    table = pd.read_csv(out / "networks" / "plant-text" / "text" / "affiliation.tsv", sep="\t")
    assert set(table["name"]) == {"Visual", "Language", "Default"}
    assert len(read(out, "skipped")) == 0
