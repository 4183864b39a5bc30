"""The CIFTI-2 writers and the map reader against nibabel's own ``Cifti2Image`` path.

vlmbrain writes dense CIFTI files without the ``Cifti2Image`` wrapper and reads its maps through
the NIfTI-2 container (the XML stays unparsed): both must give exactly what nibabel gives.
"""

import filecmp

import nibabel as nib
import numpy as np
import pytest
from nibabel.cifti2 import cifti2_axes

from vlmbrain.artifacts import read_map, write_map
from vlmbrain.brain.space import BrainSpace
from vlmbrain.errors import InputFileError


def _nibabel_save(arr, row_axis, space, intent, path):
    img = nib.Cifti2Image(arr, header=(row_axis, space.axis))
    img.nifti_header.set_intent(intent)
    nib.save(img, str(path))
    return path


@pytest.fixture(scope="module")
def hcp():
    return BrainSpace.hcp91k()


def test_dscalar_dtseries_dlabel_are_byte_identical_to_nibabel(tmp_path, rng, hcp):
    maps = rng.standard_normal((3, 91282)).astype(np.float32)
    maps[1, :7] = np.nan
    names = ["beta", "t", "p"]
    ours = hcp.to_dscalar(maps, tmp_path / "ours.dscalar.nii", names=names)
    ref = _nibabel_save(maps, cifti2_axes.ScalarAxis(names), hcp, "ConnDenseScalar", tmp_path / "ref.dscalar.nii")
    assert filecmp.cmp(ours, ref, shallow=False)

    ours = hcp.to_dtseries(maps, tmp_path / "ours.dtseries.nii", tr=0.72, start=1.0)
    series = cifti2_axes.SeriesAxis(start=1.0, step=0.72, size=3, unit="SECOND")
    ref = _nibabel_save(maps, series, hcp, "ConnDenseSeries", tmp_path / "ref.dtseries.nii")
    assert filecmp.cmp(ours, ref, shallow=False)

    labels = rng.integers(0, 3, size=(1, 91282))
    table = {1: ("a", (1.0, 0.0, 0.0, 1.0)), 2: ("b", (0.0, 0.0, 1.0, 1.0))}
    ours = hcp.to_dlabel(labels, tmp_path / "ours.dlabel.nii", table, names=["nets"])
    full = {**table, 0: ("???", (1.0, 1.0, 1.0, 0.0))}   # the writer adds the unlabelled key last
    ref = _nibabel_save(labels.astype(np.float32), cifti2_axes.LabelAxis(["nets"], [full]), hcp, "ConnDenseLabel",
                        tmp_path / "ref.dlabel.nii")
    assert filecmp.cmp(ours, ref, shallow=False)
    # and nibabel reads ours back as the same brain models, rows and values
    img = nib.load(str(tmp_path / "ours.dscalar.nii"))
    assert img.header.get_axis(1) == hcp.axis
    np.testing.assert_array_equal(np.asarray(img.dataobj), maps)


def test_a_space_whose_axis_is_replaced_writes_the_new_axis(tmp_path, rng, hcp):
    space = BrainSpace.hcp91k()
    space.to_dscalar(np.zeros(91282, np.float32), tmp_path / "a.dscalar.nii")     # caches the brain models
    small = hcp.axis[:500]
    space.axis, space.n_grayordinates = small, 500
    space.to_dscalar(np.ones(500, np.float32), tmp_path / "b.dscalar.nii")
    assert nib.load(str(tmp_path / "b.dscalar.nii")).header.get_axis(1) == small


def test_read_map_equals_nibabel_and_rejects_what_is_not_a_map(tmp_path, rng, hcp):
    maps = rng.standard_normal((4, 91282)).astype(np.float32)
    maps[2, 100:200] = np.nan
    write_map(hcp, maps, tmp_path / "beta", names=list("abcd"))
    want = np.asarray(nib.load(str(tmp_path / "beta.dscalar.nii")).dataobj, dtype=np.float32)
    got = read_map(tmp_path / "beta")
    assert got.dtype == np.float32 and got.shape == (4, 91282)
    np.testing.assert_array_equal(got, want)
    write_map(hcp, maps[0], tmp_path / "r_cv")
    assert read_map(tmp_path / "r_cv").shape == (91282,)

    (tmp_path / "cut.dscalar.nii").write_bytes((tmp_path / "beta.dscalar.nii").read_bytes()[:300])
    with pytest.raises(InputFileError, match=r"cut\.dscalar\.nii: not a readable map"):
        read_map(tmp_path / "cut")
    nib.save(nib.Nifti2Image(np.zeros((2, 2, 2), np.float32), np.eye(4)), str(tmp_path / "vol.dscalar.nii"))
    with pytest.raises(InputFileError, match=r"vol\.dscalar\.nii: not a dense CIFTI-2 map .*shape \(2, 2, 2\)"):
        read_map(tmp_path / "vol")
