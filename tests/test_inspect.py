"""vlmbrain.inspect: facts and one-line descriptions of inputs; broken files named."""

from fractions import Fraction

import nibabel as nib
import numpy as np
import pytest
from nibabel.cifti2 import cifti2_axes as ca

from vlmbrain.errors import InputFileError
from vlmbrain.inspect import describe, inspect_path


def write_dtseries(path, n_trs=12, tr=0.72):
    axis = ca.BrainModelAxis.from_surface(np.arange(10), 30, "CortexLeft") + ca.BrainModelAxis(
        "ThalamusLeft", voxel=np.array([[1, 1, 1], [1, 2, 1]]), affine=np.eye(4), volume_shape=(3, 3, 3))
    img = nib.Cifti2Image(np.zeros((n_trs, 12), np.float32), header=(ca.SeriesAxis(0, tr, n_trs, "SECOND"), axis))
    nib.save(img, str(path))
    return path


def test_dtseries_valid_and_truncated(tmp_path):
    p = write_dtseries(tmp_path / "sub_bold.dtseries.nii")
    info = inspect_path(p)
    assert info["kind"] == "cifti-dtseries" and info["n_trs"] == 12 and info["tr"] == pytest.approx(0.72)
    assert info["n_grayordinates"] == 12 and info["n_vertices"] == 10 and info["n_voxels"] == 2
    assert info["duration"] == pytest.approx(8.64) and info["space"] == "custom"
    assert describe(p) == ("sub_bold.dtseries.nii: CIFTI-2 dense time series, 12 TRs x 12 grayordinates, "
                           "TR 0.72 s (8.6 s), custom (10 vertices, 2 voxels)")
    raw = p.read_bytes()
    p.write_bytes(raw[:-40])
    with pytest.raises(InputFileError, match=r"sub_bold.dtseries.nii: file is truncated \(\d+ bytes, header needs \d+"):
        describe(p)
    p.write_bytes(raw[:200])
    with pytest.raises(InputFileError, match="sub_bold.dtseries.nii: not a readable CIFTI-2 file"):
        inspect_path(p)


def test_srt_vtt(tmp_path):
    (tmp_path / "a.srt").write_text("1\n00:00:01,000 --> 00:00:02,500\nhello\n\n2\n00:00:02,000 --> 00:00:04,000\nworld\n")
    info = inspect_path(tmp_path / "a.srt")
    assert info["cues"] == 2 and info["start"] == 1.0 and info["duration"] == 4.0 and info["n_overlapping"] == 1
    assert describe(tmp_path / "a.srt") == "a.srt: captions (srt), 2 cues, 1.0-4.0 s, 1 overlapping"
    (tmp_path / "b.vtt").write_text("WEBVTT\n\n00:00.000 --> 00:01.000\nhi\n")
    assert describe(tmp_path / "b.vtt") == "b.vtt: captions (vtt), 1 cues, 0.0-1.0 s"
    (tmp_path / "c.vtt").write_text("this is not webvtt")
    with pytest.raises(InputFileError, match="c.vtt: not a valid caption file"):
        describe(tmp_path / "c.vtt")


def test_short_mp4(tmp_path):
    import av

    p = tmp_path / "m.mp4"
    with av.open(str(p), "w") as c:
        s = c.add_stream("libx264", rate=Fraction(24, 1))
        s.width, s.height, s.pix_fmt = 32, 16, "yuv420p"
        for i in range(48):
            for pkt in s.encode(av.VideoFrame.from_ndarray(np.full((16, 32, 3), i * 5, np.uint8), format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    info = inspect_path(p)
    assert info["kind"] == "video" and info["frames"] == 48 and info["fps"] == pytest.approx(24)
    assert info["duration"] == pytest.approx(2.0, abs=0.05) and (info["width"], info["height"]) == (32, 16)
    assert describe(p).startswith("m.mp4: video (h264), 32x16, 24 fps, 48 frames, 2.0 s")
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputFileError, match="m.mp4: not a readable video"):
        describe(p)


def test_npy_nifti_wordnet_folder(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((20, 5), np.float32))
    assert describe(tmp_path / "x.npy") == "x.npy: array, shape (20, 5) float32, 20 TRs x 5 columns (no TR in file)"
    (tmp_path / "t.npy").write_bytes((tmp_path / "x.npy").read_bytes()[:150])
    with pytest.raises(InputFileError, match="t.npy: not a readable .npy array"):
        inspect_path(tmp_path / "t.npy")
    img = nib.Nifti1Image(np.random.default_rng(0).standard_normal((8, 8, 6, 6)).astype(np.float32), np.eye(4))
    img.header["pixdim"][4] = 2.0
    nib.save(img, str(tmp_path / "b.nii.gz"))
    i = inspect_path(tmp_path / "b.nii.gz")
    assert i["kind"] == "nifti" and i["n_trs"] == 6 and i["tr"] == 2.0
    raw = (tmp_path / "b.nii.gz").read_bytes()
    (tmp_path / "c.nii.gz").write_bytes(raw[: len(raw) * 2 // 3])
    with pytest.raises(InputFileError, match="c.nii.gz: .*truncated"):
        inspect_path(tmp_path / "c.nii.gz")
    (tmp_path / "WordNet_MOVIE1_CC1.txt").write_text('0:{}\n1:{"dog.n.01"}\n2:{"dog.n.01","cat.n.01"}\n')
    assert describe(tmp_path / "WordNet_MOVIE1_CC1.txt") == (
        "WordNet_MOVIE1_CC1.txt: WordNet labels, 3 seconds (2 labelled), 2 synsets")
    (tmp_path / "frames").mkdir()
    from PIL import Image

    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "frames" / "f_0.png")
    assert describe(tmp_path / "frames") == "frames: folder of frames, 1 images"


def test_unsupported_and_missing(tmp_path):
    (tmp_path / "x.mat").write_bytes(b"abc")
    with pytest.raises(InputFileError, match="x.mat: unsupported file type"):
        describe(tmp_path / "x.mat")
    with pytest.raises(InputFileError, match="nope.dtseries.nii: file not found"):
        describe(tmp_path / "nope.dtseries.nii")


def test_dscalar_written_by_space(tmp_path):
    from vlmbrain.brain.space import BrainSpace

    p = write_dtseries(tmp_path / "a.dtseries.nii")
    space = BrainSpace.from_cifti(p)
    space.to_dscalar(np.zeros((2, 12)), tmp_path / "m.dscalar.nii", names=["beta", "t"])
    info = inspect_path(tmp_path / "m.dscalar.nii")
    assert info["kind"] == "cifti-dscalar" and info["n_maps"] == 2 and "n_trs" not in info
    assert describe(tmp_path / "m.dscalar.nii") == (
        "m.dscalar.nii: CIFTI-2 dense scalars, 2 maps x 12 grayordinates, custom (10 vertices, 2 voxels)")
