"""The ordered registry of report sections.

A section is a name, a title, an order key and a renderer ``renderer(ctx) -> str | Skipped``
that receives the :class:`~vlmbrain.report.sections.ReportContext`. :func:`build_report`
calls every registered renderer in increasing order and lays the results out one after the
other; a section without a title (``title=None``) is laid out bare, without heading or
frame (the weights banner at the top of the page is one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# Renderers take a ``vlmbrain.report.sections._context.ReportContext``; it is named in the
# annotations as a string only, since the context module imports this one.

__all__ = ["Section", "Skipped", "register_section", "registered_sections", "skipped", "unregister_section"]


@dataclass(frozen=True)
class Skipped:
    """What a renderer returns when its inputs are absent: the page says ``skipped: <reason>``."""

    reason: str


def skipped(reason: str) -> Skipped:
    """The return value of a renderer whose inputs are absent (``reason`` is shown to the reader)."""
    return Skipped(str(reason))


Renderer = Callable[["ReportContext"], "str | Skipped"]


@dataclass(frozen=True)
class Section:
    """A registered section: ``name`` (also the HTML anchor), ``renderer``, ``order``, ``title``."""

    name: str
    renderer: Renderer
    order: float
    title: str | None
    #: ``applies(ctx) -> bool``: False leaves the section out of this run's page (None: always shown)
    applies: Callable[["ReportContext"], bool] | None = None


_SECTIONS: dict[str, Section] = {}


def register_section(name: str, renderer: Renderer, *, order: float, title: str | None,
                     replace: bool = False, applies: Callable[["ReportContext"], bool] | None = None) -> Section:
    """Add a section to every report built from now on.

    Parameters
    ----------
    name : str
        Unique key, also the ``id`` of the section in the page (letters, digits, ``-``, ``_``).
    renderer : callable
        ``renderer(ctx: ReportContext) -> str | Skipped``: the section's HTML body (trusted,
        inserted as is; build it with ``ctx.render(template, ...)``), or ``skipped(reason)``
        when the run lacks its inputs.
    order : float
        Position in the page; sections are laid out by increasing ``order`` (ties by name).
        The built-in sections use 0-10 (banner, findings, models), 100-700 (analyses) and
        900-1000 (warnings, provenance, parameters, versions).
    title : str or None
        Heading of the section (and its entry in the navigation bar); None lays the HTML out
        bare, without heading, frame or navigation entry.
    replace : bool, default=False
        Replace a section already registered under ``name``; otherwise that is an error.
    applies : callable, optional
        ``applies(ctx) -> bool``: whether the section belongs on this run's page at all (a
        plug-in's section on runs that are not the plug-in's); default: every page.

    Returns
    -------
    Section

    Raises
    ------
    ValueError
        ``name`` is already registered (and ``replace`` is False), or is not a valid anchor.
    TypeError
        ``renderer`` is not callable.
    """
    name = str(name)
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError(f"section name {name!r} must be letters, digits, '-' or '_' (it is the HTML anchor)")
    if not callable(renderer):
        raise TypeError(f"section {name!r}: renderer must be callable, got {type(renderer).__name__}")
    if name in _SECTIONS and not replace:
        raise ValueError(f"section {name!r} is already registered; pass replace=True to replace it")
    section = Section(name, renderer, float(order), None if title is None else str(title), applies)
    _SECTIONS[name] = section
    return section


def unregister_section(name: str) -> Section | None:
    """Remove a section; returns it, or None when no section has that name."""
    return _SECTIONS.pop(str(name), None)


def registered_sections() -> list[Section]:
    """The registered sections in page order."""
    return sorted(_SECTIONS.values(), key=lambda s: (s.order, s.name))
