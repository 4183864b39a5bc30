"""Circular-shift null (1000 joint shifts of the atoms) vs brute force (one refit per shift).

Ours: ``vlmbrain.encoding.shift_null`` (polyphase FFT cross-correlations, p-values for
every atom × grayordinate and for the full-model R², max-statistic nulls). The brute force
rolls the run-centred atoms and refits by one GEMM per shift; it is timed on a few shifts
and extrapolated linearly to the same number of shifts (said so in the table). Accuracy:
max |beta_null − brute-force beta| over the timed shifts on a subset of columns.

    python benchmarks/bench_shift_null.py            # T=3600, V=91282, K=64, 1000 shifts
    python benchmarks/bench_shift_null.py --quick    # V=5000
    python benchmarks/bench_shift_null.py --backend torch --device cuda --chunk-size 2048
    python benchmarks/bench_shift_null.py --null earlier   # the null before the pooled tails (cost baseline)
    python benchmarks/bench_shift_null.py --compare --V 5000 --repeats 7 --n-jobs 1
        # cost of the tail fit: the earlier null (Gaussian-calibrated p, shifted atoms refitted alone)
        # and the default (pooled p with the GPD tail, exact refit with the nuisance) alternately in
        # one process, p-values included; medians and their ratio (--parts: and the steps between)
    git worktree add /tmp/v010 499a9ff      # vlmbrain 0.1.0, whose null issue 11 set the budget against
    python benchmarks/bench_shift_null.py --against /tmp/v010/src/vlmbrain/encoding.py --V 20000 --repeats 5 --n-jobs 1
        # the default null against 0.1.0's shift_null (calibrated p) alternately in one process
    VLMBRAIN_NUMBA=0 python benchmarks/bench_shift_null.py --against ...
        # the same with the numpy passes that stand in for the numba kernels
"""

import argparse
import statistics
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--T", type=int, default=3600)
    ap.add_argument("--V", type=int, default=None)
    ap.add_argument("--K", type=int, default=64)
    ap.add_argument("--n-shifts", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--n-jobs", type=int, default=-1)
    ap.add_argument("--brute-shifts", type=int, default=3)
    ap.add_argument("--backend", default="numpy", choices=["numpy", "torch"])
    ap.add_argument("--device", default=None)
    ap.add_argument("--chunk-size", type=int, default=None)
    ap.add_argument("--null", default="pooled", choices=["pooled", "earlier"],
                    help="pooled: the default null (pooled standardised tails, shifts refitted with the run "
                    "intercepts in place); earlier: the null before them (the cost baseline of the tail fit)")
    ap.add_argument("--parts", action="store_true",
                    help="with --compare: also the exact refit alone and the pooled null without its seam correction")
    ap.add_argument("--compare", action="store_true",
                    help="time the earlier and the default null alternately (p-values included) and print the ratio")
    ap.add_argument("--against", default=None, metavar="ENCODING_PY",
                    help="time the default null against another version's shift_null, loaded from its module "
                    "file (0.1.0: src/vlmbrain/encoding.py of commit 499a9ff), alternately in one process")
    args = ap.parse_args()
    if args.against:
        return against(args)
    if args.compare:
        return compare(args)
    from vlmbrain.encoding import shift_null

    V, T, K, S, runs, X, Y = _data(args)
    Y[:, : V // 10] += X[:, :1] * 0.1
    ours = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        kw = dict(backend=args.backend, device=args.device, pooled=args.null == "pooled",
                  exact_nuisance=args.null == "pooled")
        if args.chunk_size:
            kw["chunk_size"] = args.chunk_size
        res = shift_null(X, Y, runs, n_shifts=S, random_state=0, n_jobs=args.n_jobs, **kw)
        ours.append(time.perf_counter() - t0)
    # brute force on the first few shifts
    Xc = X.astype(np.float64).copy()
    for r in range(4):
        Xc[runs == r] -= Xc[runs == r].mean(0)
    Ginv = np.linalg.inv(Xc.T @ Xc)
    Yc = Y.copy()
    for r in range(4):
        Yc[runs == r] -= Yc[runs == r].mean(0)
    t0 = time.perf_counter()
    for s in res.shifts[: args.brute_shifts]:
        W = (np.roll(Xc, s, axis=0) @ Ginv).astype(np.float32)
        B = W.T @ Yc                              # one GEMM per shift
    brute = (time.perf_counter() - t0) / args.brute_shifts * S
    cols = np.arange(0, V, max(1, V // 50))
    chk = shift_null(X, Y[:, cols], runs, n_shifts=S, random_state=0, return_null=True, exact_nuisance=False)
    err = 0.0
    for i, s in enumerate(chk.shifts[: args.brute_shifts]):
        W = np.roll(Xc, s, axis=0) @ Ginv
        err = max(err, float(np.abs(chk.beta_null[i] - W.T @ Yc[:, cols]).max()))
    del B
    med = statistics.median(ours)
    print(f"| circular-shift null, {S} shifts (multiples of {res.decimation} TRs) | T={T} V={V} K={K} |")
    print("| side | median s | runs | ratio | max abs beta diff vs refit |")
    print("|---|---|---|---|---|")
    print(f"| vlmbrain shift_null backend={args.backend} null={args.null} (p_beta, p_r2, max-stat nulls) "
          f"| {med:.1f} | {len(ours)} | 1.0 | {err:.1e} |")
    print(f"| brute force, 1 GEMM per shift (betas only; {args.brute_shifts} shifts timed, x{S // args.brute_shifts} extrapolated) "
          f"| {brute:.1f} | - | {brute / med:.1f}x slower | |")
    print(f"atom 0 (planted in 10% of columns): fraction with p_beta <= .05 = "
          f"{(res.p_beta[0] <= 0.05).mean():.3f}")


def _data(args):
    """Sizes, 4 equal runs and random float32 atoms X (T, K) and data Y (T, V) of the command line."""
    V = args.V or (5_000 if args.quick else 91_282)
    T, K, S = args.T, args.K, args.n_shifts
    rng = np.random.default_rng(0)
    runs = np.minimum(np.arange(T) // (T // 4), 3)
    X = rng.standard_normal((T, K), dtype=np.float32)
    Y = rng.standard_normal((T, V), dtype=np.float32)
    return V, T, K, S, runs, X, Y


def compare(args):
    """The earlier null (``gaussian`` p) and the default (``pooled`` p) alternately, in one process."""
    from vlmbrain.encoding import shift_null

    V, T, K, S, runs, X, Y = _data(args)
    kw = dict(backend=args.backend, device=args.device, n_jobs=args.n_jobs, random_state=0)
    if args.chunk_size:
        kw["chunk_size"] = args.chunk_size
    sides = {"earlier": dict(pooled=False, exact_nuisance=False), "default": {}}
    if args.parts:
        sides = {"earlier": sides["earlier"], "exact refit only": dict(pooled=False),
                 "pooled, no seam correction": dict(seam_correction=False), "default": {}}
    def run(name):
        res = shift_null(X, Y, runs, n_shifts=S, **kw, **sides[name])
        res.pvalues("pooled" if sides[name].get("pooled", True) else "gaussian")

    medc, med = _alternate(args, list(sides), run, {k: k for k in sides}, V, T, K, S)
    print(f"ratio default / earlier: CPU {medc['default'] / medc['earlier']:.3f}, wall {med['default'] / med['earlier']:.3f}")



def _alternate(args, names, run, labels, V, T, K, S):
    """Time ``run(name)`` for every name alternately (the order reversed every round), one
    warm-up round not counted; print the table and return the medians (CPU s, wall s)."""
    cpu = {k: [] for k in names}
    wall = {k: [] for k in names}
    for rep in range(args.repeats + 1):
        for name in (names if rep % 2 else names[::-1]):
            t0, c0 = time.perf_counter(), time.process_time()
            run(name)
            if rep:
                cpu[name].append(time.process_time() - c0)
                wall[name].append(time.perf_counter() - t0)
    # CPU seconds of the process: on a shared machine the wall time carries the other jobs' load
    medc = {k: statistics.median(v) for k, v in cpu.items()}
    medw = {k: statistics.median(v) for k, v in wall.items()}
    from vlmbrain.encoding import _kernels

    kern = (f"numba {_kernels.numba.__version__} kernels" if _kernels.available()
            else "numpy passes (numba absent or VLMBRAIN_NUMBA=0)")
    print(f"| shift_null, {S} shifts, T={T} V={V} K={K}, n_jobs={args.n_jobs}, {args.repeats} runs each "
          f"(alternating, after one warm-up round; {kern}) | median CPU s | median wall s | CPU s of every run |")
    print("|---|---|---|---|")
    for k in names:
        print(f"| {labels[k]} | {medc[k]:.3f} | {medw[k]:.3f} | {', '.join(f'{x:.2f}' for x in cpu[k])} |")
    return medc, medw


def against(args):
    """The default null and another version's ``shift_null`` alternately, in one process."""
    import importlib.util
    import sys

    from vlmbrain.encoding import shift_null

    spec = importlib.util.spec_from_file_location("vlmbrain_baseline_encoding", args.against)
    base = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = base
    spec.loader.exec_module(base)
    V, T, K, S, runs, X, Y = _data(args)

    def run_base():
        res = base.shift_null(X, Y, runs, n_shifts=S, random_state=0, n_jobs=args.n_jobs)
        return res.p_t_calibrated, res.p_r2_calibrated      # 0.1.0's default p (Gaussian-calibrated)

    def run_ours():
        return shift_null(X, Y, runs, n_shifts=S, random_state=0, n_jobs=args.n_jobs).pvalues("pooled")

    sides = {"baseline": run_base, "default": run_ours}
    medc, medw = _alternate(args, list(sides), lambda name: sides[name](),
                            {"baseline": f"baseline ({args.against})", "default": "default (this checkout)"}, V, T, K, S)
    print(f"ratio default / baseline: CPU {medc['default'] / medc['baseline']:.3f}, wall {medw['default'] / medw['baseline']:.3f}")


if __name__ == "__main__":
    main()
