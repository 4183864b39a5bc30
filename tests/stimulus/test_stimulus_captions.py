"""Captions: SRT/VTT/TSV readers, TR assignment rules, warnings, WordNet labels, timelines."""

import warnings

import pytest

from vlmbrain.errors import ConfigError, DimensionError, InputFileError
from vlmbrain.stimulus import Timeline
from vlmbrain.stimulus.captions import (
    CaptionWarning,
    Cue,
    attach_captions,
    captions_to_trs,
    read_captions,
    read_srt,
    read_tsv,
    read_vtt,
    read_wordnet_labels,
    synset_word,
    wordnet_to_trs,
)

SRT = """1
00:00:00,500 --> 00:00:01,800
A man walks
down the road.

2
00:00:02,250 --> 00:00:04,000
<i>The sky is grey.</i>

3
00:00:06,000 --> 00:00:06,900
Silence.
"""

VTT = """WEBVTT

00:00.500 --> 00:01.800
A man walks

00:00:02.250 --> 00:00:04.000
<b>The sky</b> is grey.
"""


def test_read_srt_and_vtt_keep_milliseconds(tmp_path):
    (tmp_path / "a.srt").write_text(SRT)
    (tmp_path / "a.vtt").write_text(VTT)
    cues = read_srt(tmp_path / "a.srt")
    assert cues[0] == Cue(0.5, 1.3, "A man walks down the road.")
    assert cues[1].onset == 2.25 and cues[1].offset == 4.0 and cues[1].text == "The sky is grey."
    v = read_vtt(tmp_path / "a.vtt")
    assert [(c.onset, c.offset, c.text) for c in v] == [(0.5, 1.8, "A man walks"), (2.25, 4.0, "The sky is grey.")]
    assert read_captions(tmp_path / "a.vtt") == v


def test_overlap_rule_known_answer(tmp_path):
    (tmp_path / "a.srt").write_text(SRT)
    caps = captions_to_trs(read_srt(tmp_path / "a.srt"), n_trs=8, tr=1.0)
    assert caps == ["A man walks down the road.", "A man walks down the road.", "The sky is grey.",
                    "The sky is grey.", "", "", "Silence.", ""]
    # TR = 2 s: TR 1 covers [2, 4)
    caps2 = captions_to_trs(read_srt(tmp_path / "a.srt"), n_trs=4, tr=2.0)
    assert caps2 == ["A man walks down the road.", "The sky is grey.", "", "Silence."]


def test_midpoint_and_max_overlap_rules():
    cues = [Cue(0.0, 1.3, "a"), Cue(1.3, 0.5, "b"), Cue(1.8, 1.0, "c")]
    assert captions_to_trs(cues, 3, 1.0, rule="midpoint") == ["a", "b", "c"]
    assert captions_to_trs(cues, 3, 1.0, rule="max_overlap") == ["a", "b", "c"]
    assert captions_to_trs(cues, 3, 1.0, rule="overlap") == ["a", "a b c", "c"]
    with pytest.raises(ConfigError, match="caption rule 'nearest' is unknown; allowed: overlap, midpoint, max_overlap"):
        captions_to_trs(cues, 3, 1.0, rule="nearest")


def test_overlapping_cues_warn_and_join_in_onset_order():
    cues = [Cue(1.2, 1.0, "second"), Cue(0.0, 2.0, "first")]
    with pytest.warns(CaptionWarning, match=r"1 cue\(s\) overlap the previous one .*'first'") as rec:
        caps = captions_to_trs(cues, 3, 1.0)
    assert caps == ["first", "first second", "second"]
    assert rec[0].filename == __file__  # stacklevel points at the caller


def test_empty_cues_dropped_with_warning(tmp_path):
    (tmp_path / "e.vtt").write_text("WEBVTT\n\n00:00.000 --> 00:01.000\nhello\n\n00:01.000 --> 00:02.000\n \n")
    cues = read_vtt(tmp_path / "e.vtt")
    with pytest.warns(CaptionWarning, match="dropped 1 empty cue"):
        assert captions_to_trs(cues, 2, 1.0, source="e.vtt") == ["hello", ""]


def test_out_of_range_warn_or_error():
    cues = [Cue(0.0, 1.0, "in"), Cue(3.5, 9.0, "clipped"), Cue(10.0, 1.0, "late one")]
    with pytest.warns(CaptionWarning, match=r"run.srt: 1 cue\(s\) lie outside the run \(0–5 s\), first 'late one' at 10–11 s"):
        caps = captions_to_trs(cues, 5, 1.0, source="run.srt")
    assert caps == ["in", "", "", "clipped", "clipped"]
    with pytest.raises(DimensionError, match=r"run.srt: 1 cue\(s\) lie outside the run .*'late one'"):
        captions_to_trs(cues, 5, 1.0, out_of_range="error", source="run.srt")


def test_no_warning_on_clean_input():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert captions_to_trs([Cue(0.0, 1.0, "x"), Cue(1.0, 1.0, "y")], 2, 1.0) == ["x", "y"]


def test_tsv(tmp_path):
    (tmp_path / "c.tsv").write_text("onset\tduration\ttext\n0.0\t1.5\ta dog\n1.5\t1.0\ta  cat\n")
    assert read_tsv(tmp_path / "c.tsv") == [Cue(0.0, 1.5, "a dog"), Cue(1.5, 1.0, "a cat")]
    assert captions_to_trs(read_tsv(tmp_path / "c.tsv"), 3, 1.0) == ["a dog", "a dog a cat", "a cat"]
    (tmp_path / "bad.tsv").write_text("start\tend\tcaption\n0\t1\tx\n")
    with pytest.raises(InputFileError, match=r"bad.tsv: TSV lacks column\(s\) \['onset', 'duration'\]"):
        read_tsv(tmp_path / "bad.tsv")
    (tmp_path / "bad2.tsv").write_text("onset\tduration\ttext\nzero\t1\tx\n")
    with pytest.raises(InputFileError, match="bad2.tsv: line 2: onset/duration must be numbers"):
        read_tsv(tmp_path / "bad2.tsv")


def test_bad_caption_files(tmp_path):
    (tmp_path / "x.vtt").write_text("not a webvtt file")
    with pytest.raises(InputFileError, match="x.vtt: not a valid caption file"):
        read_vtt(tmp_path / "x.vtt")
    (tmp_path / "x.srt").write_text("1\nbroken --> times\nhello\n")
    with pytest.raises(InputFileError, match="x.srt: not a valid caption file"):
        read_srt(tmp_path / "x.srt")
    with pytest.raises(InputFileError, match="unsupported caption format 'ass'"):
        read_captions(tmp_path / "x.ass")
    with pytest.raises(InputFileError, match="nope.srt: file not found"):
        read_srt(tmp_path / "nope.srt")


def test_wordnet_labels(tmp_path):
    p = tmp_path / "WordNet_MOVIE1_CC1.txt"
    p.write_text('000000:{}\n000001:{}\n000002:{"road.n.01","sky.n.01"}\n000003:{"sky.n.01","traffic_light.n.01"}\n'
                 "000004:{}\n")
    labels = read_wordnet_labels(p)
    assert labels[2] == ["road.n.01", "sky.n.01"] and labels[0] == []
    assert synset_word("traffic_light.n.01") == "traffic light"
    assert wordnet_to_trs(labels, 5) == ["", "", "road, sky", "sky, traffic light", ""]
    assert wordnet_to_trs(p, 3, tr=2.0) == ["", "road, sky, traffic light", ""]
    assert wordnet_to_trs(labels, 5, words=False)[2] == "road.n.01, sky.n.01"
    with pytest.warns(CaptionWarning, match="1 labelled second") as rec:
        assert wordnet_to_trs(labels, 3) == ["", "", "road, sky"]
    assert rec[0].filename == __file__
    with pytest.raises(DimensionError, match="labelled second"):
        wordnet_to_trs(labels, 3, out_of_range="error")
    (tmp_path / "bad.txt").write_text("000001:{}\n12 road sky\n")
    with pytest.raises(InputFileError, match="bad.txt: line 2 is not"):
        read_wordnet_labels(tmp_path / "bad.txt")


def test_attach_captions_to_timeline(tmp_path):
    (tmp_path / "r1.srt").write_text(SRT)
    (tmp_path / "WordNet_r2.txt").write_text('0:{"dog.n.01"}\n1:{"cat.n.01"}\n')
    tl = Timeline.from_runs([4, 2], tr=1.0, run_names=["r1", "r2"], rest=[False, False, True, False, False, False])
    with pytest.warns(CaptionWarning, match="r1.srt: 1 cue.*'Silence.'") as rec:
        out = attach_captions(tl, {"r1": tmp_path / "r1.srt", "r2": tmp_path / "WordNet_r2.txt"})
    assert rec[0].filename == __file__
    assert out.table["caption"].tolist() == ["A man walks down the road.", "A man walks down the road.", "",
                                             "The sky is grey.", "dog", "cat"]
    assert tl.table["caption"].tolist() == [""] * 6  # original untouched
    with pytest.raises(ConfigError, match=r"unknown run\(s\) \['r3'\]"):
        attach_captions(tl, {"r3": tmp_path / "r1.srt"})


def test_malformed_cue_skipped_with_warning(tmp_path):
    (tmp_path / "m.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nok\n\n2\n00:00:0x,000 --> 00:00:02,000\nbad\n")
    with pytest.warns(CaptionWarning, match=r"m.srt: 1 cue\(s\) with unreadable timing lines were skipped"):
        cues = read_srt(tmp_path / "m.srt")
    assert [c.text for c in cues] == ["ok"]
