"""One fast demo run shared by the explorer tests (a session fixture: about a minute and a half)."""

import time

import pytest


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """``(run directory, seconds the run took)`` of the fast demo on toy CLIP, with atom stability.

    Toy CLIP's vision tower alone recovers four of the five planted networks in the fast demo;
    leaving toy METER out halves the run.
    """
    from vlmbrain.config import ModelConfig, demo_config
    from vlmbrain.pipeline import run_pipeline

    config = demo_config(out_fast=True)
    config.models = [ModelConfig(name="toy-clip")]
    # the cards report stability across seeds when the dictionary has it
    config.dictionary.stability_seeds = 1
    out = tmp_path_factory.mktemp("explorer") / "demo"
    start = time.perf_counter()
    run_pipeline(config, out)
    return out, time.perf_counter() - start
