"""Package versions the run was computed with (``versions.json``)."""

from __future__ import annotations

from vlmbrain.report.sections._context import ReportContext, read_json_strict
from vlmbrain.report.sections._registry import register_section, skipped


def render_versions(ctx: ReportContext):
    versions = read_json_strict(ctx.layout.versions_json)
    if not isinstance(versions, dict):
        return skipped("versions.json not found: versions not recorded")
    return ctx.render("section_versions.html.j2", versions=versions)


register_section("versions", render_versions, order=1000, title="Versions")
