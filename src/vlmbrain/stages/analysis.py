"""Stage ``analysis``: network affiliation and every registered analysis (docs/method.md §5–6).

The atlas is ``networks.atlas`` seen from the data's brain space
(:func:`vlmbrain.networks.fit.choose_atlas`): ``auto`` (CAB-NP on HCP 91k data and fsLR 32k
surfaces, none elsewhere), ``none``, a registered name, or a file in any atlas form. An
explicitly named atlas that does not fit the data is an error as soon as the data's space is
known (:func:`check_atlas_fits`, called by the preflight from the inputs' headers, and again
once the brain stage has written the space); ``auto`` without a fitting atlas, and ``none``, run
without networks: the analyses that need them are skipped and everything else is computed.

Writes

- ``analysis/<table>.tsv`` through the artifact schema (the skipped analyses' tables empty);
- ``analysis/skipped.tsv``: every analysis and table left out, with the reason (table
  ``skipped``, registered in :mod:`vlmbrain.networks.fit`);
- ``analysis/atlas.json``: the atlas used (name, form, source, networks with their ids,
  colours and sizes; or null and why), the null used and why;
- per unit the affiliation labels in the data's own form
  (``networks/<model>/<unit>/affiliation.dlabel.nii`` for CIFTI, ``.nii.gz`` + ``.tsv`` for
  NIfTI, ``.L/.R.label.gii`` for GIFTI, ``.tsv`` for arrays): for every atom and sign its
  significant grayordinates, labelled by the network that map is affiliated with. A unit with
  no affiliated atom gets no label file (it would hold only zeros); the step's sidecar
  (``affiliation_labels``) and the report say so.

Then the post-analysis hooks run (:data:`ANALYSIS_HOOKS`; the bundled demo registers its
planted-vs-recovered scorer there).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vlmbrain._io import save_json
from vlmbrain.artifacts import TABLES, read_json, read_map, table_path, write_table
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
    outputs : tuple of str
        Files the hook writes, relative to the run directory (e.g. ``analysis/atoms/index.json``):
        outputs of the analysis step, so that a missing one re-runs it instead of skipping it.
    """

    applies: Callable[[RunConfig], bool]
    run: Callable[[StageContext, list, dict], dict | None]
    config_keys: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()


ANALYSIS_HOOKS: Registry[AnalysisHook] = Registry("post-analysis hook")


def register_analysis_hook(name: str, hook: AnalysisHook) -> AnalysisHook:
    return ANALYSIS_HOOKS.register(name, hook)


def branch_results(ctx: StageContext) -> list:
    """One :class:`~vlmbrain.analysis.BranchResult` per unit, read from the run directory.

    The encoding maps are read through :func:`vlmbrain.artifacts.read_map` (whichever file
    the brain space's format gave them).
    """
    from vlmbrain.analysis import BranchResult
    from vlmbrain.errors import InputFileError

    layout = ctx.layout
    mask = train_mask(ctx)
    space = brain_of(ctx).space
    out = []
    for unit in units_of(ctx):
        ddir = layout.dictionary_dir(unit.model, unit.name)
        maps = {}
        for name in ("beta", "q", "r_cv", "q_r"):
            arr = read_map(layout.encoding_map(unit.model, unit.name, name), space)
            if arr is None:
                raise InputFileError(f"{layout.encoding_map(unit.model, unit.name, name)}: no map file; "
                                     "run the encoding stage first")
            maps[name] = np.asarray(arr)
        out.append(BranchResult(
            model=unit.model, branch=unit.name, atoms=np.load(ddir / "atoms.npy"), codes=np.load(ddir / "codes.npy"),
            neurons=pd.read_csv(ddir / "neurons.tsv", sep="\t"), beta=maps["beta"],
            q_beta=maps["q"], r_cv=maps["r_cv"], q_r=maps["q_r"],
            activations=unit_timecourses(ctx, unit)[mask], stream=unit.modality,
        ))
    return out


def write_affiliation_labels(ctx, branches, aff, atlas, brain) -> dict:
    """Per unit, in the data's own form: for every atom and sign its significant grayordinates by network.

    A unit none of whose atoms is affiliated gets no file (its labels would all be zero), and a
    label file an earlier run left for it is removed. Returns ``{"<model>/<unit>": [file names]
    or "none: no atom is affiliated"}`` (see the module docstring for the names).
    """
    from vlmbrain.artifacts import affiliation_label_files
    from vlmbrain.networks import significant_maps

    q = ctx.config.encoding.q
    table = {0: ("none", (1.0, 1.0, 1.0, 0.0))}
    table.update({nid: (atlas.names[nid], tuple(atlas.colors[nid])) for nid in atlas.network_ids})
    written = {}
    for b in branches:
        key = f"{b.model}/{b.branch}"
        sub = aff[(aff["model"] == b.model) & (aff["branch"] == b.branch) & aff["affiliated"].astype(bool)]
        if not len(sub):
            for old in affiliation_label_files(ctx.layout, b.model, b.branch):
                old.unlink()
            written[key] = NO_LABELS
            continue
        pos, neg = significant_maps(b.beta, b.q_beta, q)
        labels = np.zeros((2 * b.beta.shape[0], brain.n_grayordinates), dtype=np.int32)
        names = []
        for k in range(b.beta.shape[0]):
            for j, (sign, m) in enumerate((("+", pos[k]), ("-", neg[k]))):
                hit = sub[(sub["atom"] == k) & (sub["sign"] == sign)]
                if len(hit):
                    labels[2 * k + j, m] = int(hit["network_id"].iloc[0])
                names.append(f"atom-{k} {sign}")
        files = brain.space.write_labels(labels, ctx.layout.networks_dir(b.model, b.branch), "affiliation", table,
                                         names=names)
        written[key] = [str(Path(f).relative_to(ctx.layout.root)) for f in files]
    return written


#: What the analysis sidecar says of a unit without a label file.
NO_LABELS = "none: no atom is affiliated, so no label file is written"


# ---------------------------------------------------------------------------- the atlas against the data
def data_space(config: RunConfig):
    """The data's brain space from the inputs' headers (None when only the data tell)."""
    from vlmbrain.errors import VlmbrainError
    from vlmbrain.stages.sources import BRAIN_SOURCES

    if config.fmri.kind not in BRAIN_SOURCES:
        return None
    try:
        return BRAIN_SOURCES.get(config.fmri.kind).space(config)
    except (VlmbrainError, OSError, ValueError):
        return None  # the source's own preflight reports unreadable inputs


def _check_null(config: RunConfig, atlas) -> None:
    """The configured null against the atlas's geometry (spin needs a sphere, moran positions)."""
    from vlmbrain.errors import ConfigError
    from vlmbrain.networks.nulls import SPHERE_MESHES

    null = config.networks.null
    if null == "spin":
        mesh = atlas.mesh or ("fsLR32k" if atlas.mesh_size == 32492 else None)
        if not atlas.surface or mesh not in SPHERE_MESHES:
            raise ConfigError(f"networks.null = 'spin' rotates a surface sphere but the atlas {atlas.name!r} on this "
                              f"data has {'no surface vertices' if not atlas.surface else f'a {mesh} mesh'}; use "
                              "networks.null: moran, permutation or auto")
    elif null == "moran":
        coords = atlas.coords
        if coords is None or not np.all(np.isfinite(coords[atlas.labels != 0])):
            raise ConfigError(f"networks.null = 'moran' needs the position of every labelled grayordinate, which the "
                              f"atlas {atlas.name!r} on this data lacks; give ROI positions (x, y, z in the atlas TSV), "
                              "or use networks.null: spin (surfaces), permutation or auto")


def check_atlas_fits(config: RunConfig, space=None) -> None:
    """Raise when the configured atlas (or null) does not fit the data; one line naming both sizes.

    Parameters
    ----------
    config : RunConfig
    space : BrainSpace, optional
        The data's space; default from the inputs' headers (:func:`data_space`). Nothing is
        checked when it cannot be known before the data are read.

    ``auto`` and ``none`` never fail (without a fitting atlas the run goes on without
    networks). A registered atlas whose declared size equals the data's is accepted without
    loading it.
    """
    from vlmbrain.networks.atlas import registered_size
    from vlmbrain.networks.fit import AUTO, atlas_for_space, is_none

    from pathlib import Path

    from vlmbrain.errors import ConfigError, InputFileError
    from vlmbrain.networks.atlas import list_atlases, registered_key
    from vlmbrain.networks.forms import is_path

    nw = config.networks
    if is_none(nw.atlas) or str(nw.atlas).strip().lower() == AUTO:
        return
    if registered_key(nw.atlas) is None:
        if not is_path(nw.atlas):
            raise ConfigError(f"networks.atlas = {nw.atlas!r} is neither a registered atlas ({', '.join(list_atlases())}"
                              ", auto, none) nor an atlas file")
        if not Path(nw.atlas).is_file():
            raise InputFileError(f"networks.atlas = {nw.atlas}: file not found")
    space = data_space(config) if space is None else space
    if space is None:
        return
    size = registered_size(nw.atlas)
    if size is not None and size == space.n_grayordinates and space.kind in ("cifti", "array") \
            and nw.null not in ("spin", "moran"):
        return
    atlas = atlas_for_space(nw.atlas, space, labels=nw.labels, right=nw.atlas_right)
    _check_null(config, atlas)


def atlas_files(config: RunConfig) -> list:
    """The atlas files a configuration reads (atlas, the other hemisphere's, the label lookup)."""
    from pathlib import Path

    from vlmbrain.networks.forms import other_hemisphere, suffix_form

    nw = config.networks
    files = []
    spec = str(nw.atlas)
    if suffix_form(spec) is not None and Path(spec).is_file():
        files.append(Path(spec))
        if suffix_form(spec) in ("gifti", "annot") and nw.atlas_right is None:
            other = other_hemisphere(spec)
            if other is not None and Path(other[1]).is_file():
                files.append(Path(other[1]))
    files += [Path(p) for p in (nw.labels, nw.atlas_right) if p is not None and Path(p).is_file()]
    return files


def _atlas_json(choice, atlas, null, note, space) -> dict:
    out = {"requested": choice.spec, "reason": choice.reason, "null": null, "null_reason": note,
           "space": {"kind": space.kind, "name": space.name, "n_grayordinates": space.n_grayordinates,
                     "mesh": getattr(space, "mesh", None)}}
    if atlas is None:
        out["atlas"] = None
        return out
    sizes = atlas.sizes()
    out["atlas"] = {
        "name": atlas.name, "form": atlas.form, "source": atlas.source, "n_grayordinates": atlas.space_size,
        "n_labelled": int((atlas.labels != 0).sum()), "mesh": atlas.mesh,
        "networks": [{"id": int(i), "name": atlas.names[int(i)], "n_grayordinates": int(n),
                      "color": [float(c) for c in atlas.colors.get(int(i), (0.5, 0.5, 0.5, 1.0))]}
                     for i, n in zip(atlas.network_ids, sizes, strict=True)],
    }
    return out


class AnalysisStage(Stage):
    name = "analysis"
    command = "analyze"
    help = "affiliate atoms with networks and run the analyses"
    config_keys = ("networks", "encoding.q", "seed")
    reads = ("atoms", "codes", "encoding maps", "timecourses", "brain")
    writes = ("analysis tables", "affiliation labels")

    def input_files(self, config):
        return atlas_files(config)

    def preflight(self, config):
        check_atlas_fits(config)

    def check_upstream(self, ctx, finished):
        """The atlas against the brain space, once the brain stage has written it (before extraction)."""
        if finished != "brain":
            return
        from vlmbrain.brain.space import BrainSpace

        check_atlas_fits(ctx.config, BrainSpace.load(ctx.layout.brain_dir))

    def steps(self, ctx):
        units = units_of(ctx)
        hooks = [(n, h) for n, h in ANALYSIS_HOOKS.items() if h.applies(ctx.config)]
        from vlmbrain.stages.base import config_value

        params = {f"hook:{n}": {k: config_value(ctx.config, k) for k in h.config_keys} for n, h in hooks}

        def work():
            from vlmbrain.analysis import ANALYSES, AnalysisInputs, AnalysisOptions, run_analyses
            from vlmbrain.networks import choose_atlas, choose_null

            cfg = ctx.config
            nw = cfg.networks
            brain = brain_of(ctx)
            choice = choose_atlas(nw.atlas, brain.space, labels=nw.labels, right=nw.atlas_right)
            atlas = choice.atlas
            if atlas is None:
                null, note = "none", "no atlas"
                logger.warning("no network atlas (%s): the analyses that need networks are skipped", choice.reason)
            else:
                _check_null(cfg, atlas)
                null, note = choose_null(nw.null, atlas)
                if null == "permutation" and nw.null == "auto":
                    logger.warning("affiliation null: %s", note)
            mask = train_mask(ctx)
            branches = branch_results(ctx)
            data = brain.data if mask.all() else np.asarray(brain.data[mask])
            options = AnalysisOptions(alpha=cfg.encoding.q, threshold=nw.threshold,
                                      null=None if null == "none" else null, n_perm=nw.n_perm, random_state=cfg.seed,
                                      progress=ctx.progress)
            ceiling_info = read_json(ctx.layout.brain_dir / "ceiling.json", default=None)
            ceiling = (read_map(ctx.layout.brain_dir / "ceiling", brain.space, per_atom=False)
                       if isinstance(ceiling_info, dict) and ceiling_info.get("available") else None)
            skipped: dict[str, str] = {}
            tables = run_analyses(AnalysisInputs(branches=branches, atlas=atlas, brain=data, options=options,
                                                 ceiling=ceiling, no_atlas_reason=choice.reason), skipped=skipped)
            for name, table in tables.items():
                write_table(table, name, ctx.layout)
            # a table this run does not produce (e.g. no noise ceiling any more) must not survive from an earlier one
            for analysis in ANALYSES.names():
                for name in (*ANALYSES.get(analysis).tables, *ANALYSES.get(analysis).optional_tables):
                    if name not in tables and name in TABLES:
                        table_path(name, ctx.layout).unlink(missing_ok=True)
            rows = [{"analysis": a, "table": t, "reason": why} for a, why in skipped.items()
                    for t in ANALYSES.get(a).tables + ANALYSES.get(a).optional_tables]
            rows += [{"analysis": "affiliation labels", "table": "", "reason": f"no network atlas: {choice.reason}"}
                     ] if atlas is None else []
            write_table(pd.DataFrame(rows, columns=["analysis", "table", "reason"]), "skipped", ctx.layout)
            save_json(_atlas_json(choice, atlas, null, note, brain.space), ctx.layout.analysis_dir / "atlas.json")
            aff = tables["affiliation"]
            labels = write_affiliation_labels(ctx, branches, aff, atlas, brain) if atlas is not None else {}
            info = {"tables": sorted(tables), "atlas": atlas.name if atlas is not None else None, "null": null,
                    "skipped": sorted(skipped),
                    "n_affiliated": int(aff["affiliated"].astype(bool).sum()) if len(aff) else 0,
                    "affiliation_labels": labels}
            for name, hook in hooks:
                extra = hook.run(ctx, branches, tables)
                if extra:
                    info[name] = extra
            return info

        from vlmbrain.analysis import ANALYSES

        outputs = [f"{t}.tsv" for a in ANALYSES.values() for t in a.tables] + ["skipped.tsv", "atlas.json"]
        # hook outputs are given from the run directory; a step's outputs from its own folder
        outputs += [os.path.relpath(ctx.layout.root / o, ctx.layout.analysis_dir) for _, h in hooks for o in h.outputs]
        return [Step("analysis", ctx.layout.analysis_dir, outputs, work,
                     after=[f"encoding:{u.model}/{u.name}" for u in units], params=params,
                     input_files=self.input_files(ctx.config))]


register_stage(AnalysisStage())
