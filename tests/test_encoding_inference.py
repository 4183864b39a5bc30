"""Inference on encoding maps: fit_and_infer against the steps it chains, the torch shift
null against the numpy one, per-map FDR and the random-effects second level."""

import numpy as np
import pytest
from scipy import stats as sps

from vlmbrain.encoding import (
    VoxelwiseEncoder,
    fdr_per_map,
    fit_and_infer,
    second_level,
    shift_null,
)
from vlmbrain.errors import ConfigError
from vlmbrain.stats import fdr_bh


def _data(rng, T=240, K=3, V=60, lens=(80, 80, 80)):
    runs = np.repeat(np.arange(len(lens)), lens)
    X = rng.standard_normal((T, K))
    Y = rng.standard_normal((T, V))
    Y[:, :15] += 0.5 * X[:, [0]]
    return X, Y.astype(np.float32), runs


def _reference(X, Y, runs, method, n_shifts, null_pvalues, correction, q, seed):
    """Each step written out: encoder, shift null or parametric tests, correction."""
    enc = VoxelwiseEncoder(method=method).fit(X, Y, runs=runs)
    coef = enc.coef_
    t = enc.tvalues_ if enc.tvalues_ is not None else np.full_like(coef, np.nan)
    arrays = {}
    if n_shifts > 0:
        legacy = null_pvalues == "calibrated"
        null = shift_null(X, Y, runs=runs, n_shifts=n_shifts, random_state=seed, chunk_size=512,
                          exact_nuisance=not legacy, pooled=null_pvalues == "pooled")
        p, p_r = null.p_t, null.p_r2
        if null_pvalues != "empirical":
            arrays["p_empirical"], arrays["p_r_empirical"] = p, p_r
            p, p_r = (null.p_t_calibrated, null.p_r2_calibrated) if legacy else (null.p_t_pooled, null.p_r2_pooled)
        if correction == "fwer":
            qb, qr = null.fwer_t(q)[1], null.fwer_r2(q)[1]
    else:
        dof = X.shape[0] - X.shape[1] - 3
        p = 2 * sps.t.sf(np.abs(t), dof)
        r2 = np.clip(enc.r2_.astype(np.float64), 0, 1 - 1e-12)
        p_r = sps.f.sf((r2 / X.shape[1]) / ((1 - r2) / dof), X.shape[1], dof)
    if correction == "fdr":
        qb = np.vstack([fdr_bh(pk, alpha=q)[1] for pk in p])
        qr = fdr_bh(p_r, alpha=q)[1]
    arrays.update(beta=coef, t=t, p=p, q=qb, r_cv=enc.cv_r_, p_r=p_r, q_r=qr)
    if enc.cv_r2_ is not None:
        arrays["r2_cv"] = enc.cv_r2_
    if getattr(enc, "alphas_", None) is not None:
        arrays["alpha"] = enc.alphas_.astype(np.float32)
    return arrays


@pytest.mark.parametrize("method,n_shifts,null_pvalues,correction", [
    ("ols", 50, "calibrated", "fdr"),
    ("ols", 50, "pooled", "fdr"),
    ("ols", 50, "empirical", "fwer"),
    ("ar1", 0, "calibrated", "fdr"),
    ("ridge", 40, "calibrated", "fwer"),
])
def test_fit_and_infer_equals_its_steps(rng, method, n_shifts, null_pvalues, correction):
    X, Y, runs = _data(rng)
    res = fit_and_infer(X, Y, runs, method=method, n_shifts=n_shifts, null_pvalues=null_pvalues,
                        correction=correction, q=0.05, random_state=4)
    ref = _reference(X, Y, runs, method, n_shifts, null_pvalues, correction, 0.05, 4)
    assert sorted(res.arrays) == sorted(ref)
    for name, want in ref.items():
        np.testing.assert_array_equal(res.arrays[name], want, err_msg=name)
    info = res.info
    assert info["method"] == method and info["n_timepoints"] == 240 and info["n_atoms"] == 3
    assert info["correction"] == correction and info["q"] == 0.05
    if n_shifts:
        assert info["null"] == "circular-shift" and info["n_shifts"] == n_shifts
        assert info["null_pvalues"] == null_pvalues and info["null_pvalues_method"]
        assert ("note" in info) == (method != "ols")
    else:
        assert info["null"] == "parametric" and info["dof"] == 240 - 3 - 3


def test_fit_and_infer_configuration_errors(rng):
    X, Y, runs = _data(rng, V=10)
    with pytest.raises(ConfigError, match="ridge has no t-statistics"):
        fit_and_infer(X, Y, runs, method="ridge", n_shifts=0)
    with pytest.raises(ConfigError, match="'fwer' uses the max-statistic of the shift null"):
        fit_and_infer(X, Y, runs, method="ols", n_shifts=0, correction="fwer")


def test_fit_and_infer_passes_the_backend_to_the_null(rng, monkeypatch):
    pytest.importorskip("torch")
    import vlmbrain.encoding.inference as inference

    seen = {}
    real = inference.shift_null

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **{**kwargs, "device": "cpu"})

    monkeypatch.setattr(inference, "shift_null", spy)
    X, Y, runs = _data(rng, V=20)
    res = fit_and_infer(X, Y, runs, n_shifts=30, backend="torch")
    assert seen["backend"] == "torch"
    assert "p_empirical" in res.arrays      # calibrated p: the torch null has its moments


def test_torch_shift_null_returns_the_numpy_null_moments(rng):
    pytest.importorskip("torch")
    X, Y, runs = _data(rng, V=45)
    a = shift_null(X, Y, runs, n_shifts=60, random_state=1)
    b = shift_null(X, Y, runs, n_shifts=60, random_state=1, backend="torch", device="cpu", chunk_size=16)
    np.testing.assert_array_equal(a.shifts, b.shifts)
    for name in ("beta", "tvalues", "r2"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ("null_z_var", "null_r2_mean", "null_r2_var", "p_t_calibrated", "p_r2_calibrated"):
        want, got = getattr(a, name), getattr(b, name)
        assert got is not None and got.shape == want.shape, name
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7, err_msg=name)
    assert np.abs(a.p_beta - b.p_beta).max() <= 1.5 / 61     # float32 ties may differ by one
    np.testing.assert_allclose(b.null_max_z, a.null_max_z, rtol=1e-4)


def test_fdr_per_map_is_bh_per_row(rng):
    p = rng.uniform(size=(4, 100)) ** 2
    q = fdr_per_map(p, 0.05)
    assert q.shape == p.shape
    for k in range(4):
        np.testing.assert_array_equal(q[k], fdr_bh(p[k], alpha=0.05)[1])
    assert not np.allclose(q, fdr_bh(p, alpha=0.05)[1])     # not one family over all atoms


def test_second_level_is_a_one_sample_t_across_subjects(tmp_path, rng):
    S, K, V = 5, 2, 30
    betas = rng.normal(0.2, 1.0, size=(S, K, V)).astype(np.float32)
    rs = np.tanh(rng.normal(0.1, 0.2, size=(S, V))).astype(np.float32)
    bp, rp = [], []
    for s in range(S):
        np.save(tmp_path / f"b{s}.npy", betas[s])
        np.save(tmp_path / f"r{s}.npy", rs[s])
        bp.append(tmp_path / f"b{s}.npy")
        rp.append(tmp_path / f"r{s}.npy")
    res = second_level(bp, rp)
    ref = sps.ttest_1samp(betas.astype(np.float64), 0.0, axis=0)
    np.testing.assert_allclose(res["p"], ref.pvalue, rtol=1e-6)
    ref_r = sps.ttest_1samp(np.arctanh(rs.astype(np.float64)), 0.0, axis=0, alternative="greater")
    np.testing.assert_allclose(res["p_r"], ref_r.pvalue, rtol=1e-6)
    assert np.all(res["n"] == S)

