"""The models of the run: branches with their modality and neuron count, weights, hash (``model.json``)."""

from __future__ import annotations

from vlmbrain.report.sections._context import ReportContext
from vlmbrain.report.sections._registry import register_section, skipped


def _input(branch) -> str:
    """What a branch encodes, and what it reads when that is more (e.g. text read with the image)."""
    if branch.modality == branch.stream:
        return branch.stream
    return f"{branch.stream}, reads {branch.modality}"


def render_models(ctx: ReportContext):
    if not ctx.models:
        return skipped("no activations/<model>/model.json in this run directory")
    rows = []
    for folder, info in ctx.models.items():
        rows.append({
            "model": info.name if info.name == folder else f"{info.name} ({folder})",
            "branches": ", ".join(f"{b.name} ({_input(b)}, {b.n_neurons} ANs)" for b in info.branches),
            "trained": info.trained,
            "trained_evidence": info.trained_evidence,
            "weights_hash": info.weights_hash,
            "readout": f"{info.site}, {info.pooling} pooling",
            "description": info.description,
        })
    units = [{"model": u.model, "unit": u.name, "modality": u.modality} for u in ctx.units]
    return ctx.render("section_models.html.j2", rows=rows, units=units)


register_section("models", render_models, order=10, title="Models and weights")
