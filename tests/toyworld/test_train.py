"""Toy training: losses fall on a short run, runs are deterministic, saved folders load back."""

import json

import numpy as np
import pytest
import torch

from vlmbrain.errors import ConfigError
from vlmbrain.toyworld import models as toy_models
from vlmbrain.toyworld.train import run, sample_pairs, save_meter, train_clip, train_meter

torch.set_num_threads(1)


def test_clip_loss_falls_and_run_is_deterministic():
    # overfit one fixed batch of 8 pairs: the contrastive loss must leave chance (ln 8) quickly
    fixed = sample_pairs(np.random.default_rng(3), 8)
    kw = dict(seed=1, steps=16, batch_size=8, lr=1e-3, threads=1, log_every=0, sampler=lambda rng, n: fixed)
    model, tok, rec = train_clip(**kw)
    losses = np.asarray(rec["losses"])
    assert len(losses) == 16 and rec["steps"] == 16
    assert losses[0] == pytest.approx(np.log(8), abs=0.4)  # untrained: about chance
    assert losses[-4:].mean() < 1.4 < losses[:4].mean()
    again, _, rec2 = train_clip(**kw)
    assert rec2["losses"] == rec["losses"]
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)


def test_meter_losses_fall(tmp_path, monkeypatch):
    # one fixed batch of 16 scenes; each step pairs half of them with another scene's caption
    fixed = sample_pairs(np.random.default_rng(3), 16)
    model, tok, rec = train_meter(seed=1, steps=20, batch_size=16, lr=2e-3, threads=1, log_every=0,
                                  sampler=lambda rng, n: fixed)
    itm = np.asarray(rec["itm_losses"])
    mlm = np.asarray(rec["mlm_losses"])
    assert itm[0] == pytest.approx(np.log(2), abs=0.15)  # untrained ITM: about chance
    assert itm[-4:].mean() < 0.62 and itm[-4:].mean() < itm[:4].mean() - 0.1
    assert mlm[0] == pytest.approx(np.log(len(tok)), abs=0.5)  # untrained MLM: about uniform over the vocabulary
    assert mlm[-10:].mean() < mlm[:2].mean()
    # saved folder loads back bit-identically through the bundled-weights loader
    save_meter(model, tok, tmp_path / "meter")
    monkeypatch.setattr(toy_models, "WEIGHTS_DIR", tmp_path)
    loaded, ltok = toy_models.load_toy_meter()
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
    assert ltok("a red circle")["input_ids"] == tok("a red circle")["input_ids"]


def test_run_clip_writes_a_loadable_folder(tmp_path):
    info = run("clip", seed=0, out=tmp_path, steps=2, eval_n=32, quick_n=32, threads=1, argv=["--model", "clip"])
    folder = tmp_path / "clip"
    rec = json.loads((folder / "training.json").read_text())
    assert rec["steps"] == 2 and rec["seed"] == 0 and rec["trained"] is True
    assert rec["command"] == "python -m vlmbrain.toyworld.train --model clip"
    assert rec["heldout"] == info["heldout"] and rec["heldout"]["chance"] == 1 / 32
    assert len(rec["loss_curve_50"]) == 1 and "torch" in rec["versions"]
    assert json.loads((folder / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"
    from vlmbrain.models import load_readout

    readout = load_readout(str(folder), site="hidden")
    assert readout.branches == ("vision", "text")


def test_run_rejects_unknown_model(tmp_path):
    with pytest.raises(ConfigError, match="model='vit' is not a toy model"):
        run("vit", seed=0, out=tmp_path)
