"""Peak memory and time of the signal stage's ``process_timecourses``, before vs after streaming.

``before``  the previous implementation (kept below as the reference): every run of every AN
            repeated 16× (float64), FFT-convolved with the oversampled kernel, z-scored from a
            float32 copy — all ANs at once.
``after``   ``vlmbrain.signal.process_timecourses``: the kernel folded onto the TR grid, column
            chunks in float64, float32 output.
``stage``   ``after`` as the signal stage runs it: the activations read through
            ``np.load(mmap_mode="r")``, the output written into a ``.npy`` file through
            ``np.lib.format.open_memmap``.

Each measurement runs in a fresh subprocess: the input (T, N) float32 (AR(1)-smoothed noise
plus an offset, 4 runs when T ≥ 3600, else 1) is made first, then the call is timed once
(``seconds``), and its memory is reported three ways:

* ``heap peak``: tracemalloc's peak over the call (numpy's allocations; the input not counted),
  in a second call with tracemalloc on;
* ``RSS peak − start``: the child's peak RSS over the call (``VmHWM`` after a reset through
  ``/proc/self/clear_refs``; file pages of memory maps count) minus its RSS just before it;
* ``/ output``: the heap peak over the size of the output array ((T, N_kept) float32).

    python benchmarks/bench_signal.py                       # 900 x 9216 (before, after, stage)
    python benchmarks/bench_signal.py --T 3600 --N 37000 --modes after stage
    python benchmarks/bench_signal.py --quick               # 300 x 2048
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np


def _before(X, runs, tr, oversampling=16):
    """The previous ``process_timecourses`` (oversampled FFT convolution of all columns at once)."""
    from scipy.signal import fftconvolve

    from vlmbrain.signal import _run_slices, hrf_kernel, zscore_runs

    _, raw_ok = zscore_runs(X, runs)
    out = np.empty(X.shape, dtype=np.float32)
    kernel = hrf_kernel(tr, "spm", oversampling=oversampling)
    for sl in _run_slices(runs):
        block = np.asarray(X[sl], dtype=np.float64)
        n = block.shape[0]
        hi = np.repeat(block, oversampling, axis=0)
        conv = fftconvolve(hi, kernel[:, None], mode="full", axes=0)[: n * oversampling]
        out[sl] = conv[::oversampling]
    Z, kept = zscore_runs(out, runs)
    kept &= raw_ok
    return np.ascontiguousarray(Z[:, kept]), kept


def _data(T, N, seed=0):
    rng = np.random.default_rng(seed)
    X = np.empty((T, N), dtype=np.float32)
    prev = rng.standard_normal(N).astype(np.float32)
    for t in range(T):                      # AR(1) rows: smooth like model activations
        prev = 0.8 * prev + 0.6 * rng.standard_normal(N).astype(np.float32)
        X[t] = prev
    X += 2.0
    n_runs = 4 if T >= 3600 else 1
    return X, np.repeat(np.arange(n_runs), -(-T // n_runs))[:T]


def _rss():
    import psutil

    return psutil.Process().memory_info().rss


def _reset_peak():
    """Reset the kernel's peak-RSS mark (Linux ``clear_refs``), so the peak is the call's own."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_rss():
    """Peak RSS since the last reset (``VmHWM``), else since the process started (``ru_maxrss``)."""
    import resource

    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(mode, T, N):
    import time
    import tracemalloc

    from vlmbrain.signal import hrf_kernel, process_timecourses
    from scipy.signal import fftconvolve  # noqa: F401  (imports are not part of the call)

    hrf_kernel(1.0)
    X, runs = _data(T, N)
    tmp = tempfile.mkdtemp(prefix="bench_signal_")
    if mode == "stage":
        np.save(os.path.join(tmp, "in.npy"), X)
        del X
        X = np.load(os.path.join(tmp, "in.npy"), mmap_mode="r")

    def call():
        if mode == "before":
            return _before(X, runs, 1.0)
        return process_timecourses(X, runs, 1.0, out=os.path.join(tmp, "out.npy") if mode == "stage" else None)

    _reset_peak()
    rss0 = _rss()
    t0 = time.perf_counter()
    Z, kept = call()
    sec = time.perf_counter() - t0
    rss_peak = _peak_rss()
    out_bytes = Z.shape[0] * Z.shape[1] * 4
    del Z
    tracemalloc.start()
    Z, kept = call()
    _, heap_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(json.dumps({"mode": mode, "T": T, "N": N, "seconds": sec, "heap_peak": heap_peak,
                      "rss_delta": rss_peak - rss0, "input": T * N * 4, "output": out_bytes}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, default=None)
    ap.add_argument("--N", type=int, default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--modes", nargs="+", default=["before", "after", "stage"])
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    T = args.T or (300 if args.quick else 900)
    N = args.N or (2048 if args.quick else 9216)
    if args.child:
        child(args.child, T, N)
        return
    mib = 2.0 ** 20
    print(f"| process_timecourses, spm HRF, oversampling 16 | T={T} N={N} | input {T * N * 4 / mib:.0f} MiB |")
    print("| path | seconds | heap peak MiB | heap peak / output | RSS peak − start MiB |")
    print("|---|---|---|---|---|")
    for mode in args.modes:
        res = subprocess.run([sys.executable, __file__, "--child", mode, "--T", str(T), "--N", str(N)],
                             capture_output=True, text=True)
        if res.returncode:
            print(f"| {mode} | failed: {res.stderr.strip().splitlines()[-1:]} | | | |")
            continue
        r = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"| {mode} | {r['seconds']:.2f} | {r['heap_peak'] / mib:.0f} | {r['heap_peak'] / r['output']:.2f} | "
              f"{r['rss_delta'] / mib:.0f} |")


if __name__ == "__main__":
    main()
