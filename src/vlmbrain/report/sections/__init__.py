"""The report's sections: an ordered registry of renderers.

Every section of the page is a renderer registered with :func:`register_section`; a renderer
receives the :class:`ReportContext` and returns the section's HTML (usually from a template
partial ``section_<name>.html.j2`` under ``vlmbrain/report/templates/``) or :func:`skipped`
with the reason when the run lacks its inputs. :func:`vlmbrain.report.build_report` walks the
registry in order.

Registering a section from outside the report::

    from vlmbrain.report.sections import register_section, skipped

    def render_mine(ctx):
        table = ctx.table("mine")          # a table registered in vlmbrain.artifacts
        if table is None:
            return ctx.missing("mine")
        return ctx.render_string("<p>{{ n }} rows</p>", n=len(table))

    register_section("mine", render_mine, order=750, title="My analysis")

The built-in sections and their order: weights banner (0), findings (5), models and weights
(10), prediction (100), noise ceiling (105), surface maps (110), affiliation (200), atom explorer
(250), redundancy (300), polarity (400), cross-modal mapping (500), layer hierarchy (600), model
comparison (700), warnings (900), data provenance (920), parameters (940), versions (1000). The
demo adds "planted truth vs recovered" (800) with :func:`register_recovery_section`.
"""

from vlmbrain.report.sections._context import (
    Figure,
    FigureSink,
    ReportContext,
    network_rows,
    read_json_strict,
    table_html,
)
from vlmbrain.report.sections._registry import (
    Section,
    Skipped,
    register_section,
    registered_sections,
    skipped,
    unregister_section,
)

# the built-in sections register themselves on import
from vlmbrain.report.sections import (  # noqa: E402, F401  isort: skip
    banner,
    summary,
    models,
    provenance,
    parameters,
    prediction,
    ceiling,
    surface_maps,
    spaces,
    affiliation,
    atoms,
    redundancy,
    polarity,
    crossmodal,
    hierarchy,
    comparison,
    run_warnings,
    versions,
)
from vlmbrain.report.sections.recovery import register_recovery_section  # noqa: E402  isort: skip

__all__ = [
    "Figure",
    "FigureSink",
    "ReportContext",
    "Section",
    "Skipped",
    "network_rows",
    "read_json_strict",
    "register_recovery_section",
    "register_section",
    "registered_sections",
    "skipped",
    "table_html",
    "unregister_section",
]
