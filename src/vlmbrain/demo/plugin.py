"""The demo as a plug-in: its stimulus, its phantom fMRI and its recovery scorer register here.

The core never imports :mod:`vlmbrain.demo`; the entry point ``demo`` of the group
``vlmbrain.plugins`` (see ``pyproject.toml``) calls :func:`register` once per process.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from vlmbrain._io import save_json, save_npy, save_tsv

logger = logging.getLogger("vlmbrain")

DEMO_KEYS = ("demo",)


def demo_movie(ctx):
    """The toy-world movie of the configuration's ``demo`` section (built once per process)."""
    from vlmbrain.toyworld import generate_movie

    d = ctx.config.demo

    def build():
        return generate_movie(n_runs=d.n_runs, run_length=d.run_length, tr=ctx.config.stimulus.tr, seed=d.seed,
                              image_size=d.image_size)

    return ctx.cached("demo:movie", build)


def demo_stimulus(ctx):
    """The movie's frames and captions on its TR timeline."""
    from vlmbrain.stimulus import ArrayStimulus, Timeline

    movie = demo_movie(ctx)
    lengths = np.bincount(movie.runs).tolist()
    timeline = Timeline.from_runs(
        lengths, ctx.config.stimulus.tr, run_names=[f"demo-run-{i + 1}" for i in range(len(lengths))],
        captions=list(movie.captions), rest=movie.rest, clips=list(movie.clips),
        frame_offset=ctx.config.stimulus.frame_offset,
    )
    return ArrayStimulus(timeline, movie.frames)


def demo_brain(ctx, timeline):
    """Phantom fMRI on the 91,282 HCP grayordinates, planted from the movie's attributes.

    Writes the planted truth into ``demo/`` (truth, drivers, planted weights as a dscalar).
    """
    from vlmbrain.brain.space import BrainData, BrainSpace
    from vlmbrain.demo.phantom import make_phantom
    from vlmbrain.networks import load_atlas
    from vlmbrain.signal import zscore_runs

    movie = demo_movie(ctx)
    atlas = load_atlas("cabnp")
    ph = make_phantom(movie.attributes, timeline.runs, atlas.labels, atlas.names, tr=timeline.tr,
                      noise=ctx.config.demo.noise, seed=ctx.config.demo.seed)
    data, valid = zscore_runs(ph.data, timeline.runs)
    demo_dir = ctx.run_dir / "demo"
    save_tsv(ph.truth, demo_dir / "truth.tsv")
    save_tsv(ph.drivers, demo_dir / "drivers.tsv")
    save_npy(ph.weights, demo_dir / "planted_weights.npy")
    save_json({"planted": ph.truth.to_dict(orient="records"), "params": ph.params,
               "note": "phantom fMRI planted from toy-world stimulus attributes, not from model features"},
              demo_dir / "truth.json")
    space = BrainSpace.hcp91k()
    space.to_dscalar(ph.weights, demo_dir / "planted_weights.dscalar.nii", names=list(ph.truth["network"]))
    return BrainData(data=data, runs=timeline.runs, run_names=timeline.run_names, space=space,
                     tr=timeline.tr, valid=valid, meta={"source": "vlmbrain.demo phantom", "subjects": 1, **ph.params})


def score(ctx, branches, tables) -> dict | None:
    """Planted vs recovered, per network (``demo/recovery.tsv``) and per branch."""
    from vlmbrain.artifacts import write_table
    from vlmbrain.demo.recovery import score_recovery, summarize_recovery
    from vlmbrain.stages.stimulus import train_mask

    run_dir = ctx.run_dir
    if not (run_dir / "demo" / "truth.tsv").is_file():
        return None
    truth = pd.read_csv(run_dir / "demo" / "truth.tsv", sep="\t")
    drivers = pd.read_csv(run_dir / "demo" / "drivers.tsv", sep="\t")[train_mask(ctx)].reset_index(drop=True)
    atoms = {(b.model, b.branch): b.atoms for b in branches}
    rec = score_recovery(truth, drivers, atoms, tables["affiliation"])
    summary = summarize_recovery(rec)
    write_table(rec, "recovery_by_branch", ctx.layout)
    write_table(summary, "recovery", ctx.layout)
    return {"recovered": int(summary["recovered"].sum())}


def demo_facts(config):
    """The demo's runs and grayordinates, known from its configuration (for the preflight)."""
    from vlmbrain.stages import InputFacts

    d = config.demo
    return InputFacts(run_names=[f"demo-run-{i + 1}" for i in range(d.n_runs)], run_lengths=[d.run_length] * d.n_runs,
                      n_grayordinates=91282, tr=config.stimulus.tr, modalities=frozenset({"image", "text"}))


def _is_demo(config) -> bool:
    return config.fmri.kind == "demo"


def register() -> None:
    """Register the demo's stimulus source, fMRI source, tables and recovery hook."""
    from vlmbrain.artifacts import TableSchema, register_table
    from vlmbrain.stages import (
        AnalysisHook,
        Source,
        register_analysis_hook,
        register_brain_source,
        register_stimulus_source,
    )

    register_stimulus_source("demo", Source(demo_stimulus, config_keys=DEMO_KEYS, facts=demo_facts,
                                            description="the bundled toy-world movie"))
    register_brain_source("demo", Source(demo_brain, config_keys=DEMO_KEYS, facts=demo_facts,
                                         description="phantom fMRI planted from the toy world's attributes"))
    register_table(TableSchema(
        "recovery", (("network", "str"), ("planted_sign", "int"), ("recovered_sign", "int"), ("recovered", "bool"),
                     ("attribute", "str"), ("by", "str")),
        "per planted network: planted and recovered sign", folder="demo"))
    register_table(TableSchema(
        "recovery_by_branch", (("network", "str"), ("planted_sign", "int"), ("recovered_sign", "int"),
                               ("recovered", "bool"), ("model", "str"), ("branch", "str"), ("attribute", "str"),
                               ("atom", "int"), ("atom_driver_r", "float"), ("overlap_rate", "float")),
        "per planted network and branch: the best atom and its affiliation", folder="demo"))
    register_analysis_hook("demo-recovery", AnalysisHook(applies=_is_demo, run=score,
                                                         outputs=("demo/recovery.tsv", "demo/recovery_by_branch.tsv")))
    register_table(TableSchema(
        "truth", (("network", "str"), ("attribute", "str"), ("planted_sign", "int"), ("n_grayordinates", "int"),
                  ("n_responsive", "int")),
        "the planted networks, their sign and the stimulus attribute that drives each", folder="demo"))
    from vlmbrain.report import register_recovery_section

    register_recovery_section()
