"""AR(1) GLM vs nilearn ``run_glm(noise_model="ar1")`` (same design, same data).

Both sides get the design [X, run indicators] on the concatenated runs (nilearn whitens
the concatenation; ``VoxelwiseEncoder(method="ar1", ar1_scope="concat")`` does the same).
Accuracy: max |t − t_nilearn| over grayordinates whose binned ρ agrees (reported: the
fraction that agrees; a ρ on a bin edge may round either way in float32 vs float64).

    python benchmarks/bench_encoding_ar1.py            # T=3600, V=91282, K=64
    python benchmarks/bench_encoding_ar1.py --quick    # V=5000
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
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peer-repeats", type=int, default=1)
    args = ap.parse_args()
    V = args.V or (5_000 if args.quick else 91_282)
    T, K = args.T, args.K
    from nilearn.glm.first_level import run_glm

    from vlmbrain.encoding import VoxelwiseEncoder

    rng = np.random.default_rng(0)
    runs = np.minimum(np.arange(T) // (T // 4), 3)
    X = rng.standard_normal((T, K), dtype=np.float32)
    rho = rng.uniform(0.0, 0.6, V).astype(np.float32)
    Y = rng.standard_normal((T, V), dtype=np.float32)
    for t in range(1, T):            # AR(1) noise with a different rho per column
        Y[t] += rho * Y[t - 1]
    Y += X @ (0.05 * rng.standard_normal((K, V), dtype=np.float32))
    D = np.zeros((T, 4), np.float32)
    D[np.arange(T), runs] = 1
    Z = np.hstack([X, D])
    ours = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        enc = VoxelwiseEncoder("ar1").fit(X, Y, runs=runs)
        ours.append(time.perf_counter() - t0)
    peer = []
    for _ in range(args.peer_repeats):
        t0 = time.perf_counter()
        labels, res = run_glm(Y, Z, noise_model="ar1")
        peer.append(time.perf_counter() - t0)
    tn = np.empty((K, V))
    for lab, rr in res.items():
        idx = labels == lab
        tn[:, idx] = np.array([rr.t(column=k) for k in range(K)])
    rn = np.array([float(v) for v in labels])
    same = np.isclose(rn, enc.ar1_rho_, atol=1e-6)
    err = np.abs(enc.tvalues_[:, same] - tn[:, same]).max()
    med, pm = statistics.median(ours), statistics.median(peer)
    print(f"| AR(1) GLM | T={T} V={V} K={K} |")
    print("| side | median s | runs | ratio | max abs t diff | rho bins agree |")
    print("|---|---|---|---|---|---|")
    print(f"| vlmbrain ar1 (+LORO r) | {med:.2f} | {len(ours)} | 1.0 | {err:.1e} | {same.mean():.4f} |")
    print(f"| nilearn run_glm ar1 | {pm:.2f} | {len(peer)} | {pm / med:.1f}x slower | | |")


if __name__ == "__main__":
    main()
