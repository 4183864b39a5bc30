"""Write the stored reference outputs of the small regression configuration.

Run from the repository root when a change *intends* to alter the numbers:

    python tests/regression/make_reference.py

It runs :data:`CONFIG` through the pipeline into a temporary folder and stores every table in
full and every array on a fixed subsample of columns (plus its finite sum, sum of squares and NaN
count) under ``tests/regression/reference/``. ``test_reference_outputs.py`` re-runs the same
configuration and compares to 1e-4 of each array's scale (the test's docstring says why not
closer).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "reference"

#: A small demo: three runs of 60 TRs, both toy models, the shift null, spin test. The encoding
#: follows the defaults (pooled shift-null tails, 0.01 Hz cosine drift per run). Three runs, not
#: two: with two, every leave-one-run-out fold trains on one 60-TR run, where the toy atoms are
#: nearly collinear (condition numbers 1e6-2e12), and the held-out r moved by up to 1.2 between
#: two numpy / OpenBLAS builds; with three every fold's condition number is below 2e3.
CONFIG = {
    "seed": 0,
    "stimulus": {"kind": "demo", "tr": 1.0},
    "fmri": {"kind": "demo"},
    "models": [{"name": "toy-clip"}, {"name": "toy-meter"}],
    "dictionary": {"n_atoms": 6, "alpha": 0.1},
    "encoding": {"n_shifts": 40, "correction": "fdr"},
    "networks": {"null": "spin", "n_perm": 10},
    "report": {"surface_figures": False},
    "demo": {"n_runs": 3, "run_length": 60},
}

#: Array files compared (relative to the run directory; globbed).
ARRAY_GLOBS = ("signal/*/*/timecourses.npy", "dictionary/*/*/atoms.npy", "dictionary/*/*/codes.npy",
               "brain/valid.npy")
#: Encoding maps: read through vlmbrain.artifacts.read_map from whichever file holds them (one
#: copy, in the brain space's format), keyed as ``encoding/<model>/<unit>/<map>.npy`` as before.
MAP_GLOB = "encoding/*/*/*"
TABLE_GLOBS = ("analysis/*.tsv", "demo/recovery*.tsv", "stimulus/timeline.tsv", "dictionary/*/*/neurons.tsv")
STEP = 97   # column subsample of (.., V) arrays


def fingerprint(arr: np.ndarray) -> dict:
    a = np.asarray(arr, dtype=np.float64)
    fin = np.isfinite(a)
    return {"shape": list(a.shape), "nan": int((~fin).sum()), "sum": float(a[fin].sum()),
            "sumsq": float((a[fin] ** 2).sum())}


def subsample(arr: np.ndarray) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim == 0:
        return a
    return a[..., ::STEP] if a.shape[-1] > 1000 else a


#: BLAS threads of the run. The dictionary's float32 updates move by ~1e-6 with the BLAS thread
#: count (and everything downstream with them), so the reference holds for one count: the two
#: of the 2-core machine that wrote it, whatever the machine or the test workers' own setting.
BLAS_THREADS = 2


def run(out: Path) -> None:
    from threadpoolctl import threadpool_limits

    from vlmbrain.config import validate_config
    from vlmbrain.pipeline import run_pipeline

    with threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
        run_pipeline(validate_config(CONFIG), out)


def collect(out: Path) -> tuple[dict, dict, dict]:
    from vlmbrain.artifacts import read_map
    from vlmbrain.brain.space import BrainSpace

    arrays, prints, tables = {}, {}, {}
    found = {}
    for pattern in ARRAY_GLOBS:
        for path in sorted(out.glob(pattern)):
            found[path.relative_to(out).as_posix()] = np.load(path)
    space = BrainSpace.load(out / "brain")
    for path in sorted(out.glob(MAP_GLOB)):
        name = path.name.split(".")[0]
        if not name or name.startswith("_") or name == "summary" or path.suffix in (".json", ".tsv"):
            continue
        rel = path.with_name(name + ".npy").relative_to(out).as_posix()
        if rel not in found:
            found[rel] = read_map(path.with_name(name), space)
    for rel in sorted(found):
        a = found[rel]
        if a.dtype == bool:
            a = a.astype(np.float32)
        arrays[rel] = subsample(a)
        prints[rel] = fingerprint(a)
    for pattern in TABLE_GLOBS:
        for path in sorted(out.glob(pattern)):
            tables[path.relative_to(out).as_posix()] = path.read_text()
    return arrays, prints, tables


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        run(out)
        arrays, prints, tables = collect(out)
    REFERENCE.mkdir(exist_ok=True)
    for old in (REFERENCE / "tables").glob("*"):
        old.unlink()
    np.savez_compressed(REFERENCE / "arrays.npz", **{k.replace("/", "__"): v for k, v in arrays.items()})
    (REFERENCE / "fingerprints.json").write_text(json.dumps(prints, indent=1, sort_keys=True))
    for rel, text in tables.items():
        dest = REFERENCE / "tables" / rel.replace("/", "__")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
    print(f"{len(arrays)} arrays, {len(tables)} tables written to {REFERENCE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
