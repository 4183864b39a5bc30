"""Surface maps of every unit's cross-validated r, drawn through the run's brain space.

Each map is a static figure (``figures='all'``) and, when the viewer is on
(``report.interactive``), an interactive one; either alone is enough for the section.
"""

from __future__ import annotations

import numpy as np

from vlmbrain.report.sections._context import ReportContext
from vlmbrain.report.sections._registry import register_section, skipped
from vlmbrain.report.surface import plot_surface_map


def render_surface_maps(ctx: ReportContext):
    maps = [(u, ctx.encoding(u, ("r_cv",))) for u in ctx.units]
    maps = [(u, m["r_cv"]) for u, m in maps if "r_cv" in m]
    if not maps:
        return skipped("no encoding/<model>/<unit>/r_cv map (.dscalar.nii, .func.gii, .nii.gz or .npy) in this run "
                       "directory")
    problem = ctx.surface_problem()
    if problem is not None and ctx.viewer is None:
        return skipped(problem if ctx.viewer_off == problem else f"{problem}; {ctx.viewer_off}")
    n = ctx.space.n_grayordinates
    items = []
    for unit, r in maps:
        label = f"{unit.model} / {unit.name}"
        if np.shape(r) != (n,):
            ctx.note(f"the map encoding/{unit.model}/{unit.name}/r_cv has shape {np.shape(r)}; the brain space "
                     f"has {n} grayordinates")
            continue
        shown = np.asarray(r, dtype=float)
        caption = "Cross-validated Pearson r (leave-one-run-out) per grayordinate"
        sig, how = ctx.significant(unit)
        if sig is not None and sig.shape == shown.shape:
            shown = np.where(sig, shown, np.nan)
            caption += f"; only significant grayordinates ({how}) are coloured"
        fig = None
        if problem is None:
            fig = ctx.figures.add(
                lambda shown=shown, label=label: plot_surface_map(shown, f"{label}: cross-validated r", "Pearson r",
                                                                  cmap="RdBu_r", space=ctx.space),
                f"surface_r_{unit.model}_{unit.name}", f"{label}: prediction map", caption, surface=True)
        viewer = ctx.interactive_map(shown, title=f"{label}: cross-validated r", units="r")
        items.append({"label": label, "caption": caption, "figure": fig, "viewer": viewer})
    return ctx.render("section_surface_maps.html.j2", items=items, space=ctx.space,
                      static_off=problem, viewer_off=ctx.viewer_off if ctx.viewer is None else None)


register_section("surface-maps", render_surface_maps, order=110, title="Surface maps")
