"""Warnings raised while the run was computed (``warnings.json``) and while the report was built."""

from __future__ import annotations

from vlmbrain.report.sections._context import ReportContext, read_json_strict
from vlmbrain.report.sections._registry import register_section


def render_warnings(ctx: ReportContext):
    raised = read_json_strict(ctx.layout.warnings_json, default=[]) or []
    return ctx.render("section_warnings.html.j2", warnings=[str(w) for w in raised], notes=list(ctx.notes))


register_section("warnings", render_warnings, order=900, title="Warnings")
