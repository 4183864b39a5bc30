"""The red banner at the top of the page when a model ran with untrained (random) weights.

Whether weights are trained is read from ``model.json`` (``ModelInfo.trained``) and nowhere else;
weights of which nothing says whether they were trained (``trained: null``) get no banner but
"unknown" in the models table, never "trained".
"""

from __future__ import annotations

from vlmbrain.report.sections._context import ReportContext
from vlmbrain.report.sections._registry import register_section, skipped


def render_banner(ctx: ReportContext):
    if not ctx.models:
        return skipped("no activations/<model>/model.json in this run directory")
    untrained = [info.name for info in ctx.models.values() if info.trained is False]
    if not untrained:
        return ""
    return ctx.render("section_banner.html.j2", untrained=untrained)


register_section("weights-banner", render_banner, order=0, title=None)
