"""Never stale: every file a step reads is fingerprinted into its key, so replacing it — even at
the same path, with the same size and modification time — recomputes exactly its dependants."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from vlmbrain._io import fingerprint_files
from vlmbrain.config import load_config
from vlmbrain.pipeline import Pipeline, run_pipeline
from vlmbrain.stages import STAGES


def ran(results):
    return [r.name for r in results if not r.skipped]


def test_replaced_inputs_recompute_exactly_their_dependants(study, inputs):
    """An fMRI run, then a caption file, replaced at the same path with the modification time kept."""
    cfg = load_config(study.shorten().write())
    assert ran(run_pipeline(cfg, study.out, stages=["encoding"]))
    assert ran(run_pipeline(cfg, study.out, stages=["encoding"])) == []
    old = np.load(study.out / "brain" / "data.npy")
    inputs.keep_mtime_replace(study.path("r1.npy"), lambda p: inputs.write_npy(p, n_trs=30, seed=99))
    assert ran(run_pipeline(cfg, study.out, stages=["encoding"])) == ["brain", "encoding:minilm/text"]
    assert not np.array_equal(np.load(study.out / "brain" / "data.npy"), old)
    inputs.keep_mtime_replace(study.path("r2.tsv"), lambda p: inputs.write_captions(p, n_cues=7, words=("a cat",)))
    assert ran(run_pipeline(cfg, study.out, stages=["encoding"])) == [
        "stimulus", "brain", "extract:minilm", "signal:minilm/text", "dictionary:minilm/text", "encoding:minilm/text"]


def test_all_zero_codes_stop_before_the_encoding(study, inputs, capsys):
    """Codes that are all zero (an alpha too large for these data) are an error, not empty maps."""
    from vlmbrain.cli import main

    cfg = load_config(study.shorten().write())
    run_pipeline(cfg, study.out, stages=["dictionary"])
    codes = study.out / "dictionary" / "minilm" / "text" / "codes.npy"
    np.save(codes, np.zeros_like(np.load(codes)))
    code = main(["encode", str(study.write()), "--out", str(study.out), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    line = inputs.error_lines(err)
    assert len(line) == 1 and "left every code of minilm/text zero" in line[0] and "dictionary.alpha" in line[0]
    assert not (study.out / "encoding").exists()


# ---------------------------------------------------------------------------- every kind of input
def _stage_files(config, stage):
    return [str(p) for p in STAGES.get(stage).input_files(config)]


def _replace_and_compare(config, stage, path, write, inputs):
    before = fingerprint_files(STAGES.get(stage).input_files(config))
    inputs.keep_mtime_replace(path, write)
    after = fingerprint_files(STAGES.get(stage).input_files(config))
    assert before != after, f"replacing {path} leaves the {stage} key unchanged"


def test_each_kind_of_input_is_fingerprinted(study, inputs, tmp_path):
    s = study
    # fMRI: CIFTI runs, NIfTI runs and their mask
    for i, run in enumerate(("r1", "r2")):
        inputs.write_dtseries(s.path(f"{run}.dtseries.nii"), seed=i)
    s.cfg["fmri"] = {"kind": "cifti", "paths": ["r1.dtseries.nii", "r2.dtseries.nii"]}
    cfg = load_config(s.write())
    _replace_and_compare(cfg, "brain", s.path("r2.dtseries.nii"), lambda p: inputs.write_dtseries(p, seed=7), inputs)
    for run in ("r1", "r2"):
        inputs.write_nifti(s.path(f"{run}.nii.gz"))
    inputs.write_mask(s.path("mask.nii.gz"))
    s.cfg["fmri"] = {"kind": "nifti", "paths": ["r1.nii.gz", "r2.nii.gz"], "mask": "mask.nii.gz"}
    cfg = load_config(s.write())
    _replace_and_compare(cfg, "brain", s.path("r1.nii.gz"), lambda p: inputs.write_nifti(p, seed=3), inputs)

    def other_mask(p):
        import nibabel as nib

        m = np.ones((4, 5, 6), np.uint8)
        m[0] = 0
        nib.save(nib.Nifti1Image(m, np.eye(4)), str(p))

    _replace_and_compare(cfg, "brain", s.path("mask.nii.gz"), other_mask, inputs)
    # stimulus: captions, a video, a folder of frames
    _replace_and_compare(cfg, "stimulus", s.path("r1.tsv"), lambda p: inputs.write_captions(p, words=("x y",)), inputs)
    inputs.write_video(s.path("m1.mp4"), seconds=61)
    inputs.write_frames(s.path("frames2"), 60)
    s.runs[0]["video"], s.runs[1]["frames_dir"] = "m1.mp4", "frames2"
    cfg = load_config(s.write())
    assert {str(s.path("m1.mp4")), str(s.path("frames2"))} <= set(_stage_files(cfg, "stimulus"))

    def darker_video(p):
        import av

        inputs.write_video(p, seconds=61)
        with av.open(str(p)) as c:  # same duration, other pixels
            assert c.streams.video[0].frames > 0
        raw = bytearray(p.read_bytes())
        raw[-10] ^= 0xFF
        p.write_bytes(bytes(raw))

    _replace_and_compare(cfg, "stimulus", s.path("m1.mp4"), darker_video, inputs)
    before = fingerprint_files(STAGES.get("stimulus").input_files(cfg))
    frame = s.path("frames2") / "frame_0005.png"
    inputs.keep_mtime_replace(frame, lambda p: shutil.copyfile(s.path("frames2") / "frame_0006.png", p))
    assert fingerprint_files(STAGES.get("stimulus").input_files(cfg)) != before
    # models: a local model folder, a checkpoint option
    folder = s.path("mymodel")
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (folder / "model.safetensors").write_bytes(b"\0" * 64)
    ckpt = s.path("meter.ckpt")
    ckpt.write_bytes(b"\1" * 64)
    s.cfg["models"] = [{"name": str(folder)}, {"name": "meter-clip16-roberta", "options": {"checkpoint": str(ckpt)}}]
    cfg = load_config(s.write())
    _replace_and_compare(cfg, "extract", folder / "model.safetensors", lambda p: p.write_bytes(b"\2" * 64), inputs)
    _replace_and_compare(cfg, "extract", ckpt, lambda p: p.write_bytes(b"\3" * 64), inputs)
    # the atlas
    _replace_and_compare(cfg, "analysis", s.path("atlas.dlabel.nii"), lambda p: inputs.write_dlabel(p, seed=5), inputs)


def test_registered_models_fingerprint_their_weights(study):
    """An alias's weights (minilm's folder) are input files of the extract step too."""
    cfg = load_config(study.write())
    files = STAGES.get("extract").input_files(cfg)
    from vlmbrain.models.registry import minilm_path

    assert [str(f) for f in files] == [minilm_path()]


def test_every_path_of_the_configuration_is_an_input_file(study, inputs):
    """Walk the configuration: each path it names is read by some stage that fingerprints it."""
    from pathlib import Path

    s = study
    inputs.write_video(s.path("m1.mp4"), seconds=61)
    s.runs[0]["video"] = "m1.mp4"
    inputs.write_frames(s.path("frames2"), 60)
    s.runs[1]["frames_dir"] = "frames2"
    cfg = load_config(s.write())
    covered = {str(Path(p).resolve()) for name in STAGES.names() for p in STAGES.get(name).input_files(cfg)}

    def paths(node):
        if isinstance(node, Path):
            yield node
        elif hasattr(node, "model_fields"):
            for key in node.model_fields:
                yield from paths(getattr(node, key))
        elif isinstance(node, (list, tuple)):
            for v in node:
                yield from paths(v)
        elif isinstance(node, str) and Path(node).suffix and Path(node).exists():
            yield Path(node)

    named = {str(Path(p).resolve()) for p in paths(cfg) if Path(p).exists()}
    assert named and named <= covered, named - covered


def test_the_version_is_in_every_key(study, monkeypatch):
    import vlmbrain.pipeline as pipeline

    cfg = load_config(study.write())
    p = Pipeline(cfg, study.out)
    stage = STAGES.get("stimulus")
    step = stage.steps(p.context)[0]
    key = p.step_key(stage, step)
    monkeypatch.setattr(pipeline, "__version__", "999.0")
    assert p.step_key(stage, step) != key


def test_a_missing_hook_output_reruns_the_analysis(study):
    """The atom cards are written by a post-analysis hook: an analysis whose cards are gone is
    not up to date (it was skipped before the hooks declared their outputs)."""
    cfg = load_config(study.shorten().write())
    run_pipeline(cfg, study.out, stages=["analysis"])
    index = study.out / "analysis" / "atoms" / "index.json"
    assert index.is_file()
    assert ran(run_pipeline(cfg, study.out, stages=["analysis"])) == []
    shutil.rmtree(index.parent)
    assert ran(run_pipeline(cfg, study.out, stages=["analysis"])) == ["analysis"]
    assert index.is_file()
