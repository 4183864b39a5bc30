"""PyTorch backend for :class:`vlmbrain.encoding.VoxelwiseEncoder` (GPU or CPU).

Only the O(T·K·V) part moves to the device: per run and column chunk, the GEMM
``[Xc_r, 1]ᵀ Y_r`` (cross products and column sums), the sums of squares, and for AR(1)
the lag-1 cross products. Everything downstream (K × K solves, t, CV) stays in float64
numpy on the host, identical to the numpy backend.
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

    def _design(self, Xc, dtype):
        key = (id(Xc), dtype)
        if key not in self._cache:
            Z = np.empty((Xc.shape[0], Xc.shape[1] + 1), dtype=np.dtype(dtype))
            Z[:, :-1] = Xc
            Z[:, -1] = 1.0
            self._cache[key] = torch.from_numpy(Z).to(self.device)
        return self._cache[key]

    def chunk_products(self, Xc_list, Y, bounds, lag):
        """Same contract as ``vlmbrain.encoding._numpy_chunk_products``."""
        a0, b0 = bounds[0][0], bounds[-1][1]
        Yt = torch.from_numpy(np.ascontiguousarray(Y[a0:b0])).to(self.device, non_blocking=True)
        out = []
        for Xc, (a, b) in zip(Xc_list, bounds):
            n = b - a
            K = Xc.shape[1]
            Z = self._design(Xc, Y.dtype)
            Yr = Yt[a - a0:b - a0]
            ybar = Yr.mean(dim=0, dtype=torch.float64)
            Yc = Yr - ybar.to(Yr.dtype)
            C = (Z[:, :K].T @ Yc).double()
            yy = (Yc * Yc).sum(dim=0, dtype=torch.float64)
            d = dict(ybar=ybar, C=C, yy=yy)
            if lag:
                d["Cp"] = (Z[:-1].T @ Yc[1:]).double()
                d["Cm"] = (Z[1:].T @ Yc[:-1]).double()
                d["yl"] = (Yc[1:] * Yc[:-1]).sum(dim=0, dtype=torch.float64)
                d["yfirst"] = Yc[0].double()
                d["ylast"] = Yc[-1].double()
            del n
            out.append({k: v.cpu().numpy() for k, v in d.items()})
        return out
