"""Video frames at times (PyAV, PTS-based), frame folders, VideoStimulus over a timeline."""

from fractions import Fraction

import numpy as np
import pytest

from vlmbrain.errors import ConfigError, InputFileError
from vlmbrain.stimulus import Timeline
from vlmbrain.stimulus.frames import FrameFolder
from vlmbrain.stimulus.video import VideoReader, VideoStimulus, frame_times, probe_video

W, H = 32, 24


def colour_frame(i):
    img = np.zeros((H, W, 3), np.uint8)
    img[..., 0] = 10 + 8 * i
    img[..., 1] = 128
    return img


def frame_number(img):
    return int(round((float(img[..., 0].mean()) - 10) / 8))


def write_video(path, times, codec="libx264"):
    """Frame i shown from times[i]; red channel encodes i."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=10)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.time_base = Fraction(1, 1000)
        s.codec_context.time_base = Fraction(1, 1000)
        for i, t in enumerate(times):
            f = av.VideoFrame.from_ndarray(colour_frame(i), format="rgb24")
            f.pts = int(round(t * 1000))
            f.time_base = Fraction(1, 1000)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture(scope="module")
def cfr(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("v") / "cfr.mp4", [i / 10 for i in range(30)])


def test_probe(cfr):
    info = probe_video(cfr)
    assert (info["width"], info["height"], info["n_frames"]) == (W, H, 30)
    assert info["fps"] == pytest.approx(10) and info["duration"] == pytest.approx(3.0, abs=0.11)


def test_frame_at_time_constant_rate(cfr):
    times = [0.0, 0.05, 0.1, 0.149, 1.25, 2.0, 2.95, 3.5]
    want = [0, 0, 1, 1, 12, 20, 29, 29]  # 3.5 s: past the end, within tolerance -> last frame
    with VideoReader(cfr) as r:
        got = [frame_number(f) for f in r.frames_at(times)]
    assert got == want


def test_unsorted_and_repeated_requests_and_batches(cfr):
    r = VideoReader(cfr)
    assert [frame_number(f) for f in r.frames_at([2.05, 0.35, 2.05, 1.0])] == [20, 3, 20, 10]
    # successive batches continue the decoder; an earlier batch restarts it
    assert [frame_number(f) for f in r.frames_at([0.5, 0.6])] == [5, 6]
    assert [frame_number(f) for f in r.frames_at([0.75, 1.55])] == [7, 15]
    assert [frame_number(f) for f in r.frames_at([0.25])] == [2]
    r.close()


def test_seeking_far_ahead(cfr):
    r = VideoReader(cfr, seek_threshold=0.5)
    assert [frame_number(f) for f in r.frames_at([0.05, 1.65, 2.85])] == [0, 16, 28]
    assert [frame_number(f) for f in r.frames_at([2.45])] == [24]


def test_variable_frame_rate_and_nonzero_start(tmp_path):
    # PTS 0.5 s .. 2.5 s, irregular spacing: the index x fps rule would be wrong here
    pts = [0.5, 0.6, 0.8, 0.85, 1.5, 1.55, 2.5]
    p = write_video(tmp_path / "vfr.mp4", pts)
    r = VideoReader(p)  # origin="stream": t=0 at the first frame (0.5 s)
    times = [0.0, 0.12, 0.29, 0.31, 0.36, 0.9, 1.04, 1.06, 2.0, 2.4]
    assert [frame_number(f) for f in r.frames_at(times)] == [0, 1, 1, 2, 3, 3, 4, 5, 6, 6]
    ra = VideoReader(p, origin="absolute")
    assert [frame_number(f) for f in ra.frames_at([0.2, 0.5, 0.81, 1.6, 2.5])] == [0, 0, 2, 5, 6]
    np.testing.assert_allclose(VideoReader(p).timestamps(), np.array(pts) - 0.5, atol=1e-3)


def test_past_end_and_bad_files(cfr, tmp_path):
    r = VideoReader(cfr, tolerance=0.5)
    with pytest.raises(InputFileError, match=r"cfr.mp4: video ends at 3.00 s but a frame at 10.00 s was requested"):
        r.frames_at([10.0])
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x01" * 500)
    with pytest.raises(InputFileError, match="junk.mp4: not a readable video"):
        VideoReader(junk)
    with pytest.raises(InputFileError, match="nothere.mp4: file not found"):
        VideoReader(tmp_path / "nothere.mp4")
    # truncated: an mp4 cut in half has its index at the end -> unreadable, named
    raw = cfr.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputFileError, match="cut.mp4"):
        VideoReader(cut).frames_at([0.0, 2.9])


def test_truncated_stream_without_index(tmp_path):
    # MPEG-TS has no index: a cut file opens, then ends early -> the request past its end is named
    p = write_video(tmp_path / "v.ts", [i / 10 for i in range(30)], codec="mpeg4")
    raw = p.read_bytes()
    cut = tmp_path / "cut.ts"
    cut.write_bytes(raw[: len(raw) // 3])
    r = VideoReader(cut, tolerance=0.1)
    assert frame_number(r.frames_at([0.0])[0]) == 0
    with pytest.raises(InputFileError, match=r"cut.ts: video ends at .* but a frame at 2.90 s was requested"):
        r.frames_at([2.9])


def test_frame_times():
    t = frame_times(np.array([0.0, 1.0]), 1.0, 4)
    np.testing.assert_allclose(t, [[0.125, 0.375, 0.625, 0.875], [1.125, 1.375, 1.625, 1.875]])
    np.testing.assert_allclose(frame_times([0.0, 2.0], 2.0, 1), [[1.0], [3.0]])
    with pytest.raises(ConfigError, match="n_frames_per_tr must be >= 1"):
        frame_times([0.0], 1.0, 0)


def test_video_stimulus_two_runs(tmp_path):
    v1 = write_video(tmp_path / "a.mp4", [i / 10 for i in range(30)])
    v2 = write_video(tmp_path / "b.mp4", [i / 10 for i in range(20)])
    tl = Timeline.from_runs([6, 4], tr=0.5, run_names=["A", "B"],
                            rest=[True] + [False] * 9)
    stim = VideoStimulus(tl, {"A": v1, "B": v2}, n_frames_per_tr=2)
    frames = stim.frames(range(10))
    assert len(frames) == 10 and all(len(f) == 2 for f in frames)
    # rest TR 0 -> blank; TR 1 of A covers [0.5, 1.0): samples 0.625, 0.875 -> frames 6, 8
    assert frames[0][0].max() == 0 and frames[0][0].shape == (H, W, 3)
    assert [frame_number(x) for x in frames[1]] == [6, 8]
    # run B TR 2 covers [1.0, 1.5): 1.125, 1.375 -> 11, 13
    assert [frame_number(x) for x in frames[8]] == [11, 13]
    one = VideoStimulus(tl, [v1, v2], rest_frames="video")
    assert [frame_number(f[0]) for f in one.frames([0, 5, 6])] == [2, 27, 2]
    assert stim.has_frames and stim.content_hash() != one.content_hash()
    with pytest.raises(ConfigError, match=r"no video given for run\(s\) \['B'\]"):
        VideoStimulus(tl, {"A": v1})


def test_frame_folder_index_and_time(tmp_path):
    from PIL import Image

    d = tmp_path / "idx"
    d.mkdir()
    for i in range(4):
        Image.fromarray(colour_frame(i)).save(d / f"frame_{i:04d}.png")
    ff = FrameFolder(d)
    assert len(ff) == 4 and ff.frame_shape == (H, W, 3)
    assert [frame_number(ff.frame_for_tr(k)) for k in (3, 0)] == [3, 0]
    with pytest.raises(InputFileError, match="has 4 frames .* but TR 4 was requested"):
        ff.frame_for_tr(4)
    dt = tmp_path / "time"
    dt.mkdir()
    for i, t in enumerate([0.0, 0.5, 2.25]):
        Image.fromarray(colour_frame(i)).save(dt / f"t_{t:.2f}.png")
    ft = FrameFolder(dt, naming="time")
    assert [frame_number(x) for x in ft.frames_at([0.1, 0.5, 2.0, 2.3, 9.0])] == [0, 1, 1, 2, 2]
    tl = Timeline.from_runs([4], tr=1.0)
    stim = VideoStimulus(tl, [d])
    assert [frame_number(f[0]) for f in stim.frames([0, 1, 2, 3])] == [0, 1, 2, 3]
    with pytest.raises(ConfigError, match="gives 1 frame per TR, not 2"):
        VideoStimulus(tl, [d], n_frames_per_tr=2).frames([1])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="empty: no image files"):
        FrameFolder(tmp_path / "empty")


def test_pickle_reopens(cfr):
    import pickle

    r = VideoReader(cfr)
    r.frames_at([1.0])
    r2 = pickle.loads(pickle.dumps(r))
    assert [frame_number(f) for f in r2.frames_at([0.5, 2.0])] == [5, 20]
    tl = Timeline.from_runs([3], tr=1.0)
    stim = VideoStimulus(tl, [cfr])
    stim.frames([0])
    stim2 = pickle.loads(pickle.dumps(stim))
    assert [frame_number(f[0]) for f in stim2.frames([0, 1, 2])] == [5, 15, 25]


def test_matches_bruteforce_decode_ntsc_rate_with_seeking(tmp_path, rng):
    """23.976 fps (time base 1/24000), short GOPs: every answer equals the frame a full decode shows at t."""
    import av

    p = tmp_path / "ntsc.mp4"
    with av.open(str(p), "w") as c:
        s = c.add_stream("libx264", rate=Fraction(24000, 1001))
        s.width, s.height, s.pix_fmt = 64, 36, "yuv420p"
        s.codec_context.gop_size = 12
        for i in range(240):
            img = rng.integers(0, 255, (36, 64, 3), dtype=np.uint8)
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    frames, times = [], []
    with av.open(str(p)) as c:
        st = c.streams.video[0]
        t0 = float(st.start_time * st.time_base)
        for f in c.decode(st):
            frames.append(f.to_ndarray(format="rgb24"))
            times.append(f.time - t0)
    times = np.array(times)
    req = np.array([0.02, 0.5, 0.51, 1.5, 2.5, 4.0, 4.01, 7.77, 9.9, 3.3])
    ref = [frames[np.searchsorted(times, t, side="right") - 1] for t in req]
    for thresh in (100.0, 1.0):  # sequential decoding, then seeking on every gap > 1 s
        got = VideoReader(p, seek_threshold=thresh).frames_at(req)
        assert all(np.array_equal(a, b) for a, b in zip(ref, got, strict=True)), thresh
