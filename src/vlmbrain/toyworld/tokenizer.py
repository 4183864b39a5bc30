"""Word-level tokenizers over the toy-world vocabulary (``tokenizers`` + ``PreTrainedTokenizerFast``).

Two id layouts of the same word vocabulary:

``"roberta"`` (METER)
    ``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3, ``<mask>``=4, words from 5. METER's RoBERTa
    embeddings use the pad id 1 for pad-aware position ids.
``"clip"`` (CLIP text tower)
    ``<s>``=0, ``<pad>``=1, ``<mask>``=2, ``<unk>``=3, ``</s>``=4, words from 5. Hugging Face's
    ``CLIPTextTransformer`` treats ``eos_token_id == 2`` as a legacy config and then pools the
    token with the *largest id* instead of the EOS token (transformers 5.x
    ``modeling_clip.py``), so the CLIP layout moves ``</s>`` off id 2; with any other id it
    pools the first EOS position.

Both add ``<s> … </s>`` around a caption and lower-case it; unknown words map to ``<unk>``.
"""

from __future__ import annotations

from pathlib import Path

from vlmbrain.errors import ConfigError
from vlmbrain.toyworld.scenes import vocabulary

#: Special tokens by id, per layout.
SPECIAL_LAYOUTS: dict[str, tuple[str, ...]] = {
    "roberta": ("<s>", "<pad>", "</s>", "<unk>", "<mask>"),
    "clip": ("<s>", "<pad>", "<mask>", "<unk>", "</s>"),
}
#: Longest caption in tokens, including ``<s>`` and ``</s>`` (the grammar yields at most 16).
MAX_LENGTH = 32


def build_tokenizer(layout: str = "roberta", max_length: int = MAX_LENGTH):
    """Build the word-level toy tokenizer.

    Parameters
    ----------
    layout : {"roberta", "clip"}
        Special-token id layout (see the module docstring).
    max_length : int
        ``model_max_length`` of the tokenizer (the models' maximum positions).

    Returns
    -------
    transformers.PreTrainedTokenizerFast

    Raises
    ------
    ConfigError
        On an unknown ``layout``.
    """
    if layout not in SPECIAL_LAYOUTS:
        raise ConfigError(f"layout={layout!r} is not a toy tokenizer layout; use one of {sorted(SPECIAL_LAYOUTS)}.")
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    specials = SPECIAL_LAYOUTS[layout]
    vocab = {tok: i for i, tok in enumerate(specials)}
    for word in vocabulary():
        vocab[word] = len(vocab)
    tok = Tokenizer(WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    bos, eos = "<s>", "</s>"
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, vocab[bos]), (eos, vocab[eos])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        cls_token=bos,
        sep_token=eos,
        model_max_length=int(max_length),
        padding_side="right",
    )


def load_tokenizer(folder: str | Path):
    """Load a saved toy tokenizer (``tokenizer.json``) from ``folder``, offline.

    Parameters
    ----------
    folder : str or Path

    Returns
    -------
    transformers.PreTrainedTokenizerFast

    Raises
    ------
    vlmbrain.errors.InputFileError
        If ``folder/tokenizer.json`` does not exist.
    """
    from transformers import PreTrainedTokenizerFast

    from vlmbrain.errors import InputFileError

    path = Path(folder) / "tokenizer.json"
    if not path.is_file():
        raise InputFileError(
            f"{path} does not exist; a toy model folder must hold the tokenizer.json written by "
            "`python -m vlmbrain.toyworld.train`."
        )
    return PreTrainedTokenizerFast.from_pretrained(str(folder))
