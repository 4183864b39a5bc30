"""Publication figures from run artifacts (matplotlib; surface maps in :mod:`.surface`).

Every figure uses the same network colours (the atlas colour table, see
:func:`network_palette`) and is saved as SVG and PNG by :func:`save_figure`.
Functions take tidy :class:`pandas.DataFrame` tables as written under ``RUN/analysis/``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from vlmbrain.errors import ConfigError
from vlmbrain.networks import Atlas, load_atlas
from vlmbrain.report.surface import plot_categorical_surface, plot_surface_map

logger = logging.getLogger("vlmbrain")

__all__ = [
    "OVERLAP_CATEGORIES",
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

#: categorical ids of the branch-overlap map: id -> (name, colour)
OVERLAP_CATEGORIES = {1: ("vision only", "#1f77b4"), 2: ("shared", "#8e44ad"), 3: ("text only", "#d62728")}

_RC = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "xtick.labelsize": 9,
       "ytick.labelsize": 9, "legend.fontsize": 9, "svg.fonttype": "none",
       "axes.spines.top": False, "axes.spines.right": False}


def _style():
    return mpl.rc_context(_RC)


def _check_columns(table: pd.DataFrame, columns, what: str):
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ConfigError(
            f"{what} needs columns {list(columns)}; the table is missing {missing} "
            f"(it has {list(table.columns)})"
        )


# ----------------------------------------------------------------------------- colours
def network_palette(networks, atlas: Atlas | str | None = "cabnp") -> dict:
    """Colour of every network name: the atlas colour where the name matches, else tab20.

    Parameters
    ----------
    networks : iterable of str
        Network names as they appear in the tables (case, spaces, '-' and '_' ignored).
    atlas : Atlas or str or None, default='cabnp'
        An atlas of :mod:`vlmbrain.networks`, or a name :func:`~vlmbrain.networks.load_atlas` takes.

    Returns
    -------
    dict of str to RGBA tuple
    """
    atlas = _resolve_atlas(atlas)
    fallback = plt.get_cmap("tab20")
    out, k = {}, 0
    for n in dict.fromkeys(str(x) for x in networks):
        c = atlas.color_of(n) if atlas is not None else None
        if c is None:
            c = tuple(fallback(k % 20))
            k += 1
        out[n] = c
    return out


def _network_order(names, atlas: Atlas | None):
    """Atlas order for known networks, then the rest in order of appearance."""
    names = list(dict.fromkeys(str(x) for x in names))
    return names if atlas is None else atlas.order_networks(names)


def _resolve_atlas(atlas):
    """An :class:`Atlas` from an atlas or a name; None (fallback colours) for an unknown name."""
    if isinstance(atlas, str):
        try:
            return load_atlas(atlas)
        except ConfigError:
            return None
    return atlas


def _group_label(row, cols):
    return " / ".join(str(row[c]) for c in cols)


def save_figure(fig, out_dir, name: str, dpi: int = 150, tight: bool = True, svg: bool = True):
    """Save a figure as ``out_dir/name.svg`` and ``out_dir/name.png``.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    out_dir : str or Path
        Created if missing.
    name : str
        File stem (no extension).
    dpi : int, default=150
        PNG resolution (and of rasterised surface meshes inside the SVG).
    tight : bool, default=True
        Crop to the drawn content (costs one extra draw: pass False for surface maps,
        whose layout is fixed).
    svg : bool, default=True
        Also write the SVG. Every save is a full draw; surface maps pass False, since their
        meshes are a bitmap in either format.

    Returns
    -------
    svg_path, png_path : Path (``svg_path`` None when ``svg=False``)
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    svg_path, png = (out_dir / f"{name}.svg" if svg else None), out_dir / f"{name}.png"
    # a fixed hash salt (SVG element ids) and no creation date: the same figure gives the same bytes
    with mpl.rc_context({"svg.fonttype": "none", "svg.hashsalt": "vlmbrain"}):
        bbox = "tight" if tight else None
        if svg_path is not None:
            fig.savefig(svg_path, bbox_inches=bbox, dpi=dpi, metadata={"Date": None})
        fig.savefig(png, bbox_inches=bbox, dpi=dpi)
    return svg_path, png


# ----------------------------------------------------------------------------- network bars
def plot_network_bars(table: pd.DataFrame, value_col: str, network_col: str = "network",
                      group_cols=("model", "branch"), error_col: str | None = None,
                      ylabel: str | None = None, title: str | None = None,
                      atlas: Atlas | str | None = "cabnp", ncols: int = 2):
    """Bars of one value per network, one panel per model/branch, network colours.

    Parameters
    ----------
    table : DataFrame
        One row per (group, network); columns ``network_col``, ``value_col`` and the
        ``group_cols`` that exist.
    value_col : str
        Column drawn as bar height (e.g. ``"mean_r"``).
    network_col : str, default='network'
    group_cols : sequence of str, default=('model', 'branch')
        Columns defining the panels (those absent are ignored).
    error_col : str, optional
        Column with the error-bar half-length (e.g. SEM).
    ylabel, title : str, optional
    atlas : Atlas or str or None, default='cabnp'
    ncols : int, default=2

    Returns
    -------
    matplotlib.figure.Figure
    """
    _check_columns(table, [network_col, value_col], "plot_network_bars")
    atlas = _resolve_atlas(atlas)
    gcols = [c for c in group_cols if c in table.columns]
    groups = list(table.groupby(gcols, sort=False)) if gcols else [((), table)]
    nets = _network_order(table[network_col], atlas)
    pal = network_palette(nets, atlas)
    n = len(groups)
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    with _style():
        fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.0 * nrows + 0.6),
                                 sharey=True, squeeze=False)
        for ax, (key, sub) in zip(axes.ravel(), groups):
            sub = sub.groupby(network_col, sort=False).first().reindex(nets)
            vals = sub[value_col].to_numpy(dtype=float)
            err = sub[error_col].to_numpy(dtype=float) if error_col and error_col in sub else None
            x = np.arange(len(nets))
            ax.bar(x, vals, yerr=err, color=[pal[k] for k in nets], edgecolor="0.25",
                   linewidth=0.5, capsize=2)
            ax.axhline(0, color="0.3", lw=0.6)
            ax.set_xticks(x, nets, rotation=60, ha="right")
            key = key if isinstance(key, tuple) else (key,)
            if gcols:
                ax.set_title(" / ".join(str(k) for k in key))
            ax.set_ylabel(ylabel or value_col)
        for ax in axes.ravel()[n:]:
            ax.set_visible(False)
        if title:
            fig.suptitle(title)
        fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- model comparison
def plot_model_comparison(table: pd.DataFrame, value_col: str = "mean_r", network_col: str = "network",
                          row_cols=("model", "branch"), units: str | None = None,
                          title: str | None = None, atlas: Atlas | str | None = "cabnp",
                          cmap: str = "viridis"):
    """Heatmap of one value per (model/branch) × network, annotated, network-coloured columns.

    Parameters
    ----------
    table : DataFrame
        Columns ``row_cols`` (those present), ``network_col``, ``value_col``.
    value_col : str, default='mean_r'
    units : str, optional
        Colour-bar label (default: ``value_col``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    _check_columns(table, [network_col, value_col], "plot_model_comparison")
    atlas = _resolve_atlas(atlas)
    rcols = [c for c in row_cols if c in table.columns]
    tab = table.copy()
    tab["_row"] = tab.apply(lambda r: _group_label(r, rcols), axis=1) if rcols else "all"
    nets = _network_order(tab[network_col], atlas)
    piv = tab.pivot_table(index="_row", columns=network_col, values=value_col, aggfunc="mean", sort=False)
    piv = piv.reindex(columns=nets)
    pal = network_palette(nets, atlas)
    data = piv.to_numpy(dtype=float)
    with _style():
        fig, ax = plt.subplots(figsize=(1.0 + 0.62 * len(nets), 1.4 + 0.45 * len(piv)))
        im = ax.imshow(data, aspect="auto", cmap=cmap)
        ax.set_xticks(np.arange(len(nets)), nets, rotation=60, ha="right")
        ax.set_yticks(np.arange(len(piv)), list(piv.index))
        for lbl, n in zip(ax.get_xticklabels(), nets):
            lbl.set_bbox({"facecolor": pal[n], "alpha": 0.35, "edgecolor": "none", "pad": 1.5})
        finite = data[np.isfinite(data)]
        mid = (finite.min() + finite.max()) / 2 if finite.size else 0
        for i in range(data.shape[0]):
            for j in range(data.shape[1]):
                if np.isfinite(data[i, j]):
                    ax.text(j, i, f"{data[i, j]:.2f}" if abs(data[i, j]) < 10 else f"{data[i, j]:.3g}", ha="center", va="center", fontsize=8,
                            color="white" if data[i, j] < mid else "black")
        ax.spines[:].set_visible(False)
        cb = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
        cb.set_label(units or value_col)
        if title:
            ax.set_title(title)
        fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- polarity
_SIDE_ALIASES = {
    "an+": "AN+", "anpos": "AN+", "anplus": "AN+", "ppos": "AN+",
    "an-": "AN-", "anneg": "AN-", "anminus": "AN-", "pneg": "AN-",
    "bn+": "BN+", "bnpos": "BN+", "bnplus": "BN+",
    "bn-": "BN-", "bnneg": "BN-", "bnminus": "BN-",
}
_SIDE_STYLE = {"AN+": ("#c0392b", "-"), "AN-": ("#2471a3", "-"),
               "BN+": ("#c0392b", "--"), "BN-": ("#2471a3", "--")}


def _canon_side(s):
    s = str(s).strip().lower().replace("_", "").replace(" ", "")
    if s in _SIDE_ALIASES:
        return _SIDE_ALIASES[s]
    s2 = s.replace("+", "pos").replace("-", "neg")
    return _SIDE_ALIASES.get(s2)


def polarity_long(table: pd.DataFrame) -> pd.DataFrame:
    """Normalise a polarity table to long format ``[..., layer, side, value]``.

    Accepts either long format (columns ``layer``, ``side``, ``value``; sides spelt
    ``AN+``/``AN-``/``BN+``/``BN-`` or ``an_pos``/...) or wide format (column ``layer`` plus
    any of ``an_pos``, ``an_neg``, ``bn_pos``, ``bn_neg``).
    """
    if "layer" not in table.columns:
        raise ConfigError(f"polarity table needs a 'layer' column, it has {list(table.columns)}")
    if {"side", "value"} <= set(table.columns):
        out = table.copy()
        out["side"] = out["side"].map(_canon_side)
        return out.dropna(subset=["side"])
    wide = {c: _canon_side(c) for c in table.columns if _canon_side(c)}
    if not wide:
        raise ConfigError(
            "polarity table needs columns 'side' and 'value', or any of an_pos, an_neg, "
            f"bn_pos, bn_neg; it has {list(table.columns)}"
        )
    ids = [c for c in table.columns if c not in wide]
    out = table.melt(id_vars=ids, value_vars=list(wide), var_name="side", value_name="value")
    out["side"] = out["side"].map(wide)
    return out


def plot_polarity_profiles(table: pd.DataFrame, group_cols=("model", "branch"), title: str | None = None):
    """Layer profiles of the two polarities: AN⁺ vs AN⁻ and BN⁺ vs BN⁻ per layer.

    One row of panels per model/branch; left: AN side (normalised |code| mass per layer),
    right: BN side (correlation of the layer's ANs with the mean BN⁺ / BN⁻ series), each
    drawn when present. Mean over atoms ± SEM when an ``atom`` column is present.

    Parameters
    ----------
    table : DataFrame
        See :func:`polarity_long` for the accepted columns.

    Returns
    -------
    matplotlib.figure.Figure
    """
    long = polarity_long(table)
    gcols = [c for c in group_cols if c in long.columns]
    groups = list(long.groupby(gcols, sort=False)) if gcols else [((), long)]
    kinds = [k for k in ("AN", "BN") if long["side"].str.startswith(k).any()]
    ylabels = {"AN": "code mass per layer\n(Σ|A| / layer size)", "BN": "r with mean BN series"}
    with _style():
        fig, axes = plt.subplots(len(groups), len(kinds), figsize=(4.4 * len(kinds), 2.8 * len(groups) + 0.4),
                                 squeeze=False)
        for gi, (key, sub) in enumerate(groups):
            key = key if isinstance(key, tuple) else (key,)
            for ki, kind in enumerate(kinds):
                ax = axes[gi, ki]
                for side in (f"{kind}+", f"{kind}-"):
                    s = sub[sub["side"] == side]
                    if s.empty:
                        continue
                    agg = s.groupby("layer")["value"].agg(["mean", "sem", "count"]).sort_index()
                    color, ls = _SIDE_STYLE[side]
                    ax.plot(agg.index, agg["mean"], ls, color=color, marker="o", ms=3,
                            label=side.replace("+", "⁺").replace("-", "⁻"))
                    if (agg["count"] > 1).any():
                        sem = agg["sem"].fillna(0)
                        ax.fill_between(agg.index, agg["mean"] - sem, agg["mean"] + sem, color=color, alpha=0.15)
                ax.set_xlabel("layer")
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
                ax.set_ylabel(ylabels[kind])
                ax.legend(frameon=False)
                ax.set_title(" / ".join(str(k) for k in key) + f" — {kind} side" if gcols else f"{kind} side")
        if title:
            fig.suptitle(title)
        fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- branch overlap
def overlap_composition(overlap_map, atlas: Atlas, categories: dict | None = None) -> pd.DataFrame:
    """Network composition of a categorical overlap map (a count, not an analysis).

    Parameters
    ----------
    overlap_map : array of int, shape (n_grayordinates,)
        Category per grayordinate (0 = none), ids as in ``categories``.
    atlas : Atlas
    categories : dict of int to (str, colour), default=OVERLAP_CATEGORIES

    Returns
    -------
    DataFrame
        Columns ``network, category, n, fraction`` (fraction of the network's grayordinates).
    """
    categories = categories or OVERLAP_CATEGORIES
    overlap_map = np.asarray(overlap_map).astype(int)
    if overlap_map.shape != atlas.labels.shape:
        from vlmbrain.errors import DimensionError  # noqa: PLC0415

        raise DimensionError(
            f"overlap map has shape {overlap_map.shape} but atlas {atlas.name!r} labels "
            f"{atlas.labels.shape} grayordinates"
        )
    rows = []
    for nid, name in sorted(atlas.names.items()):
        in_net = atlas.labels == nid
        size = int(in_net.sum())
        for cid, (cname, _) in sorted(categories.items()):
            n = int(np.sum(in_net & (overlap_map == cid)))
            rows.append({"network": name, "category": cname, "n": n, "fraction": n / size if size else np.nan})
    return pd.DataFrame(rows)


def plot_overlap_composition(comp: pd.DataFrame, title: str | None = None,
                             categories: dict | None = None, atlas: Atlas | str | None = "cabnp"):
    """Stacked horizontal bars: per network, fraction of grayordinates per overlap category.

    Parameters
    ----------
    comp : DataFrame
        Columns ``network, category, fraction`` (as from :func:`overlap_composition`).

    Returns
    -------
    matplotlib.figure.Figure
    """
    _check_columns(comp, ["network", "category", "fraction"], "plot_overlap_composition")
    categories = categories or OVERLAP_CATEGORIES
    atlas = _resolve_atlas(atlas)
    nets = _network_order(comp["network"], atlas)
    pal = network_palette(nets, atlas)
    piv = comp.pivot_table(index="network", columns="category", values="fraction", aggfunc="sum").reindex(nets)
    with _style():
        fig, ax = plt.subplots(figsize=(6.4, 0.32 * len(nets) + 1.3))
        left = np.zeros(len(nets))
        y = np.arange(len(nets))
        for _, (cname, color) in sorted(categories.items()):
            vals = piv[cname].fillna(0).to_numpy() if cname in piv else np.zeros(len(nets))
            ax.barh(y, vals, left=left, color=color, label=cname, edgecolor="white", linewidth=0.5)
            left += vals
        ax.set_yticks(y, nets)
        for lbl, n in zip(ax.get_yticklabels(), nets):
            lbl.set_bbox({"facecolor": pal[n], "alpha": 0.35, "edgecolor": "none", "pad": 1.5})
        ax.invert_yaxis()
        ax.set_xlabel("fraction of the network's grayordinates")
        ax.set_xlim(0, max(1e-9, min(1.0, float(left.max()) * 1.05 if left.size else 1.0)))
        ax.legend(frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(categories))
        if title:
            ax.set_title(title, pad=26)
        fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- hierarchy
def plot_hierarchy(table: pd.DataFrame, value_col: str = "centroid_layer", network_col: str = "network",
                   group_cols=("model", "branch"), title: str | None = None,
                   atlas: Atlas | str | None = "cabnp"):
    """Atoms' centroid layer depth per network (points + median), network colours.

    Parameters
    ----------
    table : DataFrame
        One row per atom: ``network_col``, ``value_col``, optional ``group_cols``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    _check_columns(table, [network_col, value_col], "plot_hierarchy")
    atlas = _resolve_atlas(atlas)
    tab = table.dropna(subset=[network_col, value_col])
    gcols = [c for c in group_cols if c in tab.columns]
    groups = list(tab.groupby(gcols, sort=False)) if gcols else [((), tab)]
    nets = _network_order(tab[network_col], atlas)
    pal = network_palette(nets, atlas)
    rng = np.random.default_rng(0)  # jitter only
    with _style():
        fig, axes = plt.subplots(1, len(groups), figsize=(0.45 * len(nets) * len(groups) + 1.8, 3.4),
                                 sharey=True, squeeze=False)
        for ax, (key, sub) in zip(axes.ravel(), groups):
            for i, n in enumerate(nets):
                v = sub.loc[sub[network_col].astype(str) == n, value_col].to_numpy(dtype=float)
                if v.size == 0:
                    continue
                ax.scatter(i + rng.uniform(-0.18, 0.18, v.size), v, s=14, color=pal[n], edgecolor="0.2", lw=0.3)
                ax.hlines(np.median(v), i - 0.3, i + 0.3, color="0.1", lw=1.5)
            ax.set_xticks(np.arange(len(nets)), nets, rotation=60, ha="right")
            key = key if isinstance(key, tuple) else (key,)
            if gcols:
                ax.set_title(" / ".join(str(k) for k in key))
        axes[0, 0].set_ylabel("atom centroid layer")
        if title:
            fig.suptitle(title)
        fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- demo recovery
def _sign_str(x):
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "·"
    s = str(x).strip().lower()
    if s in ("+", "1", "1.0", "pos", "positive", "+1"):
        return "+"
    if s in ("-", "-1", "-1.0", "neg", "negative", "−"):
        return "−"
    if s in ("0", "0.0", "none", "", "nan"):
        return "0"
    return str(x)


def recovery_columns(table: pd.DataFrame):
    """Names of the (expected, recovered) sign columns of a demo recovery table."""
    exp = next((c for c in table.columns if any(k in c.lower() for k in ("expected", "planted", "truth", "true_"))), None)
    rec = next((c for c in table.columns if c.lower() != "recovered"
                and any(k in c.lower() for k in ("recovered", "estimated", "observed"))), None)
    if exp is None or rec is None:
        raise ConfigError(
            "demo recovery table needs an expected-sign column (name containing 'expected', "
            f"'planted' or 'truth') and a recovered one ('recovered'); it has {list(table.columns)}"
        )
    return exp, rec


def plot_recovery(table: pd.DataFrame, network_col: str = "network", group_cols=("model", "branch"),
                  title: str | None = "Planted truth vs recovered"):
    """Grid network × (model/branch): expected vs recovered sign, green = match, red = miss.

    Parameters
    ----------
    table : DataFrame
        Columns ``network``, an expected-sign column and a recovered-sign column
        (see :func:`recovery_columns`), optional ``group_cols``, optional boolean
        ``recovered`` (decides the cell colour when present: the demo also requires the
        atom to follow the planted driver; else colour = signs equal).

    Returns
    -------
    matplotlib.figure.Figure
    """
    _check_columns(table, [network_col], "plot_recovery")
    exp, rec = recovery_columns(table)
    gcols = [c for c in group_cols if c in table.columns]
    tab = table.copy()
    tab["_col"] = tab.apply(lambda r: _group_label(r, gcols), axis=1) if gcols else "recovered"
    nets = list(dict.fromkeys(tab[network_col].astype(str)))
    cols = list(dict.fromkeys(tab["_col"]))
    with _style():
        fig, ax = plt.subplots(figsize=(1.6 + 1.25 * len(cols), 0.9 + 0.36 * len(nets)))
        for i, n in enumerate(nets):
            for j, c in enumerate(cols):
                r = tab[(tab[network_col].astype(str) == n) & (tab["_col"] == c)]
                if r.empty:
                    color, txt = "0.92", ""
                else:
                    e, o = _sign_str(r[exp].iloc[0]), _sign_str(r[rec].iloc[0])
                    ok = (str(r["recovered"].iloc[0]).strip().lower() in ("true", "1", "1.0")
                          if "recovered" in r.columns else e == o)
                    color = "#a9dfbf" if ok else "#f5b7b1"
                    txt = f"{e} → {o}"
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=color, edgecolor="white", lw=1.5))
                ax.text(j, i, txt, ha="center", va="center", fontsize=9)
        ax.set_xlim(-0.5, len(cols) - 0.5)
        ax.set_ylim(len(nets) - 0.5, -0.5)
        ax.set_xticks(np.arange(len(cols)), cols, rotation=30, ha="right")
        ax.set_yticks(np.arange(len(nets)), nets)
        ax.spines[:].set_visible(False)
        ax.tick_params(length=0)
        ax.legend(handles=[Patch(color="#a9dfbf", label="recovered"),
                           Patch(color="#f5b7b1", label="not recovered")],
                  loc="upper center", bbox_to_anchor=(0.5, -0.02 - 0.9 / (0.9 + 0.36 * len(nets))),
                  ncol=2, frameon=False)
        if title:
            ax.set_title(f"{title}\n(expected → recovered sign)")
    return fig
