"""Stimulus / fMRI builders of the pipeline: every configuration error is one clear message."""

import numpy as np
import pytest

from vlmbrain.config import FmriConfig, RunSpec, StimulusConfig
from vlmbrain.errors import ConfigError
from vlmbrain.stages import build_brain, build_stimulus


def test_hcp7t_needs_movie_or_wordnet_and_tr_1():
    with pytest.raises(ConfigError, match="needs stimulus.movie_dir"):
        build_stimulus(StimulusConfig(kind="hcp7t"))
    with pytest.raises(ConfigError, match=r"stimulus.tr = 2.0 but the HCP 7T movie runs have TR = 1.0 s"):
        build_stimulus(StimulusConfig(kind="hcp7t", tr=2.0, wordnet_dir="somewhere"))


def test_hcp7t_wordnet_only_gives_a_captions_stimulus(tmp_path):
    names = {"MOVIE1_CC1": 921, "MOVIE2_HO1": 918, "MOVIE3_CC2": 915, "MOVIE4_HO2": 901}
    for stem in names:
        lines = [f'{s:06d}:{{"road.n.01","sky.n.01"}}' for s in range(20, 60)]
        (tmp_path / f"WordNet_{stem}.txt").write_text("\n".join(lines) + "\n")
    stim = build_stimulus(StimulusConfig(kind="hcp7t", wordnet_dir=tmp_path))
    assert stim.has_captions and not stim.has_frames
    assert stim.timeline.run_lengths == list(names.values())
    caps = stim.captions(range(18, 25))
    assert caps[0] == "" and "road" in caps[-1] and "sky" in caps[-1]


def test_custom_run_errors(tmp_path):
    with pytest.raises(ConfigError, match="needs stimulus.runs"):
        build_stimulus(StimulusConfig(kind="custom"))
    with pytest.raises(ConfigError, match="neither video/frames_dir nor captions"):
        build_stimulus(StimulusConfig(kind="custom", runs=[RunSpec(name="a", n_trs=10)]))
    (tmp_path / "f").mkdir()
    with pytest.raises(ConfigError, match=r"runs \['b'\] have no video or frames_dir while others do"):
        build_stimulus(StimulusConfig(kind="custom", runs=[RunSpec(name="a", n_trs=10, frames_dir=tmp_path / "f"),
                                                           RunSpec(name="b", n_trs=10)]))
    with pytest.raises(ConfigError, match=r"stimulus.runs.0.n_trs is missing and there is no fmri.paths\[0\]"):
        build_stimulus(StimulusConfig(kind="custom", runs=[RunSpec(name="a", captions=tmp_path / "c.tsv")]),
                       fmri=FmriConfig(kind="npy"))


def test_custom_run_length_from_the_fmri_file(tmp_path, rng):
    (tmp_path / "c.tsv").write_text("onset\tduration\ttext\n0\t5\ta red circle\n")
    np.save(tmp_path / "r.npy", rng.normal(size=(12, 5)).astype(np.float32))
    stim = build_stimulus(StimulusConfig(kind="custom", runs=[RunSpec(name="a", captions=tmp_path / "c.tsv")]),
                          fmri=FmriConfig(kind="npy", paths=[tmp_path / "r.npy"]))
    assert stim.timeline.n_timepoints == 12 and stim.captions([0])[0] == "a red circle"


def test_fmri_needs_paths_or_subjects():
    with pytest.raises(ConfigError, match=r"fmri.kind = 'cifti' needs fmri.paths"):
        build_brain(FmriConfig(kind="cifti"), tr=1.0)
