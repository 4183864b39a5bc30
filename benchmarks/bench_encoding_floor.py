"""Encoding fits against the floor: one ``Xᵀ Y`` pass over the same float32 data, in one process.

Every fit has to read ``Y`` (T × V float32) once and form ``Xᵀ Y``; nothing can be faster
than that product. Each repeat times the bare product and then each method's full fit
(OLS β + t + leave-one-run-out r; AR(1); ridge with its inner CV) on the same arrays,
interleaved so that machine load hits both alike; the table gives medians and the median of
the per-repeat ratios fit / floor.

    python benchmarks/bench_encoding_floor.py                   # T=3600 (4 runs), V=91282, K=64
    python benchmarks/bench_encoding_floor.py --V 20000 --methods ols
    python benchmarks/bench_encoding_floor.py --solve-columns 8192    # the earlier task width
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, default=3600)
    ap.add_argument("--V", type=int, default=91_282)
    ap.add_argument("--K", type=int, default=64)
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--methods", default="ols,ar1,ridge")
    ap.add_argument("--solve-columns", type=int, default=None,
                    help="columns per task of the numpy encoder (default: the package's, 2048)")
    args = ap.parse_args()
    from vlmbrain.encoding import VoxelwiseEncoder

    if args.solve_columns:
        import vlmbrain.encoding.estimator as est
        est._SOLVE_COLUMNS = args.solve_columns

    T, V, K = args.T, args.V, args.K
    rng = np.random.default_rng(0)
    runs = np.minimum(np.arange(T) * args.runs // T, args.runs - 1)
    X = rng.standard_normal((T, K), dtype=np.float32)
    Y = rng.standard_normal((T, V), dtype=np.float32)
    Y += X @ (0.05 * rng.standard_normal((K, V), dtype=np.float32))
    methods = [m for m in args.methods.split(",") if m]
    for m in methods:                                   # warm-up: imports, thread pools
        VoxelwiseEncoder(m).fit(X[:400], Y[:400, :200], runs=runs[:400] * 0 + np.arange(400) * 2 // 400)
    floor, fits = [], {m: [] for m in methods}
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        X.T @ Y
        floor.append(time.perf_counter() - t0)
        for m in methods:
            t0 = time.perf_counter()
            VoxelwiseEncoder(m).fit(X, Y, runs=runs)
            fits[m].append(time.perf_counter() - t0)
    f = statistics.median(floor)
    print(f"T={T} ({args.runs} runs) V={V} K={K}; {os.cpu_count()} CPUs; load average "
          f"{os.getloadavg()[0]:.1f}; medians of {args.repeats} interleaved repeats")
    print("| computation | median s | ratio to Xᵀ Y (median of per-repeat ratios) |")
    print("|---|---|---|")
    print(f"| Xᵀ Y (float32 GEMM, the floor) | {f:.3f} | 1.00 |")
    for m in methods:
        ratios = [a / b for a, b in zip(fits[m], floor, strict=True)]
        print(f"| {m} fit | {statistics.median(fits[m]):.3f} | {statistics.median(ratios):.2f} |")


if __name__ == "__main__":
    main()
