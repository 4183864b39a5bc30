"""Toy tokenizers: special-token ids, offline save/load, every caption word known, CLIP EOS pooling."""

import numpy as np
import pytest
import torch

from vlmbrain.errors import ConfigError, InputFileError
from vlmbrain.toyworld import caption_scene, sample_scene, vocabulary
from vlmbrain.toyworld.tokenizer import build_tokenizer, load_tokenizer


def test_roberta_layout_ids():
    tok = build_tokenizer("roberta")
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id, tok.mask_token_id) == (0, 1, 2, 3, 4)
    assert len(tok) == 5 + len(vocabulary())


def test_clip_layout_moves_eos_off_2():
    tok = build_tokenizer("clip")
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id) == (0, 1, 4)
    assert tok.eos_token_id != 2


@pytest.mark.parametrize("layout", ["roberta", "clip"])
def test_encode_pad_and_roundtrip(layout, tmp_path):
    tok = build_tokenizer(layout)
    enc = tok(["two small red circles move left above a blue square", "a red circle"], padding=True)
    ids = enc["input_ids"]
    assert ids[0][0] == tok.bos_token_id and ids[0][-1] == tok.eos_token_id
    assert ids[1][:5][-1] == tok.eos_token_id and ids[1][5:] == [tok.pad_token_id] * 7
    assert enc["attention_mask"][1] == [1] * 5 + [0] * 7
    assert tok.decode(tok("A Zebra")["input_ids"]) == "<s> a <unk> </s>"  # lower-cased, unknown -> <unk>
    tok.save_pretrained(tmp_path)
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    for loaded in (AutoTokenizer.from_pretrained(str(tmp_path)),
                   PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json")),
                   load_tokenizer(tmp_path)):
        assert loaded("three large striped green diamonds stay still")["input_ids"] == \
            tok("three large striped green diamonds stay still")["input_ids"]


def test_every_caption_word_is_one_known_token():
    tok = build_tokenizer("roberta")
    rng = np.random.default_rng(0)
    for _ in range(50):
        cap = caption_scene(sample_scene(rng))
        ids = tok(cap)["input_ids"]
        assert len(ids) == len(cap.split()) + 2
        assert tok.unk_token_id not in ids


def test_errors(tmp_path):
    with pytest.raises(ConfigError, match="layout='bert' is not a toy tokenizer layout"):
        build_tokenizer("bert")
    with pytest.raises(InputFileError, match="tokenizer.json does not exist"):
        load_tokenizer(tmp_path)


def _tiny_clip_text(eos_token_id, vocab_size=37):
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    cfg = CLIPTextConfig(vocab_size=vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=32, pad_token_id=1, bos_token_id=0,
                         eos_token_id=eos_token_id)
    return CLIPTextModel(cfg).eval()


def test_clip_text_pools_the_eos_token_with_the_clip_layout():
    """Hugging Face CLIP pools the first EOS position unless eos_token_id == 2 (legacy argmax of ids)."""
    tok = build_tokenizer("clip")
    enc = tok(["a small red circle moves left", "two large blue squares stay still"], padding=True,
              return_tensors="pt")
    eos_pos = (enc["input_ids"] == tok.eos_token_id).int().argmax(1)
    model = _tiny_clip_text(tok.eos_token_id)
    with torch.no_grad():
        out = model(**enc)
    expected = out.last_hidden_state[torch.arange(2), eos_pos]
    torch.testing.assert_close(out.pooler_output, expected)
    # with the RoBERTa layout (eos = 2) CLIP would pool the token with the largest id instead
    rtok = build_tokenizer("roberta")
    renc = rtok(["a small red circle moves left"], return_tensors="pt")
    legacy = _tiny_clip_text(2)
    with torch.no_grad():
        lout = legacy(**renc)
    argmax_pos = int(renc["input_ids"][0].argmax())
    eos = int((renc["input_ids"][0] == 2).nonzero()[0, 0])
    assert argmax_pos != eos
    torch.testing.assert_close(lout.pooler_output[0], lout.last_hidden_state[0, argmax_pos])
