"""METER parity with the official code (fixtures recorded from zdou0830/METER @ f4f0934)."""

import importlib.util
import json
import functools
import os
import pickle

import pytest
import torch

from vlmbrain.errors import ConfigError, DimensionError, InputFileError, ModelNotAvailableError
from vlmbrain.models.meter import METER, METERConfig, meter_config, resize_pos_embed
from vlmbrain.models.meter.checkpoint import InertGlobal, load_meter_state_dict

TOL = dict(atol=2e-5, rtol=2e-5)


@functools.lru_cache(maxsize=4)
def _load(path):
    return torch.load(path, weights_only=True)


@pytest.fixture
def tiny_blob(meter_fixtures):
    return _load(os.path.join(meter_fixtures, "meter_reference_io.pt"))  # read-only in the tests


@pytest.fixture
def tiny_state(meter_fixtures):
    return dict(_load(os.path.join(meter_fixtures, "meter_reference_state_dict.pt")))


@pytest.fixture
def tiny_run(tiny_blob, tiny_state):
    model = METER(METERConfig.from_fixture_meta(tiny_blob["meta"])).eval()
    model.load_state_dict(tiny_state, strict=True)
    inp = tiny_blob["inputs"]
    with torch.no_grad():
        out = model(inp["image"], inp["text_ids"], inp["text_masks"], inp["image_token_type_idx"],
                    output_intermediates=True)
    return model, out


# ----------------------------------------------------------------------------- config
def test_tiny_config_equals_fixture_meta(meter_fixtures, tiny_blob):
    assert meter_config("tiny") == METERConfig.from_fixture_meta(tiny_blob["meta"])


def test_config_overrides_and_errors():
    cfg = meter_config("pretrain_288", image_size=224)
    assert cfg.image_size == 224 and cfg.num_image_tokens == 197 and cfg.heads == ("mlm", "itm")
    assert meter_config("flickr_384").max_text_len == 40
    with pytest.raises(ConfigError, match="Unknown METER variant 'bogus'"):
        meter_config("bogus")
    with pytest.raises(ConfigError, match=r"Unknown METERConfig field\(s\) \['imagesize'\]"):
        meter_config("tiny", imagesize=224)
    with pytest.raises(ConfigError, match="unknown head"):
        meter_config("tiny", heads=("mlm", "foo"))
    with pytest.raises(ConfigError, match="hidden_size/num_heads = 64/5"):
        meter_config("tiny", num_heads=5)
    with pytest.raises(ConfigError, match="not a multiple of patch_size"):
        meter_config("tiny", image_size=290)


def test_small_custom_config_trains_one_step():
    cfg = METERConfig(name="toy", image_size=32, patch_size=8, vision_width=64, vision_layers=2, vision_heads=2,
                      clip_text_width=64, vocab_size=200, text_hidden_size=64, text_layers=2, text_heads=2,
                      text_intermediate_size=128, text_max_positions=40, max_text_len=16, hidden_size=64,
                      num_heads=2, num_top_layer=1, heads=("mlm", "itm"))
    model = METER(cfg).train()
    img = torch.randn(2, 3, 32, 32)
    ids = torch.tensor([[0, 5, 6, 2], [0, 7, 2, 1]])
    masks = (ids != 1).long()
    out = model(img, ids, masks)
    assert out["image_feats"].shape == (2, 17, 64) and out["mlm_logits"].shape == (2, 4, 200)
    loss = out["itm_logits"].logsumexp(-1).mean() + out["mlm_logits"].square().mean()
    loss.backward()
    assert model.vit_model.visual.conv1.weight.grad is not None


# ----------------------------------------------------------------------------- TINY parity
def test_tiny_state_dict_loads_strict_in_official_order(tiny_state, tiny_run):
    model, _ = tiny_run
    own = model.state_dict()
    assert list(own) == list(tiny_state)
    assert all(own[k].shape == v.shape and own[k].dtype == v.dtype for k, v in tiny_state.items())


def test_tiny_outputs_match_official(tiny_blob, tiny_run):
    _, out = tiny_run
    for key, ref in tiny_blob["outputs"].items():
        torch.testing.assert_close(out[key], ref, **TOL, msg=lambda m, k=key: f"{k}: {m}")


def test_tiny_every_intermediate_matches_official(tiny_blob, tiny_run):
    _, out = tiny_run
    inter = out["intermediates"]
    assert len(tiny_blob["intermediates"]) == 42
    for key, ref in tiny_blob["intermediates"].items():
        torch.testing.assert_close(inter[key], ref, **TOL, msg=lambda m, k=key: f"{k}: {m}")


def test_tiny_intermediates_filter_and_padded_positions_kept(tiny_blob, tiny_run):
    model, full = tiny_run
    inp = tiny_blob["inputs"]
    with torch.no_grad():
        out = model(inp["image"], inp["text_ids"], inp["text_masks"], output_intermediates={"*.out", "text_proj"})
    keys = set(out["intermediates"])
    assert "text_proj" in keys and "fusion.text.1.out" in keys and "vis.block.0.out" in keys
    assert not any(k.endswith("_probs") for k in keys)
    # sample 1 is padded: the padded positions carry computed (non-zero) features, equal to the official ones
    assert (inp["text_masks"][1] == 0).any()
    pad = inp["text_masks"][1] == 0
    torch.testing.assert_close(out["text_feats"][1, pad], tiny_blob["outputs"]["text_feats"][1, pad], **TOL)
    assert out["text_feats"][1, pad].abs().sum() > 0


def test_gelu_is_exact_erf(tiny_blob, tiny_state):
    """A tanh-GELU swap must break parity (guards the test's power)."""
    model = METER(meter_config("tiny")).eval()
    model.load_state_dict(tiny_state, strict=True)
    inp = tiny_blob["inputs"]
    import vlmbrain.models.meter.modeling as mod

    orig = mod.F.gelu
    try:
        mod.F.gelu = lambda x: orig(x, approximate="tanh")
        with torch.no_grad():
            out = model(inp["image"], inp["text_ids"], inp["text_masks"])
    finally:
        mod.F.gelu = orig
    err = (out["text_feats"] - tiny_blob["outputs"]["text_feats"]).abs().max()
    assert err > 1e-4


# ----------------------------------------------------------------------------- position table resize
def test_resize_pos_embed_matches_official_vectors(tiny_blob):
    pe = tiny_blob["posembed"]
    src = pe["input_325x768_from_288"]
    for size in (224, 384, 576):
        torch.testing.assert_close(resize_pos_embed(src, size, 16), pe[f"output_after_{size}"], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(resize_pos_embed(pe["input_197x768_from_224"], 288, 16), pe["output_224_to_288"],
                               atol=1e-6, rtol=1e-6)
    assert resize_pos_embed(src, 288, 16) is src
    with pytest.raises(DimensionError, match="324 rows"):
        resize_pos_embed(src[:324], 224, 16)


# ----------------------------------------------------------------------------- full-size architecture
def _variants(meter_fixtures):
    with open(os.path.join(meter_fixtures, "meter_state_dict_keys_all_variants.json")) as f:
        return json.load(f)


def test_every_variant_has_official_keys_and_shapes(meter_fixtures):
    variants = _variants(meter_fixtures)
    assert set(variants) == {"pretrain_288", "pretrain_224", "vqa_576", "nlvr2_288", "snli_384", "flickr_384",
                             "coco_384"}
    for name, ref in variants.items():
        cfg = meter_config(name)
        assert cfg.image_size == ref["config"]["image_size"]
        assert cfg.max_text_len == ref["config"]["max_text_len"]
        with torch.device("meta"):
            model = METER(cfg)
        own = {k: list(v.shape) for k, v in model.state_dict().items()}
        official = {k: v["shape"] for k, v in ref["state_dict"].items()}
        assert len(own) == ref["num_entries"], name
        assert set(own) == set(official), (name, set(own) ^ set(official))
        bad = {k: (own[k], official[k]) for k in own if own[k] != official[k]}
        assert not bad, (name, bad)
        dtypes = {k: str(v.dtype).replace("torch.", "") for k, v in model.state_dict().items()}
        assert dtypes == {k: v["dtype"] for k, v in ref["state_dict"].items()}, name
        assert sum(v.numel() for v in model.state_dict().values()) == ref["num_elements"], name


def _recipe(meter_fixtures):
    path = os.path.join(meter_fixtures, "meter_reference_weights.py")
    if not os.path.isfile(path):
        pytest.skip("meter_reference_weights.py is not present")
    spec = importlib.util.spec_from_file_location("meter_reference_weights", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_full_size_pretrain_loads_recipe_strict_and_runs(meter_fixtures):
    """9 s on 2 idle cores, 35 s on a loaded machine (1.4 GB of recipe weights)."""
    recipe = _recipe(meter_fixtures)
    with open(os.path.join(meter_fixtures, "meter_state_dict_keys.json")) as f:
        ref = json.load(f)
    shapes = ref["state_dict"]
    assert len(shapes) == 671
    state = recipe.recipe_state_dict(shapes, ref["dtypes_non_float32"])
    with torch.device("meta"):
        model = METER(meter_config("pretrain_288"))
    assert list(model.state_dict()) == list(shapes)  # official order too
    model.load_state_dict(state, strict=True, assign=True)
    model.eval()
    del state
    g = torch.Generator().manual_seed(0)
    img = torch.randn(1, 3, 288, 288, generator=g)
    ids = torch.tensor([[0, 713, 16, 10, 1296, 2]])
    with torch.no_grad():
        out = model(img, ids, torch.ones_like(ids))
    assert out["text_feats"].shape == (1, 6, 768)
    assert out["image_feats"].shape == (1, 325, 768)
    assert out["cls_feats"].shape == (1, 1536)
    assert out["itm_logits"].shape == (1, 2) and out["mlm_logits"].shape == (1, 6, 50265)
    for k in ("text_feats", "image_feats", "cls_feats", "itm_logits", "mlm_logits"):
        assert torch.isfinite(out[k]).all(), k


def test_wrong_image_size_is_a_clear_error(tiny_run):
    model, _ = tiny_run
    with pytest.raises(DimensionError, match=r"gives 196 patches, but the position table has 324"):
        model(torch.zeros(1, 3, 224, 224), torch.tensor([[0, 2]]), torch.ones(1, 2))


def test_too_long_text_is_a_clear_error():
    model = METER(meter_config("tiny", image_size=32)).eval()  # 66 positions: at most 64 tokens
    ids = torch.full((1, 65), 5)
    with pytest.raises(DimensionError, match="text of 65 tokens exceeds the RoBERTa position table"):
        model(torch.zeros(1, 3, 32, 32), ids, torch.ones_like(ids))
    ids = torch.full((1, 64), 5)
    assert model(torch.zeros(1, 3, 32, 32), ids, torch.ones_like(ids))["text_feats"].shape == (1, 64, 64)


def test_nlvr2_forward():
    cfg = meter_config("tiny", heads=("nlvr2",), num_token_types=3, image_size=32)
    model = METER(cfg).eval()
    img0, img1 = torch.randn(2, 1, 3, 32, 32)
    ids = torch.tensor([[0, 5, 2]])
    with torch.no_grad():
        logits = model.forward_nlvr2(img0, img1, ids, torch.ones_like(ids))
        c0 = model.infer(img0, ids, torch.ones_like(ids), 1)["cls_feats"]
        c1 = model.infer(img1, ids, torch.ones_like(ids), 2)["cls_feats"]
    torch.testing.assert_close(logits, model.nlvr2_classifier(torch.cat([c0, c1], -1)))
    with pytest.raises(ConfigError, match="no 'nlvr2' head"):
        METER(meter_config("tiny", image_size=32)).forward_nlvr2(img0, img1, ids, torch.ones_like(ids))


# ----------------------------------------------------------------------------- checkpoints
class LightningLikeCallback:
    """Stands for a pytorch_lightning class the loader cannot (and must not) import."""

    def __init__(self):
        self.best_model_path = "/somewhere/best.ckpt"


class _RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _save_ckpt(path, state, extra, zipfile=True):
    torch.save({"epoch": 3, "global_step": 10, "pytorch-lightning_version": "1.3.2", "state_dict": state, **extra},
               path, _use_new_zipfile_serialization=zipfile)


@pytest.mark.parametrize("zipfile", [True, False], ids=["zip", "legacy"])
def test_lightning_ckpt_with_custom_objects_loads(tmp_path, tiny_state, zipfile):
    path = tmp_path / "meter.ckpt"
    _save_ckpt(path, tiny_state, {"callbacks": {LightningLikeCallback: {"k": 1}},
                                  "hyper_parameters": {"config": LightningLikeCallback()}}, zipfile)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)  # what the fallback exists for
    state = load_meter_state_dict(path)
    assert list(state) == list(tiny_state)
    for k, v in tiny_state.items():
        assert torch.equal(state[k], v), k
    model = METER.from_checkpoint(path, variant="tiny")
    assert torch.equal(model.state_dict()["vit_model.visual.conv1.weight"], tiny_state["vit_model.visual.conv1.weight"])


def test_model_prefix_is_stripped(tmp_path, tiny_state):
    path = tmp_path / "prefixed.pt"
    torch.save({"model." + k: v for k, v in tiny_state.items()}, path)
    assert list(load_meter_state_dict(path)) == list(tiny_state)


@pytest.mark.parametrize("zipfile", [True, False], ids=["zip", "legacy"])
def test_malicious_pickle_does_not_execute(tmp_path, tiny_state, zipfile):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    _save_ckpt(path, tiny_state, {"callbacks": {"x": _RunsShell(marker)}}, zipfile)
    state = load_meter_state_dict(path)
    assert not marker.exists()
    assert set(state) == set(tiny_state)
    # the dangerous global was replaced by an inert placeholder
    from vlmbrain.models.meter.checkpoint import restricted_pickle

    ckpt = torch.load(path, weights_only=False, pickle_module=restricted_pickle)
    assert isinstance(ckpt["callbacks"]["x"], InertGlobal) and not marker.exists()
    assert "os.system" in repr(ckpt["callbacks"]["x"]) or "posix.system" in repr(ckpt["callbacks"]["x"])


def test_checkpoint_resized_on_load(tmp_path, tiny_state):
    """A 224-px checkpoint loads into a 288-px model with the bicubic-resized position table."""
    state224 = dict(tiny_state)
    state224["vit_model.visual.positional_embedding"] = resize_pos_embed(
        tiny_state["vit_model.visual.positional_embedding"], 224, 16)
    assert state224["vit_model.visual.positional_embedding"].shape == (197, 128)
    path = tmp_path / "meter224.ckpt"
    _save_ckpt(path, state224, {})
    model = METER.from_checkpoint(path, variant="tiny")  # tiny = 288 px
    got = model.state_dict()["vit_model.visual.positional_embedding"]
    assert got.shape == (325, 128)
    torch.testing.assert_close(got, resize_pos_embed(state224["vit_model.visual.positional_embedding"], 288, 16))
    model224 = METER.from_checkpoint(path, variant="tiny", image_size=224)
    assert torch.equal(model224.state_dict()["vit_model.visual.positional_embedding"],
                       state224["vit_model.visual.positional_embedding"])


def test_checkpoint_errors(tmp_path, tiny_state):
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        load_meter_state_dict(tmp_path / "missing.ckpt")
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(InputFileError, match="Cannot read METER checkpoint"):
        load_meter_state_dict(junk)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {"encoder.weight": torch.zeros(2)}}, other)
    with pytest.raises(InputFileError, match=r"not a METER state_dict: missing keys \['cross_modal_text_transform"):
        load_meter_state_dict(other)
    path = tmp_path / "meter.ckpt"
    _save_ckpt(path, tiny_state, {})
    with pytest.raises(InputFileError, match=r"missing keys \(e.g. \['vqa_classifier"):
        METER.from_checkpoint(path, variant="tiny", heads=("vqa",))
    with pytest.raises(DimensionError, match="wrong shape"):
        METER.from_checkpoint(path, variant="tiny", hidden_size=32)


def test_text_tower_matches_hf_roberta_on_custom_config():
    """Reference implementation for non-fixture sizes: Hugging Face RobertaModel (eager attention)."""
    from transformers import RobertaConfig, RobertaModel

    cfg = meter_config("tiny", vocab_size=200, text_hidden_size=64, text_layers=2, text_heads=4,
                       text_intermediate_size=128, text_max_positions=40, max_text_len=16, image_size=32)
    torch.manual_seed(1)
    model = METER(cfg).eval()
    hf = RobertaModel(RobertaConfig(vocab_size=200, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                    intermediate_size=128, max_position_embeddings=40, type_vocab_size=1,
                                    layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                                    attn_implementation="eager"),
                      add_pooling_layer=True).eval()
    state = {k[len("text_transformer."):]: v for k, v in model.state_dict().items() if k.startswith("text_transformer.")}
    assert "embeddings.position_ids" in state and state["embeddings.position_ids"].dtype == torch.int64
    hf.load_state_dict({k: v for k, v in state.items() if k != "embeddings.position_ids"}, strict=True)
    ids = torch.tensor([[0, 17, 55, 190, 4, 2, 1, 1], [0, 9, 2, 1, 1, 1, 1, 1]])
    masks = (ids != 1).long()
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=masks).last_hidden_state
        got = model.infer(torch.zeros(2, 3, 32, 32), ids, masks, output_intermediates={"text_encoder.1.out"})
    real = masks.bool()
    torch.testing.assert_close(got["intermediates"]["text_encoder.1.out"][real], ref[real], atol=1e-5, rtol=1e-5)


def test_trained_only_when_the_checkpoint_records_training(tmp_path, tiny_state):
    """A Lightning checkpoint saved after training steps is 'trained'; the same weights saved
    bare (what a random-weight METER looks like) or with global_step 0 say nothing."""
    lightning = tmp_path / "trained.ckpt"
    _save_ckpt(lightning, tiny_state, {})
    state = load_meter_state_dict(lightning)
    assert state.trained is True and "after 10 training steps" in state.trained_evidence
    model = METER.from_checkpoint(lightning, variant="tiny")
    assert model.trained is True
    bare = tmp_path / "random.ckpt"
    torch.save({"state_dict": tiny_state}, bare)
    untrained = tmp_path / "step0.ckpt"
    torch.save({"global_step": 0, "state_dict": tiny_state}, untrained)
    for path in (bare, untrained):
        model = METER.from_checkpoint(path, variant="tiny")
        assert model.trained is None and "no training record" in model.trained_evidence
