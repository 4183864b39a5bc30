"""PyTorch backend for :class:`vlmbrain.encoding.VoxelwiseEncoder` (GPU or CPU).

Only the O(T·K·V) part moves to the device: per run and column block, the GEMM
``[Xc_r, 1]ᵀ Y_r`` (cross products and column sums), the sums of squares, and for AR(1)
the lag-1 cross products (raw moments). Everything downstream (centring, K × K solves,
t, CV) stays in float64 numpy on the host, identical to the numpy backend.
"""

from __future__ import annotations

import numpy as np
import torch

from vlmbrain.errors import ConfigError

__all__ = ["TorchStats"]


class TorchStats:
    """Chunk statistics on a torch device.

    Parameters
    ----------
    device : str or None
        ``"cuda"``, ``"cuda:1"``, ``"cpu"``; ``None`` → CUDA when available, else CPU.
    """

    def __init__(self, device=None):
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as err:
            raise ConfigError(f"device={device!r} is not a torch device (e.g. 'cuda', 'cpu').") from err
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device={device!r} but torch sees no CUDA GPU; use device='cpu'.")
        self._cache = {}

    def raw_moments(self, Z, Yr, lag):
        """Same contract as ``vlmbrain.encoding._numpy_raw_moments``: ``Zᵀ Y``, ``Σ y²`` and,
        for AR(1), the lag-1 cross products, computed on the device, returned as numpy."""
        key = (Z.__array_interface__["data"][0], Z.shape, str(Z.dtype))
        if key not in self._cache:
            self._cache = {key: torch.from_numpy(np.ascontiguousarray(Z)).to(self.device)}
        Zt = self._cache[key]
        Yt = torch.from_numpy(np.ascontiguousarray(Yr)).to(self.device)
        out = {"CZ": Zt.T @ Yt, "ss": (Yt * Yt).sum(dim=0)}
        if lag:
            out["P"] = Zt[:-1].T @ Yt[1:]
            out["M"] = Zt[1:].T @ Yt[:-1]
            out["yl"] = (Yt[1:] * Yt[:-1]).sum(dim=0)
        return {k: v.cpu().numpy() for k, v in out.items()}
