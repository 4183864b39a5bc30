"""Validity of the encoding inference on global-null phantoms: rates with Clopper–Pearson intervals.

Grid: AR(1) noise ρ ∈ {0, 0.3, 0.6, 0.8}; drift off / on (a linear trend across the session
plus half a cosine per run, random amplitudes per grayordinate, SD 1.5 × the noise); a short
design (2 × 150 TRs, TR 1.5 s) and an HCP-like one (4 × 900 TRs, TR 1 s); OLS, AR(1) and ridge
(each with its own shift null); ``encoding.high_pass`` 0.01 Hz. Atoms: smooth caption-like
regressors (``vlmbrain.validate.smooth_atoms``), no signal anywhere. Per cell: the fraction
of atom maps with any BH-FDR discovery (q = 0.05, per map) and with any FWER discovery
(α = 0.05; ``vlmbrain.encoding.inference.fwer_pvalues``: Bonferroni on pooled p, max-statistic
for the other kinds), the voxelwise rate of p < 0.05 for the atom maps and for the fit,
and a KS test of uniformity on a subsample of p. Under the global null BH allows a discovery
in at most 5 % of maps.

The KS test treats the subsample's p-values as independent; those of one phantom are not (its
maps share the noise columns, the atoms and the shifts, and every map's p-values are read off
one pooled null), so it rejects uniform p-values. The column "uniformity p, phantom-level"
(``vlmbrain.validate.uniformity_by_phantom``) takes the phantom as the unit: at each threshold
u the fraction of a phantom's p-values ≤ u is one observation, t-tested against u over the
phantoms, Bonferroni over the thresholds; it names the threshold of the largest deviation.

The K atom maps of one phantom share its noise, its atoms and its shifts, so their discoveries
cluster by phantom and the Clopper–Pearson interval over maps is too narrow. The column
"phantom-clustered" treats the phantom as the sampling unit: the same rate (maps with a
discovery over all maps), with the Korn–Graubard (1998) Clopper–Pearson interval for cluster
samples — the interval of a binomial with the effective sample size ``p(1 − p) / var(p̂)``,
``var(p̂)`` the between-phantom variance of the rate (ratio estimator over phantoms), scaled by
``(z / t_{n_phantoms − 1})²`` for the few clusters and kept between the number of phantoms and
the number of maps; with no discovery at all (no variance to estimate) the phantoms' number.

    python benchmarks/validity.py                          # the whole grid (hours on 2 cores)
    python benchmarks/validity.py --quick                  # short design, OLS, ρ ∈ {0, 0.6}
    python benchmarks/validity.py --methods ols --designs short hcp --reps 30 --jobs 16
    python benchmarks/validity.py --null-pvalues gaussian  # the earlier calibration, for comparison
    python benchmarks/validity.py --seam off               # the nulls without their seam correction
    python benchmarks/validity.py --designs 1x300 2x150 6x50 --high-pass none   # the seams against the number of runs
"""

import argparse
import itertools
import time
import zlib
from concurrent.futures import ProcessPoolExecutor

import numpy as np

DESIGNS = {"short": ((150, 150), 1.5), "hcp": ((900, 900, 900, 900), 1.0)}


def design(name):
    """``(run lengths, TR)`` of a named design, or of ``RxL``: R runs of L TRs of 1.5 s."""
    if name in DESIGNS:
        return DESIGNS[name]
    n_runs, length = (int(v) for v in name.split("x"))
    return (length,) * n_runs, 1.5


def one(task):
    """One phantom: (cell, counts)."""
    from threadpoolctl import threadpool_limits

    from vlmbrain.encoding.inference import fwer_pvalues
    from vlmbrain.encoding.nuisance import nuisance_matrix, residualize
    from vlmbrain.encoding.refit_null import refit_shift_null
    from vlmbrain.encoding.null import shift_null
    from vlmbrain.stats import fdr_bh
    from vlmbrain.validate import ar1_noise, smooth_atoms

    cell, rep, a = task
    cpu0 = time.process_time()
    rho, drift, design_name, method = cell
    lens, tr = design(design_name)
    # a stable seed (hash() of a tuple with strings changes with every interpreter: PYTHONHASHSEED)
    rng = np.random.default_rng(zlib.crc32(repr((cell, rep)).encode()))
    with threadpool_limits(limits=1):
        X, runs = smooth_atoms(rng, lens, a["K"], tr=tr)
        Y = ar1_noise(rng, runs, rho, a["V"])
        if drift:
            Y += (np.linspace(-1, 1, runs.size)[:, None] * rng.normal(0, 1.5, a["V"])).astype(np.float32)
            for r in np.unique(runs):
                idx = np.flatnonzero(runs == r)
                Y[idx] += (np.cos(np.linspace(0, np.pi, idx.size))[:, None]
                           * rng.normal(0, 1.5, a["V"])).astype(np.float32)
        N = None if a.get("high_pass") is None else nuisance_matrix(lens, tr, a["high_pass"])
        Xr, _ = residualize(X, runs, N)
        Yr, _ = residualize(Y, runs, N, out=Y)
        kind = a["null_pvalues"]
        if method == "ols" or kind == "gaussian":
            null = shift_null(Xr, Yr, runs, n_shifts=a["S"], random_state=rep, nuisance=N, n_jobs=1,
                              exact_nuisance=kind != "gaussian", pooled=kind == "pooled",
                              seam_correction=a.get("seam", True))
        else:
            null = refit_shift_null(Xr, Yr, runs, method=method, n_shifts=a["S"], random_state=rep, nuisance=N,
                                    pooled=kind == "pooled", seam_correction=a.get("seam", True))
        p, p_r = null.pvalues(kind)
        fdr_any = sum(bool(fdr_bh(p[k], 0.05)[0].any()) for k in range(p.shape[0]))
        fwer_any = int((fwer_pvalues(null, p, p_r, kind)[0] <= 0.05).any(axis=1).sum())
    sub = p[:, ::max(1, a["V"] // 200)].ravel()
    return cell, {"maps": p.shape[0], "fdr": fdr_any, "fwer": fwer_any, "n_p": p.size,
                  "p05": int((p < 0.05).sum()), "n_r": p_r.size, "r05": int((p_r < 0.05).sum()), "sub": sub,
                  "cpu": time.process_time() - cpu0}


def clustered_interval(counts, sizes, level=0.95):
    """Korn–Graubard 95 % interval of a rate ``Σ counts / Σ sizes`` estimated from clusters
    (phantoms: ``counts[i]`` of ``sizes[i]`` maps with a discovery) → ``(lower, upper)``."""
    from scipy import stats as sps

    k = np.asarray(counts, dtype=np.float64)
    m = np.asarray(sizes, dtype=np.float64)
    n_cl, n = k.size, m.sum()
    p = k.sum() / n
    a = (1 - level) / 2
    adj = (sps.norm.ppf(1 - a) / sps.t.ppf(1 - a, max(n_cl - 1, 1))) ** 2
    if 0 < p < 1 and n_cl > 1:
        var = n_cl / (n_cl - 1) * np.sum((k - p * m) ** 2) / n ** 2      # ratio estimator over clusters
        n_eff = p * (1 - p) / var * adj if var > 0 else n
    else:
        n_eff = n_cl
    n_eff = float(np.clip(n_eff, n_cl, n))
    x = p * n_eff
    lo = 0.0 if x <= 0 else float(sps.beta.ppf(a, x, n_eff - x + 1))
    hi = 1.0 if x >= n_eff else float(sps.beta.ppf(1 - a, x + 1, n_eff - x))
    return lo, hi


def main():
    from scipy import stats as sps

    from vlmbrain.validate import clopper_pearson, uniformity_by_phantom

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rhos", type=float, nargs="+", default=[0.0, 0.3, 0.6, 0.8])
    ap.add_argument("--drift", nargs="+", default=["off", "on"])
    ap.add_argument("--designs", nargs="+", default=["short", "hcp"],
                    help="short, hcp, or RxL (R runs of L TRs of 1.5 s, e.g. 6x50)")
    ap.add_argument("--high-pass", default="0.01", help="Hz, or 'none' (run intercepts only)")
    ap.add_argument("--methods", nargs="+", default=["ols", "ar1", "ridge"])
    ap.add_argument("--reps", type=int, default=30, help="phantoms per cell (K atom maps each)")
    ap.add_argument("--V", type=int, default=2000)
    ap.add_argument("--K", type=int, default=16)
    ap.add_argument("--S", type=int, default=200, help="shifts")
    ap.add_argument("--null-pvalues", default="pooled", choices=["pooled", "gaussian", "empirical"])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seam", default="on", choices=["on", "off"],
                    help="the seam correction of the OLS, AR(1) and ridge nulls (off: as before it, for comparison)")
    args = ap.parse_args()
    if args.quick:
        args.rhos, args.designs, args.methods, args.drift = [0.0, 0.6], ["short"], ["ols"], ["off", "on"]
    a = {"V": args.V, "K": args.K, "S": args.S, "null_pvalues": args.null_pvalues, "seam": args.seam == "on",
         "high_pass": None if args.high_pass == "none" else float(args.high_pass)}
    cells = list(itertools.product(args.rhos, [d == "on" for d in args.drift], args.designs, args.methods))
    tasks = [(c, r, a) for c in cells for r in range(args.reps)]
    t0 = time.perf_counter()
    acc = {c: [] for c in cells}
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for cell, res in pool.map(one, tasks, chunksize=1):
            acc[cell].append(res)
    dt = time.perf_counter() - t0
    print(f"global-null phantoms: V={args.V} grayordinates, K={args.K} atoms, {args.S} shifts, "
          f"{args.reps} phantoms per cell, null_pvalues={args.null_pvalues}, seam correction {args.seam}, high_pass {args.high_pass}; {dt:.0f} s wall, "
          f"{sum(r['cpu'] for rs in acc.values() for r in rs):.0f} CPU s in the phantoms' processes")
    print("| design | method | rho | drift | maps with FDR discovery | maps with FDR discovery, phantom-clustered "
          "| maps with FWER discovery | atom p < .05 | fit p < .05 | KS p (atom p) "
          "| uniformity p, phantom-level (atom p) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")

    def fmt(k, n):
        lo, hi = clopper_pearson(k, n)
        return f"{k / n:.3f} [{lo:.3f}, {hi:.3f}]"

    for c in cells:
        rs = acc[c]
        maps = sum(r["maps"] for r in rs)
        ks = sps.kstest(np.concatenate([r["sub"] for r in rs]), "uniform").pvalue
        uni, u_at, dev = uniformity_by_phantom([r["sub"] for r in rs]) if len(rs) > 1 else (np.nan, np.nan, np.nan)
        k_fdr = sum(r["fdr"] for r in rs)
        lo, hi = clustered_interval([r["fdr"] for r in rs], [r["maps"] for r in rs])
        print(f"| {c[2]} | {c[3]} | {c[0]:g} | {'on' if c[1] else 'off'} "
              f"| {fmt(k_fdr, maps)} | {k_fdr / maps:.3f} [{lo:.3f}, {hi:.3f}] (of {len(rs)}) "
              f"| {fmt(sum(r['fwer'] for r in rs), maps)} "
              f"| {fmt(sum(r['p05'] for r in rs), sum(r['n_p'] for r in rs))} "
              f"| {fmt(sum(r['r05'] for r in rs), sum(r['n_r'] for r in rs))} | {ks:.2g} "
              f"| {uni:.2g} (largest at {u_at:g}: {dev:+.4f}) |")


if __name__ == "__main__":
    main()
