"""Network affiliation of atoms (``analysis/affiliation.tsv``), and where the label files are.

A unit none of whose atoms is affiliated has no label file (it would hold only zeros): the
section says so rather than leaving the reader to find an empty folder.
"""

from __future__ import annotations

from vlmbrain.artifacts import affiliation_label_files
from vlmbrain.report import figures as F
from vlmbrain.report.sections._context import ReportContext, network_rows
from vlmbrain.report.sections._registry import register_section


def render_affiliation(ctx: ReportContext):
    aff = ctx.table("affiliation")
    if aff is None:
        return ctx.missing("affiliation")
    hits = network_rows(aff[aff["affiliated"]])
    figs, text = [], []
    if len(hits):
        counts = hits.groupby(["model", "branch", "network"], sort=False)["atom"].nunique()
        counts = counts.rename("n_atoms").reset_index()
        figs.append(ctx.figures.add(
            lambda: F.plot_network_bars(counts, "n_atoms", ylabel="affiliated atoms", atlas=ctx.atlas),
            "affiliation_counts", "Atoms affiliated per network",
            "Distinct atoms with a significant map (β⁺ or β⁻) affiliated with each network "
            "(rows of analysis/affiliation.tsv with affiliated = True)."))
    else:
        text.append("No atom is affiliated with any network.")
    text += _label_files(ctx, aff)
    return ctx.render("section_affiliation.html.j2", text=text, figures=figs,
                      tables=[ctx.table_block("affiliation")])


def _label_files(ctx: ReportContext, aff) -> list[str]:
    """Which units have affiliation label files, and which have none because nothing is affiliated."""
    if ctx.atlas is None or not len(aff):
        return []
    with_files, without = [], []
    for unit in ctx.units:
        rows = aff[(aff["model"] == unit.model) & (aff["branch"] == unit.name)]
        if not len(rows):
            continue
        files = affiliation_label_files(ctx.layout, unit.model, unit.name)
        if files:
            with_files += [f.relative_to(ctx.layout.root).as_posix() for f in files]
        elif not rows["affiliated"].any():
            without.append(f"{unit.model} / {unit.name}")
    out = []
    if with_files:
        out.append("Label files (every atom's significant map, labelled by its affiliated network): "
                   + ", ".join(with_files) + ".")
    if without:
        out.append("No label file is written for " + ", ".join(without) + ": none of "
                   + ("its" if len(without) == 1 else "their") + " atoms is affiliated with a network.")
    return out


register_section("affiliation", render_affiliation, order=200, title="Network affiliation of atoms")
