"""Cross-modal mapping: grayordinates significant for an image unit, a text unit, or both.

The pairs are those of ``analysis/crossmodal.tsv`` when the run wrote it, else every image unit
with every text unit of the same model (modalities from ``model.json``). The overlap map is
drawn from the two units' significant maps (thresholded at the report's q level); the network
composition comes from the table's counts, else from the overlap map and the atlas.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vlmbrain.report import figures as F
from vlmbrain.report.sections._context import ReportContext, network_rows
from vlmbrain.report.sections._registry import register_section, skipped
from vlmbrain.report.surface import plot_categorical_surface

PAIR_COLUMNS = ["model_a", "branch_a", "model_b", "branch_b"]


def _pairs(ctx: ReportContext, xm: pd.DataFrame | None):
    if xm is not None:
        return list(dict.fromkeys(map(tuple, xm[PAIR_COLUMNS].astype(str).to_numpy())))
    pairs = []
    for model in dict.fromkeys(u.model for u in ctx.units):
        image = [u.name for u in ctx.units if u.model == model and u.modality == "image"]
        text = [u.name for u in ctx.units if u.model == model and u.modality == "text"]
        pairs += [(model, a, model, b) for a in image for b in text]
    return pairs


def _overlap(ctx: ReportContext, ma, ba, mb, bb):
    """(categorical map 0/1/2/3, caption) from the two units' maps, or (None, "")."""
    ua, ub = ctx.unit(ma, ba), ctx.unit(mb, bb)
    if ua is None or ub is None:
        return None, ""
    sa, how = ctx.significant(ua)
    sb, _ = ctx.significant(ub)
    if sa is None or sb is None or sa.shape != sb.shape:
        return None, ""
    omap = np.zeros(sa.shape, dtype=int)
    omap[sa & ~sb], omap[sa & sb], omap[~sa & sb] = 1, 2, 3
    return omap, how


def _counts_caption(la, lb, n_a_only, n_shared, n_b_only, how=""):
    n_a, n_b = n_a_only + n_shared, n_b_only + n_shared
    dice = 2 * n_shared / (n_a + n_b) if (n_a + n_b) else float("nan")
    where = f"Significant grayordinates ({how})" if how else "Significant grayordinates"
    return f"{where}: {n_a_only} {la}-only, {n_shared} shared, {n_b_only} {lb}-only (Dice {dice:.3f})."


def render_crossmodal(ctx: ReportContext):
    xm = ctx.table("crossmodal")
    pairs = _pairs(ctx, xm)
    if not pairs:
        if ctx.units:
            return skipped("analysis/crossmodal.tsv is not in this run directory and no model has both an "
                           "image and a text unit")
        return ctx.missing("crossmodal")
    problem = ctx.surface_problem()
    figs, text, viewers = [], [], []
    for ma, ba, mb, bb in pairs:
        la, lb = (ba, bb) if ma == mb else (f"{ma}/{ba}", f"{mb}/{bb}")
        title = ma if ma == mb else f"{ma}/{ba} vs {mb}/{bb}"
        stem = f"{ma}_{ba}_vs_{mb}_{bb}"
        cats = {1: (f"{la} only", F.OVERLAP_CATEGORIES[1][1]), 2: ("shared", F.OVERLAP_CATEGORIES[2][1]),
                3: (f"{lb} only", F.OVERLAP_CATEGORIES[3][1])}
        sub = None
        if xm is not None:
            sub = xm[(xm["model_a"] == ma) & (xm["branch_a"] == ba) & (xm["model_b"] == mb) & (xm["branch_b"] == bb)]
        omap, how = _overlap(ctx, ma, ba, mb, bb)
        caption = ""
        if omap is not None:
            caption = _counts_caption(la, lb, int((omap == 1).sum()), int((omap == 2).sum()), int((omap == 3).sum()),
                                      how)
        elif sub is not None and (sub["network_id"] == -1).any():
            whole = sub[sub["network_id"] == -1].iloc[0]
            caption = _counts_caption(la, lb, int(whole["n_a_only"]), int(whole["n_shared"]), int(whole["n_b_only"]))
        if omap is not None and problem is None and omap.shape == (ctx.space.n_grayordinates,):
            figs.append(ctx.figures.add(
                lambda omap=omap, cats=cats, title=title: plot_categorical_surface(
                    omap, cats, f"{title}: branch overlap", space=ctx.space),
                f"overlap_surface_{stem}", f"{title}: overlap map", caption, surface=True))
        if omap is not None and ctx.viewer is not None and omap.shape == (ctx.space.n_grayordinates,):
            viewer = ctx.interactive_map(omap, title=f"{title}: branch overlap", units="", categories=cats)
            if viewer:
                viewers.append({"title": f"{title}: overlap map", "caption": caption, "html": viewer})
        comp = None
        if sub is not None:
            rows = []
            for _, r in network_rows(sub).iterrows():
                for col, cid in (("n_a_only", 1), ("n_shared", 2), ("n_b_only", 3)):
                    rows.append({"network": r["network"], "category": cats[cid][0],
                                 "fraction": r[col] / r["n_network"] if r["n_network"] else np.nan})
            comp = pd.DataFrame(rows)
            comp_caption = (f"From analysis/crossmodal.tsv ({ma}/{ba} vs {mb}/{bb}): fraction of each network's "
                            f"grayordinates. {caption}").strip()
        elif omap is not None and ctx.atlas is not None and ctx.atlas.labels.shape == omap.shape:
            comp = F.overlap_composition(omap, ctx.atlas, cats)
            comp_caption = caption
        elif omap is not None:
            text.append(f"{title}: {caption}")
        if comp is not None and len(comp):
            figs.append(ctx.figures.add(
                lambda comp=comp, cats=cats, title=title: F.plot_overlap_composition(
                    comp, f"{title}: network composition", categories=cats, atlas=ctx.atlas),
                f"overlap_composition_{stem}", f"{title}: network composition of the overlap", comp_caption))
    missing = [] if xm is not None else [ctx.table_path("crossmodal")]
    # figures='fast' needs no explanation; a space without surface does
    problem = problem if ctx.figures.surfaces else None
    if viewers:  # the interactive maps stand in for the static ones
        problem = None
    return ctx.render("section_crossmodal.html.j2", text=text, figures=figs, missing=missing,
                      surface_problem=problem, viewers=viewers, tables=[ctx.table_block("crossmodal")])


register_section("crossmodal", render_crossmodal, order=500, title="Cross-modal mapping")
