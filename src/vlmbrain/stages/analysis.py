"""Stage ``analysis``: network affiliation and every registered analysis (docs/method.md §5–6).

Writes ``analysis/<table>.tsv`` through the artifact schema, and per unit a CIFTI dlabel whose
maps label each atom's significant grayordinates by the network that map is affiliated with
(``networks/<model>/<unit>/affiliation.dlabel.nii``). Then the post-analysis hooks run
(:data:`ANALYSIS_HOOKS`; the bundled demo registers its planted-vs-recovered scorer there).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vlmbrain.artifacts import write_table
from vlmbrain.config import RunConfig
from vlmbrain.registry import Registry
from vlmbrain.stages.base import Stage, StageContext, Step, register_stage
from vlmbrain.stages.brain import brain_of
from vlmbrain.stages.dictionary import unit_timecourses, units_of
from vlmbrain.stages.stimulus import train_mask

logger = logging.getLogger("vlmbrain")


@dataclass
class AnalysisHook:
    """Work that runs after the analyses, on their results.

    Attributes
    ----------
    applies : callable
        ``applies(config) -> bool``: whether the hook runs for this configuration.
    run : callable
        ``run(ctx, branches, tables) -> dict | None``: ``branches`` are the
        :class:`~vlmbrain.analysis.BranchResult` objects, ``tables`` the analysis tables; the
        returned dict is added to the stage's sidecar.
    config_keys : tuple of str
        Configuration keys whose values enter the analysis step key when the hook applies.
    """

    applies: Callable[[RunConfig], bool]
    run: Callable[[StageContext, list, dict], dict | None]
    config_keys: tuple[str, ...] = ()


ANALYSIS_HOOKS: Registry[AnalysisHook] = Registry("post-analysis hook")


def register_analysis_hook(name: str, hook: AnalysisHook) -> AnalysisHook:
    return ANALYSIS_HOOKS.register(name, hook)


def branch_results(ctx: StageContext) -> list:
    """One :class:`~vlmbrain.analysis.BranchResult` per unit, read from the run directory."""
    from vlmbrain.analysis import BranchResult

    layout = ctx.layout
    mask = train_mask(ctx)
    out = []
    for unit in units_of(ctx):
        ddir = layout.dictionary_dir(unit.model, unit.name)
        edir = layout.encoding_dir(unit.model, unit.name)
        out.append(BranchResult(
            model=unit.model, branch=unit.name, atoms=np.load(ddir / "atoms.npy"), codes=np.load(ddir / "codes.npy"),
            neurons=pd.read_csv(ddir / "neurons.tsv", sep="\t"), beta=np.load(edir / "beta.npy"),
            q_beta=np.load(edir / "q.npy"), r_cv=np.load(edir / "r_cv.npy"), q_r=np.load(edir / "q_r.npy"),
            activations=unit_timecourses(ctx, unit)[mask], stream=unit.modality,
        ))
    return out


def write_affiliation_labels(ctx, branches, aff, atlas, brain) -> None:
    """Per unit a dlabel: for every atom and sign, its significant grayordinates labelled by its network."""
    from vlmbrain.networks import significant_maps

    q = ctx.config.encoding.q
    table = {0: ("none", (1.0, 1.0, 1.0, 0.0))}
    table.update({nid: (atlas.names[nid], tuple(atlas.colors[nid])) for nid in atlas.network_ids})
    for b in branches:
        pos, neg = significant_maps(b.beta, b.q_beta, q)
        labels = np.zeros((2 * b.beta.shape[0], brain.n_grayordinates), dtype=np.int32)
        names = []
        sub = aff[(aff["model"] == b.model) & (aff["branch"] == b.branch) & aff["affiliated"].astype(bool)]
        for k in range(b.beta.shape[0]):
            for j, (sign, m) in enumerate((("+", pos[k]), ("-", neg[k]))):
                hit = sub[(sub["atom"] == k) & (sub["sign"] == sign)]
                if len(hit):
                    labels[2 * k + j, m] = int(hit["network_id"].iloc[0])
                names.append(f"atom-{k} {sign}")
        brain.space.to_dlabel(labels, ctx.layout.networks_dir(b.model, b.branch) / "affiliation.dlabel.nii",
                              table, names=names)


class AnalysisStage(Stage):
    name = "analysis"
    command = "analyze"
    help = "affiliate atoms with networks and run the analyses"
    config_keys = ("networks", "encoding.q", "seed")
    reads = ("atoms", "codes", "encoding maps", "timecourses", "brain")
    writes = ("analysis tables", "affiliation labels")

    def input_files(self, config):
        from pathlib import Path

        atlas = config.networks.atlas
        return [Path(atlas)] if Path(atlas).suffix and Path(atlas).exists() else []

    def steps(self, ctx):
        units = units_of(ctx)
        hooks = [(n, h) for n, h in ANALYSIS_HOOKS.items() if h.applies(ctx.config)]
        from vlmbrain.stages.base import config_value

        params = {f"hook:{n}": {k: config_value(ctx.config, k) for k in h.config_keys} for n, h in hooks}

        def work():
            from vlmbrain.analysis import AnalysisInputs, AnalysisOptions, run_analyses
            from vlmbrain.networks import load_atlas

            cfg = ctx.config
            brain = brain_of(ctx)
            atlas = load_atlas(cfg.networks.atlas, n_grayordinates=brain.n_grayordinates)
            mask = train_mask(ctx)
            branches = branch_results(ctx)
            data = brain.data if mask.all() else np.asarray(brain.data[mask])
            options = AnalysisOptions(alpha=cfg.encoding.q, threshold=cfg.networks.threshold,
                                      null=None if cfg.networks.null == "none" else cfg.networks.null,
                                      n_perm=cfg.networks.n_perm, random_state=cfg.seed)
            ceiling_path = ctx.layout.brain_dir / "ceiling.npy"
            ceiling = np.load(ceiling_path) if ceiling_path.is_file() else None
            tables = run_analyses(AnalysisInputs(branches=branches, atlas=atlas, brain=data, options=options,
                                                 ceiling=ceiling))
            for name, table in tables.items():
                write_table(table, name, ctx.layout)
            aff = tables["affiliation"]
            if brain.space.kind != "array":
                write_affiliation_labels(ctx, branches, aff, atlas, brain)
            info = {"tables": sorted(tables),
                    "n_affiliated": int(aff["affiliated"].astype(bool).sum()) if len(aff) else 0}
            for name, hook in hooks:
                extra = hook.run(ctx, branches, tables)
                if extra:
                    info[name] = extra
            return info

        from vlmbrain.analysis import ANALYSES

        outputs = [f"{t}.tsv" for a in ANALYSES.values() for t in a.tables]
        return [Step("analysis", ctx.layout.analysis_dir, outputs, work,
                     after=[f"encoding:{u.model}/{u.name}" for u in units], params=params)]


register_stage(AnalysisStage())
