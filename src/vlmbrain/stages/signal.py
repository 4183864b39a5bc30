"""Stage ``signal``: HRF-convolved, per-run z-scored AN time courses (docs/method.md §2.6).

Writes ``signal/<model>/<branch>/timecourses.npy`` and the neuron table of the kept ANs
(near-constant ANs are dropped and counted).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from vlmbrain._io import atomic_path, save_tsv
from vlmbrain.artifacts import read_model_json
from vlmbrain.stages.base import Stage, Step, register_stage
from vlmbrain.stages.model_files import model_dirname
from vlmbrain.stages.stimulus import timeline_of

logger = logging.getLogger("vlmbrain")


def model_branches(ctx) -> list[tuple[str, list[str]]]:
    """``(model folder, branches)`` of every configured model, from its ``model.json``."""
    out = []
    for m in ctx.config.models:
        mdir = model_dirname(m.name)
        out.append((mdir, read_model_json(ctx.layout.model_json(mdir)).branch_names))
    return out


class SignalStage(Stage):
    name = "signal"
    command = "signal"
    help = "convolve the AN time courses with the HRF and z-score them per run"
    config_keys = ("signal",)
    reads = ("activations", "timeline")
    writes = ("timecourses",)

    def preflight(self, config):
        from vlmbrain.stages.checks import signal_preflight

        signal_preflight(config)

    def steps(self, ctx):
        from vlmbrain.signal import process_timecourses

        cfg = ctx.config.signal
        steps = []
        for mdir, branches in model_branches(ctx):
            for branch in branches:
                out_dir = ctx.layout.signal_dir(mdir, branch)

                def work(mdir=mdir, branch=branch, out_dir=out_dir):
                    timeline = timeline_of(ctx)
                    # read in column chunks from the memory map and written straight into the
                    # output file: the (T, N) array is never held twice, whatever N
                    X = np.load(ctx.layout.activations(mdir, branch), mmap_mode="r")
                    neurons = pd.read_csv(ctx.layout.activation_neurons(mdir, branch), sep="\t")
                    with atomic_path(out_dir / "timecourses.npy", suffix=".npy") as tmp:
                        Z, kept = process_timecourses(X, timeline.runs, timeline.tr, hrf=cfg.hrf, lag=cfg.lag,
                                                      oversampling=cfg.oversampling, out=tmp)
                        Z.flush()
                        del Z, X
                    n_drop = int((~kept).sum())
                    if n_drop:
                        logger.warning("%s/%s: dropped %d of %d near-constant ANs", mdir, branch, n_drop, kept.size)
                    save_tsv(neurons[kept].reset_index(drop=True), out_dir / "neurons.tsv")
                    return {"n_neurons": int(kept.size), "n_dropped": n_drop}

                steps.append(Step(f"signal:{mdir}/{branch}", out_dir, ["timecourses.npy", "neurons.tsv"], work,
                                  after=[f"extract:{mdir}", "stimulus"]))
        return steps


register_stage(SignalStage())
