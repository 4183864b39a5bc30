"""Ridge with per-target alpha by inner CV vs himalaya ``RidgeCV`` (same alphas and folds).

One run (himalaya has one intercept), ``fit_intercept=True`` on both sides, 5 contiguous
folds (``KFold(5)`` without shuffling, himalaya's default ``cv=5``), 7 alphas, R² as the
inner-CV score (himalaya ``solver_params={"score_func": r2_score}``). Compared: the chosen
alphas, the CV scores (mean R² over folds) and the coefficients. The leave-one-run-out
outer loop is off (``compute_cv=False``) because himalaya has no equivalent.

    python benchmarks/bench_encoding_ridge.py           # T=3600, V=91282, K=64
    python benchmarks/bench_encoding_ridge.py --quick   # V=10000
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
    V = args.V or (10_000 if args.quick else 91_282)
    T, K = args.T, args.K
    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV
    from himalaya.scoring import r2_score
    from sklearn.model_selection import KFold

    from vlmbrain.encoding import VoxelwiseEncoder

    set_backend("numpy")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((T, K), dtype=np.float32)
    W = rng.standard_normal((K, V), dtype=np.float32) * rng.uniform(0, 0.1, V).astype(np.float32)
    Y = X @ W + rng.standard_normal((T, V), dtype=np.float32)
    alphas = np.logspace(-1, 5, 7)
    ours = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        enc = VoxelwiseEncoder("ridge", alphas=alphas, cv=5, scoring="r2",
                               compute_cv=False).fit(X, Y)
        ours.append(time.perf_counter() - t0)
    peer = []
    for _ in range(args.peer_repeats):
        t0 = time.perf_counter()
        hm = RidgeCV(alphas=alphas, fit_intercept=True, cv=KFold(5),
                     solver_params=dict(score_func=r2_score)).fit(X, Y)
        peer.append(time.perf_counter() - t0)
    same_alpha = np.mean(np.isclose(hm.best_alphas_, enc.alphas_, rtol=1e-6))
    best_ours = enc.cv_scores_.max(axis=0)
    score_diff = np.abs(np.asarray(hm.cv_scores_) - best_ours).max()
    coef_diff = np.abs(np.asarray(hm.coef_) - enc.coef_).max()
    med, pm = statistics.median(ours), statistics.median(peer)
    print(f"| ridge, 7 alphas x 5 folds | T={T} V={V} K={K} |")
    print("| side | median s | runs | ratio | same alpha | max abs CV-R2 diff | max abs coef diff |")
    print("|---|---|---|---|---|---|---|")
    print(f"| vlmbrain ridge | {med:.2f} | {len(ours)} | 1.0 | {same_alpha:.4f} | {score_diff:.1e} "
          f"| {coef_diff:.1e} |")
    print(f"| himalaya RidgeCV (numpy) | {pm:.2f} | {len(peer)} | {pm / med:.1f}x slower | | | |")


if __name__ == "__main__":
    main()
