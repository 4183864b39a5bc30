"""The encoder's column chunks: solved in parallel threads, equal to one chunk and to the explicit algebra."""

import numpy as np
import pytest

from vlmbrain.encoding import VoxelwiseEncoder
from vlmbrain.encoding.solvers import ols_algebra, solve_ols
from vlmbrain.encoding.statistics import Design, column_slice, fold_r, solve_sym
from vlmbrain.errors import DimensionError


def _data(seed=0, T=240, K=6, V=900):
    rng = np.random.default_rng(seed)
    runs = np.repeat(np.arange(3), T // 3)
    X = rng.standard_normal((T, K)).astype(np.float32)
    Y = (X @ rng.standard_normal((K, V)) * 0.3 + rng.standard_normal((T, V))).astype(np.float32)
    return X, Y, runs


@pytest.mark.parametrize("method", ["ols", "ar1", "ridge"])
def test_many_chunks_on_threads_equal_one_chunk(method, monkeypatch):
    """chunk_size 128 over 900 columns (8 chunks, 2 worker threads) gives the one-chunk numbers."""
    import vlmbrain.encoding.estimator as est

    monkeypatch.setattr(est, "_blas_threads", lambda ctl: 2)
    X, Y, runs = _data()
    one = VoxelwiseEncoder(method, chunk_size=10_000).fit(X, Y, runs=runs)
    many = VoxelwiseEncoder(method, chunk_size=128).fit(X, Y, runs=runs)
    for name in ("coef_", "intercepts_", "r2_", "cv_r_", "cv_r2_"):
        np.testing.assert_allclose(getattr(many, name), getattr(one, name), rtol=1e-5, atol=1e-6, err_msg=name)
    if one.tvalues_ is not None:
        np.testing.assert_allclose(many.tvalues_, one.tvalues_, rtol=1e-5, atol=1e-5)


def test_ols_against_lstsq_with_run_intercepts():
    X, Y, runs = _data(1)
    enc = VoxelwiseEncoder("ols", chunk_size=100).fit(X, Y, runs=runs)
    D = np.zeros((len(runs), 3))
    D[np.arange(len(runs)), runs] = 1
    B = np.linalg.lstsq(np.hstack([X.astype(float), D]), Y.astype(float), rcond=None)[0]
    np.testing.assert_allclose(enc.coef_, B[:X.shape[1]], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(enc.intercepts_, B[X.shape[1]:], rtol=1e-4, atol=1e-5)


def test_fold_products_equal_the_explicit_refit():
    """β_f and β_fᵀG_fβ_f from the precomputed [H⁻¹; S H⁻¹] equal a refit on the other runs."""
    X, Y, runs = _data(2)
    bounds = [(0, 80), (80, 160), (160, 240)]
    st = column_slice(Design(X.astype(np.float64), bounds).all_stats(Y, False, None), slice(None))
    fast = solve_ols(st, dof=240 - 6 - 3, do_cv=True, algebra=ols_algebra(st.G))
    Gs, Cs, _ = st.totals()
    for f in range(3):
        bf, _ = solve_sym(Gs - st.G[f], Cs - st.C[f])
        r, r2 = fold_r(bf, st.C[f], st.G[f], st.yy[f])
        np.testing.assert_allclose(fast.cv_r[f], r, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(fast.cv_r2[f], r2, rtol=1e-10, atol=1e-12)
    # and by hand: held-out run 0 predicted by the OLS fit of runs 1, 2 (with their intercepts)
    keep = runs != 0
    D = np.zeros((keep.sum(), 2))
    D[np.arange(keep.sum()), runs[keep] - 1] = 1
    B = np.linalg.lstsq(np.hstack([X[keep].astype(float), D]), Y[keep].astype(float), rcond=None)[0][:6]
    pred = X[~keep].astype(float) @ B
    y0 = Y[~keep].astype(float)
    r_hand = [np.corrcoef(pred[:, j], y0[:, j])[0, 1] for j in range(5)]
    np.testing.assert_allclose(fast.cv_r[0][:5], r_hand, atol=1e-5)


def test_non_finite_columns_in_several_chunks_are_all_named():
    X, Y, runs = _data(3)
    Y[5, 10] = np.nan
    Y[7, 700] = np.inf
    with pytest.raises(DimensionError, match=r"in 2 column\(s\) \(first: \[10, 700\]\)"):
        VoxelwiseEncoder("ols", chunk_size=128).fit(X, Y, runs=runs)


def test_training_data_is_one_gather_of_the_training_rows_and_valid_columns(tmp_path):
    """The encoding stage's data: equal to data[mask][:, valid], a new writable float32 array, one copy."""
    import tracemalloc

    from vlmbrain.stages.encoding import training_data

    rng = np.random.default_rng(0)
    np.save(tmp_path / "d.npy", rng.standard_normal((400, 3000)).astype(np.float32))
    data = np.load(tmp_path / "d.npy", mmap_mode="r")
    for mask in (rng.random(400) < 0.8, np.ones(400, bool)):
        for valid in (rng.random(3000) < 0.9, np.ones(3000, bool)):
            got = training_data(data, mask, valid)
            np.testing.assert_array_equal(got, np.asarray(data)[mask][:, valid])
            assert got.dtype == np.float32 and got.flags.writeable and not np.shares_memory(got, data)
    mask, valid = rng.random(400) < 0.8, rng.random(3000) < 0.9
    tracemalloc.start()
    got = training_data(data, mask, valid)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1.2 * got.nbytes


def test_loro_conditions_are_those_of_each_training_design():
    """Each fold's number is numpy's condition number of the run-centred atoms of the other runs,
    squared (Gram); atoms collinear within the training runs make the fold singular (inf)."""
    from vlmbrain.encoding.statistics import loro_conditions

    X, _, runs = _data(3, K=5)
    X = X.astype(np.float64)
    want = []
    for f in range(3):
        Xc = np.concatenate([X[runs == r] - X[runs == r].mean(0) for r in range(3) if r != f])
        want.append(np.linalg.cond(Xc) ** 2)
    np.testing.assert_allclose(loro_conditions(X, runs), want, rtol=1e-8)
    # run 2 alone: atom 4 a combination of atoms 1 and 2 there → the fold trained on runs 1 and 2
    # is not singular (run 1 is generic); with 2 runs, training on the collinear run alone is
    X2, runs2 = X[runs < 2].copy(), runs[runs < 2]
    X2[runs2 == 1, 4] = 2 * X2[runs2 == 1, 1] - X2[runs2 == 1, 2]
    conds = loro_conditions(X2, runs2)
    assert conds[0] == np.inf and np.isfinite(conds[1]) and conds[1] < 100
    assert loro_conditions(X, np.zeros(len(runs), int)) == []


def test_ill_conditioned_folds_are_named_in_one_warning(caplog):
    from vlmbrain.artifacts import Unit
    from vlmbrain.stages.encoding import _warn_ill_conditioned_folds

    with caplog.at_level("WARNING", logger="vlmbrain"):
        _warn_ill_conditioned_folds(Unit("toy-clip", ["text"], ["text"]), [12.0, 3.4e7, None])
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 1
    assert "toy-clip/text" in msgs[0] and "without run 2 (3.4e+07)" in msgs[0]
    assert "without run 3 (singular)" in msgs[0] and "without run 1" not in msgs[0]
    caplog.clear()
    with caplog.at_level("WARNING", logger="vlmbrain"):
        _warn_ill_conditioned_folds(Unit("toy-clip", ["text"], ["text"]), [12.0, 9e5])
    assert not caplog.records
