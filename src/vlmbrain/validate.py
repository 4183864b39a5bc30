"""``vlmbrain validate CONFIG``: false-positive rates and power of *this* analysis, on phantoms.

The user's stimulus, models and dictionaries are kept (the pipeline runs up to
``dictionary``); the fMRI is replaced by phantoms in the user's own brain space and design
(runs, TRs, training TRs, valid grayordinates):

- **null phantoms**: no atom signal; every grayordinate gets AR(1) noise with the data's own
  lag-1 autocorrelation and the data's own slow drift (its fit on a 0.01 Hz cosine basis per
  run). Every unit's atoms are encoded on them with the configured encoding (method, null,
  high-pass, correction) and affiliated with the configured atlas: any discovery in an atom
  map, and any affiliation, is a false positive;
- **planted phantoms**: chosen atoms are added into chosen networks (70 % of the network's
  grayordinates, weights uniform in [0.6, 1.2] × SNR × the grayordinate's noise SD) at a grid
  of SNRs; a planted atom is *detected* when its positive map is affiliated with its network.

Writes ``<run>/validate/``: ``false_positives.tsv`` (per atom map and per network, with
Clopper–Pearson 95 % intervals), ``power.tsv`` (detection rate per SNR, with intervals),
``power.png`` and ``summary.json``. The phantom generators are also used by the validity
tests and ``benchmarks/validity.py``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger("vlmbrain")

__all__ = ["NoiseModel", "ar1_noise", "clopper_pearson", "estimate_noise", "null_phantom", "run_validation",
           "smooth_atoms", "uniformity_by_phantom"]

#: SNRs of the power curve (planted signal SD / noise SD at a responsive grayordinate).
DEFAULT_SNRS = (0.05, 0.1, 0.2, 0.5, 1.0)


def clopper_pearson(k, n, level=0.95):
    """Exact binomial interval of ``k`` successes in ``n`` trials → ``(lower, upper)``."""
    from scipy.stats import beta

    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


#: Thresholds at which :func:`uniformity_by_phantom` compares the p-values' distribution with U(0, 1).
UNIFORMITY_GRID = (0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)


def uniformity_by_phantom(samples, grid=UNIFORMITY_GRID):
    """Test that p-values are uniform when they come in dependent groups (one group per phantom).

    The p-values of one phantom share its atoms, its noise columns across atoms and its shifts
    (every map's p-values are read off one pooled null), so they are not independent, and a
    Kolmogorov–Smirnov test on all of them together rejects uniform p-values whose dependence
    it ignores. Here the phantom is the unit: at each threshold ``u`` of ``grid`` the fraction
    of each phantom's p-values ≤ ``u`` is one observation, and a one-sample t-test over the
    phantoms compares their mean with ``u`` (its variance at least the binomial one of
    independent p-values, so that groups with identical fractions do not give a zero variance);
    thresholds where a phantom expects fewer than 5 p-values below ``u`` are left out (the
    fractions there are too discrete for a t-test). The smallest of these p-values,
    Bonferroni-adjusted over the thresholds used, is the test's p-value.

    Parameters
    ----------
    samples : sequence of 1-D arrays
        The p-values of each phantom (at least two phantoms).
    grid : sequence of float

    Returns
    -------
    p : float
        Bonferroni-adjusted smallest p-value over the grid.
    u : float
        The threshold where the deviation is largest (in t).
    deviation : float
        Mean fraction ≤ ``u`` minus ``u`` there (> 0: more small p-values than uniform).
    """
    from scipy import stats as sps

    samples = [np.asarray(s, dtype=np.float64).ravel() for s in samples]
    if len(samples) < 2 or any(s.size == 0 for s in samples):
        raise ValueError("uniformity_by_phantom needs at least two non-empty groups of p-values")
    sizes = np.array([s.size for s in samples], dtype=np.float64)
    grid = np.asarray(grid, dtype=np.float64)
    grid = grid[(grid * sizes.min() >= 5) & ((1 - grid) * sizes.min() >= 5)]
    if grid.size == 0:
        raise ValueError(f"uniformity_by_phantom: {int(sizes.min())} p-values in a group are too few for any "
                         "threshold of the grid (5 expected on each side)")
    frac = np.array([[np.mean(s <= u) for u in grid] for s in samples])       # (phantoms, grid)
    n = frac.shape[0]
    mean = frac.mean(axis=0)
    binomial = np.mean(grid[None] * (1 - grid[None]) / sizes[:, None], axis=0)
    se = np.sqrt(np.maximum(frac.var(axis=0, ddof=1), binomial) / n)
    t = (mean - grid) / se
    p = 2 * sps.t.sf(np.abs(t), n - 1)
    i = int(np.argmax(np.abs(t)))
    return float(min(1.0, p.min() * grid.size)), float(grid[i]), float(mean[i] - grid[i])


def smooth_atoms(rng, run_lengths, n_atoms, tr=1.5, mixing=0.5):
    """Atom-like regressors: piecewise-constant random features (segments of 2–8 TRs, as
    caption embeddings change), mixed, HRF-convolved per run and z-scored per run."""
    from vlmbrain.signal import convolve_hrf, zscore_runs

    T = int(sum(run_lengths))
    runs = np.repeat(np.arange(len(run_lengths)), run_lengths)
    F = np.empty((T, n_atoms))
    t = 0
    while t < T:
        n = int(rng.integers(2, 9))
        F[t:t + n] = rng.standard_normal(n_atoms)
        t += n
    F = F @ (np.eye(n_atoms) + mixing * rng.standard_normal((n_atoms, n_atoms)))
    X, _ = zscore_runs(convolve_hrf(F, runs, tr, model="spm"), runs)
    return X.astype(np.float64), runs


def ar1_noise(rng, runs, rho, n_columns=None, dtype=np.float32):
    """Unit-variance AR(1) noise, restarted at every run; ``rho`` a scalar or one per column."""
    runs = np.asarray(runs)
    rho = np.asarray(rho, dtype=np.float64)
    V = rho.size if rho.ndim else int(n_columns)
    T = runs.size
    e = rng.standard_normal((T, V), dtype=np.float32).astype(dtype)
    r = np.broadcast_to(rho, (V,)).astype(dtype)
    scale = np.sqrt(1 - r * r).astype(dtype)
    starts = np.r_[True, runs[1:] != runs[:-1]]
    for t in range(1, T):
        if not starts[t]:
            e[t] = r * e[t - 1] + scale * e[t]
    return e


@dataclass
class NoiseModel:
    """The data's own noise: lag-1 autocorrelation ``rho`` (V,), residual SD ``sd`` (V,) and
    slow drift ``drift`` (T, V) (its fit on a cosine basis per run)."""

    rho: np.ndarray
    sd: np.ndarray
    drift: np.ndarray | None


def estimate_noise(data, runs, tr, high_pass=0.01, chunk=8192):
    """:class:`NoiseModel` of ``data`` (T, V): drift = fit on nilearn's cosine basis per run
    (``high_pass`` Hz) with the run intercepts; ρ = lag-1 autocorrelation of what is left
    within runs; sd its standard deviation."""
    from vlmbrain.encoding.nuisance import drift_basis, residualize

    runs = np.asarray(runs)
    lengths = [int(n) for n in np.bincount(np.unique(runs, return_inverse=True)[1])]
    N = drift_basis(lengths, tr, high_pass) if high_pass else None
    T, V = data.shape
    rho, sd = np.empty(V), np.empty(V)
    drift = np.empty((T, V), np.float32) if N is not None and N.shape[1] else None
    same = runs[1:] == runs[:-1]
    for c0 in range(0, V, chunk):
        sl = slice(c0, min(V, c0 + chunk))
        blk = np.asarray(data[:, sl], dtype=np.float64)
        res, _ = residualize(blk, runs, N if drift is not None else None)
        if drift is not None:
            cen, _ = residualize(blk, runs, None)
            drift[:, sl] = cen - res
        num = np.einsum("tc,tc->c", res[1:][same], res[:-1][same])
        den = np.einsum("tc,tc->c", res, res)
        with np.errstate(invalid="ignore", divide="ignore"):
            rho[sl] = np.clip(np.nan_to_num(num / den), -0.95, 0.95)
            sd[sl] = np.sqrt(den / T)
    return NoiseModel(rho=rho, sd=sd, drift=drift)


def null_phantom(rng, runs, noise: NoiseModel):
    """Drift + AR(1) noise of the data's own autocorrelation and SD, no atom signal (T, V)."""
    Y = ar1_noise(rng, runs, noise.rho) * noise.sd.astype(np.float32)
    if noise.drift is not None:
        Y += noise.drift
    return Y


# ------------------------------------------------------------------------------ the command
def _atlas_and_null(config, space, n_grayordinates):
    """The configured atlas and affiliation null (newer network API when present)."""
    import vlmbrain.networks as nw

    cfg = config.networks
    if hasattr(nw, "choose_atlas"):
        choice = nw.choose_atlas(cfg.atlas, space, labels=getattr(cfg, "labels", None),
                                 right=getattr(cfg, "atlas_right", None))
        atlas = choice.atlas
        null = "none" if atlas is None else nw.choose_null(cfg.null, atlas)[0]
    else:
        atlas = nw.load_atlas(cfg.atlas, n_grayordinates=n_grayordinates)
        null = cfg.null
    return atlas, (None if null == "none" else null)


def _encode(config, X, Y, runs, nuisance, seed):
    from vlmbrain.encoding.inference import fit_and_infer

    enc = config.encoding
    return fit_and_infer(X, Y, runs, method=enc.method, n_shifts=enc.n_shifts, null_pvalues=enc.null_pvalues,
                         correction=enc.correction, q=enc.q, chunk_size=enc.chunk_size, backend=enc.backend,
                         random_state=seed, nuisance=nuisance, overwrite_y=False)


def _affiliate(config, res, atlas, null, valid, seed):
    from vlmbrain.networks import affiliate, significant_maps

    q = config.encoding.q
    beta = np.full((res.arrays["beta"].shape[0], valid.size), np.nan, np.float32)
    qq = np.full_like(beta, np.nan)
    beta[:, valid] = res.arrays["beta"]
    qq[:, valid] = res.arrays["q"]
    pos, neg = significant_maps(beta, qq, q)
    if atlas is None:
        return pos, neg, None
    aff = affiliate(pos, neg, atlas, threshold=config.networks.threshold, null=null,
                    n_perm=config.networks.n_perm, random_state=seed)
    return pos, neg, aff


def _vif(X, runs, nuisance):
    """Variance inflation factor of every atom after the nuisance (how collinear it is)."""
    from vlmbrain.encoding.nuisance import residualize

    Xr, _ = residualize(np.asarray(X, np.float64), runs, nuisance)
    G = Xr.T @ Xr
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diag(np.linalg.pinv(G)) * np.diag(G)


def run_validation(config, run_dir, *, n_null=4, snrs=DEFAULT_SNRS, n_repeats=2, unit=None, atoms=None,
                   networks=None, seed=0, progress=False) -> dict:
    """Phantom validation of ``config`` in ``run_dir`` (see the module docstring).

    Parameters
    ----------
    n_null : int
        Null phantoms (each encoded on every unit's atoms).
    snrs : sequence of float
        SNRs of the planted phantoms; ``n_repeats`` phantoms per SNR.
    unit, atoms, networks
        Planted unit (``"model/unit"``), atoms (indices) and their networks (names); by
        default the three least collinear atoms (smallest variance inflation factor) of the
        unit that has the least collinear ones, into the three largest networks of the atlas.

    Returns
    -------
    dict with the tables ``false_positives``, ``power`` and the summary.
    """
    from vlmbrain.artifacts import RunLayout
    from vlmbrain.brain.space import BrainData
    from vlmbrain.encoding.nuisance import nuisance_matrix
    from vlmbrain.pipeline import run_pipeline
    from vlmbrain.signal import zscore_runs
    from vlmbrain.stages.base import StageContext
    from vlmbrain.stages.dictionary import units_of
    from vlmbrain.stages.stimulus import train_mask

    run_dir = Path(run_dir)
    run_pipeline(config, run_dir, stages=["brain", "dictionary"], progress=progress)
    ctx = StageContext(config=config, layout=RunLayout(run_dir))
    brain = BrainData.load(ctx.layout.brain_dir, mmap=True)
    mask = train_mask(ctx)
    runs = np.asarray(brain.runs)[mask]
    valid = np.asarray(brain.valid)
    enc = config.encoding
    nuisance = nuisance_matrix([int(n) for n in brain.run_lengths], brain.tr, enc.high_pass_hz,
                               [str(p) for p in enc.confounds], enc.confound_columns)
    if nuisance is not None:
        nuisance = nuisance[mask]
    data = np.asarray(brain.data[mask][:, valid], dtype=np.float32)
    noise = estimate_noise(data, runs, brain.tr, high_pass=0.01)
    del data
    units = units_of(ctx)
    unit_atoms = {}
    for u in units:
        X, _ = zscore_runs(np.load(ctx.layout.dictionary_dir(u.model, u.name) / "atoms.npy"), runs)
        unit_atoms[f"{u.model}/{u.name}"] = X
    atlas, null = _atlas_and_null(config, brain.space, brain.n_grayordinates)
    rng = np.random.default_rng(seed)
    out_dir = run_dir / "validate"
    out_dir.mkdir(parents=True, exist_ok=True)

    # ---- null phantoms: false positives per atom map and per network
    rows = []
    for rep in range(n_null):
        Y, _ = zscore_runs(null_phantom(rng, runs, noise), runs)
        for name, X in unit_atoms.items():
            res = _encode(config, X, Y, runs, nuisance, config.seed + rep)
            pos, neg, aff = _affiliate(config, res, atlas, null, valid, config.seed + rep)
            hit = (pos | neg).any(axis=1)
            for k in range(X.shape[1]):
                nets = []
                if aff is not None and len(aff):
                    a = aff[(aff["atom"] == k) & aff["affiliated"].astype(bool)]
                    nets = sorted(set(a["network"]))
                rows.append({"repeat": rep, "unit": name, "atom": k, "any_discovery": bool(hit[k]),
                             "n_discoveries": int(pos[k].sum() + neg[k].sum()), "affiliated": ";".join(nets)})
        logger.info("validate: null phantom %d/%d done", rep + 1, n_null)
    maps = pd.DataFrame(rows)
    fp = []
    n, k = len(maps), int(maps["any_discovery"].sum())
    fp.append({"kind": "atom map", "name": "any discovery", "n": n, "k": k, "rate": k / max(n, 1),
               **dict(zip(("lower", "upper"), clopper_pearson(k, n)))})
    if atlas is not None:
        for net in atlas.network_names:
            kk = int(maps["affiliated"].str.split(";").apply(lambda s, net=net: net in s).sum())
            fp.append({"kind": "network", "name": net, "n": n, "k": kk, "rate": kk / max(n, 1),
                       **dict(zip(("lower", "upper"), clopper_pearson(kk, n)))})
    fp = pd.DataFrame(fp)

    # ---- planted phantoms: detection rate per SNR
    vifs = {name: _vif(X, runs, nuisance) for name, X in unit_atoms.items()}
    if unit is None:
        # the unit whose atoms the design tells apart best (collinear atoms cannot be resolved)
        unit = min(vifs, key=lambda n: np.sort(vifs[n])[min(2, vifs[n].size - 1)])
    X = unit_atoms[unit]
    first = unit
    if atoms is None:
        atoms = [int(a) for a in np.argsort(vifs[unit])[:min(3, X.shape[1])]]
    power_rows = []
    if atlas is not None and len(atoms):
        if networks is None:
            sizes = {nm: int(atlas.mask(nm).sum()) for nm in atlas.network_names}
            networks = sorted(sizes, key=sizes.get, reverse=True)[:len(atoms)]
        members = [np.flatnonzero(atlas.mask(nm)[valid]) for nm in networks]
        for snr in snrs:
            det = 0
            for rep in range(n_repeats):
                Y = null_phantom(rng, runs, noise)
                for a, idx in zip(atoms, members):
                    resp = rng.choice(idx, size=int(round(0.7 * idx.size)), replace=False)
                    w = rng.uniform(0.6, 1.2, resp.size) * snr * noise.sd[resp]
                    Y[:, resp] += (X[:, [a]] * w[None, :]).astype(np.float32)
                Y, _ = zscore_runs(Y, runs)
                res = _encode(config, X, Y, runs, nuisance, config.seed + 1000 + rep)
                _, _, aff = _affiliate(config, res, atlas, null, valid, config.seed + rep)
                for a, nm in zip(atoms, networks):
                    hit = aff[(aff["atom"] == a) & (aff["sign"] == "+") & aff["affiliated"].astype(bool)]
                    det += int((hit["network"] == nm).any())
            n_p = n_repeats * len(atoms)
            power_rows.append({"snr": snr, "n": n_p, "detected": det, "rate": det / n_p,
                               **dict(zip(("lower", "upper"), clopper_pearson(det, n_p)))})
            logger.info("validate: SNR %g detection rate %.2f", snr, det / n_p)
    power = pd.DataFrame(power_rows, columns=["snr", "n", "detected", "rate", "lower", "upper"])

    from vlmbrain._io import save_json, save_tsv

    save_tsv(fp, out_dir / "false_positives.tsv")
    save_tsv(maps, out_dir / "null_maps.tsv")
    save_tsv(power, out_dir / "power.tsv")
    summary = {"n_null_phantoms": n_null, "n_units": len(unit_atoms), "n_atom_maps": int(len(maps)),
               "map_false_positive_rate": float(fp["rate"].iloc[0]),
               "map_false_positive_interval": [float(fp["lower"].iloc[0]), float(fp["upper"].iloc[0])],
               "planted_unit": first, "planted_atoms": [int(a) for a in atoms],
               "planted_atoms_vif": [float(vifs[first][a]) for a in atoms],
               "planted_networks": list(networks or []), "snrs": [float(s) for s in snrs], "repeats": n_repeats,
               "noise": {"median_rho": float(np.median(noise.rho)),
                         "median_drift_sd": float(np.median(noise.drift.std(0))) if noise.drift is not None else 0.0},
               "encoding": {"method": enc.method, "n_shifts": enc.n_shifts, "null_pvalues": enc.null_pvalues,
                            "high_pass": enc.high_pass, "correction": enc.correction, "q": enc.q},
               "affiliation_null": null}
    save_json(summary, out_dir / "summary.json")
    _figure(fp, power, enc.q, out_dir / "power.png")
    return {"false_positives": fp, "power": power, "null_maps": maps, "summary": summary}


def _figure(fp, power, q, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    if len(power):
        err = np.vstack([power["rate"] - power["lower"], power["upper"] - power["rate"]])
        a.errorbar(power["snr"], power["rate"], yerr=err, marker="o", capsize=3)
        a.set_xscale("log")
    a.axhline(0.9, color="0.6", ls=":")
    a.set(xlabel="SNR (planted signal SD / noise SD)", ylabel="detection rate", ylim=(-0.02, 1.02),
          title="power: planted atom affiliated with its network")
    row = fp.iloc[0]
    b.bar(["atom maps"], [row["rate"]], yerr=[[row["rate"] - row["lower"]], [row["upper"] - row["rate"]]], capsize=4)
    nets = fp[fp["kind"] == "network"]
    if len(nets):
        b.bar(list(nets["name"]), list(nets["rate"]), color="0.6")
        b.tick_params(axis="x", rotation=60, labelsize=7)
    b.axhline(q, color="r", ls="--", label=f"q = {q:g}")
    b.set(ylabel="false-positive rate (null phantoms)", title="any discovery / affiliation")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def command(args) -> int:
    """``vlmbrain validate CONFIG [--out DIR] [--n-null N] [--snr S ...] [--repeats R]``."""
    from vlmbrain.config import load_config
    from vlmbrain.pipeline import load_run_config

    src = Path(args.config)
    if src.is_dir():
        config, out = load_run_config(src), Path(args.out) if args.out else src
    else:
        config, out = load_config(src), Path(args.out) if args.out else Path("runs") / src.stem
    res = run_validation(config, out, n_null=args.n_null, snrs=tuple(args.snr) if args.snr else DEFAULT_SNRS,
                         n_repeats=args.repeats, progress=not args.quiet)
    s = res["summary"]
    lo, hi = s["map_false_positive_interval"]
    lines = [f"null phantoms: {s['map_false_positive_rate']:.3f} of {s['n_atom_maps']} atom maps with a discovery "
             f"(95% CI {lo:.3f}-{hi:.3f}; q = {config.encoding.q:g})"]
    for _, row in res["power"].iterrows():
        lines.append(f"SNR {row['snr']:g}: detection rate {row['rate']:.2f} ({int(row['detected'])}/{int(row['n'])})")
    lines.append(f"tables and figure: {out / 'validate'}")
    if not args.quiet:
        print("\n".join(lines))
    return 0
