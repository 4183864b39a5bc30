"""The whole study end to end at a chosen scale: per-stage seconds, peak RSS and disk (not a test).

Everything the study reads is generated into a work folder first (not timed):

- a CLIP ViT-B/16-sized model built from ``transformers.CLIPConfig`` with random weights (vision
  tower 12 layers, width 768, 12 heads, 224 px, patch 16; text tower CLIP-B: 12 layers, width 512,
  8 heads, vocab 49,408, 77 positions), saved with ``save_pretrained`` next to a word-level
  tokenizer built from the captions' vocabulary (``<s>``/``<pad>``/``</s>``/``<unk>`` + ~150 words,
  padded with unused filler tokens to the model's vocabulary size, ``PreTrainedTokenizerFast``)
  and a ``CLIPImageProcessor``; ``--width 0.5`` halves the width of
  both towers (head width 64 kept), for a small CPU. Random weights cost the same as trained ones;
- with ``--models clip,meter`` also a METER-sized model, ``METER(meter_config(--meter-variant))``
  (CLIP-ViT-B/16 11 blocks + RoBERTa-base + 6 fusion layers, 288 px for ``pretrain_288``) with
  random weights, saved as a Lightning-style ``{"state_dict": ...}`` checkpoint and loaded by the
  ``meter-clip16-roberta`` alias (``options: {checkpoint, tokenizer}``; the same word-level
  tokenizer); METER is always full size;
- a stimulus of ``--runs`` × ``--trs-per-run`` TRs (TR 1 s): one synthetic MPEG-4 video per run
  (moving coloured blobs, ``--fps`` frames per second, written with PyAV) and one caption TSV per
  run (``onset, duration, text``, a cue every 3 s);
- fMRI as one ``.npy`` per run of shape (TRs, ``--grayordinates``) float32: white noise plus a
  planted HRF-convolved luminance signal in the first tenth of the columns;
  ``fmri.n_grayordinates`` is set, so at 91,282 columns the HCP CAB-NP atlas is matched.

The configuration is the default one (``vlmbrain config``) apart from the stimulus, fMRI and
model entries. Then every stage runs as its own process, in order, into a fresh run directory:
``stimulus`` and ``brain`` through ``vlmbrain.pipeline.run_pipeline(config, out, stages=[...])``
(they have no command of their own), then ``vlmbrain extract|signal|dictionary|encode|analyze|report
CONFIG --out RUN -q`` (each finds its earlier stages finished and skips them).

Per stage:

``seconds``     wall time of the stage's process (imports and skip checks included)
``CPU s``       user + system CPU seconds of the stage's process and its children
``peak RSS``    the larger of ``ru_maxrss`` (``RUSAGE_CHILDREN`` of a small launcher process: the
                largest single process of the stage's tree) and the peak of the summed RSS of the
                tree polled every 0.2 s with psutil
``disk``        growth of the run directory during the stage (apparent file sizes; the activation
                cache lives in ``RUN/cache/`` by default and is included), and the folders that grew
``load``        mean and max 1-minute load average sampled during the stage (the machine is shared)

Full scale with a short extraction (``--extract-trs-per-run N``): extracting 3,600 TRs with CLIP-B/16 and a
METER-sized model takes hours on a small CPU, so the real ``extract`` stage is run — one run directory and one
process per model, the same videos, the captions cut to cues with onset < N, a small fMRI stand-in — on the first
N TRs of every run (its CPU seconds, wall seconds and peak RSS are measured like any stage, per model). Those
activations are then tiled per run (row ``t`` of run ``r`` = extracted row ``t mod N`` of run ``r``) to
``--trs-per-run`` and written, in a separate process, as the full run's activation-cache resume files
(``RUN/cache/activations/<key>/partial/rows_<start>_<stop>.npz``, ``models[].batch_size`` TRs each, ``key`` computed
by ``vlmbrain.extract._cache_key`` for the full stimulus and the loaded readout) — exactly what an interrupted
extraction leaves behind. The full run's ``extract`` stage then finds every TR covered, runs no forward pass, and
assembles, copies and records the activations with its own code (step keys, ``_stage.json``, ``model.json``
unchanged), so every later stage runs at full scale on activations of the real towers. The ``extract`` row of
the full run is therefore "assemble from the cache", not a forward pass; the forward pass's cost at full length
is an extrapolation from the short runs (run ``--extract-only`` at a second N for the growth per TR).

Run:
``nice -n 10 python benchmarks/bench_pipeline.py --runs 4 --trs-per-run 225 --grayordinates 91282
[--models clip,meter] [--width 1] [--device cuda --backend torch] [--work DIR] [--keep] [--out-json FILE]
[--extract-trs-per-run N [--extract-only]]``
Tiny check: ``--runs 2 --trs-per-run 40 --grayordinates 2000 --width 0.5``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

STAGES = [  # (stage, how it is run: None = through run_pipeline, else the CLI command)
    ("stimulus", None), ("brain", None), ("extract", "extract"), ("signal", "signal"),
    ("dictionary", "dictionary"), ("encoding", "encode"), ("analysis", "analyze"), ("report", "report"),
]
RUN_STAGE = ("import sys, logging; logging.basicConfig(level=logging.WARNING);"
             "from vlmbrain.config import load_config; from vlmbrain.pipeline import run_pipeline;"
             "run_pipeline(load_config(sys.argv[1]), sys.argv[2], stages=[sys.argv[3]])")
# Every stage runs under this small launcher, which reports its children's rusage: the launcher is
# exec'd from the (large) benchmark process, and Linux carries the pre-exec high-water mark into
# ru_maxrss, so os.wait4 on a direct child would report at least the benchmark's own RSS.
LAUNCH = ("import json, resource, subprocess, sys; rc = subprocess.call(sys.argv[2:]);"
          "ru = resource.getrusage(resource.RUSAGE_CHILDREN);"
          "json.dump({'rc': rc, 'maxrss': ru.ru_maxrss * 1024, 'cpu': ru.ru_utime + ru.ru_stime}, open(sys.argv[1], 'w'));"
          "sys.exit(rc)")

WORDS = ("a an the one two three small large red green blue yellow white black dark bright man woman child dog "
         "cat car bus bird tree house street room window door table chair face hand water sky cloud sun road "
         "city forest field river boat phone book screen light shadow walks runs sits stands looks talks "
         "drives flies opens closes holds turns smiles moves left right up down near far behind above below "
         "inside outside slowly quickly together alone again now then here there and with of in on at to "
         "from into over under through camera shows scene close view wide people group crowd music night "
         "day morning evening rain snow wind fire smoke glass metal wood stone paper").split()


# ----------------------------------------------------------------------------- inputs
def word_tokenizer(vocab_size: int):
    """Word-level tokenizer over :data:`WORDS`, padded with unused filler tokens to ``vocab_size`` entries.

    (vlmbrain rejects a tokenizer that covers less than half of the model's vocabulary as "not the
    model's own"; the fillers make it the size of the real one.)
    """
    from vlmbrain._testing import word_level_tokenizer

    return word_level_tokenizer(list(dict.fromkeys(WORDS)), vocab_size=vocab_size, model_max_length=77)


def save_tokenizer(tok, out: Path) -> None:
    tok.save_pretrained(out)
    path = out / "tokenizer_config.json"  # loadable by transformers 4 and 5 alike
    cfg = json.loads(path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(cfg, indent=2) + "\n")


def _w(width: int, scale: float) -> int:
    return max(64, int(round(width * scale / 64)) * 64)


def make_clip(out: Path, width: float) -> dict:
    import torch
    import transformers

    torch.manual_seed(0)
    vw, tw = _w(768, width), _w(512, width)
    cfg = transformers.CLIPConfig(
        vision_config=dict(hidden_size=vw, intermediate_size=4 * vw, num_hidden_layers=12,
                           num_attention_heads=vw // 64, image_size=224, patch_size=16),
        text_config=dict(vocab_size=49408, hidden_size=tw, intermediate_size=4 * tw, num_hidden_layers=12,
                         num_attention_heads=tw // 64, max_position_embeddings=77,
                         bos_token_id=0, pad_token_id=1, eos_token_id=2),
        projection_dim=512,
    )
    model = transformers.CLIPModel(cfg).eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    save_tokenizer(word_tokenizer(49408), out)
    transformers.CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}).save_pretrained(out)
    n = sum(p.numel() for p in model.parameters())
    return {"vision_width": vw, "vision_heads": vw // 64, "text_width": tw, "text_heads": tw // 64, "params": n}


def make_meter(out: Path, variant: str) -> dict:
    import torch

    from vlmbrain.models.meter import meter_config
    from vlmbrain.models.meter.modeling import METER

    torch.manual_seed(0)
    model = METER(meter_config(variant)).eval()
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "epoch": 0}, out / f"meter_{variant}_random.ckpt")
    save_tokenizer(word_tokenizer(model.config.vocab_size), out / "tokenizer")
    return {"variant": variant, "params": sum(p.numel() for p in model.parameters()),
            "image_size": model.config.image_size}


def frame(t: float, size: int, rng_state) -> np.ndarray:
    """A synthetic frame: three coloured Gaussian blobs on slow elliptic paths over a drifting gradient."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = np.empty((size, size, 3), np.float32)
    for c in range(3):
        img[..., c] = 0.3 + 0.2 * np.sin(2 * np.pi * (xx * (c + 1) + yy + 0.01 * t * (c + 1)))
    for k, (cx, cy, col, per) in enumerate(rng_state):
        x = 0.5 + 0.35 * np.cos(2 * np.pi * t / per + k)
        y = 0.5 + 0.35 * np.sin(2 * np.pi * t / (per * 1.3) + cx)
        blob = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * (0.05 + 0.03 * cy) ** 2))
        img += blob[..., None] * col[None, None, :]
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def make_video(path: Path, n_trs: int, fps: int, size: int, seed: int) -> np.ndarray:
    """Write an MPEG-4 video of ``n_trs`` seconds; returns the mean luminance per TR (for the planted signal)."""
    import av

    rng = np.random.default_rng(seed)
    blobs = [(rng.uniform(0, 6), rng.uniform(0, 1), rng.uniform(0.2, 0.8, 3).astype(np.float32), rng.uniform(8, 40))
             for _ in range(3)]
    lum = np.zeros(n_trs, np.float32)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 2_000_000
        for i in range(n_trs * fps):
            img = frame(i / fps, size, blobs)
            lum[i // fps] += img.mean() / fps
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return lum


def make_captions(path: Path, n_trs: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    lines = ["onset\tduration\ttext"]
    for onset in range(0, n_trs, 3):
        words = rng.choice(WORDS, size=int(rng.integers(5, 12)))
        lines.append(f"{onset}\t3\t{' '.join(words)}")
    path.write_text("\n".join(lines) + "\n")


def spm_hrf(tr: float = 1.0, length: float = 32.0) -> np.ndarray:
    from scipy.stats import gamma

    t = np.arange(0, length, tr)
    h = gamma.pdf(t, 6) - gamma.pdf(t, 16) / 6.0
    return (h / h.sum()).astype(np.float32)


def make_fmri(path: Path, lum: np.ndarray, n_columns: int, seed: int, amplitude: float = 0.3) -> None:
    """(T, V) float32: unit white noise + ``amplitude`` × the z-scored HRF-convolved luminance in the first V/10 columns."""
    rng = np.random.default_rng(seed)
    s = np.convolve(lum - lum.mean(), spm_hrf())[: len(lum)]
    s = (s - s.mean()) / (s.std() + 1e-12)
    data = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(len(lum), n_columns))
    planted = max(1, n_columns // 10)
    for a in range(0, n_columns, 8192):
        b = min(a + 8192, n_columns)
        block = rng.standard_normal((len(lum), b - a), dtype=np.float32)
        if a < planted:
            m = min(b, planted) - a
            block[:, :m] += amplitude * s[:, None]
        data[:, a:b] = block
    data.flush()
    del data


def write_config(work: Path, args, models: dict, n_trs: int | None = None, captions_dir: str = "stimulus",
                 fmri_dir: str = "fmri", name: str = "bench_pipeline", grayordinates: bool = True) -> Path:
    import yaml

    n_trs = n_trs or args.trs_per_run
    runs = [{"name": f"run{r + 1}", "n_trs": n_trs, "video": str(work / "stimulus" / f"run{r + 1}.mp4"),
             "captions": str(work / captions_dir / f"run{r + 1}.tsv")} for r in range(args.runs)]
    cfg = {
        "stimulus": {"kind": "custom", "tr": 1.0, "runs": runs},
        "fmri": {"kind": "npy", "paths": [str(work / fmri_dir / f"run{r + 1}.npy") for r in range(args.runs)]},
        "models": [],
    }
    if grayordinates:
        cfg["fmri"]["n_grayordinates"] = args.grayordinates
    if args.backend != "numpy":
        cfg["encoding"] = {"backend": args.backend}
    if "clip" in models:
        cfg["models"].append({"name": str(work / "models" / "clip-b16")})
    if "meter" in models:
        mdir = work / "models" / "meter"
        cfg["models"].append({"name": "meter-clip16-roberta", "options": {
            "checkpoint": str(mdir / f"meter_{args.meter_variant}_random.ckpt"), "variant": args.meter_variant,
            "tokenizer": str(mdir / "tokenizer")}})
    for m in cfg["models"]:
        m["device"] = args.device
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


# ----------------------------------------------------------------------------- short extraction, tiled to full scale
def short_inputs(work: Path, args, n: int) -> None:
    """Captions and fMRI for ``n`` TRs per run (the videos are the full-length ones: a run reads its first ``n`` s).

    The captions are the first lines of the full runs' TSVs (cues with onset < ``n``: the same text at the same
    times); the fMRI is white noise on 2,000 columns (only the extract stage's outputs are used)."""
    cap, fmri = work / f"stimulus_{n}", work / f"fmri_{n}"
    cap.mkdir(exist_ok=True)
    fmri.mkdir(exist_ok=True)
    for r in range(args.runs):
        lines = (work / "stimulus" / f"run{r + 1}.tsv").read_text().splitlines()
        keep = [lines[0]] + [ln for ln in lines[1:] if float(ln.split("\t")[0]) < n]
        (cap / f"run{r + 1}.tsv").write_text("\n".join(keep) + "\n")
        if not (fmri / f"run{r + 1}.npy").exists():
            make_fmri(fmri / f"run{r + 1}.npy", np.zeros(n, np.float32), 2000, seed=300 + r)


def plant_main(spec_path: str) -> int:
    """(Run in its own process.) Write the full-scale activation cache's resume files from short extractions.

    For every model of the full configuration: load its readout as the extract stage does, compute the cache key
    the extract stage will ask for (``vlmbrain.extract._cache_key`` of the full-length stimulus), and write
    ``RUN/cache/activations/<key>/partial/rows_<start>_<stop>.npz`` in batches of ``models[].batch_size`` TRs —
    what an interrupted extraction leaves behind. Row ``t`` of run ``r`` (0-based, ``t < trs_per_run``) is row
    ``t mod n_short`` of run ``r`` of the short extraction (its time courses tiled per run). The extract stage
    then finds every TR covered, runs no forward pass, and assembles, copies and records the activations
    through its own code (step key, ``_stage.json``, ``model.json``)."""
    from vlmbrain.config import load_config
    from vlmbrain.extract import _cache_key, _select_branches
    from vlmbrain.models import load_readout
    from vlmbrain.pipeline import Pipeline
    from vlmbrain.stages.model_files import model_dirname
    from vlmbrain.stages.stimulus import stimulus_of

    spec = json.loads(Path(spec_path).read_text())
    cfg = load_config(spec["config"])
    run_dir = Path(spec["run_dir"])
    runs, full, short = spec["runs"], spec["trs_per_run"], spec["n_short"]
    stim = stimulus_of(Pipeline(cfg, run_dir).context)
    assert len(stim.timeline.table) == runs * full, (len(stim.timeline.table), runs, full)
    index = np.concatenate([r * short + np.arange(full) % short for r in range(runs)])
    out = {}
    for mcfg in cfg.models:
        mdir = model_dirname(mcfg.name)
        readout = load_readout(mcfg.name, site=mcfg.site, pooling=mcfg.pooling, device=mcfg.device, dtype=mcfg.dtype,
                               **mcfg.options)
        table = readout.neuron_table()
        branches = _select_branches(stim, readout)
        key = _cache_key(stim, readout, branches, table)
        src = Path(spec["sources"][mdir]) / "activations" / mdir
        arrays = {}
        for b in branches:
            a = np.load(src / f"{b}.npy")
            n_b = int((table["branch"] == b).sum())
            assert a.shape == (runs * short, n_b), (mdir, b, a.shape, runs * short, n_b)
            arrays[b] = a
        partial = run_dir / "cache" / "activations" / key / "partial"
        partial.mkdir(parents=True, exist_ok=True)
        step = int(mcfg.batch_size)
        for start in range(0, runs * full, step):
            stop = min(start + step, runs * full)
            np.savez(partial / f"rows_{start:08d}_{stop:08d}.npz", **{b: a[index[start:stop]] for b, a in arrays.items()})
        out[mdir] = {"key": key, "branches": {b: int(a.shape[1]) for b, a in arrays.items()}, "source": str(src)}
        del readout, arrays
    Path(spec["report"]).write_text(json.dumps(out, indent=2))
    return 0


def measure_stages(stages: list[str], config: Path, run_dir: Path, work: Path, env: dict, tag: str = "") -> list[dict]:
    """Run ``stages`` in order, each as its own process, into ``run_dir``; one record per stage (stops at a failure)."""
    vlmbrain = shutil.which("vlmbrain") or str(Path(sys.executable).with_name("vlmbrain"))
    records = []
    for stage, command_name in STAGES:
        if stage not in stages:
            continue
        if command_name is None:
            cmd = [sys.executable, "-c", RUN_STAGE, str(config), str(run_dir), stage]
        else:
            cmd = [vlmbrain, command_name, str(config), "--out", str(run_dir), "-q"]
        before = tree_sizes(run_dir)
        print(f"[{time.strftime('%H:%M:%S')}] {tag}{stage} ...", flush=True)
        log = work / f"log_{tag}{stage}.txt"
        rec = run_stage(cmd, log, env)
        after = tree_sizes(run_dir)
        grew = {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0) > 0}
        rec.update(stage=stage, command=" ".join(shlex.quote(c) for c in cmd[:1] + cmd[1:] if len(c) < 400),
                   grew=grew, disk=sum(grew.values()))
        records.append(rec)
        print(f"    {rec['seconds']:.1f} s, CPU {rec['cpu_seconds']:.1f} s, peak RSS {gb(rec['peak_rss']):.2f} GB, "
              f"disk +{mb(rec['disk']):.1f} MB, load {rec['load_mean']:.1f}", flush=True)
        if rec["rc"]:
            tail = log.read_text()[-3000:]
            rec["log_tail"] = tail
            print(f"stage {stage} failed (rc {rec['rc']}); log tail:\n{tail}", flush=True)
            break
    return records


# ----------------------------------------------------------------------------- measuring
def tree_sizes(root: Path) -> dict[str, int]:
    """Apparent bytes per top-level entry of ``root``."""
    out = {}
    if not root.exists():
        return out
    for entry in root.iterdir():
        if entry.is_file():
            out[entry.name] = entry.stat().st_size
        elif entry.is_dir():
            total = 0
            for dirpath, _, files in os.walk(entry):
                for f in files:
                    try:
                        total += os.stat(os.path.join(dirpath, f)).st_size
                    except OSError:
                        pass
            out[entry.name + "/"] = total
    return out


def run_stage(cmd: list[str], log: Path, env: dict) -> dict:
    import psutil

    loads, peak_tree = [], 0
    usage = log.with_suffix(".rusage.json")
    usage.unlink(missing_ok=True)
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-c", LAUNCH, str(usage)] + cmd, stdout=fh, stderr=subprocess.STDOUT,
                                env=env)
        ps = psutil.Process(proc.pid)
        last_load = 0.0
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            try:  # the stage's process tree, without the launcher
                rss = sum(c.memory_info().rss for c in ps.children(recursive=True))
                peak_tree = max(peak_tree, rss)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
            if time.perf_counter() - last_load >= 5:
                loads.append(os.getloadavg()[0])
                last_load = time.perf_counter()
            time.sleep(0.2)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    loads.append(os.getloadavg()[0])
    rep = json.loads(usage.read_text()) if usage.exists() else {"maxrss": 0, "cpu": ru.ru_utime + ru.ru_stime}
    maxrss = rep["maxrss"]
    return {"seconds": wall, "cpu_seconds": rep["cpu"], "rc": proc.returncode,
            "peak_rss": max(maxrss, peak_tree), "ru_maxrss": maxrss, "peak_tree_rss": peak_tree,
            "load_mean": float(np.mean(loads)), "load_max": float(np.max(loads))}


def machine() -> dict:
    import psutil

    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": cpu, "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "platform": platform.platform(), "python": platform.python_version()}


def gb(b): return b / 2**30
def mb(b): return b / 2**20


def table(result: dict) -> str:
    rows = ["| stage | seconds | CPU s | peak RSS (GB) | disk (MB) | folders that grew | load (mean / max) |",
            "|---|---:|---:|---:|---:|---|---|"]
    for s in result["stages"]:
        grew = ", ".join(f"{k} {mb(v):.1f}" for k, v in sorted(s["grew"].items(), key=lambda kv: -kv[1]) if mb(v) >= 0.05)
        flag = " ⚠ > 8 GB" if gb(s["peak_rss"]) > 8 else ""
        fail = f" **failed (rc {s['rc']})**" if s["rc"] else ""
        rows.append(f"| {s['stage']}{fail} | {s['seconds']:.1f} | {s['cpu_seconds']:.1f} | {gb(s['peak_rss']):.2f}{flag} | "
                    f"{mb(s['disk']):.1f} | {grew} | {s['load_mean']:.1f} / {s['load_max']:.1f} |")
    t = result["totals"]
    rows.append(f"| **total** | {t['seconds']:.1f} | {t['cpu_seconds']:.1f} | {gb(t['peak_rss']):.2f} (max) | "
                f"{mb(t['disk']):.1f} | run directory | {t['load_mean']:.1f} / {t['load_max']:.1f} |")
    return "\n".join(rows)


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=4)
    p.add_argument("--trs-per-run", type=int, default=900)
    p.add_argument("--grayordinates", type=int, default=91282)
    p.add_argument("--models", default="clip", help="comma-separated: clip, meter (default: %(default)s)")
    p.add_argument("--width", type=float, default=1.0, help="width factor of both CLIP towers (0.5 = half width)")
    p.add_argument("--meter-variant", default="pretrain_288")
    p.add_argument("--device", default="cpu", help="model device (models[].device): cpu, cuda, cuda:N")
    p.add_argument("--backend", default="numpy", help="encoding.backend: numpy or torch (GPU when a device is lent)")
    p.add_argument("--fps", type=int, default=2, help="frames per second of the synthetic videos")
    p.add_argument("--frame-size", type=int, default=256)
    p.add_argument("--work", help="work folder (default: a fresh temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the work folder (inputs and run directory)")
    p.add_argument("--out-json", help="write the results as JSON here")
    p.add_argument("--stages", help="comma-separated subset of stages to run (default: all, in order)")
    p.add_argument("--extract-trs-per-run", type=int, default=0, metavar="N",
                   help="run the real extract stage on the first N TRs of every run (one run directory per model), "
                        "then tile those time courses per run to --trs-per-run and plant them as the full run's "
                        "activation-cache resume files: the full run's extract stage runs no forward pass")
    p.add_argument("--extract-only", action="store_true",
                   help="with --extract-trs-per-run: only the short extraction (a second length for the growth per TR)")
    p.add_argument("--plant", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.plant:
        return plant_main(args.plant)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not set(models) <= {"clip", "meter"} or not models:
        p.error(f"--models takes clip and/or meter, got {args.models!r}")

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="vlmbrain-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/bench_pipeline.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    print(f"work folder: {work}", flush=True)
    result = {"command": command, "machine": machine(), "models": {}, "load_before": os.getloadavg(),
              "scale": {"runs": args.runs, "trs_per_run": args.trs_per_run, "trs": args.runs * args.trs_per_run,
                        "grayordinates": args.grayordinates, "fps": args.fps, "frame_size": args.frame_size}}
    try:
        # ------------------------------------------------------------- inputs (not timed as stages)
        t0 = time.perf_counter()
        (work / "stimulus").mkdir(exist_ok=True)
        (work / "fmri").mkdir(exist_ok=True)
        for r in range(args.runs):
            video, fmri = work / "stimulus" / f"run{r + 1}.mp4", work / "fmri" / f"run{r + 1}.npy"
            if not (video.exists() and fmri.exists()):
                lum = make_video(video, args.trs_per_run, args.fps, args.frame_size, seed=r)
                make_captions(work / "stimulus" / f"run{r + 1}.tsv", args.trs_per_run, seed=100 + r)
                make_fmri(fmri, lum, args.grayordinates, seed=200 + r)
        # models are rebuilt unless a record of the same build sits next to them (--work reused)
        for name, folder, build, spec in (
                ("clip", work / "models" / "clip-b16", lambda f: make_clip(f, args.width), {"width": args.width}),
                ("meter", work / "models" / "meter", lambda f: make_meter(f, args.meter_variant),
                 {"variant": args.meter_variant})):
            if name not in models:
                continue
            record = folder / "bench_build.json"
            old = json.loads(record.read_text()) if record.exists() else {}
            if old.get("spec") != spec:
                old = {"spec": spec, "info": build(folder)}
                record.write_text(json.dumps(old))
            result["models"][name] = old["info"]
        config = write_config(work, args, models)
        result["input_seconds"] = time.perf_counter() - t0
        result["input_mb"] = {k: mb(v) for k, v in tree_sizes(work).items()}
        print(f"inputs ready in {result['input_seconds']:.0f} s: {json.dumps(result['models'])}", flush=True)

        # ------------------------------------------------------------- stages, one process each
        run_dir = work / "run"
        env = {k: v for k, v in os.environ.items() if k != "VLMBRAIN_CACHE"}
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("TRANSFORMERS_OFFLINE", "1")
        env.setdefault("MPLCONFIGDIR", str(work / "mpl"))
        wanted = args.stages.split(",") if args.stages else [s for s, _ in STAGES]
        sources = {}
        if args.extract_trs_per_run:
            from vlmbrain.stages.model_files import model_dirname

            n = args.extract_trs_per_run
            short_inputs(work, args, n)
            result["short_extract"] = {"trs_per_run": n, "trs": args.runs * n, "models": {}}
            for name in models:  # one run directory per model: CPU seconds and peak RSS per model
                short_cfg = write_config(work, args, [name], n_trs=n, captions_dir=f"stimulus_{n}",
                                         fmri_dir=f"fmri_{n}", name=f"bench_extract_{n}_{name}", grayordinates=False)
                short_run = work / f"run_extract_{n}_{name}"
                shutil.rmtree(short_run, ignore_errors=True)
                recs = measure_stages(["stimulus", "brain", "extract"], short_cfg, short_run, work, env,
                                      tag=f"short{n}_{name}_")
                steps = {}
                for f in short_run.rglob("_stage.json"):
                    d = json.loads(f.read_text())
                    steps[d.get("step")] = d.get("seconds")
                result["short_extract"]["models"][name] = {"config": str(short_cfg), "stages": recs, "steps": steps}
                if any(r["rc"] for r in recs):
                    raise SystemExit(f"short extraction of {name} failed")
                import yaml

                mname = yaml.safe_load(short_cfg.read_text())["models"][0]["name"]
                sources[model_dirname(mname)] = str(short_run)
            if args.extract_only:
                wanted = []
        result["stages"] = []
        if wanted:
            if run_dir.exists() and not args.stages:
                shutil.rmtree(run_dir)
            result["stages"] += measure_stages([s for s in wanted if s == "stimulus"], config, run_dir, work, env)
            if sources:
                t1 = time.perf_counter()
                spec = {"config": str(config), "run_dir": str(run_dir), "runs": args.runs,
                        "trs_per_run": args.trs_per_run, "n_short": args.extract_trs_per_run, "sources": sources,
                        "report": str(work / "plant_report.json")}
                (work / "plant_spec.json").write_text(json.dumps(spec))
                plant = run_stage([sys.executable, str(Path(__file__).resolve()), "--plant",
                                   str(work / "plant_spec.json")], work / "log_plant.txt", env)
                if plant["rc"]:
                    raise SystemExit("planting failed:\n" + (work / "log_plant.txt").read_text()[-3000:])
                plant["report"] = json.loads((work / "plant_report.json").read_text())
                plant["wall"] = time.perf_counter() - t1
                result["plant"] = plant
                print(f"planted tiled activations in {plant['wall']:.0f} s: {json.dumps(plant['report'])}", flush=True)
            if not any(r["rc"] for r in result["stages"]):
                result["stages"] += measure_stages([s for s in wanted if s != "stimulus"], config, run_dir, work, env)
        for name, d in result.get("short_extract", {}).get("models", {}).items():
            ex = [r for r in d["stages"] if r["stage"] == "extract"][0]
            print(f"short extraction {name}: {result['short_extract']['trs']} TRs, extract stage CPU "
                  f"{ex['cpu_seconds']:.1f} s, wall {ex['seconds']:.1f} s, peak RSS {gb(ex['peak_rss']):.2f} GB; "
                  f"steps {d['steps']}", flush=True)
        if not result["stages"]:
            return 0
        st = result["stages"]
        result["run_dir_mb"] = {k: mb(v) for k, v in tree_sizes(run_dir).items()}
        result["totals"] = {"seconds": sum(s["seconds"] for s in st), "cpu_seconds": sum(s["cpu_seconds"] for s in st),
                            "peak_rss": max(s["peak_rss"] for s in st),
                            "disk": sum(result["run_dir_mb"].values()) * 2**20,
                            "load_mean": float(np.average([s["load_mean"] for s in st], weights=[s["seconds"] for s in st])),
                            "load_max": max(s["load_max"] for s in st)}
        for f in sorted(run_dir.glob("dictionary/*/*/summary.json")):
            d = json.loads(f.read_text())
            col = d.get("collinearity", {})
            result.setdefault("dictionaries", {})[str(f.parent.relative_to(run_dir))] = {
                "n_timepoints": d.get("n_timepoints"), "n_neurons": d.get("n_neurons"), "n_atoms": d.get("n_atoms"),
                "objective": d.get("objective"), "n_iter": d.get("n_iter"),
                "median_vif": col.get("median_vif"), "condition_number": col.get("condition_number")}
        for f in sorted(run_dir.rglob("_stage.json")):  # seconds of every step, as the pipeline records them
            d = json.loads(f.read_text())
            result.setdefault("steps", {})[d.get("step", str(f.parent.relative_to(run_dir)))] = d.get("seconds")
        for f in run_dir.glob("activations/*/model.json"):
            info = json.loads(f.read_text())
            result.setdefault("neurons", {})[info.get("name", f.parent.name)] = {
                b.get("name"): b.get("n_neurons") for b in info.get("branches", [])}
    finally:
        if args.out_json:
            Path(args.out_json).write_text(json.dumps(result, indent=2, default=str) + "\n")
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)

    m = result["machine"]
    sc = result["scale"]
    print()
    print(f"command: `{command}`")
    print(f"machine: {m['cores']} cores ({m['cpu']}), {m['ram_gb']} GB RAM; load average before "
          f"{result['load_before'][0]:.2f}, during {result['totals']['load_mean']:.2f} (max {result['totals']['load_max']:.2f})")
    print(f"scale: {sc['runs']} runs × {sc['trs_per_run']} TRs = {sc['trs']} TRs, {sc['grayordinates']:,} columns; "
          f"models {json.dumps(result['models'])}; neurons {json.dumps(result.get('neurons', {}))}")
    print()
    print(table(result))
    print()
    print("run directory (MB): " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(result["run_dir_mb"].items())))
    if result.get("steps"):
        print("steps (s, from _stage.json): " + ", ".join(f"{k} {v:.1f}" for k, v in result["steps"].items()
                                                          if isinstance(v, (int, float))))
    for k, d in result.get("dictionaries", {}).items():
        g = {kk: (f"{v:.4g}" if isinstance(v, float) else v) for kk, v in d.items()}
        print(f"{k}: T={g['n_timepoints']} N={g['n_neurons']} K={g['n_atoms']} objective {g['objective']} "
              f"({g['n_iter']} iterations), median VIF {g['median_vif']}, condition number {g['condition_number']}")
    return 1 if any(s["rc"] for s in result["stages"]) else 0


if __name__ == "__main__":
    sys.exit(main())
