"""Nuisance regressors of the encoding model: a cosine drift basis and confounds, per run
(docs/method.md §4.1).

Slow scanner drift and physiological / motion confounds are modelled, run by run, as
regressors of no interest. They are removed from the atoms *and* the data by the same
projection (Frisch–Waugh–Lovell: fitting them with the atoms is the same as fitting the
atoms to the residualised series), together with the per-run intercepts; they count against
the residual degrees of freedom; and the circular-shift null shifts the atoms only, refitting
every shifted design together with the nuisance, which stays in place.

- drift: nilearn's discrete cosine basis (:func:`nilearn.signal.create_cosine_drift`, as
  ``FirstLevelModel(drift_model="cosine", high_pass=…)``): all cosines of period longer than
  ``1 / high_pass`` seconds, one basis per run (``encoding.high_pass``, default 0.01 Hz);
- confounds: columns of a per-run TSV (fMRIPrep ``*_desc-confounds_timeseries.tsv``), read
  with pandas; the NaN of the first row of derivative columns is replaced by the second
  row's value and the columns are demeaned, as nilearn's ``load_confounds`` does.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from vlmbrain.encoding._checks import check_runs
from vlmbrain.errors import ConfigError, DimensionError, InputFileError

logger = logging.getLogger("vlmbrain")

__all__ = ["drift_basis", "load_confounds", "nuisance_matrix", "residualize"]


def drift_basis(run_lengths, tr, high_pass):
    """Block-diagonal cosine drift basis (sum(run_lengths), n_columns) without the constants.

    ``high_pass`` in Hz; ``None`` → no column. Every run gets nilearn's cosines of period
    longer than ``1 / high_pass`` for its own duration.
    """
    from nilearn.signal import create_cosine_drift

    T = int(sum(run_lengths))
    if high_pass is None:
        return np.zeros((T, 0))
    blocks = []
    start = 0
    for n in run_lengths:
        basis = create_cosine_drift(float(high_pass), np.arange(n) * float(tr))[:, :-1]   # last = constant
        block = np.zeros((T, basis.shape[1]))
        block[start:start + n] = basis
        blocks.append(block)
        start += n
    return np.concatenate(blocks, axis=1) if blocks else np.zeros((T, 0))


def load_confounds(paths, columns, run_lengths):
    """Confound columns of one TSV per run → block-diagonal (sum(run_lengths), n_runs × n_columns).

    First-row NaN (derivatives) take the second row's value, the columns are demeaned per run
    (nilearn ``load_confounds``); any other NaN, a missing column or a length that differs from
    the run's raises.
    """
    import pandas as pd
    from nilearn.interfaces.fmriprep.load_confounds_utils import prepare_output

    paths = [Path(p) for p in paths]
    if len(paths) != len(run_lengths):
        raise ConfigError(f"encoding.confounds has {len(paths)} files but the fMRI has {len(run_lengths)} runs; "
                          "give one confounds TSV per run, in run order")
    if not columns:
        raise ConfigError("encoding.confounds needs encoding.confound_columns (e.g. trans_x, …, csf, white_matter)")
    T = int(sum(run_lengths))
    out = np.zeros((T, len(paths) * len(columns)))
    start = 0
    for r, (path, n) in enumerate(zip(paths, run_lengths)):
        if not path.is_file():
            raise InputFileError(f"confounds file {str(path)!r} does not exist")
        df = pd.read_csv(path, sep="\t")
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise ConfigError(f"{path}: confound columns {missing} not found; it has {list(df.columns)[:12]}…")
        if len(df) != n:
            raise DimensionError(f"{path} has {len(df)} rows but run {r + 1} has {n} TRs")
        _, conf = prepare_output(df[list(columns)].astype(float), demean=True)
        vals = conf.to_numpy(dtype=np.float64)
        if not np.all(np.isfinite(vals)):
            bad = [c for c, ok in zip(columns, np.all(np.isfinite(vals), axis=0)) if not ok]
            raise InputFileError(f"{path}: confound columns {bad} have NaN beyond the first row")
        out[start:start + n, r * len(columns):(r + 1) * len(columns)] = vals
        start += n
    return out


def nuisance_matrix(run_lengths, tr, high_pass=None, confounds=(), confound_columns=()):
    """Drift basis and confounds side by side, (sum(run_lengths), n_columns); ``None`` when empty."""
    parts = [drift_basis(run_lengths, tr, high_pass)]
    if confounds:
        parts.append(load_confounds(confounds, confound_columns, run_lengths))
    N = np.concatenate(parts, axis=1)
    return N if N.shape[1] else None


def residualize(A, runs, nuisance, out=None):
    """Project the run intercepts and ``nuisance`` out of the columns of ``A`` → ``(residuals, rank)``.

    ``rank`` is the number of independent nuisance columns *beyond* the intercepts (what the
    residual degrees of freedom lose). Works in column blocks; ``out=A`` overwrites ``A``.
    """
    A = np.asarray(A)
    T = A.shape[0]
    _, bounds = check_runs(runs, T)
    D = np.zeros((T, len(bounds)))
    for r, (a, b) in enumerate(bounds):
        D[a:b, r] = 1.0
    F = D if nuisance is None else np.concatenate([D, np.asarray(nuisance, np.float64)], axis=1)
    U, sv, _ = np.linalg.svd(F, full_matrices=False)
    U = U[:, sv > sv[0] * 1e-10]
    rank = U.shape[1] - len(bounds)
    if out is None:
        out = np.empty_like(A, dtype=np.result_type(A.dtype, np.float32))
    for c0 in range(0, A.shape[1], 16384):
        sl = slice(c0, min(A.shape[1], c0 + 16384))
        blk = np.asarray(A[:, sl], dtype=np.float64)
        out[:, sl] = blk - U @ (U.T @ blk)
    return out, int(rank)
