"""fMRIPrep derivatives as the fMRI source: runs found by space, task and subject, matched to the stimulus runs."""

from __future__ import annotations

import json
import shutil

from spaces_helpers import assert_planted, run, study_config, volume_atlas, volume_runs, assert_renders_in_chromium

SPACE = "MNI152NLin2009cAsym"


def _derivatives(folder, rng, network, subjects=("01", "02"), tr=1.5):
    root = folder / "derivatives" / "fmriprep"
    root.mkdir(parents=True)
    (root / "dataset_description.json").write_text(json.dumps(
        {"Name": "fMRIPrep - fMRI PREProcessing workflow", "BIDSVersion": "1.8.0", "DatasetType": "derivative",
         "GeneratedBy": [{"Name": "fMRIPrep", "Version": "23.2.0"}]}))
    for sub in subjects:
        stem = f"sub-{sub}_task-movie_run-{{run}}_space-{SPACE}_res-2"
        paths, mask = volume_runs(root, rng, network, prefix=stem + "_desc-preproc_bold.nii.gz",
                                  subdir=f"sub-{sub}/func")
        for r in (1, 2):
            shutil.copy(mask, root / f"sub-{sub}" / "func" / f"{stem.format(run=r)}_desc-brain_mask.nii.gz")
            (root / f"sub-{sub}" / "func" / f"{stem.format(run=r)}_desc-preproc_bold.json").write_text(
                json.dumps({"RepetitionTime": tr, "SkullStripped": False}))
        (root / f"sub-{sub}" / "func" / "mask.nii.gz").unlink()
        # other outputs fMRIPrep writes next to them are ignored
        (root / f"sub-{sub}" / "func" / f"sub-{sub}_task-movie_run-1_desc-confounds_timeseries.tsv").write_text("a\n1\n")
    return root


def _config(folder, root, atlas, lookup):
    return study_config(folder, {"kind": "bids", "bids": {"root": str(root), "space": SPACE, "res": "2",
                                                          "task": "movie"}},
                        {"atlas": atlas.name, "labels": lookup.name})


def test_fmriprep_derivatives_two_subjects(tmp_path, rng, plant_model):
    atlas, lookup, network = volume_atlas(tmp_path)
    root = _derivatives(tmp_path, rng, network)
    out = tmp_path / "run"
    assert run(_config(tmp_path, root, atlas, lookup), out) == 0
    assert (out / "report" / "index.html").is_file()
    assert_renders_in_chromium(out)
    meta = json.loads((out / "brain" / "meta.json").read_text())
    assert meta["meta"]["bids"]["subjects"] == ["01", "02"]
    assert meta["meta"]["bids"]["runs"] == ["task-movie_run-1", "task-movie_run-2"]
    assert_planted(out, {"Language": +1, "Default": -1})


def test_a_missing_run_is_one_error_before_extraction(tmp_path, rng, plant_model, capsys):
    atlas, lookup, network = volume_atlas(tmp_path)
    root = _derivatives(tmp_path, rng, network)
    for f in (root / "sub-02" / "func").glob("*run-2*"):
        f.unlink()
    out = tmp_path / "run"
    assert run(_config(tmp_path, root, atlas, lookup), out) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'r2'" in err and "sub-02" in err and "task-movie_run-1" in err, err
    assert not (out / "activations").exists()


def test_a_run_with_another_tr_is_one_error_before_extraction(tmp_path, rng, plant_model, capsys):
    atlas, lookup, network = volume_atlas(tmp_path)
    root = _derivatives(tmp_path, rng, network, subjects=("01",))
    sidecar = next((root / "sub-01" / "func").glob("*run-2*_bold.json"))
    sidecar.write_text(json.dumps({"RepetitionTime": 2.0}))
    out = tmp_path / "run"
    assert run(_config(tmp_path, root, atlas, lookup), out) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "RepetitionTime is 2 s" in err and "1.5 s" in err, err
    assert not (out / "activations").exists()
