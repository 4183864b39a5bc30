"""Figures and the self-contained HTML report; reads run artifacts, never recomputes analyses."""

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

__all__ = [
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
    "save_figure",
]
