import numpy as np
import pytest
from nilearn.glm.first_level import compute_regressor
from nilearn.glm.first_level.hemodynamic_models import spm_hrf

from vlmbrain.errors import ConfigError, DimensionError
from vlmbrain.signal import convolve_hrf, hrf_kernel, process_timecourses, zscore_runs


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
