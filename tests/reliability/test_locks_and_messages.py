"""The run directory's lock, warnings on the terminal, JSON without NaN."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from vlmbrain._io import save_json
from vlmbrain.cli import main
from vlmbrain.config import load_config
from vlmbrain.pipeline import LOCK_FILE, run_pipeline


def test_a_second_run_on_the_same_directory_names_the_holder(study, inputs, capsys):
    study.out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from vlmbrain._io import hold_lock\n"
        f"with hold_lock({str(study.out / LOCK_FILE)!r}, 'run directory'):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code = main(["run", str(study.write()), "--out", str(study.out), "-q"])
        err = capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    lines = inputs.error_lines(err)
    assert code == 2 and len(lines) == 1 and "Traceback" not in err
    assert f"is in use by pid {holder.pid} on host {socket.gethostname()} (started " in lines[0]
    assert "--out" in lines[0]
    assert not (study.out / "stimulus").exists()


def test_the_lock_of_a_dead_process_is_taken_over_with_a_warning(study, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    study.out.mkdir()
    record = {"pid": dead.pid, "host": socket.gethostname(), "started": "2020-01-01T00:00:00+00:00"}
    (study.out / LOCK_FILE).write_text(json.dumps(record))
    with caplog.at_level("WARNING", logger="vlmbrain"):
        results = run_pipeline(load_config(study.write()), study.out, stages=["stimulus"])
    assert [r.name for r in results] == ["stimulus"]
    assert f"took over the lock of pid {dead.pid}" in caplog.text and "no longer running" in caplog.text
    assert not (study.out / LOCK_FILE).exists()  # released at the end


def test_a_live_record_without_a_lock_is_respected(study, capsys):
    """A lock file naming a live process on this host (a file system without flock) is honoured."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        study.out.mkdir()
        record = {"pid": sleeper.pid, "host": socket.gethostname(), "started": "2024-01-01T00:00:00+00:00"}
        (study.out / LOCK_FILE).write_text(json.dumps(record))
        code = main(["run", str(study.write()), "--out", str(study.out), "-q"])
        line = capsys.readouterr().err.strip().splitlines()[-1]
    finally:
        sleeper.kill()
        sleeper.wait()
    assert code == 2 and f"pid {sleeper.pid}" in line and "delete" in line


def test_warnings_are_printed_on_the_terminal(study, inputs, capsys):
    """A warning raised with warnings.warn during a run (overlapping cues) is printed, not only saved."""
    import warnings

    from vlmbrain.cli import _setup_logging

    study.path("r1.tsv").write_text("onset\tduration\ttext\n0\t10\ta red circle\n5\t10\ta blue square\n")
    _setup_logging(0)
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # as outside the test suite, which turns warnings into errors
        run_pipeline(load_config(study.write()), study.out, stages=["stimulus"])
    err = capsys.readouterr().err
    assert "overlap the previous one" in err
    assert any("overlap the previous one" in w for w in json.loads((study.out / "warnings.json").read_text()))


def test_json_outputs_write_nan_as_null(tmp_path):
    path = save_json({"median_r_cv": float("nan"), "r": np.array([1.0, np.nan, np.inf]), "n": np.int64(3),
                      "x": np.float32("nan")}, tmp_path / "summary.json")

    def no_constants(name):
        raise AssertionError(f"{name} is not JSON")

    data = json.loads(path.read_text(), parse_constant=no_constants)
    assert data == {"median_r_cv": None, "r": [1.0, None, None], "n": 3, "x": None}


def test_killed_process_is_not_alive():
    from vlmbrain._io import pid_alive

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    time.sleep(0.05)
    assert not pid_alive(p.pid) and pid_alive(__import__("os").getpid())


@pytest.mark.parametrize("argv", [["inspect"], ["run"]])
def test_missing_arguments_are_argparse_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_more_atoms_than_distinct_captions_in_a_fold_is_said_before_extraction(study, caplog):
    """A text branch's time courses over runs showing m distinct captions span at most m dimensions:
    the preflight warns when dictionary.n_atoms reaches that in some leave-one-run-out fold, and not
    below it (no model is loaded: the check reads the caption files)."""
    from vlmbrain.config import load_config
    from vlmbrain.stages.checks import caption_texts_per_run, dictionary_preflight

    cfg = load_config(study.write())
    assert [len(t) for t in caption_texts_per_run(cfg)] == [4, 4]      # the study's 4 texts, in both runs
    cfg.dictionary.n_atoms = 3
    with caplog.at_level("WARNING", logger="vlmbrain"):
        dictionary_preflight(cfg)
    assert "distinct captions" not in caplog.text
    cfg.dictionary.n_atoms = 4
    with caplog.at_level("WARNING", logger="vlmbrain"):
        dictionary_preflight(cfg)
    assert "dictionary.n_atoms = 4 but the training runs of a leave-one-run-out fold show only 4 distinct" \
        in caplog.text and "use dictionary.n_atoms below 4" in caplog.text
