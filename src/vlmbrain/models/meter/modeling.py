"""A clean PyTorch implementation of METER (Dou et al., CVPR 2022), documented key by key in ``docs/meter.md``.

Parameter names, shapes and the forward pass follow the official ``METERTransformerSS``
(zdou0830/METER @ f4f0934) exactly, so that its ``ckpt["state_dict"]`` loads with
``strict=True``. Every tower is own code (no Hugging Face classes): CLIP ViT with the OpenAI
key names (``vit_model.visual.*``), RoBERTa with the transformers-4.6 key names
(``text_transformer.*``, including the persistent ``embeddings.position_ids`` buffer) and the
co-attention ``BertCrossLayer`` stacks. Attention is computed eagerly (softmax(QKᵀ/√d)V), which
makes every per-head quantity available to :mod:`vlmbrain.models.meter.readout` in one pass.

Intermediates (``output_intermediates=...``) use the key names of the parity fixture
``meter_reference_io.pt["intermediates"]`` (batch-first), plus, for every attention module,
``<prefix>_context`` (per-head output before the output projection, heads concatenated,
``(B, Lq, width)``), ``<prefix>_query`` and ``<prefix>_key`` (projections incl. bias), and for
the unimodal towers ``*.ffn_intermediate`` (FFN units after the activation):

* text: ``text_embeddings``, ``text_encoder.{i}.{attn_probs, attn_context, attn_query, attn_key,
  ffn_intermediate, out}``, ``text_proj``
* image: ``vis.patch_embed`` ``(B, width, g, g)``, ``vis.ln_pre_out``, ``vis.block.{i}.{attn_probs,
  attn_context, attn_query, attn_key, ffn_intermediate, out}``, ``vis.out`` (after ``ln_post``),
  ``image_proj``
* fusion: ``fusion_in.{text,image}``, ``fusion.{text,image}.{i}.{self_attn_*, cross_attn_*,
  self_attn_out, cross_attn_out, ffn_intermediate, out}``, ``cls_feats_text``, ``cls_feats_image``
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Collection
from os import PathLike

import torch
import torch.nn.functional as F
from torch import nn

from vlmbrain.models.meter.checkpoint import load_meter_state_dict, prepare_state_dict, resize_pos_embed  # noqa: F401
from vlmbrain.models.meter.config import METERConfig, meter_config

__all__ = ["METER", "resize_pos_embed", "Intermediates"]


# ----------------------------------------------------------------------------- utilities
class Intermediates:
    """Collects named intermediate tensors, filtered by fnmatch patterns on the key.

    Parameters
    ----------
    spec : bool or collection of str
        ``True``: keep everything; ``False``: nothing; otherwise fnmatch patterns on the full
        key (e.g. ``{"*_context", "*.out"}``).
    """

    def __init__(self, spec: bool | Collection[str]):
        self.spec = spec
        self.data: dict[str, torch.Tensor] = {}

    def wants(self, key: str) -> bool:
        if self.spec is True:
            return True
        if not self.spec:
            return False
        return any(fnmatch.fnmatchcase(key, pat) for pat in self.spec)

    def put(self, key: str, value: torch.Tensor) -> None:
        if self.wants(key):
            self.data[key] = value


_OFF = Intermediates(False)


def _attend(q, k, v, n_heads: int, mask, dropout: nn.Module | None, rec: Intermediates, prefix: str):
    """Multi-head scaled dot-product attention on already projected q, k, v.

    q (B, Lq, W), k and v (B, Lk, W), mask additive (B, 1, 1, Lk) or None. Returns the
    per-head context, heads concatenated, (B, Lq, W).
    """
    b, lq, w = q.shape
    lk = k.shape[1]
    d = w // n_heads
    qh = q.view(b, lq, n_heads, d).transpose(1, 2)
    kh = k.view(b, lk, n_heads, d).transpose(1, 2)
    vh = v.view(b, lk, n_heads, d).transpose(1, 2)
    scores = torch.matmul(qh, kh.transpose(-1, -2)) / math.sqrt(d)
    if mask is not None:
        scores = scores + mask
    probs = scores.softmax(dim=-1)
    rec.put(prefix + "_probs", probs)
    if dropout is not None:
        probs = dropout(probs)
    ctx = torch.matmul(probs, vh).transpose(1, 2).reshape(b, lq, w)
    rec.put(prefix + "_query", q)
    rec.put(prefix + "_key", k)
    rec.put(prefix + "_context", ctx)
    return ctx


def _extended_mask(masks: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """transformers-4.6 additive mask: (1 - mask)[:, None, None, :] * -10000."""
    return (1.0 - masks[:, None, None, :].to(dtype)) * -10000.0


# ----------------------------------------------------------------------------- CLIP ViT
class LayerNorm(nn.LayerNorm):
    """CLIP LayerNorm: computed in fp32, cast back to the input dtype."""

    def forward(self, x):
        w = None if self.weight is None else self.weight.float()
        b = None if self.bias is None else self.bias.float()
        return F.layer_norm(x.float(), self.normalized_shape, w, b, self.eps).to(x.dtype)


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class PackedMultiheadAttention(nn.Module):
    """``nn.MultiheadAttention`` parameter layout (``in_proj_weight`` = [q; k; v]) computed eagerly."""

    def __init__(self, width: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x, rec: Intermediates = _OFF, prefix: str = ""):
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        ctx = _attend(q, k, v, self.n_heads, None, None, rec, prefix)
        return self.out_proj(ctx)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, n_heads: int, mlp_ratio: int, eps: float):
        super().__init__()
        self.attn = PackedMultiheadAttention(width, n_heads)
        self.ln_1 = LayerNorm(width, eps=eps)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, width * mlp_ratio))
        self.mlp.add_module("gelu", QuickGELU())
        self.mlp.add_module("c_proj", nn.Linear(width * mlp_ratio, width))
        self.ln_2 = LayerNorm(width, eps=eps)

    def forward(self, x, rec: Intermediates = _OFF, prefix: str = ""):
        x = x + self.attn(self.ln_1(x), rec, prefix + "attn")
        h = self.mlp.gelu(self.mlp.c_fc(self.ln_2(x)))
        rec.put(prefix + "ffn_intermediate", h)
        x = x + self.mlp.c_proj(h)
        rec.put(prefix + "out", x)
        return x


class _Resblocks(nn.Module):
    def __init__(self, cfg: METERConfig):
        super().__init__()
        self.resblocks = nn.ModuleList(
            ResidualAttentionBlock(cfg.vision_width, cfg.vision_heads, cfg.vision_mlp_ratio, cfg.vision_ln_eps)
            for _ in range(cfg.vision_layers)
        )


class VisualTransformer(nn.Module):
    """CLIP ``VisualTransformer`` without ``proj``; ``ln_post`` on all tokens (batch-first)."""

    def __init__(self, cfg: METERConfig):
        super().__init__()
        w = cfg.vision_width
        scale = w**-0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(w))
        self.positional_embedding = nn.Parameter(scale * torch.randn(cfg.num_image_tokens, w))
        self.conv1 = nn.Conv2d(3, w, kernel_size=cfg.patch_size, stride=cfg.patch_size, bias=False)
        self.ln_pre = LayerNorm(w, eps=cfg.vision_ln_eps)
        self.transformer = _Resblocks(cfg)
        self.ln_post = LayerNorm(w, eps=cfg.vision_ln_eps)

    def forward(self, image, rec: Intermediates = _OFF):
        x = self.conv1(image.to(self.conv1.weight.dtype))
        rec.put("vis.patch_embed", x)
        b, w = x.shape[:2]
        x = x.reshape(b, w, -1).permute(0, 2, 1)
        if x.shape[1] + 1 != self.positional_embedding.shape[0]:
            from vlmbrain.errors import DimensionError

            raise DimensionError(
                f"Image of shape {tuple(image.shape)} gives {x.shape[1]} patches, but the position table has "
                f"{self.positional_embedding.shape[0] - 1} patch rows; resize images to the configured image_size "
                "or resize the table with resize_pos_embed."
            )
        cls = self.class_embedding.to(x.dtype).expand(b, 1, w)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.ln_pre(x)
        rec.put("vis.ln_pre_out", x)
        for i, blk in enumerate(self.transformer.resblocks):
            x = blk(x, rec, f"vis.block.{i}.")
        x = self.ln_post(x)
        rec.put("vis.out", x)
        return x


class CLIPVisionWrapper(nn.Module):
    """``vit_model``: the visual tower plus the unused CLIP text-tower leftovers (key parity)."""

    def __init__(self, cfg: METERConfig):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.zeros(cfg.clip_context_length, cfg.clip_text_width))
        self.visual = VisualTransformer(cfg)
        self.ln_final = LayerNorm(cfg.clip_text_width, eps=cfg.vision_ln_eps)

    def forward(self, image, rec: Intermediates = _OFF):
        return self.visual(image, rec)


# ----------------------------------------------------------------------------- BERT / RoBERTa pieces
class BertSelfAttention(nn.Module):
    def __init__(self, width: int, n_heads: int, drop: float):
        super().__init__()
        self.n_heads = n_heads
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)
        self.dropout = nn.Dropout(drop)

    def forward(self, h, ctx, mask, rec: Intermediates = _OFF, prefix: str = ""):
        return _attend(self.query(h), self.key(ctx), self.value(ctx), self.n_heads, mask, self.dropout, rec, prefix)


class BertSelfOutput(nn.Module):
    def __init__(self, width: int, eps: float, drop: float):
        super().__init__()
        self.dense = nn.Linear(width, width)
        self.LayerNorm = nn.LayerNorm(width, eps=eps)
        self.dropout = nn.Dropout(drop)

    def forward(self, h, residual):
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)


class BertAttention(nn.Module):
    def __init__(self, width: int, n_heads: int, eps: float, drop: float):
        super().__init__()
        self.self = BertSelfAttention(width, n_heads, drop)
        self.output = BertSelfOutput(width, eps, drop)

    def forward(self, h, ctx, mask, rec: Intermediates = _OFF, prefix: str = ""):
        return self.output(self.self(h, ctx, mask, rec, prefix), h)


class BertIntermediate(nn.Module):
    def __init__(self, width: int, inner: int):
        super().__init__()
        self.dense = nn.Linear(width, inner)

    def forward(self, h):
        return F.gelu(self.dense(h))  # exact (erf) GELU


class BertOutput(nn.Module):
    def __init__(self, inner: int, width: int, eps: float, drop: float):
        super().__init__()
        self.dense = nn.Linear(inner, width)
        self.LayerNorm = nn.LayerNorm(width, eps=eps)
        self.dropout = nn.Dropout(drop)

    def forward(self, h, residual):
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)


class RobertaLayer(nn.Module):
    """Post-LN BERT layer: ``a = LN(t + Wo·MHA(t))``, ``t = LN(a + W2·gelu(W1·a))``."""

    def __init__(self, cfg: METERConfig):
        super().__init__()
        w, eps, p = cfg.text_hidden_size, cfg.text_ln_eps, cfg.drop_rate
        self.attention = BertAttention(w, cfg.text_heads, eps, p)
        self.intermediate = BertIntermediate(w, cfg.text_intermediate_size)
        self.output = BertOutput(cfg.text_intermediate_size, w, eps, p)

    def forward(self, t, mask, rec: Intermediates = _OFF, prefix: str = ""):
        a = self.attention(t, t, mask, rec, prefix + "attn")
        h = self.intermediate(a)
        rec.put(prefix + "ffn_intermediate", h)
        t = self.output(h, a)
        rec.put(prefix + "out", t)
        return t


class RobertaEmbeddings(nn.Module):
    def __init__(self, cfg: METERConfig):
        super().__init__()
        w = cfg.text_hidden_size
        self.padding_idx = cfg.pad_token_id
        # persistent in transformers 4.6, hence part of every METER state_dict
        self.register_buffer("position_ids", torch.arange(cfg.text_max_positions).expand(1, -1).clone())
        self.word_embeddings = nn.Embedding(cfg.vocab_size, w, padding_idx=cfg.pad_token_id)
        self.position_embeddings = nn.Embedding(cfg.text_max_positions, w, padding_idx=cfg.pad_token_id)
        self.token_type_embeddings = nn.Embedding(cfg.text_type_vocab_size, w)
        self.LayerNorm = nn.LayerNorm(w, eps=cfg.text_ln_eps)
        self.dropout = nn.Dropout(cfg.drop_rate)

    def forward(self, ids):
        real = (ids != self.padding_idx).long()
        pos = torch.cumsum(real, dim=1) * real + self.padding_idx  # pad-aware RoBERTa positions
        n_pos = self.position_embeddings.num_embeddings
        if pos.numel() and int(pos.max()) >= n_pos:
            from vlmbrain.errors import DimensionError

            raise DimensionError(
                f"text of {int(real.sum(1).max())} tokens exceeds the RoBERTa position table "
                f"({n_pos} positions = at most {n_pos - self.padding_idx - 1} tokens); truncate the captions "
                "(max_text_len) or use a larger text_max_positions."
            )
        emb = self.word_embeddings(ids) + self.token_type_embeddings.weight[0] + self.position_embeddings(pos)
        return self.dropout(self.LayerNorm(emb))


class RobertaEncoder(nn.Module):
    def __init__(self, cfg: METERConfig):
        super().__init__()
        self.layer = nn.ModuleList(RobertaLayer(cfg) for _ in range(cfg.text_layers))


class Pooler(nn.Module):
    """``tanh(dense(x[:, 0]))``."""

    def __init__(self, width: int):
        super().__init__()
        self.dense = nn.Linear(width, width)

    def forward(self, x):
        return torch.tanh(self.dense(x[:, 0]))


class RobertaModel(nn.Module):
    """RoBERTa with transformers-4.6 key names; the pooler exists (key parity) but is unused."""

    def __init__(self, cfg: METERConfig):
        super().__init__()
        self.embeddings = RobertaEmbeddings(cfg)
        self.encoder = RobertaEncoder(cfg)
        self.pooler = Pooler(cfg.text_hidden_size)

    def forward(self, ids, masks, rec: Intermediates = _OFF):
        t = self.embeddings(ids)
        rec.put("text_embeddings", t)
        ext = _extended_mask(masks, t.dtype)
        for i, layer in enumerate(self.encoder.layer):
            t = layer(t, ext, rec, f"text_encoder.{i}.")
        return t


class BertCrossLayer(nn.Module):
    """Co-attention layer: self-attention, cross-attention to the other stream, FFN (post-LN)."""

    def __init__(self, cfg: METERConfig):
        super().__init__()
        w, eps, p = cfg.hidden_size, cfg.fusion_ln_eps, cfg.drop_rate
        inner = w * cfg.mlp_ratio
        self.attention = BertAttention(w, cfg.num_heads, eps, p)
        self.crossattention = BertAttention(w, cfg.num_heads, eps, p)
        self.intermediate = BertIntermediate(w, inner)
        self.output = BertOutput(inner, w, eps, p)

    def forward(self, h, ctx, self_mask, ctx_mask, rec: Intermediates = _OFF, prefix: str = ""):
        a = self.attention(h, h, self_mask, rec, prefix + "self_attn")
        rec.put(prefix + "self_attn_out", a)
        c = self.crossattention(a, ctx, ctx_mask, rec, prefix + "cross_attn")
        rec.put(prefix + "cross_attn_out", c)
        f = self.intermediate(c)
        rec.put(prefix + "ffn_intermediate", f)
        o = self.output(f, c)
        rec.put(prefix + "out", o)
        return o


# ----------------------------------------------------------------------------- heads
class _MLMTransform(nn.Module):
    def __init__(self, width: int, eps: float):
        super().__init__()
        self.dense = nn.Linear(width, width)
        self.LayerNorm = nn.LayerNorm(width, eps=eps)

    def forward(self, h):
        return self.LayerNorm(F.gelu(self.dense(h)))


class MLMHead(nn.Module):
    """``decoder(LN(gelu(dense(h)))) + bias`` with an untied decoder."""

    def __init__(self, width: int, vocab: int, eps: float):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(vocab))
        self.transform = _MLMTransform(width, eps)
        self.decoder = nn.Linear(width, vocab, bias=False)

    def forward(self, h):
        return self.decoder(self.transform(h)) + self.bias


class ITMHead(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.fc = nn.Linear(width, 2)

    def forward(self, x):
        return self.fc(x)


def _classifier(d_in: int, d_hidden: int, n_out: int) -> nn.Sequential:
    """Linear, LayerNorm (eps 1e-5), erf-GELU, Linear (indices 0, 1, 2, 3)."""
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.LayerNorm(d_hidden), nn.GELU(), nn.Linear(d_hidden, n_out))


# ----------------------------------------------------------------------------- METER
class METER(nn.Module):
    """METER co-attention model (``METERTransformerSS``) with official parameter names.

    Parameters
    ----------
    config : METERConfig, optional
        Defaults to ``meter_config("pretrain_288")``.

    Examples
    --------
    >>> model = METER(meter_config("tiny")).eval()
    >>> out = model(image, text_ids, text_masks)   # doctest: +SKIP
    """

    def __init__(self, config: METERConfig | None = None):
        super().__init__()
        cfg = config if config is not None else meter_config("pretrain_288")
        cfg.validate()
        self.config = cfg
        h = cfg.hidden_size
        self.cross_modal_text_transform = nn.Linear(cfg.text_hidden_size, h)
        self.cross_modal_image_transform = nn.Linear(cfg.vision_width, h)
        self.token_type_embeddings = nn.Embedding(cfg.num_token_types, h)
        self.vit_model = CLIPVisionWrapper(cfg)
        self.text_transformer = RobertaModel(cfg)
        self.cross_modal_image_layers = nn.ModuleList(BertCrossLayer(cfg) for _ in range(cfg.num_top_layer))
        self.cross_modal_text_layers = nn.ModuleList(BertCrossLayer(cfg) for _ in range(cfg.num_top_layer))
        self.cross_modal_image_pooler = Pooler(h)
        self.cross_modal_text_pooler = Pooler(h)
        if "mlm" in cfg.heads:
            self.mlm_score = MLMHead(h, cfg.vocab_size, cfg.fusion_ln_eps)
        if "itm" in cfg.heads:
            self.itm_score = ITMHead(2 * h)
        if "vqa" in cfg.heads:
            self.vqa_classifier = _classifier(2 * h, 2 * h, cfg.vqa_label_size)
        if "nlvr2" in cfg.heads:
            self.nlvr2_classifier = _classifier(4 * h, 2 * h, 2)
        if "snli" in cfg.heads:
            self.snli_classifier = _classifier(2 * h, 2 * h, cfg.snli_label_size)
        if "rank" in cfg.heads:
            self.rank_output = nn.Linear(2 * h, 1)

    # ------------------------------------------------------------------ core
    def infer(
        self,
        image: torch.Tensor,
        text_ids: torch.Tensor,
        text_masks: torch.Tensor,
        image_token_type_idx: int = 1,
        output_intermediates: bool | Collection[str] = False,
    ) -> dict:
        """Encode a batch of (image, text) pairs (``METERTransformerSS.infer``).

        Parameters
        ----------
        image : Tensor of shape (B, 3, S, S)
            Normalised pixels, ``S = config.image_size``.
        text_ids : LongTensor of shape (B, L)
            RoBERTa ids (``pad_token_id`` marks padding for the positions).
        text_masks : Tensor of shape (B, L)
            1 for real tokens, 0 for padding.
        image_token_type_idx : int, default=1
        output_intermediates : bool or collection of str, default=False
            ``True`` for every intermediate (see the module docstring), or fnmatch patterns on the keys.

        Returns
        -------
        dict
            ``text_feats`` (B, L, H), ``image_feats`` (B, N+1, H), ``cls_feats`` (B, 2H) and, when asked,
            ``intermediates`` (dict of str to Tensor).
        """
        rec = Intermediates(output_intermediates)
        t = self.text_transformer(text_ids, text_masks, rec)
        t = self.cross_modal_text_transform(t)
        rec.put("text_proj", t)
        v = self.vit_model(image, rec)
        y = self.cross_modal_image_transform(v)
        rec.put("image_proj", y)

        ext_t = _extended_mask(text_masks, t.dtype)
        image_masks = torch.ones(y.shape[:2], dtype=text_masks.dtype, device=y.device)
        ext_i = _extended_mask(image_masks, y.dtype)
        x = t + self.token_type_embeddings.weight[0]
        y = y + self.token_type_embeddings.weight[image_token_type_idx]
        rec.put("fusion_in.text", x)
        rec.put("fusion_in.image", y)
        for i, (tl, il) in enumerate(zip(self.cross_modal_text_layers, self.cross_modal_image_layers)):
            x_new = tl(x, y, ext_t, ext_i, rec, f"fusion.text.{i}.")
            y_new = il(y, x, ext_i, ext_t, rec, f"fusion.image.{i}.")
            x, y = x_new, y_new
        cls_t = self.cross_modal_text_pooler(x)
        cls_i = self.cross_modal_image_pooler(y)
        rec.put("cls_feats_text", cls_t)
        rec.put("cls_feats_image", cls_i)
        out = {"text_feats": x, "image_feats": y, "cls_feats": torch.cat([cls_t, cls_i], dim=-1)}
        if output_intermediates:
            out["intermediates"] = rec.data
        return out

    def forward(
        self,
        image: torch.Tensor,
        text_ids: torch.Tensor,
        text_masks: torch.Tensor,
        image_token_type_idx: int = 1,
        output_intermediates: bool | Collection[str] = False,
    ) -> dict:
        """:meth:`infer` plus the heads present.

        Returns
        -------
        dict
            The :meth:`infer` entries plus ``itm_logits`` (B, 2), ``mlm_logits`` (B, L, V),
            ``vqa_logits`` (B, 3129), ``snli_logits`` (B, 3), ``rank_scores`` (B,) for the heads
            present. NLVR2 needs two images: use :meth:`forward_nlvr2`.
        """
        out = self.infer(image, text_ids, text_masks, image_token_type_idx, output_intermediates)
        cls = out["cls_feats"]
        if hasattr(self, "itm_score"):
            out["itm_logits"] = self.itm_score(cls)
        if hasattr(self, "mlm_score"):
            out["mlm_logits"] = self.mlm_score(out["text_feats"])
        if hasattr(self, "vqa_classifier"):
            out["vqa_logits"] = self.vqa_classifier(cls)
        if hasattr(self, "snli_classifier"):
            out["snli_logits"] = self.snli_classifier(cls)
        if hasattr(self, "rank_output"):
            out["rank_scores"] = self.rank_output(cls)[:, 0]
        return out

    def forward_nlvr2(self, image_0, image_1, text_ids, text_masks) -> torch.Tensor:
        """NLVR2 logits (B, 2): the same text with image 0 (token type 1) and image 1 (token type 2)."""
        if not hasattr(self, "nlvr2_classifier"):
            from vlmbrain.errors import ConfigError

            raise ConfigError("This METER model has no 'nlvr2' head; build it with meter_config('nlvr2_288').")
        c0 = self.infer(image_0, text_ids, text_masks, image_token_type_idx=1)["cls_feats"]
        c1 = self.infer(image_1, text_ids, text_masks, image_token_type_idx=2)["cls_feats"]
        return self.nlvr2_classifier(torch.cat([c0, c1], dim=-1))

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_checkpoint(
        cls,
        path: str | PathLike,
        variant: str = "pretrain_288",
        image_size: int | None = None,
        **overrides,
    ) -> "METER":
        """Build a model for ``variant`` and load an official METER checkpoint into it (strict).

        The checkpoint's position table is resized (docs/meter.md §4) when its grid differs from
        the configured ``image_size``. See :func:`vlmbrain.models.meter.checkpoint.load_meter_state_dict`.

        Parameters
        ----------
        path : str or PathLike
            ``.ckpt`` (PyTorch Lightning) or a plain state_dict file.
        variant : str, default="pretrain_288"
        image_size : int, optional
            Input resolution; default the variant's.
        **overrides
            Further :class:`METERConfig` fields.
        """
        if image_size is not None:
            overrides["image_size"] = int(image_size)
        cfg = meter_config(variant, **overrides)
        state = load_meter_state_dict(path)
        model = cls(cfg)
        model.load_state_dict(prepare_state_dict(state, model, source=str(path)), strict=True)
        # what the checkpoint says about its training (a Lightning record), for the readout
        model.trained = getattr(state, "trained", None)
        model.trained_evidence = getattr(state, "trained_evidence", "")
        return model.eval()
