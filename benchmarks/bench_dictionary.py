"""TemporalDictionary vs scikit-learn ``MiniBatchDictionaryLearning`` (K=64, alpha=0.1).

Data: N AN-like time courses (T timepoints) from a planted sparse model — 64 smooth
(HRF-like) random atoms, 3 signed non-zero codes per column, plus noise — centred and
scaled to unit norm once (both sides get the same normalised matrix; samples = columns,
so scikit-learn is fit on ``X.T``). Objective ``½‖X − DA‖²_F + 0.1‖A‖₁`` of each side's
dictionary is evaluated with the *same* exact lasso codes (our Gram-form coordinate
descent run to tol 1e-8), so the comparison is about the dictionaries; scikit-learn's
own-code objective (its ``transform`` with lasso_cd) is reported too.

    python benchmarks/bench_dictionary.py            # T=3600, N=27648, K=64
    python benchmarks/bench_dictionary.py --quick    # T=600, N=4096
    python benchmarks/bench_dictionary.py --sk-max-iter 1   # cap scikit-learn epochs
"""

import argparse
import statistics
import time

import numpy as np


def make_data(T, N, K, seed=0):
    rng = np.random.default_rng(seed)
    kern = np.exp(-0.5 * (np.arange(-12, 13) / 4.0) ** 2)
    D = np.apply_along_axis(lambda x: np.convolve(x, kern, mode="same"), 0,
                            rng.standard_normal((T, K)))
    D /= np.linalg.norm(D, axis=0)
    A = np.zeros((K, N))
    for j in range(N):
        A[rng.choice(K, 3, replace=False), j] = rng.standard_normal(3) * 2
    X = D @ A + 0.02 * rng.standard_normal((T, N))
    return X


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--T", type=int, default=None)
    ap.add_argument("--N", type=int, default=None)
    ap.add_argument("--K", type=int, default=64)
    ap.add_argument("--alpha", type=float, default=0.1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peer-repeats", type=int, default=1)
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--tol", type=float, default=None, help="TemporalDictionary tol (default: its own)")
    ap.add_argument("--sk-max-iter", type=int, default=None,
                    help="scikit-learn max_iter (epochs); default: its default (1000, early stopping)")
    args = ap.parse_args()
    T = args.T or (600 if args.quick else 3600)
    N = args.N or (4096 if args.quick else 27648)
    K, lam = args.K, args.alpha
    from sklearn.decomposition import MiniBatchDictionaryLearning

    from vlmbrain.dictionary import TemporalDictionary, prepare_columns, sparse_encode_gram

    Xn = prepare_columns(make_data(T, N, K))
    ours = []
    for i in range(args.repeats):
        t0 = time.perf_counter()
        tkw = {} if args.tol is None else {"tol": args.tol}
        td = TemporalDictionary(n_atoms=K, alpha=lam, random_state=0, **tkw).fit(Xn)
        ours.append(time.perf_counter() - t0)
    peer = []
    kw = {} if args.sk_max_iter is None else {"max_iter": args.sk_max_iter}
    for _ in range(0 if args.no_peer else args.peer_repeats):
        t0 = time.perf_counter()
        sk = MiniBatchDictionaryLearning(n_components=K, alpha=lam, random_state=0,
                                         transform_algorithm="lasso_cd", transform_alpha=lam,
                                         **kw).fit(Xn.T)
        peer.append(time.perf_counter() - t0)
    X64 = Xn.astype(np.float64)
    xx = float(np.einsum("ij,ij->", X64, X64))

    def exact_obj(D):
        D = np.asarray(D, np.float64)
        G, B = D.T @ D, D.T @ X64
        A, _ = sparse_encode_gram(G, B, lam, max_iter=2000, tol=1e-8)
        return 0.5 * xx - np.einsum("kn,kn->", A, B) + 0.5 * np.einsum("kn,kn->", A, G @ A) \
            + lam * np.abs(A).sum()

    obj_ours = exact_obj(td.atoms_)
    med = statistics.median(ours)
    if peer:
        obj_sk = exact_obj(sk.components_.T)
        codes_sk = sk.transform(Xn.T).T
        R = X64 - sk.components_.T.astype(np.float64) @ codes_sk
        obj_sk_own = 0.5 * np.einsum("ij,ij->", R, R) + lam * np.abs(codes_sk).sum()
        pm = statistics.median(peer)
    print(f"| dictionary learning K={K} alpha={lam} | T={T} N={N} |")
    print("| side | median s | runs | ratio | objective (exact codes) | own codes | n_iter |")
    print("|---|---|---|---|---|---|---|")
    print(f"| vlmbrain TemporalDictionary{' tol=%g' % args.tol if args.tol else ''} | {med:.1f} | {len(ours)} | 1.0 | {obj_ours:.2f} | "
          f"{td.objective_:.2f} | {td.n_iter_} |")
    if not peer:
        return
    print(f"| sklearn MiniBatchDictionaryLearning (lars{', max_iter=%d' % args.sk_max_iter if kw else ''}) "
          f"| {pm:.1f} | {len(peer)} | {pm / med:.1f}x slower | {obj_sk:.2f} | {obj_sk_own:.2f} | "
          f"{sk.n_iter_} |")


if __name__ == "__main__":
    main()
