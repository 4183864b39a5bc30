"""The resolved configuration of the run (``config.yaml``)."""

from __future__ import annotations

from vlmbrain.report.sections._context import ReportContext
from vlmbrain.report.sections._registry import register_section, skipped


def render_parameters(ctx: ReportContext):
    if not ctx.layout.config_yaml.is_file():
        return skipped("config.yaml not found: parameters not recorded")
    import yaml  # noqa: PLC0415

    return ctx.render("section_parameters.html.j2", config_yaml=yaml.safe_dump(ctx.config, sort_keys=False))


register_section("parameters", render_parameters, order=940, title="Parameters")
