"""Model comparison: whole-brain prediction of every unit with its modality and weights, and
mean r per network side by side (``analysis/prediction.tsv`` and ``model.json``)."""

from __future__ import annotations

import pandas as pd

from vlmbrain.report import figures as F
from vlmbrain.report.sections._context import ReportContext, network_rows, table_html
from vlmbrain.report.sections._registry import register_section


def _weights(ctx: ReportContext, model: str) -> str:
    info = ctx.models.get(model)
    if info is None:
        return "not recorded"
    return info.trained_label


def render_comparison(ctx: ReportContext):
    pred = ctx.table("prediction")
    if pred is None:
        return ctx.missing("prediction")
    whole = pred[pred["network_id"] == -1]
    summary = pd.DataFrame({
        "model": whole["model"], "unit": whole["branch"],
        "modality": [(u.modality if (u := ctx.unit(m, b)) is not None else "") for m, b in
                     zip(whole["model"], whole["branch"])],
        "weights": [_weights(ctx, m) for m in whole["model"]],
        "mean_r": whole["mean_r"], "median_r": whole["median_r"],
        "n_significant": whole["n_significant"], "fraction_significant": whole["fraction_significant"],
    })
    pn = network_rows(pred)
    figs = []
    if len(pn):
        figs.append(ctx.figures.add(
            lambda: F.plot_model_comparison(pn, "mean_r", units="mean cross-validated r", atlas=ctx.atlas),
            "model_comparison_mean_r", "Model comparison: mean r per network",
            "Rows: model / unit; columns: networks (atlas colours); from analysis/prediction.tsv."))
    tables = [{"path": "whole brain (analysis/prediction.tsv, network = all; model.json)",
               "html": table_html(summary)}] if len(summary) else []
    return ctx.render("section_comparison.html.j2", figures=figs, tables=tables)


register_section("model-comparison", render_comparison, order=700, title="Model comparison")
