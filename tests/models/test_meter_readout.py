"""METER readout: values recomputed independently from the official fixture's intermediates."""

import functools
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vlmbrain.errors import ConfigError, DimensionError, ModelNotAvailableError
from vlmbrain.models.base import NEURON_COLUMNS
from vlmbrain.models.meter import METER, METERReadout, meter_config
from vlmbrain.models.meter.readout import CLIP_MEAN, CLIP_STD, preprocess_frames

SITES = ("head-unit", "qk", "mlp", "hidden")
POOLINGS = ("mean", "cls", "patches")
WORDS = "a the red blue green cat dog ball runs sits on under big small house tree".split()


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
def tiny_model(tiny_state):
    model = METER(meter_config("tiny")).eval()
    model.load_state_dict(tiny_state, strict=True)
    return model


@pytest.fixture
def tokenizer():
    from vlmbrain._testing import word_level_tokenizer

    return word_level_tokenizer(WORDS)


# ----------------------------------------------------------------------------- independent reference
def _heads(x, n):
    b, l, w = x.shape
    return x.view(b, l, n, w // n).transpose(1, 2)


def _context(probs, v):
    b, n, lq, _ = probs.shape
    return torch.matmul(probs, _heads(v, n)).transpose(1, 2).reshape(b, lq, -1)


def _qk(q, k, key_mask, n):
    d = q.shape[-1] // n
    kbar = (k * key_mask[:, :, None]).sum(1) / key_mask.sum(1, keepdim=True)
    return q * kbar[:, None, :] / d**0.5


def reference_tokens(model, blob):
    """Per branch, per AN group in column order: (layer, module, per-token values (B, L, W)) for every site.

    Recomputed from the OFFICIAL stored intermediates (layer inputs, attention probabilities) and the
    weights, not through METER.forward.
    """
    cfg = model.config
    I = blob["intermediates"]
    tmask = blob["inputs"]["text_masks"].float()
    b, n_img = I["vis.out"].shape[:2]
    imask = torch.ones(b, n_img)
    out = {s: {"image": [], "text": []} for s in SITES}

    for i, blk in enumerate(model.vit_model.visual.transformer.resblocks):
        x_in = I["vis.ln_pre_out"] if i == 0 else I[f"vis.block.{i - 1}.out"]
        h = F.layer_norm(x_in, (cfg.vision_width,), blk.ln_1.weight, blk.ln_1.bias, 1e-5)
        q, k, v = F.linear(h, blk.attn.in_proj_weight, blk.attn.in_proj_bias).chunk(3, -1)
        ctx = _context(I[f"vis.block.{i}.attn_probs"], v)
        x_mid = x_in + F.linear(ctx, blk.attn.out_proj.weight, blk.attn.out_proj.bias)
        h2 = F.layer_norm(x_mid, (cfg.vision_width,), blk.ln_2.weight, blk.ln_2.bias, 1e-5)
        z = F.linear(h2, blk.mlp.c_fc.weight, blk.mlp.c_fc.bias)
        out["head-unit"]["image"].append((i, "self_attn", ctx))
        out["qk"]["image"].append((i, "self_attn", _qk(q, k, imask, cfg.vision_heads)))
        out["mlp"]["image"].append((i, "mlp", z * torch.sigmoid(1.702 * z)))
        out["hidden"]["image"].append((i, "hidden", I[f"vis.block.{i}.out"]))

    for i, lay in enumerate(model.text_transformer.encoder.layer):
        x_in = I["text_embeddings"] if i == 0 else I[f"text_encoder.{i - 1}.out"]
        att = lay.attention
        q, k, v = att.self.query(x_in), att.self.key(x_in), att.self.value(x_in)
        ctx = _context(I[f"text_encoder.{i}.attn_probs"], v)
        a = F.layer_norm(x_in + att.output.dense(ctx), (cfg.text_hidden_size,), att.output.LayerNorm.weight,
                         att.output.LayerNorm.bias, 1e-5)
        out["head-unit"]["text"].append((i, "self_attn", ctx))
        out["qk"]["text"].append((i, "self_attn", _qk(q, k, tmask, cfg.text_heads)))
        out["mlp"]["text"].append((i, "mlp", F.gelu(lay.intermediate.dense(a))))
        out["hidden"]["text"].append((i, "hidden", I[f"text_encoder.{i}.out"]))

    n_uni = {"image": cfg.vision_layers, "text": cfg.text_layers}
    other = {"image": "text", "text": "image"}
    masks = {"image": imask, "text": tmask}
    for i in range(cfg.num_top_layer):
        for s in ("image", "text"):
            lay = (model.cross_modal_image_layers if s == "image" else model.cross_modal_text_layers)[i]
            x_in = I[f"fusion_in.{s}"] if i == 0 else I[f"fusion.{s}.{i - 1}.out"]
            y_in = I[f"fusion_in.{other[s]}"] if i == 0 else I[f"fusion.{other[s]}.{i - 1}.out"]
            sa, ca = lay.attention.self, lay.crossattention.self
            p = f"fusion.{s}.{i}."
            ctx_s = _context(I[p + "self_attn_probs"], sa.value(x_in))
            a = I[p + "self_attn_out"]
            ctx_c = _context(I[p + "cross_attn_probs"], ca.value(y_in))
            L = n_uni[s] + i
            out["head-unit"][s] += [(L, "self_attn", ctx_s), (L, "cross_attn", ctx_c)]
            out["qk"][s] += [(L, "self_attn", _qk(sa.query(x_in), sa.key(x_in), masks[s], cfg.num_heads)),
                             (L, "cross_attn", _qk(ca.query(a), ca.key(y_in), masks[other[s]], cfg.num_heads))]
            out["mlp"][s].append((L, "mlp", I[p + "ffn_intermediate"]))
            out["hidden"][s].append((L, "hidden", I[p + "out"]))
    return out


def reference_pool(x, branch, pooling, text_masks):
    """Pool (B, L, W) over tokens by position (independent of the readout's id-based rules)."""
    x = x.double().numpy()
    res = []
    for bi in range(x.shape[0]):
        if branch == "image":
            sel = {"mean": slice(None), "cls": slice(0, 1), "patches": slice(1, None)}[pooling]
        else:
            n_real = int(text_masks[bi].sum())
            sel = {"mean": slice(0, n_real), "cls": slice(0, 1), "patches": slice(1, n_real - 1)}[pooling]
        res.append(x[bi, sel].mean(0))
    return np.stack(res)


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("site", SITES)
def test_readout_matches_independent_recomputation(site, tiny_model, tiny_blob, tokenizer):
    torch.set_num_threads(1)
    inp = tiny_blob["inputs"]
    with torch.no_grad():
        ref = reference_tokens(tiny_model, tiny_blob)[site]
        for pooling in POOLINGS:
            ro = METERReadout(tiny_model, tokenizer, site=site, pooling=pooling)
            got = ro.features(inp["image"], inp["text_ids"], inp["text_masks"])
            table = ro.neuron_table()
            for branch in ("image", "text"):
                groups = ref[branch]
                expected = np.concatenate(
                    [reference_pool(x, branch, pooling, inp["text_masks"]) for _, _, x in groups], axis=1)
                assert got[branch].shape == expected.shape, (site, pooling, branch)
                np.testing.assert_allclose(got[branch].numpy(), expected, atol=2e-5, rtol=2e-5,
                                           err_msg=f"{site}/{pooling}/{branch}")
                bt = table[table["branch"] == branch]
                assert len(bt) == expected.shape[1]
                # the table's (layer, module) blocks follow the reference order
                order = [(L, m) for L, m, x in groups for _ in range(x.shape[-1])]
                assert list(zip(bt["layer"], bt["module"])) == order


def test_neuron_table_layout(tiny_model, tokenizer):
    ro = METERReadout(tiny_model, tokenizer)
    t = ro.neuron_table()
    assert tuple(t.columns) == NEURON_COLUMNS
    img, txt = t[t.branch == "image"], t[t.branch == "text"]
    # image: 2 ViT blocks x 128 units, then 2 fusion layers x (self + cross) x 64
    assert len(img) == 2 * 128 + 2 * 2 * 64 and len(txt) == 2 * 96 + 2 * 2 * 64
    assert sorted(set(img.layer)) == [0, 1, 2, 3] and sorted(set(txt.layer)) == [0, 1, 2, 3]
    assert set(img[img.layer >= 2].module) == {"self_attn", "cross_attn"}
    assert img[img.layer == 0]["head"].max() == 1 and img[img.layer == 0].unit.max() == 63  # 2 heads of 64
    assert txt[txt.layer == 0]["head"].max() == 2 and txt[txt.layer == 0].unit.max() == 31  # 3 heads of 32
    assert txt[txt.layer == 3]["head"].max() == 3 and txt[txt.layer == 3].unit.max() == 15  # 4 heads of 16
    assert not t.duplicated(["branch", "layer", "module", "head", "unit"]).any()
    assert (t.group == t.branch + "/L" + t.layer.astype(str) + "/" + t.module).all()
    mlp = METERReadout(tiny_model, tokenizer, site="mlp").neuron_table()
    assert (mlp.branch == "image").sum() == 2 * 512 + 2 * 256 and (mlp["head"] == -1).all()


def _frames(rng, n, h=300, w=340):
    return [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for _ in range(n)]


def test_padded_batch_and_text_length_invariance(tiny_model, tiny_state, tokenizer, rng):
    f = _frames(rng, 2)
    caps = ["a red cat", "the big green dog runs under a small tree on the house"]
    ro = METERReadout(tiny_model, tokenizer, site="head-unit", pooling="mean")
    alone = ro.readout([[f[0]]], [caps[0]])
    both = ro.readout([[f[0]], [f[1]]], caps)
    for b in ("image", "text"):
        assert both[b].shape == (2, ro.branch_table(b).shape[0])
        np.testing.assert_allclose(both[b][0], alone[b][0], atol=1e-5, rtol=1e-5)
    # more padding (max_text_len 50 -> 20) changes nothing for real tokens
    short = METER(meter_config("tiny", max_text_len=20)).eval()
    short.load_state_dict(tiny_state, strict=True)
    ro20 = METERReadout(short, tokenizer)
    assert ro20.tokenize(caps)[0].shape == (2, 20)
    r20 = ro20.readout([[f[0]], [f[1]]], caps)
    for b in ("image", "text"):
        np.testing.assert_allclose(r20[b], both[b], atol=1e-5, rtol=1e-5)
    # but the caption matters (the test can fail)
    other = ro.readout([[f[0]]], ["the dog sits"])
    assert np.abs(other["image"][0] - alone["image"][0]).max() > 1e-4


def test_frames_are_averaged_and_pipeline_matches_model(tiny_model, tokenizer, rng):
    f = _frames(rng, 3)
    cap = "a dog on the ball"
    ro = METERReadout(tiny_model, tokenizer, site="hidden", pooling="cls", batch_size=2)
    avg = ro.readout([[f[0], f[1], f[2]]], [cap])
    each = [ro.readout([[fi]], [cap]) for fi in f]
    for b in ("image", "text"):
        np.testing.assert_allclose(avg[b][0], np.mean([e[b][0] for e in each], 0), atol=1e-5, rtol=1e-5)
    # hidden/cls of the last fusion layer = the model's text_feats[:, 0] / image_feats[:, 0]
    ids, masks = ro.tokenize([cap])
    assert ids[0, :7].tolist() == [0, 4 + WORDS.index("a"), 4 + WORDS.index("dog"), 4 + WORDS.index("on"),
                                   4 + WORDS.index("the"), 4 + WORDS.index("ball"), 2]
    assert ids.shape == (1, 50) and (ids[0, 7:] == 1).all() and masks.sum() == 7
    with torch.no_grad():
        out = tiny_model.infer(preprocess_frames([f[1]], 288), ids, masks)
    t = ro.neuron_table()
    for b, key in (("image", "image_feats"), ("text", "text_feats")):
        bt = t[t.branch == b].reset_index(drop=True)
        cols = bt.index[bt.layer == bt.layer.max()]
        np.testing.assert_allclose(each[1][b][0, cols], out[key][0, 0].numpy(), atol=1e-5, rtol=1e-5)


def test_empty_caption_patches_falls_back_to_mean(tiny_model, tokenizer, rng):
    f = _frames(rng, 1)
    patches = METERReadout(tiny_model, tokenizer, pooling="patches").readout([f], [""])
    mean = METERReadout(tiny_model, tokenizer, pooling="mean").readout([f], [""])
    np.testing.assert_allclose(patches["text"], mean["text"], atol=1e-6)
    assert np.isfinite(patches["image"]).all() and not np.allclose(patches["image"], mean["image"])
    none = METERReadout(tiny_model, tokenizer).readout([f], None)
    np.testing.assert_allclose(none["text"], mean["text"], atol=1e-6)


def test_preprocessing_matches_hf_clip_processor(rng):
    from transformers import CLIPImageProcessor

    proc = CLIPImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64},
                              image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD))
    for h, w in ((80, 120), (130, 90), (64, 64)):  # even crop offsets (HF floors, torchvision rounds)
        img = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        ref = proc(images=[img], return_tensors="np")["pixel_values"]
        np.testing.assert_allclose(preprocess_frames([img], 64).numpy(), ref, atol=2e-5)
    # torchvision CenterCrop rounding: offset round((67-64)/2) = 2 (round half to even), HF would give 1
    img = np.zeros((64, 67, 3), np.uint8)
    img[:, :, 0] = np.arange(67, dtype=np.uint8)[None, :]
    got = preprocess_frames([img], 64)[0, 0, 0, 0] * CLIP_STD[0] + CLIP_MEAN[0]
    assert abs(float(got) * 255 - 2) < 1e-3


def test_weights_hash(tiny_model, tokenizer):
    ro = METERReadout(tiny_model, tokenizer)
    h = ro.weights_hash()
    assert len(h) == 16 and ro.weights_hash() == h
    other = METER(meter_config("tiny")).eval()
    other.load_state_dict(tiny_model.state_dict())
    with torch.no_grad():
        other.cross_modal_text_pooler.dense.bias[0] += 1e-3
    assert METERReadout(other, tokenizer).weights_hash() != h


def test_from_checkpoint(tmp_path, tiny_state, tokenizer, rng):
    path = tmp_path / "tiny.ckpt"
    torch.save({"state_dict": tiny_state, "epoch": 1}, path)
    ro = METERReadout.from_checkpoint(path, variant="tiny", tokenizer=tokenizer, site="mlp", pooling="patches")
    assert ro.name == "meter-tiny" and ro.site == "mlp" and ro.modalities == {"image": "image+text",
                                                                              "text": "image+text"}
    out = ro.readout([_frames(rng, 1)], ["a cat"])
    assert out["image"].dtype == np.float32 and out["image"].shape == (1, len(ro.branch_table("image")))


def test_tokenizer_from_local_folder(tmp_path, tiny_model, tokenizer):
    tokenizer.save_pretrained(tmp_path / "tok")
    ro = METERReadout(tiny_model, str(tmp_path / "tok"))
    ids, masks = ro.tokenize(["a cat", ""])
    assert ids[0, :4].tolist() == [0, 4, 4 + WORDS.index("cat"), 2] and ids[1, :3].tolist() == [0, 2, 1]
    assert masks.sum(1).tolist() == [4, 2]


def test_errors(tiny_model, tokenizer, rng):
    with pytest.raises(ConfigError, match="site='neuron' is not supported"):
        METERReadout(tiny_model, tokenizer, site="neuron")
    with pytest.raises(ConfigError, match="pooling='max' is not supported"):
        METERReadout(tiny_model, tokenizer, pooling="max")
    with pytest.raises(ConfigError, match="dtype='float64' is not supported"):
        METERReadout(tiny_model, tokenizer, dtype="float64")
    ro = METERReadout(tiny_model, tokenizer)
    with pytest.raises(ConfigError, match="images=None is not possible"):
        ro.readout(None, ["a cat"])
    with pytest.raises(DimensionError, match="2 samples of frames but 1 captions"):
        ro.readout([_frames(rng, 1), _frames(rng, 1)], ["a cat"])
    with pytest.raises(DimensionError, match="must be uint8"):
        ro.readout([[np.zeros((8, 8, 3), np.float32)]], ["a cat"])
    with pytest.raises(ModelNotAvailableError, match=r"'roberta-base' is not available offline.*Hugging Face cache"):
        METERReadout(tiny_model, "roberta-base")
    small_vocab = METER(meter_config("tiny", vocab_size=10, image_size=32)).eval()
    with pytest.raises(DimensionError, match="vocab_size=10"):
        METERReadout(small_vocab, tokenizer).readout([[np.zeros((32, 32, 3), np.uint8)]], ["the house"])
