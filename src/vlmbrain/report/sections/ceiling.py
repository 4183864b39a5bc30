"""Prediction against the noise ceiling (``analysis/noise_ceiling.tsv``, ``brain/ceiling.json``)."""

from __future__ import annotations

from vlmbrain.artifacts import read_json
from vlmbrain.report import figures as F
from vlmbrain.report.sections._context import ReportContext, network_rows
from vlmbrain.report.sections._registry import register_section, skipped

DEFINITION = ("The noise ceiling of a grayordinate is the square root of the reliability of the fitted data: no "
              "prediction can correlate better with the data on average. Noise-normalised r is r / ceiling, over the "
              "grayordinates whose reliability is positive.")

HOW = {
    "repeats": "Reliability is the Fisher-z mean of the correlations between repeated showings of the same clip, "
               "measured on the clip and applied to the whole movie.",
    "split-half": "Reliability comes from the subjects over the whole movie: split-half across subjects (the "
                  "correlation of the even- and odd-numbered subjects' means, brought to the whole group by "
                  "Spearman-Brown).",
    "loso": "Reliability comes from the subjects over the whole movie: leave-one-subject-out (the Fisher-z mean "
            "correlation of each subject with the mean of the others, brought to the whole group by Spearman-Brown).",
}


def render_ceiling(ctx: ReportContext):
    info = read_json(ctx.layout.brain_dir / "ceiling.json", default=None)
    if not isinstance(info, dict):
        return skipped("brain/ceiling.json is not in this run directory")
    if not info.get("available"):
        return skipped(f"no noise ceiling is available: {info.get('reason', 'no repeated clip')}")
    table = ctx.table("noise_ceiling")
    if table is None:
        return ctx.missing("noise_ceiling")
    rows = network_rows(table)
    figs = []
    if len(rows):
        figs.append(ctx.figures.add(
            lambda: F.plot_network_bars(rows, "mean_r_normalized", ylabel="mean r / ceiling", atlas=ctx.atlas),
            "noise_ceiling_normalized_r", "Noise-normalised prediction per network",
            "Mean of r / ceiling over each network's reliable grayordinates (analysis/noise_ceiling.tsv)."))
    median = info.get("median_ceiling")
    source = info.get("source", "repeats")
    if source == "repeats":
        where = f"{info.get('n_repeats')} showings of {info.get('clip')!r} ({info.get('n_timepoints')} TRs each)"
    else:
        where = f"{info.get('n_subjects')} subjects over {info.get('n_timepoints')} TRs"
    text = [DEFINITION, HOW.get(source, str(info.get("method", ""))),
            f"Ceiling from {where}; median ceiling {'n/a' if median is None else format(median, '.2f')} over "
            f"{info.get('n_reliable')} reliable grayordinates."]
    return ctx.render("section_prediction.html.j2", text=text, figures=figs,
                      tables=[ctx.table_block("noise_ceiling")])


register_section("noise_ceiling", render_ceiling, order=105, title="Prediction against the noise ceiling")
