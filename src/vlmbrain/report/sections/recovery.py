"""Planted truth vs recovered: a section for runs that know their ground truth (the demo).

Not part of the default page: the demo calls :func:`register_recovery_section` after it has
registered the schemas of its tables (``demo/recovery.tsv``, one row per planted network with
``network, planted_sign, recovered_sign, recovered``; optionally ``demo/recovery_by_branch.tsv``,
the same per model and branch, drawn as the grid; optionally ``demo/truth.tsv``, the planted
truth) with :func:`vlmbrain.artifacts.register_table`.
"""

from __future__ import annotations

from vlmbrain.artifacts import TABLES
from vlmbrain.report import figures as F
from vlmbrain.report.sections._context import ReportContext
from vlmbrain.report.sections._registry import Section, register_section, skipped

#: section name, place and title used by :func:`register_recovery_section`
NAME, ORDER, TITLE = "recovery", 800, "Demo: planted truth vs recovered"


def make_recovery_renderer(summary: str = "recovery", detail: str | None = "recovery_by_branch",
                           truth: str | None = "truth"):
    """A renderer of the planted-vs-recovered tables registered under these names.

    Parameters
    ----------
    summary : str
        Table with one row per planted network: ``network``, ``planted_sign``,
        ``recovered_sign`` and the boolean ``recovered``.
    detail : str or None
        Table with the same columns plus ``model`` and ``branch`` (drawn as the grid when present).
    truth : str or None
        Table of the planted truth, shown as is.
    """

    def render_recovery(ctx: ReportContext):
        if summary not in TABLES:
            return skipped(f"no table {summary!r} is registered")
        rec = ctx.table(summary)
        if rec is None:
            return ctx.missing(summary)
        det = ctx.table(detail) if detail in TABLES else None
        planted = ctx.table(truth) if truth in TABLES else None
        grid = det if det is not None and len(det) else rec
        figs = [ctx.figures.add(
            lambda: F.plot_recovery(grid), "demo_recovery", "Planted truth vs recovered",
            "Each cell: planted sign → recovered sign of the network's coupling with its planted attribute; "
            "green = recovered.")]
        tables = [ctx.table_block(summary, rec)]
        if det is not None:
            tables.append(ctx.table_block(detail, det))
        if planted is not None:
            tables.append(ctx.table_block(truth, planted))
        return ctx.render("section_recovery.html.j2", n_match=int(rec["recovered"].sum()), n=len(rec),
                          figures=figs, tables=tables)

    return render_recovery


#: the renderer of the demo's tables under their default names
render_recovery = make_recovery_renderer()


def register_recovery_section(*, order: float = ORDER, title: str = TITLE, replace: bool = True) -> Section:
    """Add the planted-vs-recovered section to every report built from now on."""
    return register_section(NAME, render_recovery, order=order, title=title, replace=replace,
                            applies=lambda ctx: (ctx.layout.root / "demo").is_dir())
