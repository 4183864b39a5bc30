"""The self-contained HTML report of a run directory.

:func:`build_report` reads the run through :mod:`vlmbrain.artifacts` (paths from
:class:`~vlmbrain.artifacts.RunLayout`, tables from their schemas, models from ``model.json``),
calls every section registered in :mod:`vlmbrain.report.sections` in order, and writes one
HTML file with every figure embedded (inline SVG, or base64 PNG for surface maps) and no
external URL; figures are also saved under ``<report>/figures/`` as SVG and PNG (surface maps
as PNG only). A section whose inputs are absent says "skipped" with the reason. Nothing is
recomputed: the only arithmetic is thresholding maps at the configured q level for the branch-overlap display and
the atom cards' maps, and counting grayordinates per network for its composition.

The page opens with the findings and ends with provenance, parameters and versions. With
``report.interactive`` (the default) every surface map can also open in the interactive
viewer of :mod:`vlmbrain.report.viewer`; its script and data are inline, so the page still
loads nothing from anywhere.
"""

from __future__ import annotations

import datetime as _dt
import os
import logging
import platform
from pathlib import Path

from vlmbrain.artifacts import RunLayout, read_model_json
from vlmbrain.errors import ConfigError, InputFileError
from vlmbrain.report.sections import FigureSink, ReportContext, Skipped, registered_sections

logger = logging.getLogger("vlmbrain")

__all__ = ["FIGURE_CHOICES", "build_report"]

#: accepted values of ``figures``
FIGURE_CHOICES = ("all", "fast", "none")


def _read_config(layout: RunLayout) -> dict:
    path = layout.config_yaml
    if not path.is_file():
        return {}
    import yaml  # noqa: PLC0415

    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise InputFileError(f"{path} is not valid YAML ({err}); re-run the pipeline to rewrite it") from err
    return cfg if isinstance(cfg, dict) else {}


def _get(d, *keys, default=None):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return default if d is None else d


def _load_atlas(name: str, notes: list):
    from vlmbrain.networks import load_atlas  # noqa: PLC0415

    try:
        return load_atlas(name)
    except Exception as err:  # noqa: BLE001 - the report must still render
        notes.append(f"network atlas {name!r} could not be loaded ({err}); network colours from CAB-NP")
    try:
        return load_atlas("cabnp")
    except Exception as err:  # noqa: BLE001
        notes.append(f"the CAB-NP atlas could not be loaded either ({err}); networks get fallback colours")
        return None


def _load_space(layout: RunLayout, notes: list):
    from vlmbrain.brain.space import SPACE_JSON, BrainSpace  # noqa: PLC0415

    if not (layout.brain_dir / SPACE_JSON).is_file():
        return None
    try:
        return BrainSpace.load(layout.brain_dir)
    except Exception as err:  # noqa: BLE001 - the tables still render without the space
        notes.append(f"brain/{SPACE_JSON} could not be read ({err}); no surface maps")
        return None


def _environment():
    import jinja2  # noqa: PLC0415

    return jinja2.Environment(loader=jinja2.PackageLoader("vlmbrain.report", "templates"),
                              autoescape=jinja2.select_autoescape(["html", "j2"]),
                              undefined=jinja2.StrictUndefined)


def _generation_date() -> str:
    """When the report was written; ``SOURCE_DATE_EPOCH`` (reproducible builds) fixes it."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (_dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc) if epoch and epoch.strip().isdigit()
            else _dt.datetime.now(_dt.timezone.utc))
    return when.strftime("%Y-%m-%d %H:%M UTC")


def _render_section(section, ctx: ReportContext) -> dict:
    out = {"name": section.name, "title": section.title, "html": "", "skipped": None}
    try:
        result = section.renderer(ctx)
    except (InputFileError, ConfigError):
        raise
    except Exception as err:  # noqa: BLE001 - one failing section must not stop the page
        logger.exception("report: section %s failed", section.name)
        ctx.note(f"section {section.name!r} failed: {err}")
        out["skipped"] = f"the section failed ({type(err).__name__}: {err})"
        return out
    if isinstance(result, Skipped):
        out["skipped"] = result.reason
    else:
        out["html"] = str(result or "")
    return out


def _viewer(ctx: ReportContext, interactive: bool, figures: str):
    """(SurfaceViewer or None, why none)."""
    if not interactive:
        return None, "the interactive viewer is off (report.interactive: false)"
    if figures == "none":
        return None, "figures are off (figures='none')"
    from vlmbrain.report.surface import surface_problem  # noqa: PLC0415

    problem = surface_problem(ctx.space)
    if problem is not None:
        return None, problem
    from vlmbrain.report.viewer import SurfaceViewer  # noqa: PLC0415

    return SurfaceViewer(ctx.space, ctx.atlas), ""


def build_report(run_dir, out=None, *, figures: str | None = None, max_surface_maps: int = 12,
                 dpi: int = 150, atlas: str | None = None, surfaces: bool | None = None,
                 interactive: bool | None = None) -> Path:
    """Write the self-contained HTML report of a run directory.

    Parameters
    ----------
    run_dir : str or Path
        The run directory (layout in :mod:`vlmbrain.artifacts`).
    out : str or Path, optional
        Output HTML file; default ``run_dir/report/index.html``. Figures go to
        ``<out folder>/figures/`` as SVG and PNG (surface maps PNG only).
    figures : {'all', 'fast', 'none'}, optional
        ``'all'``: every figure, surface maps included (a few seconds each); ``'fast'``: no
        surface maps; ``'none'``: tables only. Default: ``'all'`` when
        ``report.surface_figures`` of the run's ``config.yaml`` is true (or absent), else
        ``'fast'``.
    max_surface_maps : int, default=12
        At most this many surface figures (a note says when more were not drawn).
    dpi : int, default=150
        PNG resolution.
    atlas : str, optional
        Network atlas for colours, network order and composition (anything
        :func:`vlmbrain.networks.load_atlas` takes); default ``networks.atlas`` of the
        config, else ``"cabnp"``.
    surfaces : bool, optional
        Shorthand used when ``figures`` is not given: True = ``'all'``, False = ``'fast'``.
    interactive : bool, optional
        Embed the interactive surface viewer (:mod:`vlmbrain.report.viewer`: rotate, zoom,
        threshold, hover, offline; ~3 MB once plus each map's data). Default
        ``report.interactive`` of the run's ``config.yaml``, else True. Off with
        ``figures='none'`` and for spaces without fsLR-32k cortex.

    Returns
    -------
    Path
        The HTML file written.

    Raises
    ------
    InputFileError
        ``run_dir`` is not a folder, or an artifact is unreadable (malformed ``model.json``,
        a table whose columns do not match its schema, invalid JSON or YAML).
    ConfigError
        ``figures`` is not one of the allowed values.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputFileError(
            f"run directory {run_dir} does not exist; pass the folder given to 'vlmbrain run' (it holds config.yaml)"
        )
    layout = RunLayout(run_dir)
    cfg = _read_config(layout)
    if figures is None and surfaces is not None:
        figures = "all" if surfaces else "fast"
    if figures is None:
        figures = "all" if bool(_get(cfg, "report", "surface_figures", default=True)) else "fast"
    if figures not in FIGURE_CHOICES:
        raise ConfigError(f"figures must be 'all', 'fast' or 'none', got {figures!r}")
    out = Path(out) if out is not None else layout.report_html
    out.parent.mkdir(parents=True, exist_ok=True)

    notes: list[str] = []  # problems met while building the report itself
    models = {m: read_model_json(layout.model_json(m)) for m in layout.models()}
    units = layout.units()
    ctx = ReportContext(
        layout=layout,
        config=cfg,
        q=float(_get(cfg, "encoding", "q", default=0.05)),
        atlas=_load_atlas(atlas or str(_get(cfg, "networks", "atlas", default="cabnp")), notes),
        figures=FigureSink(out.parent / "figures", dpi=dpi, enabled=figures != "none", surfaces=figures == "all",
                           max_surface_maps=max_surface_maps, notes=notes),
        space=_load_space(layout, notes),
        units=units,
        models=models,
        notes=notes,
        env=_environment(),
    )
    if interactive is None:
        interactive = bool(_get(cfg, "report", "interactive", default=True))
    ctx.viewer, ctx.viewer_off = _viewer(ctx, bool(interactive), figures)
    sections = [_render_section(s, ctx) for s in registered_sections() if s.applies is None or s.applies(ctx)]
    viewer_assets = ctx.viewer.assets() if ctx.viewer is not None else ""

    import vlmbrain  # noqa: PLC0415

    html = ctx.env.get_template("report.html.j2").render(
        title=f"vlmbrain report — {run_dir.name}",
        run_dir=str(run_dir.resolve()),
        date=_generation_date(),
        own_version=getattr(vlmbrain, "__version__", "unknown"),
        python=platform.python_version(),
        sections=sections,
        viewer_assets=viewer_assets,
    )
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    logger.info("report written to %s (%d sections, %d surface figures, %d interactive maps, %.1f MB)", out,
                len(sections), ctx.figures.n_surface, ctx.viewer.n_maps if ctx.viewer is not None else 0,
                out.stat().st_size / 1e6)
    return out
