"""Phantom fMRI for the demo: responses planted from *stimulus attributes* into CAB-NP networks.

No model feature is used: each planted network follows one attribute of the toy-world movie
(convolved with the SPM HRF), with a known sign, in a known subset of its grayordinates;
AR(1) noise, slow drift and run offsets are added. The truth is returned with the data, so the
framework's recovery can be scored (``vlmbrain.demo.recovery``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from vlmbrain.signal import convolve_hrf, zscore_runs

#: (network, attribute, sign): what the phantom plants. ``stimulus_on`` is 1 outside rest.
#: Low-level image statistics drive Visual1, texture drives Visual2, the speed of the moving
#: objects drives Dorsal Attention (motion), the caption's spatial semantics ("above",
#: "left of") drive Language, and Default is deactivated while the movie plays. These
#: attributes are chosen to be weakly correlated within the movie (|r| <= 0.36), so that each
#: network's response is identifiable; a scene change is a temporal event that frame-wise
#: models cannot represent, so it is not planted.
PLANTED: tuple[tuple[str, str, int], ...] = (
    ("Visual1", "edge_energy", +1),
    ("Visual2", "texture_striped", +1),
    ("Dorsal Attention", "speed", +1),
    ("Language", "sem_spatial", +1),
    ("Default", "stimulus_on", -1),
)


@dataclass
class Phantom:
    """Planted data and its truth.

    Attributes
    ----------
    data : ndarray of shape (n_timepoints, n_grayordinates), float32
    runs : ndarray of shape (n_timepoints,)
    drivers : pandas.DataFrame of shape (n_timepoints, n_planted)
        The HRF-convolved, z-scored attribute time course planted into each network (column = network).
    weights : ndarray of shape (n_planted, n_grayordinates), float32
        Signed planted weight of each network's driver at each grayordinate (0 where none).
    truth : pandas.DataFrame
        One row per planted network: ``network, attribute, planted_sign, n_grayordinates, n_responsive``.
    """

    data: np.ndarray
    runs: np.ndarray
    drivers: pd.DataFrame
    weights: np.ndarray
    truth: pd.DataFrame
    params: dict = field(default_factory=dict)


def make_phantom(
    attributes: pd.DataFrame,
    runs: np.ndarray,
    network_labels: np.ndarray,
    network_names: dict[int, str],
    tr: float = 1.0,
    planted=PLANTED,
    responsive_fraction: float = 0.7,
    noise: float = 1.0,
    ar1: float = 0.4,
    drift: float = 0.3,
    seed: int = 0,
) -> Phantom:
    """Plant attribute-driven responses into networks.

    Parameters
    ----------
    attributes : pandas.DataFrame of shape (n_timepoints, n_attributes)
        Stimulus attributes per TR (e.g. :attr:`vlmbrain.toyworld.ToyMovie.attributes`); the
        pseudo-attribute ``stimulus_on`` is derived from the ``rest`` column. Content
        attributes are standardised over the movie TRs and held at their movie mean during
        rest before the HRF convolution.
    runs : ndarray of shape (n_timepoints,)
    network_labels : ndarray of shape (n_grayordinates,), int
        Network id of every grayordinate (0 = none), e.g. CAB-NP.
    network_names : dict of int to str
    tr : float, default=1.0
    planted : sequence of (network, attribute, sign)
    responsive_fraction : float, default=0.7
        Fraction of each planted network's grayordinates that respond.
    noise : float, default=1.0
        SD of the AR(1) noise relative to the planted signal's SD (1 = SNR 1 at a responsive grayordinate).
    ar1 : float, default=0.4
        Lag-1 autocorrelation of the noise.
    drift : float, default=0.3
        Amplitude of a slow cosine drift per run.
    seed : int, default=0

    Returns
    -------
    Phantom
    """
    rng = np.random.default_rng(seed)
    runs = np.asarray(runs)
    T = len(attributes)
    V = network_labels.shape[0]
    attrs = attributes.copy()
    attrs["stimulus_on"] = 1.0 - attrs["rest"].astype(float)
    by_name = {name: nid for nid, name in network_names.items()}

    drivers = {}
    weights = np.zeros((len(planted), V), dtype=np.float32)
    rows = []
    movie = ~attrs["rest"].astype(bool).to_numpy()
    for i, (net, attr, sign) in enumerate(planted):
        if net not in by_name:
            raise KeyError(f"network {net!r} not in the atlas ({sorted(by_name)})")
        raw = attrs[attr].to_numpy(float)
        if attr != "stimulus_on" and movie.any():
            # fluctuations within the movie only: rest TRs sit at the movie mean, so that
            # content attributes do not also carry the movie-on/off contrast of Default
            sd = raw[movie].std()
            raw = np.where(movie, (raw - raw[movie].mean()) / (sd if sd > 0 else 1.0), 0.0)
        raw = raw[:, None]
        conv = convolve_hrf(raw, runs, tr, model="spm")
        z, _ = zscore_runs(conv, runs)
        drivers[net] = z[:, 0]
        members = np.flatnonzero(network_labels == by_name[net])
        n_resp = int(round(responsive_fraction * members.size))
        responsive = rng.choice(members, size=n_resp, replace=False)
        weights[i, responsive] = sign * rng.uniform(0.6, 1.2, size=n_resp)
        rows.append(
            {
                "network": net,
                "attribute": attr,
                "planted_sign": int(sign),
                "n_grayordinates": int(members.size),
                "n_responsive": n_resp,
            }
        )
    D = np.column_stack([drivers[net] for net, _, _ in planted]).astype(np.float32)
    data = D @ weights  # (T, V)

    # AR(1) noise with unit marginal SD, then scaled
    innov = rng.standard_normal((T, V), dtype=np.float32)
    eps = np.empty_like(innov)
    scale = np.float32(np.sqrt(1 - ar1**2))
    for start in np.flatnonzero(np.r_[True, np.diff(runs) != 0]):
        eps[start] = innov[start]
        stop = start + int(np.sum(runs == runs[start]))
        for t in range(start + 1, stop):
            eps[t] = ar1 * eps[t - 1] + scale * innov[t]
    data += np.float32(noise) * eps
    # slow drift and offsets per run
    for r in np.unique(runs):
        idx = np.flatnonzero(runs == r)
        phase = np.linspace(0, np.pi, idx.size, dtype=np.float32)
        amp = rng.normal(0, drift, size=V).astype(np.float32)
        data[idx] += np.cos(phase)[:, None] * amp[None, :]
        data[idx] += rng.normal(0, 1.0, size=V).astype(np.float32)[None, :]
    return Phantom(
        data=data.astype(np.float32),
        runs=runs,
        drivers=pd.DataFrame(D, columns=[net for net, _, _ in planted]),
        weights=weights,
        truth=pd.DataFrame(rows),
        params={
            "responsive_fraction": responsive_fraction,
            "noise": noise,
            "ar1": ar1,
            "drift": drift,
            "seed": seed,
            "tr": tr,
        },
    )
