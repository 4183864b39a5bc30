"""One fast demo run shared by the explorer tests (a session fixture: about a minute and a half)."""

import fcntl
import os
import time

import pytest


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """``(run directory, seconds the run took)`` of the fast demo on toy CLIP, with atom stability.

    Toy CLIP's vision tower alone recovers four of the five planted networks in the fast demo;
    leaving toy METER out halves the run.

    The tests only read the run, and its two test files may run on different xdist workers: the
    first worker to need it builds it under a file lock in the folder all workers of this
    session share, the others wait for it and reuse it.
    """
    from vlmbrain.config import ModelConfig, demo_config
    from vlmbrain.pipeline import run_pipeline

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent          # <basetemp>/popen-gwN -> <basetemp>, one per session
    shared = root / "explorer-demo"
    out, done = shared / "demo", shared / "seconds.txt"
    with open(root / "explorer-demo.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.is_file():
            config = demo_config(out_fast=True)
            config.models = [ModelConfig(name="toy-clip")]
            # the cards report stability across seeds when the dictionary has it
            config.dictionary.stability_seeds = 1
            shared.mkdir(exist_ok=True)
            start = time.perf_counter()
            run_pipeline(config, out)
            done.write_text(repr(time.perf_counter() - start))
    return out, float(done.read_text())
