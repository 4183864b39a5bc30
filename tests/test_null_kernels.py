"""The compiled slab pass of the shift null (numba) against plain numpy and against the numpy
passes of ``shift_null`` it replaces."""

import numpy as np
import pytest

from vlmbrain.encoding import _kernels, shift_null

pytest.importorskip("numba")


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
    monkeypatch.setattr(_kernels, "numba", None)
    assert not _kernels.available()
    ref = shift_null(X, Y, **kw)
    # counts and maxima are the same comparisons of the same float32 values
    np.testing.assert_array_equal(fast.p_beta, ref.p_beta)
    np.testing.assert_array_equal(fast.p_r2, ref.p_r2)
    np.testing.assert_array_equal(fast.null_max_z, ref.null_max_z)
    np.testing.assert_array_equal(fast.null_max_r2, ref.null_max_r2)
    # block sums of t² accumulate in float64 (numpy: float32 within a slab's part of a block)
    np.testing.assert_allclose(fast.null_z_var, ref.null_z_var, rtol=2e-6)
    for a, b in zip(fast.pvalues("pooled"), ref.pvalues("pooled")):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-9)
    assert np.any(fast.p_t_pooled[0, :10] < 1e-3)          # the planted columns stay detected
