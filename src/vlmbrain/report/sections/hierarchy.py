"""Layer hierarchy: centroid layer of each affiliated atom per network (``analysis/hierarchy.tsv``)."""

from __future__ import annotations

from vlmbrain.report import figures as F
from vlmbrain.report.sections._context import ReportContext, network_rows
from vlmbrain.report.sections._registry import register_section


def render_hierarchy(ctx: ReportContext):
    hie = ctx.table("hierarchy")
    if hie is None:
        return ctx.missing("hierarchy")
    hn = network_rows(hie).dropna(subset=["centroid_layer"])
    figs = []
    if len(hn):
        figs.append(ctx.figures.add(
            lambda: F.plot_hierarchy(hn, "centroid_layer", atlas=ctx.atlas), "hierarchy",
            "Atom layer depth per network",
            "Each point is one affiliated atom map (centroid_layer: |code|-weighted centroid layer of its ANs); "
            "bar: median."))
    return ctx.render("section_hierarchy.html.j2", figures=figs, tables=[ctx.table_block("hierarchy")])


register_section("hierarchy", render_hierarchy, order=600, title="Layer hierarchy")
