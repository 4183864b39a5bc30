"""Small synthetic inputs for tests and examples (no downloads)."""

from __future__ import annotations

import zlib

import numpy as np

from vlmbrain.models.base import Readout, make_neuron_table


#: Captions of the small custom study written by :func:`write_caption_study`.
STUDY_WORDS = ("a red circle", "two blue squares above a green triangle", "one small yellow square",
               "three large purple circles move left")


def word_level_tokenizer(words, *, split="whitespace", vocab_size=None, model_max_length=None):
    """A word-level tokenizer with RoBERTa's special ids (``<s>`` 0, ``<pad>`` 1, ``</s>`` 2,
    ``<unk>`` 3; ``words`` from 4, in their order), ``<s> … </s>`` around a text.

    ``split``: ``"whitespace"`` (words and punctuation apart) or ``"whitespace_split"`` (on
    spaces only). ``vocab_size``: pad the vocabulary with unused filler tokens to that size (a
    model's own vocabulary size).
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, **{w: i + 4 for i, w in enumerate(words)}}
    if vocab_size is not None:
        vocab.update({f"<unused{i}>": i for i in range(len(vocab), vocab_size)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = {"whitespace": pre_tokenizers.Whitespace,
                         "whitespace_split": pre_tokenizers.WhitespaceSplit}[split]()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    kw = {} if model_max_length is None else {"model_max_length": model_max_length}
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", **kw)


def write_caption_study(folder, rng, n_subjects, n_columns, fmri_extra=None, n_atoms=4):
    """A user's own study on disk: per-run TSV captions (4 s cues) and .npy runs (60 TRs) per subject.

    Returns the path of its YAML configuration (minilm, parametric encoding) and the subjects' paths.
    """
    import yaml

    for run in ("r1", "r2"):
        lines = ["onset\tduration\ttext"] + [f"{4 * i}\t4\t{STUDY_WORDS[i % 4]}" for i in range(15)]
        (folder / f"{run}.tsv").write_text("\n".join(lines) + "\n")
    subjects = []
    for s in range(n_subjects):
        paths = []
        for run in ("r1", "r2"):
            p = folder / f"sub{s}_{run}.npy"
            np.save(p, rng.normal(size=(60, n_columns)).astype(np.float32))
            paths.append(str(p))
        subjects.append(paths)
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump({
        "stimulus": {"kind": "custom", "runs": [{"name": "r1", "n_trs": 60, "captions": "r1.tsv"},
                                                 {"name": "r2", "n_trs": 60, "captions": "r2.tsv"}]},
        "fmri": {"kind": "npy", "subjects": subjects, **(fmri_extra or {})},
        "models": [{"name": "minilm"}],
        "dictionary": {"n_atoms": n_atoms},
        "encoding": {"n_shifts": 0},
    }))
    return path, subjects


# ----------------------------------------------------------------------------- a tiny text model family
class EchoTextReadout(Readout):
    """A text-only 'model': two layers of 12 units, each a fixed random projection of word hashes."""

    name = "echo-text"
    branches = ("text",)
    modalities = {"text": "text"}
    description = "word-hash projections (a test model family)"

    def __init__(self, **kw):
        rng = np.random.default_rng(7)
        self._w = rng.normal(size=(2, 64, 12)).astype(np.float32)

    def neuron_table(self):
        rows = [{"model": self.name, "branch": "text", "layer": layer, "module": "hidden", "head": -1, "unit": u,
                 "group": None} for layer in range(2) for u in range(12)]
        return make_neuron_table(rows)

    def readout(self, images, captions):
        feats = np.zeros((len(captions), 64), np.float32)
        for i, cap in enumerate(captions):
            for word in cap.split():
                feats[i, zlib.crc32(word.encode()) % 64] += 1.0
        h1 = np.tanh(feats @ self._w[0])
        return {"text": np.concatenate([h1, np.tanh(h1 @ self._w[1][:12, :] + feats[:, :12])], axis=1)}

    def weights_hash(self):
        return "echo-text-v1"


def echo_loader(source, site="head-unit", pooling="mean", device="cpu", dtype="float32", name=None, **kw):
    return EchoTextReadout()


