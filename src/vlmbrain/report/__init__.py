"""Figures and the self-contained HTML report; reads run artifacts, never recomputes analyses.

The page is a registry of sections (:mod:`vlmbrain.report.sections`): add one with
:func:`register_section`; :func:`build_report` renders them in order.
"""

from vlmbrain.report.figures import (
    network_palette,
    overlap_composition,
    plot_categorical_surface,
    plot_hierarchy,
    plot_model_comparison,
    plot_network_bars,
    plot_overlap_composition,
    plot_polarity_profiles,
    plot_recovery,
    plot_surface_map,
    save_figure,
)
from vlmbrain.report.html import build_report
from vlmbrain.report.sections import (
    ReportContext,
    Skipped,
    register_recovery_section,
    register_section,
    registered_sections,
    skipped,
    unregister_section,
)

__all__ = [
    "ReportContext",
    "Skipped",
    "build_report",
    "network_palette",
    "overlap_composition",
    "plot_categorical_surface",
    "plot_hierarchy",
    "plot_model_comparison",
    "plot_network_bars",
    "plot_overlap_composition",
    "plot_polarity_profiles",
    "plot_recovery",
    "plot_surface_map",
    "register_recovery_section",
    "register_section",
    "registered_sections",
    "save_figure",
    "skipped",
    "unregister_section",
]
