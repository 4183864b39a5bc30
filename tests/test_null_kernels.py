"""The compiled kernels of the shift null (numba) against plain numpy and against the numpy
passes of ``shift_null`` they replace."""

import numpy as np
import pytest

from vlmbrain.encoding import _kernels, shift_null

pytest.importorskip("numba")
if not _kernels.available():
    pytest.skip("the kernels are disabled (VLMBRAIN_NUMBA=0)", allow_module_level=True)


def test_slab_kernel_equals_its_definition_in_numpy(rng):
    n, c, K, nb = 23, 5, 7, 3
    Z = rng.standard_normal((n, c, K)).astype(np.float32)
    f = rng.uniform(0.5, 2.0, (n, c)).astype(np.float32)
    T = Z * f[:, :, None]
    # observed |t| with exact ties against null values (|t_s| >= |t| counts a tie)
    t0a = np.abs(rng.standard_normal((c, K))).astype(np.float32)
    t0a[1, 2] = np.abs(T[4, 1, 2])
    t0a[3, 0] = np.abs(T[0, 3, 0])
    blocks = np.minimum(np.arange(n) // 7, nb).astype(np.intp)       # the last 2 shifts: the rest
    centres = np.full(n, -1, np.intp)
    centres[[3, 10, 17]] = np.arange(nb)
    bz = np.zeros((nb + 1, c, K))
    bz[:] = 0.25                                                      # accumulates onto what is there
    cz = np.ones((c, K), np.int32)
    mz = np.full((n, K), -1.0, np.float32)
    czc = np.zeros((nb, c, K), np.float32)
    _kernels.slab_stats(Z, f, t0a, blocks, centres, bz, cz, mz, czc)

    A = np.abs(T)
    np.testing.assert_array_equal(cz, 1 + (A >= t0a[None]).sum(0))
    assert cz[1, 2] >= 2 and cz[3, 0] >= 2
    np.testing.assert_array_equal(mz, A.max(axis=1))
    np.testing.assert_array_equal(czc, A[[3, 10, 17]])
    want = np.full((nb + 1, c, K), 0.25)
    for s in range(n):
        want[blocks[s]] += T[s].astype(np.float64) ** 2
    np.testing.assert_allclose(bz, want, rtol=1e-6)


def test_cross_spectra_kernel_equals_the_polyphase_products(rng):
    d, c, K, F, n, c0 = 3, 6, 5, 41, 2, 3
    Y = (rng.standard_normal((d, c, F)) + 1j * rng.standard_normal((d, c, F))).astype(np.complex64)
    Q = (rng.standard_normal((d, K, F)) + 1j * rng.standard_normal((d, K, F))).astype(np.complex64)
    H = np.full((n, K, F), np.nan, np.complex64)
    _kernels.cross_spectra(np.ascontiguousarray(Y.real), np.ascontiguousarray(Y.imag),
                           np.ascontiguousarray(Q.real), np.ascontiguousarray(Q.imag), c0,
                           H.view(np.float32).reshape(n, K, F, 2))
    want = np.einsum("pjf,pkf->jkf", Y[:, c0:c0 + n].astype(np.complex128), Q.astype(np.complex128))
    np.testing.assert_allclose(H, want, rtol=0, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("nuisance", [False, True])
def test_shift_null_is_the_same_with_and_without_the_kernel(rng, monkeypatch, nuisance):
    T, K, V = 300, 4, 90
    runs = np.repeat([0, 1, 2], 100)
    X = rng.standard_normal((T, K)).cumsum(0)
    Y = rng.standard_normal((T, V)).astype(np.float32)
    Y[:, :10] += 0.3 * X[:, :1].astype(np.float32)
    kw = dict(runs=runs, n_shifts=200, random_state=3, chunk_size=16, n_jobs=2)
    if nuisance:
        kw["nuisance"] = np.stack([np.cos(np.pi * (np.arange(T) % 100 + 0.5) / 100) * (runs == r)
                                   for r in range(3)], 1)
    fast = shift_null(X, Y, **kw)
    monkeypatch.setattr(_kernels, "available", lambda: False)
    ref = shift_null(X, Y, **kw)
    # the kernels' cross-spectra round differently from numpy's complex products (float32,
    # ~1e-7 relative), so a null value within rounding of the observed one may fall on the
    # other side: counts differ by at most one, and almost nowhere
    S = fast.n_shifts
    for a, b in ((fast.p_beta, ref.p_beta), (fast.p_r2, ref.p_r2)):
        dc = np.abs(a - b) * (S + 1)
        assert dc.max() <= 1.0 + 1e-6 and np.mean(dc > 0.5) <= 2e-3
    np.testing.assert_allclose(fast.null_max_z, ref.null_max_z, rtol=1e-5)
    np.testing.assert_allclose(fast.null_max_r2, ref.null_max_r2, rtol=1e-5)
    np.testing.assert_allclose(fast.null_z_var, ref.null_z_var, rtol=1e-5)
    for a, b in zip(fast.pvalues("pooled"), ref.pvalues("pooled")):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-9)
    assert np.any(fast.p_t_pooled[0, :10] < 1e-3)          # the planted columns stay detected
