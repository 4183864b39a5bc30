"""The self-contained HTML report of a run directory.

:func:`build_report` reads the artifacts of ``RUN/`` (layout in ``docs/ARCHITECTURE.md``),
draws the figures (saved under ``RUN/report/figures/`` as SVG + PNG) and writes one HTML
file with every figure embedded (inline SVG, or base64 PNG for surface maps), no external
URL. Artifacts that are missing make their section say "not computed"; nothing is
recomputed (the only arithmetic is thresholding q-maps at the configured level for the
branch-overlap display and counting grayordinates per network for its composition bars).
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import logging
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vlmbrain.errors import ConfigError, InputFileError
from vlmbrain.report._atlas import N_GRAYORDINATES, load_network_atlas

logger = logging.getLogger("vlmbrain")

#: analysis tables rendered, in order, with their section titles
ANALYSIS_SECTIONS = (
    ("prediction", "Prediction across networks"),
    ("affiliation", "Network affiliation of atoms"),
    ("redundancy", "Redundancy"),
    ("polarity", "Polarity"),
    ("crossmodal", "Cross-modal mapping and architecture"),
    ("hierarchy", "Layer hierarchy"),
)

_UNTRAINED_WORDS = {"random", "untrained", "random-init", "random_init", "randomly-initialised",
                    "randomly-initialized", "none", "scratch"}
_MAX_ROWS = 200


# ----------------------------------------------------------------------------- small readers
def _read_json(path: Path, default=None):
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InputFileError(f"{path} is not valid JSON ({err}); re-run the stage that wrote it") from err


def _read_yaml(path: Path):
    if not path.is_file():
        return None
    import yaml  # noqa: PLC0415

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise InputFileError(f"{path} is not valid YAML ({err}); re-run the pipeline to rewrite it") from err


def _read_tsv(path: Path):
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path, sep="\t")
    except (OSError, ValueError) as err:
        raise InputFileError(f"{path} is not a readable TSV table ({err})") from err


def _get(d, *keys, default=None):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


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


def table_html(df: pd.DataFrame, max_rows: int = _MAX_ROWS) -> str:
    """Render any table as HTML with readable number formatting (escaped, first ``max_rows`` rows)."""
    shown = df.head(max_rows).copy()
    for c in shown.columns:
        shown[c] = [("—" if (v is None or (isinstance(v, float) and np.isnan(v))) else _fmt_number(v))
                    for v in shown[c]]
    html = shown.to_html(index=False, border=0, classes="tbl", escape=True, na_rep="—")
    if len(df) > max_rows:
        html += f'<p class="note">First {max_rows} of {len(df)} rows shown.</p>'
    return html


# ----------------------------------------------------------------------------- figure embedding
@dataclass
class _Figure:
    title: str
    caption: str
    html: str
    files: list = field(default_factory=list)


class _FigureSink:
    """Saves figures to ``report/figures`` and returns their embeddable HTML."""

    def __init__(self, fig_dir: Path, dpi: int = 150):
        self.fig_dir = fig_dir
        self.dpi = dpi
        self.enabled = True

    def add(self, fig, name: str, title: str, caption: str = "", raster: bool = False) -> _Figure:
        import matplotlib.pyplot as plt  # noqa: PLC0415

        from vlmbrain.report.figures import save_figure  # noqa: PLC0415

        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        try:
            svg, png = save_figure(fig, self.fig_dir, name, dpi=self.dpi, tight=not raster)
        finally:
            plt.close(fig)
        if raster:
            b64 = base64.b64encode(png.read_bytes()).decode("ascii")
            html = f'<img alt="{_esc(title)}" src="data:image/png;base64,{b64}">'
        else:
            text = svg.read_text(encoding="utf-8")
            html = text[text.find("<svg"):]
        return _Figure(title, caption, html, [f"figures/{svg.name}", f"figures/{png.name}"])


def _esc(s) -> str:
    import html  # noqa: PLC0415

    return html.escape(str(s), quote=True)


# ----------------------------------------------------------------------------- run content
def _list_encodings(run_dir: Path):
    """``[(model, branch, folder)]`` of ``encoding/<model>/<branch>/``."""
    enc = run_dir / "encoding"
    out = []
    if enc.is_dir():
        for m in sorted(p for p in enc.iterdir() if p.is_dir()):
            for b in sorted(p for p in m.iterdir() if p.is_dir()):
                out.append((m.name, b.name, b))
    return out


def _flag_untrained(info) -> bool | None:
    """True / False when a JSON blob says whether weights are trained, None when it does not."""
    if isinstance(info, dict):
        for k, v in info.items():
            kl = str(k).lower()
            if kl in ("weights_trained", "trained", "pretrained") and isinstance(v, bool):
                return not v
            if kl in ("random_weights", "untrained", "random_init") and isinstance(v, bool):
                return v
            if kl in ("weights", "weights_kind", "weights_status", "init") and isinstance(v, str):
                w = v.strip().lower()
                if w in _UNTRAINED_WORDS:
                    return True
                if w in ("trained", "pretrained", "bundled"):
                    return False
        for v in info.values():
            r = _flag_untrained(v)
            if r is not None:
                return r
    return None


def _model_rows(run_dir: Path, cfg, encodings):
    """One row per model: folder name, branches, trained or not (from ``activations/<m>/model.json``)."""
    act = run_dir / "activations"
    meta = {}  # folder name -> model.json
    if act.is_dir():
        for p in sorted(act.iterdir()):
            if p.is_dir():
                meta[p.name] = _read_json(p / "model.json", default={}) or {}
    by_name = {str(m.get("name")): d for d, m in meta.items() if m.get("name")}
    names = [by_name.get(m.get("name"), m.get("name")) for m in (_get(cfg, "models") or []) if isinstance(m, dict)]
    names += list(meta) + [m for m, _, _ in encodings]
    names = [n for n in dict.fromkeys(names) if n]
    models_json = _read_json(run_dir / "models.json", default={}) or {}
    if isinstance(models_json, list):
        models_json = {str(m.get("name")): m for m in models_json if isinstance(m, dict)}
    rows = []
    for n in names:
        safe = n.replace("/", "_")
        info = meta.get(n) or meta.get(safe) or models_json.get(n) or models_json.get(safe) or {}
        status = _flag_untrained(info)
        src = "model.json" if status is not None else ""
        for stage in ("activations", "extract", "encoding"):
            if status is None:
                status = _flag_untrained(_read_json(run_dir / stage / safe / "_stage.json", default={}))
                src = f"{stage}/{safe}/_stage.json" if status is not None else ""
        branches = sorted({b for m, b, _ in encodings if m == n})
        if not branches and (act / safe).is_dir():
            branches = sorted(p.stem for p in (act / safe).glob("*.npy"))
        if not branches and isinstance(info.get("branches"), list):
            branches = [str(b) for b in info["branches"]]
        label = n if not info.get("name") or info.get("name") == n else f"{info['name']} ({n})"
        rows.append({
            "model": label, "branches": ", ".join(branches) or "—",
            "description": str(info.get("description", "") or ""),
            "weights": {True: "UNTRAINED (random)", False: "trained", None: "not recorded"}[status],
            "weights_hash": str(_get(info, "weights_hash", default="") or ""),
            "untrained": status is True, "source": src,
        })
    return rows


def _provenance(run_dir: Path, cfg):
    rows = []
    stim = _get(cfg, "stimulus") or {}
    fm = _get(cfg, "fmri") or {}
    rows.append(("stimulus", str(stim.get("kind", "not recorded"))))
    tl = _read_tsv(run_dir / "stimulus" / "timeline.tsv")
    if tl is not None:
        runs = tl["run"].astype(str).unique().tolist() if "run" in tl else []
        rows.append(("timeline", f"{len(tl)} TRs in {len(runs)} run(s): {', '.join(runs)}"))
        if "rest" in tl:
            rows.append(("rest TRs", str(int(tl["rest"].astype(bool).sum()))))
    if stim.get("tr") is not None:
        rows.append(("TR (s)", str(stim.get("tr"))))
    rows.append(("fMRI source", str(fm.get("kind", "not recorded"))))
    paths = fm.get("paths") or []
    subjects = fm.get("subjects") or []
    if subjects:
        rows.append(("subjects", f"{len(subjects)} (group average of z-scored series)"))
    elif paths:
        rows.append(("subjects", "1"))
    elif fm.get("kind") == "demo":
        rows.append(("subjects", "phantom (planted ground truth)"))
    for p in paths[:8]:
        rows.append(("fMRI file", str(p)))
    bmeta = _read_json(run_dir / "brain" / "meta.json", default=None)
    if isinstance(bmeta, dict):
        m = bmeta.get("meta") if isinstance(bmeta.get("meta"), dict) else {}
        if m.get("source"):
            rows.append(("fMRI data", str(m["source"])))
        if m.get("subjects") is not None and not subjects:
            rows.append(("subjects (loaded)", str(m["subjects"])))
        if bmeta.get("run_names"):
            rows.append(("fMRI runs", ", ".join(map(str, bmeta["run_names"]))))
    space = _read_json(run_dir / "brain" / "space.json", default=None)
    if isinstance(space, dict):
        rows.append(("brain space", ", ".join(f"{k}={v}" for k, v in space.items()
                                              if k != "notes" and not isinstance(v, (dict, list)))))
        if space.get("notes"):
            rows.append(("brain space notes", str(space["notes"])))
    truth = _read_json(run_dir / "demo" / "truth.json", default=None)
    if isinstance(truth, dict) and truth.get("note"):
        rows.append(("demo phantom", str(truth["note"])))
    return rows


def _warnings(run_dir: Path):
    w = _read_json(run_dir / "warnings.json", default=[]) or []
    if isinstance(w, dict):
        w = w.get("warnings", [])
    out = []
    for item in w:
        if isinstance(item, dict):
            msg = item.get("message") or json.dumps(item)
            where = item.get("stage") or item.get("category") or ""
            out.append(f"[{where}] {msg}" if where else str(msg))
        else:
            out.append(str(item))
    return out


def _branch_side(branch: str) -> str:
    b = branch.lower()
    if "text" in b or "lang" in b:
        return "text"
    if "vis" in b or "image" in b or "img" in b:
        return "vision"
    return "other"


def _significant(folder: Path, q_level: float):
    """(V,) bool significant grayordinates of one branch, and how it was defined."""
    qr, rr = folder / "q_r.npy", folder / "r_cv.npy"
    if qr.is_file() and rr.is_file():
        sig = (np.nan_to_num(np.load(qr), nan=1.0) < q_level) & (np.nan_to_num(np.load(rr), nan=0.0) > 0)
        return sig, f"cross-validated r > 0 with q_r < {q_level:g}"
    q = folder / "q.npy"
    if q.is_file():
        return (np.load(q) < q_level).any(axis=0), f"any atom β with q < {q_level:g}"
    return None, ""


# ----------------------------------------------------------------------------- main entry point
def build_report(run_dir, out=None, *, figures: str | None = None, max_surface_maps: int = 12,
                 dpi: int = 150, atlas: str | None = None, surfaces: bool | None = None) -> Path:
    """Write the self-contained HTML report of a run directory.

    Parameters
    ----------
    run_dir : str or Path
        The run directory (see "Run directory" in ``docs/ARCHITECTURE.md``).
    out : str or Path, optional
        Output HTML file; default ``run_dir/report/index.html``. Figures go to
        ``<out folder>/figures/`` as SVG and PNG.
    figures : {'all', 'fast', 'none'}, optional
        ``'all'``: every figure, surface maps included (a few seconds each); ``'fast'``: no
        surface maps; ``'none'``: tables only. Default: ``'all'`` when
        ``report.surface_figures`` of the run's ``config.yaml`` is true (or absent), else
        ``'fast'``.
    max_surface_maps : int, default=12
        At most this many surface figures (the rest is listed as skipped).
    dpi : int, default=150
        PNG resolution.
    surfaces : bool, optional
        Shorthand used when ``figures`` is not given: True = ``'all'``, False = ``'fast'``.
    atlas : str, optional
        Network atlas for colours and composition; default ``networks.atlas`` of the
        config, else ``"cabnp"``.

    Returns
    -------
    Path
        The HTML file written.

    Raises
    ------
    InputFileError
        ``run_dir`` is not a folder, or an artifact is unreadable.
    ConfigError
        ``figures`` is not one of the allowed values.
    """
    import jinja2  # noqa: PLC0415

    from vlmbrain.report import figures as F  # noqa: PLC0415

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputFileError(
            f"run directory {run_dir} does not exist; pass the folder given to 'vlmbrain run' (it holds config.yaml)"
        )
    out = Path(out) if out is not None else run_dir / "report" / "index.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    sink = _FigureSink(out.parent / "figures", dpi=dpi)
    notes: list[str] = []  # problems found while building the report itself

    cfg = _read_yaml(run_dir / "config.yaml") or {}
    versions = _read_json(run_dir / "versions.json", default=None)
    warnings_list = _warnings(run_dir)
    if figures is None and surfaces is not None:
        figures = "all" if surfaces else "fast"
    if figures is None:
        figures = "all" if bool(_get(cfg, "report", "surface_figures", default=True)) else "fast"
    if figures not in ("all", "fast", "none"):
        raise ConfigError(f"figures must be 'all', 'fast' or 'none', got {figures!r}")
    surfaces = figures == "all"
    sink.enabled = figures != "none"
    q_level = float(_get(cfg, "encoding", "q", default=0.05))
    atlas_name = atlas or str(_get(cfg, "networks", "atlas", default="cabnp"))
    try:
        net_atlas = load_network_atlas(atlas_name)
    except Exception as err:  # noqa: BLE001 - the report must still render
        notes.append(f"network atlas {atlas_name!r} could not be loaded for colours ({err}); using CAB-NP colours")
        net_atlas = load_network_atlas("cabnp")

    encodings = _list_encodings(run_dir)
    models = _model_rows(run_dir, cfg, encodings)
    tables = {key: _read_tsv(run_dir / "analysis" / f"{key}.tsv") for key, _ in ANALYSIS_SECTIONS}
    n_surf = 0

    def surface_ok():
        nonlocal n_surf
        if not surfaces:
            return False
        if n_surf >= max_surface_maps:
            notes.append(f"surface maps beyond max_surface_maps={max_surface_maps} were not drawn")
            return False
        n_surf += 1
        return True

    sections = []
    add = _adder(notes, sink)

    def network_rows(df):
        """Drop whole-brain summary rows (network 'all' / id -1) before per-network figures."""
        keep = df["network"].notna() & (df["network"].astype(str).str.len() > 0) & (df["network"].astype(str) != "all")
        if "network_id" in df.columns:
            keep &= df["network_id"] != -1
        return df[keep]

    # ---------------------------------------------------------------- prediction
    figs = []
    for model, branch, folder in encodings:
        r_path = folder / "r_cv.npy"
        if not r_path.is_file():
            continue
        r = np.load(r_path)
        if r.shape != (N_GRAYORDINATES,):
            notes.append(f"{r_path.relative_to(run_dir)} has shape {r.shape}; surface maps need ({N_GRAYORDINATES},)")
            continue
        if not surface_ok():
            continue
        shown, cap = r.astype(float), "Cross-validated Pearson r (leave-one-run-out) per grayordinate"
        sig, how = _significant(folder, q_level)
        if sig is not None and sig.shape == r.shape:
            shown = np.where(sig, shown, np.nan)
            cap += f"; only significant grayordinates ({how}) are coloured"
        add(figs, lambda shown=shown, m=model, b=branch: F.plot_surface_map(
            shown, f"{m} / {b}: cross-validated r", "Pearson r", cmap="RdBu_r"),
            f"surface_r_{model}_{branch}", f"{model} / {branch}: prediction map", cap, raster=True)
    pred = tables["prediction"]
    frac_col = None
    if pred is not None:
        frac_col = next((c for c in ("fraction_significant", "frac_significant") if c in pred.columns), None)
    if pred is not None and {"network", "mean_r"} <= set(pred.columns) and len(network_rows(pred)):
        pn = network_rows(pred)
        add(figs, lambda: F.plot_network_bars(pn, "mean_r", ylabel="mean cross-validated r", atlas=net_atlas),
            "prediction_network_bars", "Mean r per network",
            "Mean cross-validated r over each network's grayordinates (analysis/prediction.tsv).")
        if frac_col:
            add(figs, lambda: F.plot_network_bars(pn, frac_col, ylabel="fraction significant", atlas=net_atlas),
                "prediction_frac_significant", "Fraction of significant grayordinates",
                f"Fraction of each network's grayordinates with significant r (q < {q_level:g}).")
    sections.append(_section("prediction", "Prediction across networks", [("analysis/prediction.tsv", pred)], figs))

    # ---------------------------------------------------------------- affiliation
    aff = tables["affiliation"]
    figs = []
    if aff is not None and "network" in aff.columns:
        af = aff[aff["affiliated"].astype(str).str.lower().isin(("true", "1", "1.0"))] if "affiliated" in aff else aff
        af = network_rows(af)
        gcols = [c for c in ("model", "branch") if c in af.columns]
        if len(af):
            if "atom" in af.columns:
                counts = af.groupby(gcols + ["network"])["atom"].nunique().rename("n_atoms").reset_index()
            else:
                counts = af.groupby(gcols + ["network"]).size().rename("n_atoms").reset_index()
            add(figs, lambda: F.plot_network_bars(counts, "n_atoms", ylabel="affiliated atoms", atlas=net_atlas),
                "affiliation_counts", "Atoms affiliated per network",
                "Distinct atoms with a significant map (β⁺ or β⁻) affiliated with each network "
                "(rows of analysis/affiliation.tsv with affiliated = True).")
        else:
            notes.append("analysis/affiliation.tsv: no atom is affiliated with any network")
    sections.append(_section("affiliation", "Network affiliation of atoms", [("analysis/affiliation.tsv", aff)], figs))

    # ---------------------------------------------------------------- redundancy
    red = tables["redundancy"]
    figs = []
    if red is not None and {"measure", "value", "network"} <= set(red.columns):
        for measure, lab in (("affiliated_atoms", "affiliated atoms"),
                             ("atoms_per_gray", "significant atoms per grayordinate (mean)"),
                             ("map_jaccard_within", "within-network Jaccard of atom maps")):
            sub = network_rows(red[red["measure"] == measure])
            if "sign" in sub.columns and (sub["sign"].astype(str) == "any").any():
                sub = sub[sub["sign"].astype(str) == "any"]
            if len(sub):
                add(figs, lambda sub=sub, lab=lab: F.plot_network_bars(sub, "value", ylabel=lab, atlas=net_atlas),
                    f"redundancy_{measure}", f"Redundancy: {lab}", f"measure = {measure} in analysis/redundancy.tsv.")
    sections.append(_section("redundancy", "Redundancy", [("analysis/redundancy.tsv", red)], figs))

    # ---------------------------------------------------------------- polarity
    pol = tables["polarity"]
    prof = _read_tsv(run_dir / "analysis" / "polarity_profiles.tsv")
    pbn = _read_tsv(run_dir / "analysis" / "polarity_bn.tsv")
    figs = []
    parts = [t for t in (prof, pol) if t is not None and {"layer", "side", "value"} <= set(t.columns)]
    if pbn is not None and {"layer", "side", "value"} <= set(pbn.columns):
        parts.append(pbn[pbn["an_sign"].astype(str) == "all"] if "an_sign" in pbn.columns else pbn)
    if parts:
        both = pd.concat(parts, ignore_index=True)
        add(figs, lambda: F.plot_polarity_profiles(both), "polarity_profiles", "Polarity layer profiles",
            "AN side: P±(l) = Σ|A_kj| over the layer's ANs with that code sign, normalised by layer size; "
            "BN side: mean correlation of the layer's ANs with the mean BN⁺ / BN⁻ time series. "
            "Mean ± SEM over atoms.")
    if pol is not None and "r_mirror" in pol.columns:
        r = pol["r_mirror"].to_numpy(float)
        p_ = pol["p_mirror"].to_numpy(float) if "p_mirror" in pol.columns else np.full(r.shape, np.nan)
        ok = np.isfinite(r)
        if ok.any():
            figs_note = (f"Mirrored profiles: {int(np.sum(r[ok] < 0))} of {int(ok.sum())} atoms have r(P⁺, P⁻) < 0, "
                         f"{int(np.sum((r[ok] < 0) & (p_[ok] < 0.05)))} with p < 0.05.")
            figs.append(_Figure("Mirroring", figs_note, ""))
    sections.append(_section("polarity", "Polarity", [("analysis/polarity.tsv", pol),
                                                       ("analysis/polarity_profiles.tsv", prof),
                                                       ("analysis/polarity_bn.tsv", pbn)], figs))

    # ---------------------------------------------------------------- cross-modal
    xm = tables["crossmodal"]
    figs = []
    folders = {(m, b): f for m, b, f in encodings}
    pairs = []
    if xm is not None and {"model_a", "branch_a", "model_b", "branch_b"} <= set(xm.columns):
        pairs = list(dict.fromkeys(map(tuple, xm[["model_a", "branch_a", "model_b", "branch_b"]].astype(str).to_numpy())))
    else:
        by_model: dict = {}
        for m, b, _ in encodings:
            by_model.setdefault(m, []).append(b)
        for m, brs in by_model.items():
            vis = [b for b in brs if _branch_side(b) == "vision"]
            txt = [b for b in brs if _branch_side(b) == "text"]
            if vis and txt:
                pairs.append((m, vis[0], m, txt[0]))
    for ma, ba, mb, bb in pairs:
        la, lb = (ba, bb) if ma == mb else (f"{ma}/{ba}", f"{mb}/{bb}")
        title = ma if ma == mb else f"{ma}/{ba} vs {mb}/{bb}"
        stem = f"{ma}_{ba}_vs_{mb}_{bb}"
        cats = {1: (f"{la} only", F.OVERLAP_CATEGORIES[1][1]), 2: ("shared", F.OVERLAP_CATEGORIES[2][1]),
                3: (f"{lb} only", F.OVERLAP_CATEGORIES[3][1])}
        omap = None
        if (ma, ba) in folders and (mb, bb) in folders:
            sa, how = _significant(folders[(ma, ba)], q_level)
            sb, _ = _significant(folders[(mb, bb)], q_level)
            if sa is not None and sb is not None and sa.shape == sb.shape == (N_GRAYORDINATES,):
                omap = np.zeros(N_GRAYORDINATES, dtype=int)
                omap[sa & ~sb], omap[sa & sb], omap[~sa & sb] = 1, 2, 3
                n_a, n_b, n_s = int(sa.sum()), int(sb.sum()), int((sa & sb).sum())
                dice = 2 * n_s / (n_a + n_b) if (n_a + n_b) else float("nan")
                cap = (f"Significant grayordinates ({how}): {n_a - n_s} {la}-only, {n_s} shared, "
                       f"{n_b - n_s} {lb}-only (Dice {dice:.3f}).")
        if omap is not None and surface_ok():
            add(figs, lambda omap=omap, cats=cats, title=title: F.plot_categorical_surface(
                omap, cats, f"{title}: branch overlap"), f"overlap_surface_{stem}", f"{title}: overlap map", cap,
                raster=True)
        comp = None
        if xm is not None and {"n_a_only", "n_shared", "n_b_only", "n_network", "network"} <= set(xm.columns):
            sub = network_rows(xm[(xm["model_a"].astype(str) == ma) & (xm["branch_a"].astype(str) == ba)
                                  & (xm["model_b"].astype(str) == mb) & (xm["branch_b"].astype(str) == bb)])
            rows = []
            for _, r in sub.iterrows():
                for col, cid in (("n_a_only", 1), ("n_shared", 2), ("n_b_only", 3)):
                    rows.append({"network": r["network"], "category": cats[cid][0],
                                 "fraction": r[col] / r["n_network"] if r["n_network"] else np.nan})
            comp = pd.DataFrame(rows)
            ccap = f"From analysis/crossmodal.tsv ({ma}/{ba} vs {mb}/{bb}): fraction of each network's grayordinates."
            if omap is not None:
                ccap += " " + cap
        elif omap is not None:
            comp = F.overlap_composition(omap, net_atlas, cats)
            ccap = cap
        if comp is not None and len(comp):
            add(figs, lambda comp=comp, cats=cats, title=title: F.plot_overlap_composition(
                comp, f"{title}: network composition", categories=cats, atlas=net_atlas),
                f"overlap_composition_{stem}", f"{title}: network composition of the overlap", ccap)
    if pred is not None and {"network", "mean_r"} <= set(pred.columns) and len(network_rows(pred)):
        pn = network_rows(pred)
        add(figs, lambda: F.plot_model_comparison(pn, "mean_r", units="mean cross-validated r", atlas=net_atlas),
            "model_comparison_mean_r", "Model comparison: mean r per network",
            "Rows: model / branch; columns: networks (atlas colours).")
    sections.append(_section("crossmodal", "Cross-modal mapping and architecture", [("analysis/crossmodal.tsv", xm)], figs))

    # ---------------------------------------------------------------- hierarchy
    hie = tables["hierarchy"]
    figs = []
    if hie is not None and "network" in hie.columns:
        col = next((c for c in ("centroid_layer", "depth", "centroid_depth", "layer_centroid") if c in hie.columns), None)
        hn = network_rows(hie.dropna(subset=["network"]))
        if col and len(hn):
            add(figs, lambda: F.plot_hierarchy(hn, col, atlas=net_atlas), "hierarchy", "Atom layer depth per network",
                f"Each point is one affiliated atom map ({col}: |code|-weighted centroid layer of its ANs); bar: median.")
    sections.append(_section("hierarchy", "Layer hierarchy", [("analysis/hierarchy.tsv", hie)], figs))

    # ---------------------------------------------------------------- per-network tables
    net_tables = []
    nets_dir = run_dir / "networks"
    if nets_dir.is_dir():
        for p in sorted(nets_dir.rglob("*.tsv")):
            df = _read_tsv(p)
            net_tables.append({"name": str(p.relative_to(run_dir)), "html": table_html(df)})

    # ---------------------------------------------------------------- demo recovery
    rec = _read_tsv(run_dir / "demo" / "recovery.tsv")
    demo = None
    if rec is not None:
        figs = []
        try:
            exp, got = F.recovery_columns(rec)
            if "match" not in rec.columns and "recovered" not in rec.columns:
                rec = rec.assign(match=[F._sign_str(a) == F._sign_str(b) for a, b in zip(rec[exp], rec[got])])
        except Exception as err:  # noqa: BLE001
            notes.append(f"demo/recovery.tsv: {err}")
        detail = _read_tsv(run_dir / "demo" / "recovery_by_branch.tsv")
        grid = detail if detail is not None and "network" in detail.columns else rec
        if "network" in grid.columns:
            add(figs, lambda: F.plot_recovery(grid), "demo_recovery", "Planted truth vs recovered",
                "Each cell: planted sign → recovered sign of the network's coupling with its planted attribute; "
                "green = recovered.")
        ok_col = "recovered" if "recovered" in rec.columns else ("match" if "match" in rec.columns else None)
        n_match = int(_truthy(rec[ok_col]).sum()) if ok_col else None
        tables = table_html(rec)
        if detail is not None:
            tables += "<p>Per model and branch (demo/recovery_by_branch.tsv):</p>" + table_html(detail)
        demo = {"table": tables, "figures": figs, "n_match": n_match, "n": len(rec)}
    planted = _read_tsv(run_dir / "demo" / "truth.tsv")
    planted_html = table_html(planted) if planted is not None else None

    # ---------------------------------------------------------------- render
    try:
        import vlmbrain  # noqa: PLC0415

        own_version = getattr(vlmbrain, "__version__", "unknown")
    except ImportError:  # pragma: no cover
        own_version = "unknown"
    import yaml  # noqa: PLC0415

    env = jinja2.Environment(loader=jinja2.PackageLoader("vlmbrain.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             undefined=jinja2.StrictUndefined)
    html = env.get_template("report.html.j2").render(
        title=f"vlmbrain report — {run_dir.name}",
        run_dir=str(run_dir.resolve()),
        date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        models=models,
        untrained=[m["model"] for m in models if m["untrained"]],
        provenance=_provenance(run_dir, cfg),
        config_yaml=yaml.safe_dump(cfg, sort_keys=False) if cfg else None,
        sections=sections,
        net_tables=net_tables,
        demo=demo,
        planted=planted_html,
        warnings=warnings_list,
        notes=notes,
        versions=versions if isinstance(versions, dict) else None,
        own_version=own_version,
        python=platform.python_version(),
        stages=[p.name for p in sorted(run_dir.iterdir()) if p.is_dir() and p.name != "report"],
    )
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    logger.info("report written to %s (%d figures)", out, len(list(sink.fig_dir.glob("*.png"))) if sink.fig_dir.exists() else 0)
    return out


def _truthy(col: pd.Series) -> pd.Series:
    return col.astype(str).str.strip().str.lower().isin(("true", "1", "1.0", "yes"))


def _adder(notes, sink):
    """``add(figs, make_fig, name, title, caption, raster=False)``: draw, save, embed; failures become notes."""

    def add(figs, make, name, title, caption="", raster=False):
        if not sink.enabled:
            return
        try:
            figs.append(sink.add(make(), name, title, caption, raster=raster))
        except Exception as err:  # noqa: BLE001 - one bad artifact must not kill the report
            logger.warning("report: figure %s failed: %s", name, err)
            notes.append(f"figure {name} could not be drawn: {err}")

    return add


def _section(key, title, tables, figs):
    """Template data of one analysis section; ``tables``: [(relative path, DataFrame or None)]."""
    shown = [{"path": p, "html": table_html(t)} for p, t in tables if t is not None]
    return {
        "key": key, "title": title,
        "computed": bool(shown) or any(f.html for f in figs),
        "tables": shown,
        "missing": [p for p, t in tables[:1] if t is None],
        "figures": figs,
    }
