import numpy as np
import pytest
from nilearn.glm.first_level import compute_regressor
from nilearn.glm.first_level.hemodynamic_models import spm_hrf

from vlmbrain.errors import ConfigError, DimensionError
from vlmbrain.signal import convolve_hrf, hrf_kernel, process_timecourses, tr_kernel, zscore_runs


def test_kernel_is_nilearn_spm_and_peaks_near_5s():
    tr, ovs = 1.0, 16
    k = hrf_kernel(tr, "spm", oversampling=ovs)
    ref = spm_hrf(tr, oversampling=ovs)
    np.testing.assert_allclose(k, ref / ref.sum(), rtol=1e-12)
    peak_s = np.argmax(k) * tr / ovs
    assert 4.0 <= peak_s <= 6.5


@pytest.mark.parametrize("model", ["spm", "glover"])
def test_block_convolution_matches_nilearn_compute_regressor(model):
    tr, n = 1.0, 120
    frame_times = np.arange(n) * tr
    onsets = np.array([10.0, 50.0, 90.0])
    durations = np.array([8.0, 12.0, 5.0])
    amps = np.array([1.0, -0.5, 2.0])
    boxcar = np.zeros(n)
    for o, d, a in zip(onsets, durations, amps):
        boxcar[int(o) : int(o + d)] = a
    ours = convolve_hrf(boxcar[:, None], np.zeros(n, int), tr, model=model, oversampling=50)[:, 0]
    ref, _ = compute_regressor(np.vstack([onsets, durations, amps]), model, frame_times, oversampling=50)
    ref = ref[:, 0]
    # nilearn's kernels are not unit-sum: compare shapes after scaling by least squares
    scale = ref @ ours / (ours @ ours)
    assert np.corrcoef(ours, ref)[0, 1] > 0.9999
    np.testing.assert_allclose(scale * ours, ref, atol=2e-3 * np.abs(ref).max())


def test_runs_do_not_bleed():
    runs = np.repeat([0, 1], 40)
    x = np.zeros((80, 1))
    x[30:40] = 1.0  # end of run 0
    y = convolve_hrf(x, runs, 1.0)
    assert np.all(y[40:] == 0.0)
    assert y[39, 0] > 0


def test_lag_and_none_modes():
    runs = np.repeat([0, 1], 5)
    x = np.arange(10, dtype=float)[:, None]
    np.testing.assert_array_equal(convolve_hrf(x, runs, 1.0, model="none"), x)
    lagged = convolve_hrf(x, runs, 1.0, model="lag", lag=2)[:, 0]
    np.testing.assert_array_equal(lagged, [0, 0, 0, 1, 2, 0, 0, 5, 6, 7])


def test_zscore_runs_and_constant_detection(rng):
    runs = np.repeat([0, 1, 2], 50)
    X = rng.normal(3.0, 2.0, size=(150, 4))
    X[:50, 2] = 7.0  # constant in run 0 only
    X[5, 3] = np.nan
    Z, valid = zscore_runs(X, runs)
    assert valid.tolist() == [True, True, False, False]
    for r in range(3):
        blk = Z[runs == r][:, :2]
        np.testing.assert_allclose(blk.mean(0), 0, atol=1e-6)
        np.testing.assert_allclose(blk.std(0), 1, atol=1e-5)
    assert np.all(Z[:, 2:] == 0)


def test_process_timecourses_drops_constant(rng):
    runs = np.repeat([0, 1], 60)
    X = rng.normal(size=(120, 5))
    X[:, 1] = 1.0
    Z, kept = process_timecourses(X, runs, 1.0)
    assert kept.tolist() == [True, False, True, True, True]
    assert Z.shape == (120, 4) and Z.dtype == np.float32


def test_errors():
    with pytest.raises(ConfigError, match="signal.hrf = 'gamma' is not allowed"):
        convolve_hrf(np.zeros((4, 1)), np.zeros(4, int), 1.0, model="gamma")
    with pytest.raises(DimensionError, match="X has 4 timepoints but runs has 3"):
        convolve_hrf(np.zeros((4, 1)), np.zeros(3, int), 1.0)
    with pytest.raises(DimensionError, match="contiguous"):
        zscore_runs(np.zeros((4, 1)), np.array([0, 1, 0, 1]))


# ------------------------------------------------------------------ streaming over AN chunks
def _oversampled_reference(X, runs, tr, model="spm", oversampling=16):
    """The definition, in float64: each TR held for the TR at tr/oversampling, FFT-convolved
    with the oversampled kernel, read at the start of every TR, run by run."""
    from scipy.signal import fftconvolve

    kernel = hrf_kernel(tr, model, oversampling=oversampling)
    out = np.zeros(X.shape)
    for r in np.unique(runs):
        sl = runs == r
        n = int(sl.sum())
        hi = np.repeat(np.asarray(X[sl], np.float64), oversampling, axis=0)
        out[sl] = fftconvolve(hi, kernel[:, None], mode="full", axes=0)[: n * oversampling][::oversampling]
    return out


@pytest.mark.parametrize("model,tr,ovs", [("spm", 1.0, 16), ("glover", 0.72, 16), ("spm", 2.0, 5), ("spm", 1.5, 1)])
def test_tr_grid_filter_equals_oversampled_convolution(rng, model, tr, ovs):
    runs = np.repeat([0, 1, 2], [70, 50, 40])
    X = rng.standard_normal((160, 30)) * 4 + 10
    h = tr_kernel(tr, model, oversampling=ovs)
    assert h.sum() == pytest.approx(1.0, abs=1e-12)
    ref = _oversampled_reference(X, runs, tr, model, ovs)
    ours = convolve_hrf(X, runs, tr, model=model, oversampling=ovs, chunk_size=7)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=2e-7, atol=1e-6)


def test_process_timecourses_equals_float64_reference_any_chunking(rng):
    runs = np.repeat([0, 1], [90, 110])
    X = (rng.standard_normal((200, 64)).cumsum(0) + 50).astype(np.float32)
    X[:, 5] = 3.0                          # constant
    X[:90, 9] = -1.0                       # constant in run 0 only
    X[17, 20] = np.inf                     # non-finite
    conv = _oversampled_reference(np.nan_to_num(X, posinf=0.0), runs, 1.0)
    ref = np.empty_like(conv)
    for r in (0, 1):
        b = conv[runs == r]
        ref[runs == r] = (b - b.mean(0)) / np.where(b.std(0) > 0, b.std(0), 1)
    keep = np.ones(64, bool)
    keep[[5, 9, 20]] = False
    for chunk in (None, 1, 5, 64, 1000):
        Z, kept = process_timecourses(X, runs, 1.0, chunk_size=chunk)
        np.testing.assert_array_equal(kept, keep)
        assert Z.shape == (200, 61) and Z.dtype == np.float32 and Z.flags.c_contiguous
        np.testing.assert_allclose(Z, ref[:, keep], rtol=0, atol=2e-6)


def test_process_timecourses_writes_npy_and_reads_memmap(rng, tmp_path):
    runs = np.repeat([0, 1], 50)
    X = rng.standard_normal((100, 40)).astype(np.float32)
    X[:, 3] = 0.0
    np.save(tmp_path / "in.npy", X)
    Xm = np.load(tmp_path / "in.npy", mmap_mode="r")
    Z, kept = process_timecourses(Xm, runs, 1.0, hrf="glover", out=tmp_path / "out.npy", chunk_size=6)
    del Z
    ref, kref = process_timecourses(X, runs, 1.0, hrf="glover")
    np.testing.assert_array_equal(kept, kref)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), ref)


def test_column_constant_only_after_convolution_is_compacted(tmp_path):
    # a tiny alternation passes the raw constancy test (SD 3e-8 > 1e-8) but the HRF, a low-pass
    # filter (gain 1e-3 at the Nyquist frequency), leaves it constant: dropped after the convolution
    runs = np.repeat([0, 1], 40)
    X = np.random.default_rng(0).standard_normal((80, 6))
    X[:, 2] = 3e-8 * (-1.0) ** np.arange(80)
    want = [True, True, False, True, True, True]
    for out in (None, tmp_path / "z.npy"):
        Z, kept = process_timecourses(X, runs, 1.0, chunk_size=2, out=out)
        assert kept.tolist() == want
        ref, _ = process_timecourses(X[:, want], runs, 1.0)
        np.testing.assert_array_equal(np.asarray(Z), ref)
        del Z
    _, raw_ok = zscore_runs(X, runs)
    assert raw_ok[2]


def test_memory_bounded_by_output(rng):
    import tracemalloc

    runs = np.repeat([0, 1, 2], 200)
    X = rng.standard_normal((600, 3000)).astype(np.float32)
    tracemalloc.start()
    Z, _ = process_timecourses(X, runs, 1.0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak <= 1.5 * Z.nbytes
