"""Surface runs: fMRIPrep GIFTI time series per hemisphere on fsaverage5, with a FreeSurfer annot atlas."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
from spaces_helpers import assert_planted, fsaverage5_networks, read, run, study_config, surface_runs, write_annots, assert_renders_in_chromium


def test_gifti_fsaverage5_runs_with_an_annot_atlas(tmp_path, rng, plant_model):
    networks = fsaverage5_networks()
    atlas = write_annots(tmp_path, networks)
    paths = surface_runs(tmp_path, rng, networks)
    out = tmp_path / "run"
    assert run(study_config(tmp_path, {"kind": "gifti", "paths": paths}, {"atlas": atlas}), out) == 0
    assert (out / "report" / "index.html").is_file()
    assert_renders_in_chromium(out)
    assert_planted(out, {"Language": +1, "Default": -1})
    info = json.loads((out / "analysis" / "atlas.json").read_text())
    assert info["space"]["kind"] == "gifti" and info["space"]["mesh"] == "fsaverage5"
    assert info["atlas"]["form"] == "annot" and info["null"] == "spin"
    space = json.loads((out / "brain" / "space.json").read_text())
    assert space["hemispheres"] == {"left": 10242, "right": 10242}
    # affiliation labels written back as GIFTI label files, one per hemisphere
    for tag in ("L", "R"):
        img = nib.load(out / "networks" / "plant-text" / "text" / f"affiliation.{tag}.label.gii")
        assert len(img.darrays) == 2 and img.darrays[0].data.shape == (10242,)
        assert set(img.labeltable.get_labels_as_dict().values()) >= {"Language", "Default"}
    left = nib.load(out / "networks" / "plant-text" / "text" / "affiliation.L.label.gii")
    hit = np.concatenate([d.data for d in left.darrays])
    assert (hit > 0).any()
    assert len(read(out, "skipped")) == 0
    page = (out / "report" / "index.html").read_text()
    assert "on the fsaverage5 mesh" in page and "spin test on the fsaverage5 sphere" in page
