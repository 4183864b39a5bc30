"""PyTorch backend of :mod:`vlmbrain.encoding` (GPU or CPU).

Encoder (:class:`TorchStats`): only the O(T·K·V) part moves to the device: per run and
column block, the GEMM ``[Xc_r, 1]ᵀ Y_r`` (cross products and column sums), the sums of
squares, and for AR(1) the lag-1 cross products (raw moments). Everything downstream
(centring, K × K solves, t, CV) stays in float64 numpy on the host, identical to the
numpy backend.

Shift null (:class:`TorchShiftNull`): the FFT cross-correlations of one column chunk,
the studentized null t-values, the exceedance counts, the maxima over columns and the
null moments (mean of ``t_s²`` and mean / variance of the null R² over shifts), in
float32 on the device.
"""

from __future__ import annotations

import numpy as np
import torch

from vlmbrain.errors import ConfigError

__all__ = ["TorchStats", "TorchShiftNull"]


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
        """Same contract as ``vlmbrain.encoding.statistics.numpy_raw_moments``: ``Zᵀ Y``, ``Σ y²`` and,
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


class TorchShiftNull:
    """Null part of :func:`vlmbrain.encoding.shift_null` for one column chunk, on a device.

    Same arithmetic as the numpy path: polyphase rFFT of ``Y / sigma``, products with the
    conjugate spectra of the orthonormalised atoms ``Qh`` (d, 1, K, F), inverse rFFT of
    length ``L``, the lags ``js``, standardised betas ``Mz @ P``, counts, maxima and null
    moments.
    """

    def __init__(self, Qh, Mz, L, d, js, device=None, exact=None):
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.Qh = torch.from_numpy(np.ascontiguousarray(Qh)).to(self.device)
        self.Mz = torch.from_numpy(np.ascontiguousarray(Mz)).to(self.device)
        self.L, self.d, self.js = L, d, js
        # per-shift refit with the nuisance held fixed (``zmap``, ``emap``; see
        # vlmbrain.encoding.null._exact_nuisance)
        self.exact = None if exact is None else {
            k: torch.from_numpy(np.ascontiguousarray(exact[k])).to(self.device) for k in ("zmap", "emap")}

    def null_chunk(self, Ys, t0a, fac, r20, df=None, block=1, n_blocks=None):
        """Null statistics of one chunk of ``c`` columns over the ``S`` shifts.

        Parameters
        ----------
        Ys : ndarray (T, c), float32
            Run-centred data divided by the observed residual standard deviation.
        t0a : ndarray (c, K), float32
            Observed ``|t|``.
        fac : ndarray (c,), float32
            Observed ``sigma² / yy``.
        r20 : ndarray (c,), float32
            Observed R².
        df : int, optional
            Residual degrees of freedom; when given every shift gets its own residual
            variance (studentized null t).
        block, n_blocks : int
            The pooled null's blocks of consecutive shifts (``n_blocks`` of ``block`` shifts;
            default: one block per shift).

        Returns
        -------
        dict of numpy arrays: ``count_z`` (c, K), ``max_z`` (K, S), ``count_r2`` (c,),
        ``max_r2`` (S,), ``z_var`` (c, K) = mean over shifts of ``t_s²``, ``r2_mean``,
        ``r2_var`` (c,) (population variance over shifts); for the pooled null
        ``z_blocks`` (c, K, n_blocks) sums of ``t_s²`` per block, ``z_rest`` (c, K) the sum
        over the shifts after the last block, ``z_centres`` (c, K, n_blocks) ``|t_s|`` at the
        block centres, and ``r2_blocks``, ``r2_rest``, ``r2_centres`` likewise for R².
        """
        dev = self.device
        c = Ys.shape[1]
        Y = torch.from_numpy(Ys).to(dev).reshape(self.L, self.d, c)
        Yh = torch.fft.rfft(Y, dim=0).permute(1, 2, 0).unsqueeze(2)      # (d, c, 1, F)
        H = Yh[0] * self.Qh[0]
        for p in range(1, self.d):
            H += Yh[p] * self.Qh[p]
        P = torch.fft.irfft(H, n=self.L, dim=-1)[:, :, self.js]            # (c, K, S)
        del H, Yh
        ess = (P * P).sum(dim=1)                                            # (c, S)
        ex = self.exact
        if ex is None:
            Z = torch.matmul(self.Mz, P)
        else:   # each shift's own map (the refit with the nuisance in place), and |E_s P_s|²
            Z = torch.einsum("sjk,cks->cjs", ex["zmap"], P)
            Ex = torch.einsum("srk,cks->crs", ex["emap"], P)
            ess += (Ex * Ex).sum(dim=1)
            del Ex
        del P
        S = Z.shape[2]
        g = int(block)
        nb = S // g if n_blocks is None else int(n_blocks)
        if df is not None:  # studentize: sigma / sigma_s per (column, shift)
            f = torch.from_numpy(fac).to(dev).clamp_min(1e-30)[:, None]
            Z *= torch.sqrt(df / (1.0 / f - ess).clamp_min(1e-12))[:, None, :]
        Z2 = Z * Z
        zb = Z2[:, :, :nb * g].reshape(c, Z.shape[1], nb, g).sum(dim=3, dtype=torch.float64)
        zrest = Z2[:, :, nb * g:].sum(dim=2, dtype=torch.float64)
        del Z2
        zv = (zb.sum(dim=2) + zrest) / S                                  # (c, K)
        Z.abs_()
        cz = (Z >= torch.from_numpy(t0a).to(dev)[:, :, None]).sum(dim=2)
        mz = Z.amax(dim=0)
        zc = Z[:, :, g // 2: nb * g: g].double()
        del Z
        r2n = ess * torch.from_numpy(fac).to(dev)[:, None]
        cr = (r2n >= torch.from_numpy(r20).to(dev)[:, None]).sum(dim=1)
        r2m = r2n.mean(dim=1)
        r2v = ((r2n - r2m[:, None]) ** 2).mean(dim=1)
        r64 = r2n.double()
        out = {"count_z": cz, "max_z": mz, "count_r2": cr, "max_r2": r2n.amax(dim=0), "z_var": zv,
               "r2_mean": r2m, "r2_var": r2v, "z_blocks": zb, "z_rest": zrest, "z_centres": zc,
               "r2_blocks": r64[:, :nb * g].reshape(c, nb, g).sum(dim=2), "r2_rest": r64[:, nb * g:].sum(dim=1),
               "r2_centres": r64[:, g // 2: nb * g: g]}
        return {k: v.cpu().numpy() for k, v in out.items()}
