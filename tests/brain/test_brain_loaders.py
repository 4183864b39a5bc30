"""fMRI loaders: CIFTI dtseries, NIfTI + mask, .npy; per-run z-scoring; validation errors."""

import logging

import nibabel as nib
import numpy as np
import pytest
from nibabel.cifti2 import cifti2_axes as ca

from vlmbrain.brain.loaders import detect_kind, load_cifti, load_nifti, load_runs
from vlmbrain.brain.space import BrainSpace
from vlmbrain.errors import ConfigError, DimensionError, InputFileError


def small_axis(n_left=6, n_right=5):
    left = ca.BrainModelAxis.from_surface(np.arange(n_left) * 2, 40, "CortexLeft")
    right = ca.BrainModelAxis.from_surface(np.arange(n_right) * 3, 40, "CortexRight")
    vox = ca.BrainModelAxis("ThalamusLeft", voxel=np.array([[1, 1, 1], [1, 2, 1], [2, 1, 1]]),
                            affine=np.eye(4), volume_shape=(4, 4, 4))
    return left + right + vox


def write_dtseries(path, data, axis=None, tr=1.0):
    axis = small_axis() if axis is None else axis
    series = ca.SeriesAxis(start=0.0, step=tr, size=data.shape[0], unit="SECOND")
    img = nib.Cifti2Image(np.asarray(data, np.float32), header=(series, axis))
    img.nifti_header.set_intent("ConnDenseSeries")
    nib.save(img, str(path))
    return path


def zscore_ref(x):
    x = np.asarray(x, np.float64)
    return (x - x.mean(0)) / x.std(0)


def test_detect_kind():
    assert detect_kind("sub-01_task-movie_space-fsLR_den-91k_bold.dtseries.nii") == "cifti"
    assert detect_kind("x_Atlas_MSMAll_hp2000_clean.dtseries.nii") == "cifti"
    assert detect_kind("bold.nii.gz") == "nifti"
    assert detect_kind("a.npy") == "npy"
    with pytest.raises(InputFileError, match=r"run.mat: unsupported fMRI file type"):
        detect_kind("run.mat")


def test_load_cifti_keeps_axis_and_tr(tmp_path, rng):
    data = rng.standard_normal((12, 14))
    p = write_dtseries(tmp_path / "r1.dtseries.nii", data, tr=0.72)
    run = load_cifti(p)
    assert run.tr == pytest.approx(0.72)
    assert run.space.axis == small_axis()
    np.testing.assert_allclose(run.data, data.astype(np.float32))
    with pytest.raises(DimensionError, match="has 14 grayordinates but 91282 were expected"):
        load_cifti(p, n_grayordinates=91282)


def test_load_runs_cifti_zscores_per_run(tmp_path, rng):
    a = rng.standard_normal((10, 14)) * 5 + 3
    b = rng.standard_normal((8, 14)) * 2 - 1
    pa = write_dtseries(tmp_path / "a.dtseries.nii", a)
    pb = write_dtseries(tmp_path / "b.dtseries.nii", b)
    bd = load_runs([pa, pb], tr=1.0, expected_trs=[10, 8], run_names=["MOVIE1", "MOVIE2"])
    assert bd.data.shape == (18, 14) and bd.data.dtype == np.float32
    assert bd.runs.tolist() == [0] * 10 + [1] * 8 and bd.run_names == ["MOVIE1", "MOVIE2"]
    np.testing.assert_allclose(bd.data[:10], zscore_ref(a), atol=1e-5)
    np.testing.assert_allclose(bd.data[10:], zscore_ref(b), atol=1e-5)
    assert bd.valid.all() and bd.space.kind == "cifti" and bd.tr == 1.0
    assert bd.meta["hrf_shifted"] is False


def test_load_runs_91k_dtseries(tmp_path, rng):
    hcp = BrainSpace.hcp91k()
    data = rng.standard_normal((4, 91282)).astype(np.float32)
    p = write_dtseries(tmp_path / "sub_Atlas_MSMAll_hp2000_clean.dtseries.nii", data, hcp.axis)
    bd = load_runs([p], tr=1.0, expected_trs=[4], n_grayordinates=91282)
    assert bd.space == hcp and bd.data.shape == (4, 91282)


def test_nan_and_constant_grayordinates_invalid(tmp_path, rng, caplog):
    a = rng.standard_normal((10, 14))
    b = rng.standard_normal((8, 14))
    a[3, 2] = np.nan  # NaN in run 1
    b[:, 5] = 7.0  # constant in run 2 only
    pa = write_dtseries(tmp_path / "a.dtseries.nii", a)
    pb = write_dtseries(tmp_path / "b.dtseries.nii", b)
    with caplog.at_level(logging.WARNING, logger="vlmbrain"):
        bd = load_runs([pa, pb], tr=1.0)
    assert np.flatnonzero(~bd.valid).tolist() == [2, 5]
    assert np.all(bd.data[:, [2, 5]] == 0) and np.all(np.isfinite(bd.data))
    assert "2 of 14 grayordinates are NaN (1 run-columns) or constant (1 run-columns)" in caplog.text
    assert bd.meta["n_invalid"] == 2


def test_tr_mismatch_names_both(tmp_path, rng):
    p = write_dtseries(tmp_path / "a.dtseries.nii", rng.standard_normal((5, 14)), tr=0.72)
    with pytest.raises(ConfigError, match=r"a.dtseries.nii: the file's TR is 0.72 s but the configured TR is 1 s"):
        load_runs([p], tr=1.0)


def test_tr_count_mismatch_names_run(tmp_path, rng):
    p = write_dtseries(tmp_path / "a.dtseries.nii", rng.standard_normal((5, 14)))
    with pytest.raises(DimensionError, match=r"stimulus run 1 has 921 TRs but fMRI run MOVIE1 .*has 5 TRs"):
        load_runs([p], tr=1.0, expected_trs=[921], run_names=["MOVIE1"])
    with pytest.raises(DimensionError, match="the stimulus has 2 runs but 1 fMRI runs"):
        load_runs([p], tr=1.0, expected_trs=[5, 5])


def test_space_mismatch_between_runs(tmp_path, rng):
    pa = write_dtseries(tmp_path / "a.dtseries.nii", rng.standard_normal((5, 14)))
    pb = write_dtseries(tmp_path / "b.dtseries.nii", rng.standard_normal((5, 12)), axis=small_axis(4, 5))
    with pytest.raises(DimensionError, match="b.dtseries.nii: its brain space .*all runs must share one space"):
        load_runs([pa, pb], tr=1.0)


def test_truncated_and_unreadable(tmp_path, rng):
    p = write_dtseries(tmp_path / "a.dtseries.nii", rng.standard_normal((20, 14)))
    raw = p.read_bytes()
    p.write_bytes(raw[:-100])
    with pytest.raises(InputFileError, match=r"a.dtseries.nii: file is truncated"):
        load_runs([p], tr=1.0)
    q = tmp_path / "junk.dtseries.nii"
    q.write_bytes(b"\x00" * 50)
    with pytest.raises(InputFileError, match="junk.dtseries.nii: not a readable CIFTI-2 file"):
        load_runs([q], tr=1.0)
    with pytest.raises(InputFileError, match="missing.dtseries.nii: file not found"):
        load_runs([tmp_path / "missing.dtseries.nii"], tr=1.0)


def test_nifti_with_mask_matches_nilearn(tmp_path, rng):
    from nilearn.maskers import NiftiMasker

    vol = rng.standard_normal((4, 5, 3, 9)).astype(np.float32) + 10
    img = nib.Nifti1Image(vol, np.diag([2.0, 2.0, 2.0, 1.0]))
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = 1.5
    nib.save(img, str(tmp_path / "bold.nii.gz"))
    mask = np.zeros((4, 5, 3), np.uint8)
    mask[1:3, 1:4, :] = 1
    mimg = nib.Nifti1Image(mask, img.affine)
    run = load_nifti(tmp_path / "bold.nii.gz", mask=mimg)
    assert run.tr == pytest.approx(1.5) and run.space.kind == "nifti" and run.space.n_grayordinates == 18
    ref = NiftiMasker(mask_img=mimg, standardize=None).fit().transform(str(tmp_path / "bold.nii.gz"))
    np.testing.assert_allclose(run.data, ref, rtol=1e-6)
    bd = load_runs([tmp_path / "bold.nii.gz"], tr=1.5, mask=mimg)
    np.testing.assert_allclose(bd.data, zscore_ref(ref), atol=1e-4)
    # maps go back into volumes
    back = bd.space.to_nifti(bd.data[0]).get_fdata()
    np.testing.assert_allclose(back[mask.astype(bool)], bd.data[0], atol=1e-6)


def test_nifti_tr_in_msec(tmp_path, rng):
    img = nib.Nifti1Image(rng.standard_normal((3, 3, 3, 5)).astype(np.float32), np.eye(4))
    img.header.set_xyzt_units("mm", "msec")
    img.header["pixdim"][4] = 800.0
    nib.save(img, str(tmp_path / "b.nii"))
    run = load_nifti(tmp_path / "b.nii", mask=nib.Nifti1Image(np.ones((3, 3, 3), np.uint8), np.eye(4)))
    assert run.tr == pytest.approx(0.8)


def test_npy_runs_and_split(tmp_path, rng):
    a = rng.standard_normal((10, 6))
    np.save(tmp_path / "all.npy", a)
    bd = load_runs([tmp_path / "all.npy"], tr=2.0, run_lengths=[4, 6], expected_trs=[4, 6])
    assert bd.run_names == ["run-1", "run-2"] and bd.space.kind == "array"
    np.testing.assert_allclose(bd.data[:4], zscore_ref(a[:4]), atol=1e-5)
    np.testing.assert_allclose(bd.data[4:], zscore_ref(a[4:]), atol=1e-5)
    with pytest.raises(DimensionError, match="run_lengths sum to 12 TRs but the file has 10"):
        load_runs([tmp_path / "all.npy"], tr=2.0, run_lengths=[4, 8])
    np.save(tmp_path / "bad.npy", np.zeros(5))
    with pytest.raises(DimensionError, match=r"bad.npy: expected a 2-D array"):
        load_runs([tmp_path / "bad.npy"], tr=2.0)
    with pytest.raises(DimensionError, match="has 6 columns but the given space has 91282"):
        load_runs([tmp_path / "all.npy"], tr=2.0, space=BrainSpace.hcp91k())


def test_no_zscore_keeps_values(tmp_path, rng):
    a = rng.standard_normal((10, 6)) + 4
    np.save(tmp_path / "r.npy", a)
    bd = load_runs([tmp_path / "r.npy"], tr=1.0, zscore=False, hrf_shifted=True)
    np.testing.assert_allclose(bd.data, a.astype(np.float32))
    assert bd.meta["hrf_shifted"] is True and bd.meta["zscored"] is False


def test_load_runs_memory_is_output_plus_one_run(tmp_path, rng):
    import tracemalloc

    import vlmbrain.signal  # noqa: F401  (import-time allocations are not the loader's)

    paths = []
    for k in range(4):
        p = tmp_path / f"r{k}.npy"
        np.save(p, rng.standard_normal((40, 3000)))  # float64 on disk: reading makes a float32 copy
        paths.append(p)
    out_bytes = 4 * 40 * 3000 * 4
    tracemalloc.start()
    try:
        bd = load_runs(paths, tr=1.0, chunk_size=256)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert bd.data.shape == (160, 3000)
    one_run, chunk_temps = out_bytes / 4, 16 * 40 * 256 * 4
    # output + one float32 run + z-scoring temporaries (a concatenating loader would need >= 2x)
    assert peak < out_bytes + one_run + chunk_temps, peak / out_bytes
    np.testing.assert_allclose(bd.data[40:80], zscore_ref(np.load(paths[1])), atol=1e-5)


def test_170k_sized_dtseries(tmp_path, rng):
    # the 1.6 mm HCP space has 170,494 grayordinates; a synthetic axis of that size is enough to
    # check that nothing assumes 91k (loader, grayordinate check, inspect label)
    from vlmbrain.inspect import inspect_path

    axis = (ca.BrainModelAxis.from_surface(np.arange(85247), 100000, "CortexLeft")
            + ca.BrainModelAxis.from_surface(np.arange(85247), 100000, "CortexRight"))
    data = rng.standard_normal((3, 170494)).astype(np.float32)
    p = write_dtseries(tmp_path / "sub_Atlas_1.6mm_MSMAll_hp2000_clean.dtseries.nii", data, axis)
    bd = load_runs([p], tr=1.0, n_grayordinates=170494)
    assert bd.data.shape == (3, 170494) and bd.space.axis == axis
    assert inspect_path(p)["space"] == "HCP 170k, 1.6 mm"
    with pytest.raises(DimensionError, match="has 170494 grayordinates but 91282 were expected"):
        load_runs([p], tr=1.0, n_grayordinates=91282)
