"""Throughput of ``extract_activations`` against the bare model forward (not a test).

The model is a CLIP built from a config with random weights: the vision tower has ViT-B/16's
depth and token count (12 layers, 224 px, 16 px patches → 197 tokens) and, by default, half its
width (384 units, 6 heads) so that it runs on a small CPU; ``--width 768 --heads 12`` gives the
full ViT-B/16 size. Random weights do not change the cost of a forward pass.

Three timings per batch size, medians of ``--repeats`` runs, frames per second:

``bare``         ``vision_model(pixel_values)`` on already-preprocessed batches (no hooks)
``bare+prep``    the same plus the frame preprocessing (resize/crop/normalise) of every batch
``extract``      ``extract_activations`` end to end (fresh cache each run): preprocessing, one hooked
                 forward per batch, pooling of every layer's site, writing partial files, assembling
                 the ``(n_timepoints, n_neurons)`` array and the neuron table

Overhead of readout + pooling (+ I/O) = ``bare+prep / extract - 1`` in time, i.e. how much
longer the extraction takes than preprocessing + forward alone. Target on CPU: ≤ 25 %.

Run: ``python benchmarks/bench_extract.py [--frames 48] [--batch-size 16] [--site head-unit] [--device cpu]``
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time

import numpy as np
import torch


def build(width: int, heads: int, layers: int, device: str, dtype: str, site: str, pooling: str, batch_size: int):
    import transformers

    from vlmbrain.models.hf import HFReadout

    torch.manual_seed(0)
    cfg = transformers.CLIPConfig(
        vision_config=dict(hidden_size=width, intermediate_size=4 * width, num_hidden_layers=layers,
                           num_attention_heads=heads, image_size=224, patch_size=16),
        text_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2),
        projection_dim=64,
    )
    model = transformers.CLIPModel(cfg)

    class NoTok:  # the benchmark reads frames only; the text tower is never run
        pass

    return HFReadout(model, "bench-clip", site=site, pooling=pooling, tokenizer=NoTok(), device=device, dtype=dtype,
                     batch_size=batch_size)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--batch-size", type=int, nargs="+", default=[16])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--width", type=int, default=384)
    p.add_argument("--heads", type=int, default=6)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--site", default="head-unit")
    p.add_argument("--pooling", default="mean")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("vlmbrain").setLevel(logging.ERROR)  # the frames-only stimulus skips the text tower

    from vlmbrain.extract import extract_activations
    from vlmbrain.stimulus.timeline import ArrayStimulus, Timeline

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (args.frames, 224, 224, 3), dtype=np.uint8)
    stim = ArrayStimulus(Timeline.from_runs([args.frames], tr=1.0), frames_array=frames, use_captions=False)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    print(f"# CLIP vision tower, random weights: {args.layers} layers, width {args.width}, {args.heads} heads, "
          f"224 px / patch 16 (197 tokens); site={args.site} pooling={args.pooling} device={args.device} "
          f"dtype={args.dtype} torch threads={torch.get_num_threads()}; {args.frames} frames; "
          f"medians of {args.repeats} runs")
    print(f"{'batch':>5} {'site':>9} {'bare fps':>9} {'bare+prep fps':>14} {'extract fps':>12} "
          f"{'overhead vs bare+prep':>22} {'vs bare':>8}")
    for bs in args.batch_size:
        readout = build(args.width, args.heads, args.layers, args.device, args.dtype, args.site, args.pooling, bs)
        vision = readout.model.vision_model
        prep = readout.image_processor
        batches = [list(frames[i:i + bs]) for i in range(0, args.frames, bs)]
        pixels = [prep(b, device=readout.device).to(readout.dtype) for b in batches]
        readout.readout([[frames[0]]], None)  # warm-up
        readout.weights_hash()  # hashed once per model; not part of the per-frame cost

        def bare():
            with torch.inference_mode():
                for px in pixels:
                    vision(pixel_values=px)
            sync()

        def bare_prep():
            with torch.inference_mode():
                for b in batches:
                    vision(pixel_values=prep(b, device=readout.device).to(readout.dtype))
            sync()

        def extract():
            with tempfile.TemporaryDirectory() as tmp:
                extract_activations(stim, readout, f"{tmp}/out", batch_size=bs, cache_dir=f"{tmp}/cache")

        times = {"bare": [], "bare+prep": [], "extract": []}
        for _ in range(args.repeats):  # interleaved so that load changes hit all three alike
            for name, fn in (("bare", bare), ("bare+prep", bare_prep), ("extract", extract)):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        fps = {k: args.frames / v for k, v in med.items()}
        print(f"{bs:>5} {args.site:>9} {fps['bare']:>9.2f} {fps['bare+prep']:>14.2f} {fps['extract']:>12.2f} "
              f"{med['extract'] / med['bare+prep'] - 1:>21.1%} {med['extract'] / med['bare'] - 1:>8.1%}")


if __name__ == "__main__":
    main()
