"""OLS encoding (beta + t + leave-one-run-out r) vs nilearn ``run_glm(noise_model="ols")``.

Same random float32 data for both sides: T timepoints in 4 runs, K atoms, V grayordinates;
nilearn gets the design [X, run indicators] (what the model means). Accuracy: relative
error of our beta against float64 ``numpy.linalg.lstsq`` on a subset of columns. Peak
extra memory of our fit is measured with tracemalloc (numpy reports its allocations there).

    python benchmarks/bench_encoding_ols.py            # full size T=3600, V=91282, K=64
    python benchmarks/bench_encoding_ols.py --quick    # V=10000
    python benchmarks/bench_encoding_ols.py --backend torch --device cuda
"""

import argparse
import statistics
import time
import tracemalloc

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--T", type=int, default=3600)
    ap.add_argument("--V", type=int, default=None)
    ap.add_argument("--K", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3, help="runs of our encoder (median)")
    ap.add_argument("--peer-repeats", type=int, default=1, help="runs of nilearn (median)")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--backend", default="numpy", choices=["numpy", "torch"])
    ap.add_argument("--device", default=None)
    args = ap.parse_args()
    V = args.V or (10_000 if args.quick else 91_282)
    T, K = args.T, args.K
    from vlmbrain.encoding import VoxelwiseEncoder

    rng = np.random.default_rng(0)
    runs = np.repeat(np.arange(4), T // 4)
    runs = np.concatenate([runs, np.full(T - runs.size, 3)])
    X = rng.standard_normal((T, K), dtype=np.float32)
    Y = rng.standard_normal((T, V), dtype=np.float32)
    Y += X @ (0.05 * rng.standard_normal((K, V), dtype=np.float32))
    enc = VoxelwiseEncoder("ols", backend=args.backend, device=args.device)
    enc.fit(X[:200], Y[:200, :100], runs=runs[:200] * 0)   # warm-up (imports, CUDA init)
    ours = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        enc = VoxelwiseEncoder("ols", backend=args.backend, device=args.device).fit(X, Y, runs=runs)
        ours.append(time.perf_counter() - t0)
    tracemalloc.start()
    VoxelwiseEncoder("ols", backend=args.backend, device=args.device).fit(X, Y, runs=runs)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # accuracy against float64 lstsq with per-run intercepts
    D = np.zeros((T, 4))
    D[np.arange(T), runs] = 1
    Z = np.hstack([X.astype(np.float64), D])
    cols = np.linspace(0, V - 1, min(V, 2000)).astype(int)
    B = np.linalg.lstsq(Z, Y[:, cols].astype(np.float64), rcond=None)[0][:K]
    rel = np.linalg.norm(enc.coef_[:, cols] - B) / np.linalg.norm(B)
    rel_max = np.max(np.abs(enc.coef_[:, cols] - B)) / np.max(np.abs(B))
    peer = []
    if not args.no_peer:
        from nilearn.glm.first_level import run_glm

        for _ in range(args.peer_repeats):
            t0 = time.perf_counter()
            labels, res = run_glm(Y, Z, noise_model="ols")
            peer.append(time.perf_counter() - t0)
        nb = res[0.0].theta[:K, cols]
        peer_rel = np.linalg.norm(nb - B) / np.linalg.norm(B)
        del res
    med = statistics.median(ours)
    print(f"| OLS encoding (beta+t+LORO r) | T={T} V={V} K={K} | backend={args.backend} "
          f"device={args.device} |")
    print("| side | median s | runs | ratio | beta rel. error vs lstsq (fro / max) |")
    print("|---|---|---|---|---|")
    print(f"| vlmbrain | {med:.2f} | {len(ours)} | 1.0 | {rel:.2e} / {rel_max:.2e} |")
    if peer:
        pm = statistics.median(peer)
        print(f"| nilearn run_glm ols (beta only) | {pm:.2f} | {len(peer)} | {pm / med:.1f}x slower "
              f"| {peer_rel:.2e} |")
    print(f"peak extra memory of fit: {peak / 2**20:.0f} MiB = {peak / Y.nbytes:.3f} x size of Y "
          f"({Y.nbytes / 2**20:.0f} MiB); with Y itself: {1 + peak / Y.nbytes:.3f} x")


if __name__ == "__main__":
    main()
