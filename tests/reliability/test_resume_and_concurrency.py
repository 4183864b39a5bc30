"""A run interrupted inside a stage resumes to the same artifacts; two processes sharing one
activation cache both finish with the same artifacts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from vlmbrain.config import load_config
from vlmbrain.pipeline import run_pipeline


def short_study(study, inputs):
    """The study with runs of 30 TRs."""
    study.shorten()
    return load_config(study.write())


@pytest.fixture(scope="module")
def reference(tmp_path_factory, inputs):
    """An uninterrupted run up to the encoding (its activations in the session's cache)."""
    study = inputs.Study(tmp_path_factory.mktemp("reference"))
    run_pipeline(short_study(study, inputs), study.out, stages=["encoding"])
    return study


def test_killed_during_extraction_resumes_to_identical_artifacts(reference, study, inputs, monkeypatch):
    monkeypatch.delenv("VLMBRAIN_CACHE", raising=False)  # the cache is <run>/cache: nothing extracted yet
    cfg = short_study(study, inputs)
    import vlmbrain.extract as extract

    real = extract._run_batch
    calls = {"n": 0}

    def dies_on_the_third_batch(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # a kill: the process stops between two writes
        return real(*a, **k)

    monkeypatch.setattr(extract, "_run_batch", dies_on_the_third_batch)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(cfg, study.out, stages=["encoding"])
    partial = list((study.out / "cache" / "activations").glob("*/partial/rows_*.npz"))
    assert len(partial) == 2  # the two finished batches are kept
    assert not (study.out / "activations" / "minilm" / "_stage.json").exists()
    monkeypatch.setattr(extract, "_run_batch", real)
    results = run_pipeline(cfg, study.out, stages=["encoding"])
    assert [r.name for r in results if r.skipped] == ["stimulus", "brain"]
    shutil.rmtree(study.out / "cache")  # the reference's cache is elsewhere
    inputs.assert_same_artifacts(reference.out, study.out, roots=(reference.root, study.root))
    assert not inputs.temporaries(study.out)


def test_killed_inside_the_dictionary_step_resumes_to_identical_artifacts(reference, study, inputs, monkeypatch):
    cfg = short_study(study, inputs)
    import vlmbrain.stages.dictionary as dictionary_stage

    real = dictionary_stage.save_npy

    def dies_before_the_codes(array, path):
        if str(path).endswith("codes.npy"):
            raise KeyboardInterrupt  # atoms.npy is written, codes.npy and the sidecar are not
        return real(array, path)

    monkeypatch.setattr(dictionary_stage, "save_npy", dies_before_the_codes)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(cfg, study.out, stages=["encoding"])
    unit = study.out / "dictionary" / "minilm" / "text"
    assert (unit / "atoms.npy").is_file() and not (unit / "_stage.json").exists()
    monkeypatch.setattr(dictionary_stage, "save_npy", real)
    results = run_pipeline(cfg, study.out, stages=["encoding"])
    assert [r.name for r in results if not r.skipped] == ["dictionary:minilm/text", "encoding:minilm/text"]
    inputs.assert_same_artifacts(reference.out, study.out, roots=(reference.root, study.root))


def test_two_processes_sharing_a_cache_both_finish_with_identical_artifacts(reference, tmp_path, inputs):
    """Both extract the same activations into one new cache at the same time; the entry's lock
    makes one of them wait and read what the other wrote."""
    study = inputs.Study(tmp_path)
    short_study(study, inputs)
    env = {**os.environ, "VLMBRAIN_CACHE": str(tmp_path / "shared-cache")}
    procs = [subprocess.Popen([sys.executable, "-m", "vlmbrain.cli", "extract", str(study.root / "run.yaml"), "--out",
                               str(tmp_path / f"run{i}")], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for i in (0, 1)]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log
        assert "Traceback" not in log
    inputs.assert_same_artifacts(tmp_path / "run0", tmp_path / "run1")
    ref = reference.out / "activations" / "minilm" / "text.npy"
    assert np.array_equal(np.load(tmp_path / "run0" / "activations" / "minilm" / "text.npy"), np.load(ref))
    entries = [e for e in (tmp_path / "shared-cache" / "activations").iterdir() if e.is_dir()]
    assert len(entries) == 1 and (entries[0] / "complete.json").is_file()
    assert not list((tmp_path / "shared-cache").rglob("partial")) and not inputs.temporaries(tmp_path / "shared-cache")


def test_temporaries_of_a_killed_run_are_removed_at_start(study, inputs):
    cfg = load_config(study.write())
    run_pipeline(cfg, study.out, stages=["brain"])
    left = [study.out / "brain" / ".data.npy.k1ll3d.tmp.npy", study.out / ".config.yaml.x7.tmp"]
    for p in left:
        p.write_bytes(b"half")
    keep = study.out / "brain" / "notes.tmp.txt"  # not a temporary's name
    keep.write_text("mine")
    results = run_pipeline(cfg, study.out, stages=["brain"])
    assert all(r.skipped for r in results)
    assert not any(p.exists() for p in left) and keep.exists()


def test_a_stale_cache_temporary_is_removed_under_the_entry_lock(tmp_path):
    """A killed extraction's temporary inside a cache entry goes when the entry is next used."""
    import numpy as np

    from vlmbrain.extract import extract_activations
    from vlmbrain.stimulus import ArrayStimulus, Timeline

    class Tiny:
        name, site, pooling, trained = "tiny", "head-unit", "mean", True
        branches = ["text"]
        modalities = {"text": "text"}
        streams = {"text": "text"}

        def neuron_table(self):
            import pandas as pd

            return pd.DataFrame({"branch": ["text"] * 3, "unit": [0, 1, 2]})

        def weights_hash(self):
            return "0"

        def readout(self, images, captions):
            return {"text": np.array([[len(c), 1.0, 2.0] for c in captions], np.float32)}

    timeline = Timeline.from_runs([5, 5], 1.0, run_names=["a", "b"], captions=["x" * i for i in range(10)])
    stim = ArrayStimulus(timeline, None)
    cache = tmp_path / "cache"
    extract_activations(stim, Tiny(), tmp_path / "out", batch_size=2, cache_dir=cache)
    entry = next(p for p in (cache / "activations").iterdir() if p.is_dir())
    stale = entry / ".text.npy.dead.tmp.npy"
    stale.write_bytes(b"half")
    out = extract_activations(stim, Tiny(), tmp_path / "out2", batch_size=2, cache_dir=cache)
    assert not stale.exists()
    assert np.array_equal(np.load(out["text"].path)[:, 0], np.arange(10))


def test_the_default_cache_is_inside_the_run_directory(study, inputs, monkeypatch):
    from vlmbrain.extract import default_cache_dir

    monkeypatch.delenv("VLMBRAIN_CACHE", raising=False)
    assert default_cache_dir(study.out) == study.out / "cache"
    monkeypatch.setenv("VLMBRAIN_CACHE", str(study.root / "shared"))
    assert default_cache_dir(study.out) == study.root / "shared"
