"""What every section renderer receives: the run (through :mod:`vlmbrain.artifacts`), the
options of the report, the atlas and brain space, and a sink that saves and embeds figures."""

from __future__ import annotations

import base64
import html as _html
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from vlmbrain.artifacts import (
    ModelInfo,
    RunLayout,
    Unit,
    read_encoding,
    read_json,
    read_table,
    table_schema,
)
from vlmbrain.errors import InputFileError
from vlmbrain.report.sections._registry import Skipped, skipped

if TYPE_CHECKING:
    import jinja2

    from vlmbrain.brain.space import BrainSpace
    from vlmbrain.networks import Atlas
    from vlmbrain.report.viewer import SurfaceViewer

logger = logging.getLogger("vlmbrain")

__all__ = ["Figure", "FigureSink", "ReportContext", "network_rows", "read_json_strict", "table_html"]

MAX_ROWS = 200
_ABSENT = object()


def read_json_strict(path: Path, default=None):
    """A JSON artifact, ``default`` when the run has not written it.

    Raises
    ------
    InputFileError
        The file exists but is not valid JSON.
    """
    data = read_json(path, default=_ABSENT)
    if data is _ABSENT:
        if Path(path).is_file():
            raise InputFileError(f"{path} is not valid JSON; re-run the stage that wrote it")
        return default
    return data


# ----------------------------------------------------------------------------- tables
def _fmt_number(x):
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, np.integer)):
        return f"{int(x)}"
    if isinstance(x, (float, np.floating)):
        if not np.isfinite(x):
            return "—" if np.isnan(x) else str(x)
        if x == int(x) and abs(x) < 1e6:
            return f"{int(x)}"
        if abs(x) >= 1e4 or abs(x) < 1e-3:
            return f"{x:.3g}"
        return f"{x:.3f}"
    return str(x)


def table_html(df: pd.DataFrame, max_rows: int = MAX_ROWS) -> str:
    """Any table as escaped HTML with readable numbers (the first ``max_rows`` rows)."""
    shown = df.head(max_rows).copy()
    for c in shown.columns:
        shown[c] = [("—" if (v is None or (isinstance(v, float) and np.isnan(v))) else _fmt_number(v))
                    for v in shown[c]]
    out = shown.to_html(index=False, border=0, classes="tbl", escape=True, na_rep="—")
    if len(df) > max_rows:
        out += f'<p class="note">First {max_rows} of {len(df)} rows shown.</p>'
    return out


def network_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of one network each: without the whole-brain row (``network_id = -1``) and the
    rows of atoms affiliated with no network (``network_id = 0``)."""
    return df[(df["network_id"] > 0) & (df["network"].astype(str) != "")]


# ----------------------------------------------------------------------------- figures
@dataclass
class Figure:
    """A saved figure: its embeddable HTML (inline SVG or base64 PNG) and its files."""

    title: str
    caption: str
    html: str
    files: list = field(default_factory=list)


class FigureSink:
    """Draws, saves (``<report>/figures/<name>.svg`` and ``.png``; a surface map only ``.png``) and embeds figures.

    Attributes
    ----------
    enabled : bool
        False for ``figures='none'``: :meth:`add` draws nothing and returns None.
    surfaces : bool
        Whether surface maps are drawn at all (``figures='all'``).
    max_surface_maps : int
        Surface maps beyond this many are not drawn (a note says so).
    """

    def __init__(self, fig_dir: Path, *, dpi: int = 150, enabled: bool = True, surfaces: bool = True,
                 max_surface_maps: int = 12, notes: list | None = None):
        self.fig_dir = Path(fig_dir)
        self.dpi = int(dpi)
        self.enabled = bool(enabled)
        self.surfaces = bool(surfaces) and self.enabled
        self.max_surface_maps = int(max_surface_maps)
        self.n_surface = 0
        self.notes = notes if notes is not None else []

    def add(self, make, name: str, title: str, caption: str = "", *, surface: bool = False) -> Figure | None:
        """Draw ``make()`` (a matplotlib figure), save it and return it ready to embed.

        ``surface=True`` marks a surface map: saved and embedded as PNG only (its meshes are a
        bitmap in an SVG too, and each format is a full draw of four 3-D meshes), counted
        against ``max_surface_maps``. Returns None when figures (or surface maps) are
        off, over the limit, or when drawing failed; a failure becomes a note of the
        report, never an exception, so one bad artifact does not stop the page.
        """
        if not self.enabled or (surface and not self.surfaces):
            return None
        if surface:
            if self.n_surface >= self.max_surface_maps:
                _add_note(self.notes, f"surface maps beyond max_surface_maps={self.max_surface_maps} were not drawn")
                return None
            self.n_surface += 1
        import matplotlib.pyplot as plt  # noqa: PLC0415

        from vlmbrain.report.figures import save_figure  # noqa: PLC0415

        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        fig = None
        try:
            fig = make()
            svg, png = save_figure(fig, self.fig_dir, name, dpi=self.dpi, tight=not surface, svg=not surface)
        except Exception as err:  # noqa: BLE001 - one bad artifact must not stop the report
            logger.warning("report: figure %s failed: %s", name, err)
            _add_note(self.notes, f"figure {name} could not be drawn: {err}")
            return None
        finally:
            if fig is not None:
                plt.close(fig)
        if surface:
            b64 = base64.b64encode(png.read_bytes()).decode("ascii")
            body = f'<img alt="{_html.escape(title, quote=True)}" src="data:image/png;base64,{b64}">'
        else:
            text = svg.read_text(encoding="utf-8")
            body = text[text.find("<svg"):]
        return Figure(title, caption, body, [f"figures/{p.name}" for p in (svg, png) if p is not None])


def _add_note(notes: list, message: str) -> None:
    if message not in notes:
        notes.append(message)


# ----------------------------------------------------------------------------- context
@dataclass
class ReportContext:
    """Everything a section renderer may read.

    Attributes
    ----------
    layout : RunLayout
        Paths of the run's artifacts; read tables with :meth:`table`, maps with :meth:`encoding`.
    config : dict
        The run's ``config.yaml`` ({} when absent).
    q : float
        Significance level of the maps (``encoding.q`` of the config, default 0.05).
    atlas : vlmbrain.networks.Atlas or None
        The network atlas (colours and order of the networks, composition counts).
    figures : FigureSink
        Where figures go (:meth:`FigureSink.add`).
    space : vlmbrain.brain.space.BrainSpace or None
        The run's brain space (``brain/space.json``), None when the run has none.
    units : list of vlmbrain.artifacts.Unit
        The dictionary units, each with its model folder, branches and modality.
    models : dict of str to vlmbrain.artifacts.ModelInfo
        Every ``model.json`` of the run, by model folder.
    notes : list of str
        Problems met while building the report (shown in the warnings section).
    viewer : vlmbrain.report.viewer.SurfaceViewer or None
        Turns a grayordinate map into an interactive one (:meth:`interactive_map`); None when
        ``report.interactive`` is false, figures are ``'none'`` or the space has no surface.
    viewer_off : str
        Why ``viewer`` is None ("" when it is not).
    """

    layout: RunLayout
    config: dict
    q: float
    atlas: Atlas | None
    figures: FigureSink
    space: BrainSpace | None
    units: list[Unit]
    models: dict[str, ModelInfo]
    notes: list[str]
    env: jinja2.Environment = field(repr=False)
    viewer: SurfaceViewer | None = None
    viewer_off: str = "the interactive viewer is off"
    _tables: dict = field(default_factory=dict, repr=False)
    _maps: dict = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ reading
    def table(self, name: str) -> pd.DataFrame | None:
        """The registered table ``name`` as its schema declares it, or None when not written.

        Raises KeyError when no schema of that name is registered in :mod:`vlmbrain.artifacts`.
        """
        if name not in self._tables:
            self._tables[name] = read_table(name, self.layout)
        return self._tables[name]

    @staticmethod
    def table_path(name: str) -> str:
        """Where a table lives, relative to the run directory (``analysis/<name>.tsv``)."""
        schema = table_schema(name)
        return f"{schema.folder}/{name}.tsv" if schema.folder else f"{name}.tsv"

    def table_block(self, name: str, df: pd.DataFrame | None = None) -> dict | None:
        """``{"path", "html"}`` of a table for the template partials (None when not written)."""
        df = self.table(name) if df is None else df
        return None if df is None else {"path": self.table_path(name), "html": table_html(df)}

    def missing(self, *names: str) -> Skipped:
        """``skipped(...)`` naming tables the run has not written."""
        paths = [self.table_path(n) for n in names]
        verb = "is" if len(paths) == 1 else "are"
        return skipped(f"{', '.join(paths)} {verb} not in this run directory")

    def encoding(self, unit: Unit, names) -> dict[str, np.ndarray]:
        """The encoding maps ``names`` of a unit that exist, from whichever file the brain space's
        format gave them (see :func:`vlmbrain.artifacts.read_encoding`)."""
        out = {}
        for n in names:
            key = (unit.model, unit.name, n)
            if key not in self._maps:  # a neuroimaging file is parsed once per report
                self._maps[key] = read_encoding(self.layout, unit.model, unit.name, names=(n,),
                                                space=self.space).get(n)
            if self._maps[key] is not None:
                out[n] = self._maps[key]
        return out

    def significant(self, unit: Unit) -> tuple[np.ndarray | None, str]:
        """(n_grayordinates,) bool map of a unit's significant grayordinates, and how it is defined.

        Cross-validated ``r > 0`` with ``q_r < q`` when the unit has those maps, else "any atom
        with ``q < q``"; (None, "") when it has neither.
        """
        maps = self.encoding(unit, ("q_r", "r_cv"))
        if {"q_r", "r_cv"} <= set(maps):
            sig = (np.nan_to_num(maps["q_r"], nan=1.0) < self.q) & (np.nan_to_num(maps["r_cv"], nan=0.0) > 0)
            return sig, f"cross-validated r > 0 with q_r < {self.q:g}"
        maps = self.encoding(unit, ("q",))
        if "q" in maps:
            return (np.nan_to_num(maps["q"], nan=1.0) < self.q).any(axis=0), f"any atom β with q < {self.q:g}"
        return None, ""

    def unit(self, model: str, name: str) -> Unit | None:
        """The unit of a model folder and a unit name (a branch, or branches joined by ``+``)."""
        return next((u for u in self.units if u.model == model and u.name == name), None)

    # ------------------------------------------------------------------ surfaces
    def surface_problem(self) -> str | None:
        """Why surface maps are not drawn in this report, or None when they are."""
        if not self.figures.surfaces:
            return "surface maps are off (figures='fast' or 'none')"
        from vlmbrain.report.surface import surface_problem  # noqa: PLC0415

        return surface_problem(self.space)

    def interactive_map(self, values, *, title: str, units: str = "value", categories: dict | None = None) -> str | None:
        """The HTML of an interactive surface map (rotate, zoom, threshold, hover), or None when
        the viewer is off; a map that cannot be shown becomes a note of the report."""
        if self.viewer is None:
            return None
        try:
            return self.viewer.placeholder(values, title=title, units=units, categories=categories)
        except Exception as err:  # noqa: BLE001 - one bad map must not stop the report
            logger.warning("report: interactive map %s failed: %s", title, err)
            self.note(f"interactive map {title!r} could not be made: {err}")
            return None

    # ------------------------------------------------------------------ output
    def note(self, message: str) -> None:
        """Record a problem of the report itself (listed under warnings as ``[report] ...``)."""
        _add_note(self.notes, str(message))

    def render(self, template: str, **values) -> str:
        """Render a template of ``vlmbrain/report/templates`` (the partials are ``section_<name>.html.j2``)."""
        return self.env.get_template(template).render(ctx=self, **values)

    def render_string(self, source: str, **values) -> str:
        """Render a template given as text (autoescaped), for sections that ship their own."""
        return self.env.from_string(source).render(ctx=self, **values)
