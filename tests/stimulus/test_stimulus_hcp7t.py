"""The HCP 7T layout reproduces the published clip table, run lengths and rest blocks."""

import numpy as np
import pytest

from vlmbrain.errors import ConfigError, InputFileError
from vlmbrain.stimulus.hcp7t import (
    HCP7T_RUNS,
    find_hcp7t_fmri,
    find_hcp7t_movies,
    hcp7t_clips,
    hcp7t_mask,
    hcp7t_rest_intervals,
    hcp7t_split,
    hcp7t_timeline,
)

# Finn & Bandettini 2021, videoclip_tr_lookup.csv (written out here independently of the package file)
CLIPS = [
    ("MOVIE1_7T_AP", "twomen", 20, 265), ("MOVIE1_7T_AP", "bridgeville", 285, 506),
    ("MOVIE1_7T_AP", "pockets", 526, 714), ("MOVIE1_7T_AP", "overcome", 735, 798),
    ("MOVIE1_7T_AP", "testretest1", 818, 901), ("MOVIE2_7T_PA", "inception", 20, 248),
    ("MOVIE2_7T_PA", "socialnet", 267, 526), ("MOVIE2_7T_PA", "oceans", 545, 795),
    ("MOVIE2_7T_PA", "testretest2", 815, 898), ("MOVIE3_7T_PA", "flower", 20, 200),
    ("MOVIE3_7T_PA", "hotel", 220, 405), ("MOVIE3_7T_PA", "garden", 425, 628),
    ("MOVIE3_7T_PA", "dreary", 650, 793), ("MOVIE3_7T_PA", "testretest3", 812, 895),
    ("MOVIE4_7T_AP", "homealone", 20, 254), ("MOVIE4_7T_AP", "brokovich", 272, 503),
    ("MOVIE4_7T_AP", "starwars", 522, 777), ("MOVIE4_7T_AP", "testretest4", 798, 881),
]
LENGTHS = {"MOVIE1_7T_AP": 921, "MOVIE2_7T_PA": 918, "MOVIE3_7T_PA": 915, "MOVIE4_7T_AP": 901}


def test_clip_table_shipped():
    c = hcp7t_clips()
    assert len(c) == 18
    assert list(zip(c["run"], c["clip_name"], c["start_tr"], c["stop_tr"], strict=True)) == CLIPS
    assert len(hcp7t_rest_intervals()) == 18


def test_timeline_reproduces_clip_table():
    tl = hcp7t_timeline()
    assert tl.tr == 1.0 and tl.run_names == list(LENGTHS)
    assert tl.run_lengths == list(LENGTHS.values()) and tl.n_timepoints == 3655
    t = tl.table
    # recover (run, clip, start, stop) from the per-TR clip column
    got = []
    for (run, clip), g in t[t["clip"] != ""].groupby(["run", "clip"], sort=False):
        rt = g["run_tr"].to_numpy()
        assert np.array_equal(rt, np.arange(rt[0], rt[-1] + 1))  # contiguous
        got.append((run, clip, int(rt[0]), int(rt[-1]) + 1))
    assert got == CLIPS
    # rest = every TR outside a clip
    for run, n in LENGTHS.items():
        in_clip = sum(b - a for r, _, a, b in CLIPS if r == run)
        assert int(t[(t["run"] == run)]["rest"].sum()) == n - in_clip
    m1 = t[t["run"] == "MOVIE1_7T_AP"]
    assert m1["rest"].iloc[:20].all() and not m1["rest"].iloc[20] and m1["rest"].iloc[901:].all()
    assert m1["rest"].iloc[265:285].all() and len(m1) == 921
    assert t["frame_time"].iloc[5] == 5.5 and t["onset"].iloc[921] == 0.0  # run 2 restarts at 0


def test_rest_blocks_agree_with_video_blank_intervals():
    tl = hcp7t_timeline()
    t = tl.table
    for row in hcp7t_rest_intervals().itertuples():
        g = t[t["run"] == row.run]
        mids = g["onset"].to_numpy() + 0.5
        inside = (mids > row.start_s + 1.5) & (mids < row.end_s - 1.5)
        assert g["rest"].to_numpy()[inside].all(), (row.run, row.blank_index)


def test_subset_and_masks():
    tl = hcp7t_timeline(runs=["MOVIE2", 4])
    assert tl.run_names == ["MOVIE2_7T_PA", "MOVIE4_7T_AP"] and tl.n_timepoints == 918 + 901
    keep = hcp7t_mask(tl, exclude_rest=True, exclude_testretest=True)
    clips = tl.table["clip"]
    assert keep.sum() == sum(b - a for r, c, a, b in CLIPS if r in ("MOVIE2_7T_PA", "MOVIE4_7T_AP")
                             and not c.startswith("testretest"))
    assert not clips[keep].str.startswith("testretest").any() and (clips[keep] != "").all()
    train, test = hcp7t_split(tl)
    assert test.sum() == 83 + 83 and not (train & test).any() and (train | test).all()
    assert set(clips[test]) == {"testretest2", "testretest4"}
    train2, test2 = hcp7t_split(tl, testretest_as_test=False)
    assert train2.all() and not test2.any()
    with pytest.raises(ConfigError, match="unknown HCP 7T movie run 'MOVIE5'"):
        hcp7t_timeline(runs=["MOVIE5"])


def test_testretest_clips_have_equal_length():
    lens = [b - a for _, c, a, b in CLIPS if c.startswith("testretest")]
    assert lens == [83, 83, 83, 83]


def test_find_files(tmp_path):
    sub = tmp_path / "100610" / "MNINonLinear" / "Results"
    for r in HCP7T_RUNS:
        d = sub / f"tfMRI_{r}"
        d.mkdir(parents=True)
        (d / f"tfMRI_{r}_Atlas_MSMAll_hp2000_clean.dtseries.nii").write_bytes(b"")
        (d / f"tfMRI_{r}_Atlas_hp2000_clean.dtseries.nii").write_bytes(b"")
    found = find_hcp7t_fmri(tmp_path)
    assert list(found) == list(HCP7T_RUNS) and all("MSMAll" in p for p in found.values())
    movies = tmp_path / "movies"
    movies.mkdir()
    for r, (_, f) in HCP7T_RUNS.items():
        (movies / f).write_bytes(b"")
    (movies / "7T_MOVIE1_CC1_v2.mp4").write_bytes(b"")
    m = find_hcp7t_movies(movies)
    assert m["MOVIE1_7T_AP"].endswith("7T_MOVIE1_CC1.mp4")
    assert find_hcp7t_movies(movies, prefer_v2=True)["MOVIE1_7T_AP"].endswith("_v2.mp4")
    with pytest.raises(InputFileError, match=r"no stimulus video for run MOVIE1_7T_AP \(7T_MOVIE1_CC1.mp4 or 7T_MOVIE1_CC1_v2.mp4\)"):
        find_hcp7t_movies(tmp_path)
    with pytest.raises(InputFileError, match="no file for run MOVIE1_7T_AP"):
        find_hcp7t_fmri(movies)


def test_hcp7t_stimulus_with_video_and_wordnet(tmp_path):
    import test_stimulus_video as vid  # same folder (pytest puts it on sys.path)

    from vlmbrain.stimulus.hcp7t import hcp7t_stimulus

    movies = tmp_path / "movies"
    movies.mkdir()
    vid.write_video(movies / "7T_MOVIE2_HO1.mp4", [float(i) for i in range(25)])  # 1 frame/s, 25 s
    wn = tmp_path / "wn"
    wn.mkdir()
    (wn / "WordNet_MOVIE2_HO1.txt").write_text(
        "".join(f"{s:06d}:{{}}\n" for s in range(20)) + '000020:{"road.n.01","sky.n.01"}\n000021:{"car.n.01"}\n')
    stim = hcp7t_stimulus(movies, runs=["MOVIE2"], captions=wn)
    assert stim.timeline.n_timepoints == 918 and stim.has_frames and stim.has_captions
    assert stim.captions([19, 20, 21, 22]) == ["", "road, sky", "car", ""]
    frames = stim.frames([5, 20, 21])
    assert frames[0][0].max() == 0  # rest TR -> blank frame
    assert [vid.frame_number(f[0]) for f in frames[1:]] == [20, 21]  # midpoints 20.5 s, 21.5 s
    only_text = hcp7t_stimulus(runs=["MOVIE2"], captions=wn)
    assert not only_text.has_frames and only_text.captions([20]) == ["road, sky"]
    with pytest.raises(ConfigError, match="needs movie_dir"):
        hcp7t_stimulus()


def test_find_wordnet_names(tmp_path):
    from vlmbrain.stimulus.hcp7t import find_hcp7t_wordnet

    (tmp_path / "WordNet_MOVIE1_CC1.txt").write_text("0:{}\n")
    (tmp_path / "7T_MOVIE2_HO1_v2_WordNet.txt").write_text("0:{}\n")
    found = find_hcp7t_wordnet(tmp_path, runs=[1, 2])
    assert found["MOVIE1_7T_AP"].endswith("WordNet_MOVIE1_CC1.txt")
    assert found["MOVIE2_7T_PA"].endswith("7T_MOVIE2_HO1_v2_WordNet.txt")
    with pytest.raises(InputFileError, match=r"no WordNet label file\(s\) for run MOVIE3_7T_PA \(expected WordNet_MOVIE3_CC2.txt"):
        find_hcp7t_wordnet(tmp_path, runs=[3])
