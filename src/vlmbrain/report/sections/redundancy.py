"""Redundancy on the brain side (``analysis/redundancy.tsv``)."""

from __future__ import annotations

from vlmbrain.report import figures as F
from vlmbrain.report.sections._context import ReportContext, network_rows
from vlmbrain.report.sections._registry import register_section

#: brain-side measures drawn per network, with their axis label
MEASURES = (("affiliated_atoms", "affiliated atoms"),
            ("atoms_per_gray", "significant atoms per grayordinate (mean)"),
            ("map_jaccard_within", "within-network Jaccard of atom maps"))


def render_redundancy(ctx: ReportContext):
    red = ctx.table("redundancy")
    if red is None:
        return ctx.missing("redundancy")
    figs = []
    for measure, label in MEASURES:
        sub = network_rows(red[(red["side"] == "BN") & (red["measure"] == measure)])
        if (sub["sign"] == "any").any():
            sub = sub[sub["sign"] == "any"]
        if len(sub):
            figs.append(ctx.figures.add(
                lambda sub=sub, label=label: F.plot_network_bars(sub, "value", ylabel=label, atlas=ctx.atlas),
                f"redundancy_{measure}", f"Redundancy: {label}",
                f"side = BN, measure = {measure} in analysis/redundancy.tsv."))
    return ctx.render("section_redundancy.html.j2", figures=figs, tables=[ctx.table_block("redundancy")])


register_section("redundancy", render_redundancy, order=300, title="Redundancy")
