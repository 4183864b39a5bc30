"""Network affiliation of atoms (``analysis/affiliation.tsv``)."""

from __future__ import annotations

from vlmbrain.report import figures as F
from vlmbrain.report.sections._context import ReportContext, network_rows
from vlmbrain.report.sections._registry import register_section


def render_affiliation(ctx: ReportContext):
    aff = ctx.table("affiliation")
    if aff is None:
        return ctx.missing("affiliation")
    hits = network_rows(aff[aff["affiliated"]])
    figs, text = [], []
    if len(hits):
        counts = hits.groupby(["model", "branch", "network"], sort=False)["atom"].nunique()
        counts = counts.rename("n_atoms").reset_index()
        figs.append(ctx.figures.add(
            lambda: F.plot_network_bars(counts, "n_atoms", ylabel="affiliated atoms", atlas=ctx.atlas),
            "affiliation_counts", "Atoms affiliated per network",
            "Distinct atoms with a significant map (β⁺ or β⁻) affiliated with each network "
            "(rows of analysis/affiliation.tsv with affiliated = True)."))
    else:
        text.append("No atom is affiliated with any network.")
    return ctx.render("section_affiliation.html.j2", text=text, figures=figs,
                      tables=[ctx.table_block("affiliation")])


register_section("affiliation", render_affiliation, order=200, title="Network affiliation of atoms")
