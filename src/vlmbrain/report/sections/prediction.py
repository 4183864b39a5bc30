"""Prediction across networks: leave-one-run-out r by network (``analysis/prediction.tsv``)."""

from __future__ import annotations

from vlmbrain.report import figures as F
from vlmbrain.report.sections._context import ReportContext, network_rows
from vlmbrain.report.sections._registry import register_section


def render_prediction(ctx: ReportContext):
    pred = ctx.table("prediction")
    if pred is None:
        return ctx.missing("prediction")
    pn = network_rows(pred)
    figs = []
    if len(pn):
        figs.append(ctx.figures.add(
            lambda: F.plot_network_bars(pn, "mean_r", ylabel="mean cross-validated r", atlas=ctx.atlas),
            "prediction_network_bars", "Mean r per network",
            "Mean cross-validated r over each network's grayordinates (analysis/prediction.tsv)."))
        figs.append(ctx.figures.add(
            lambda: F.plot_network_bars(pn, "fraction_significant", ylabel="fraction significant", atlas=ctx.atlas),
            "prediction_frac_significant", "Fraction of significant grayordinates",
            f"Fraction of each network's grayordinates with significant r (q < {ctx.q:g})."))
    return ctx.render("section_prediction.html.j2", figures=figs, tables=[ctx.table_block("prediction")])


register_section("prediction", render_prediction, order=100, title="Prediction across networks")
