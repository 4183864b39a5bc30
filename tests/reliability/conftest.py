"""A small valid study on disk that each bad-input case breaks in one way.

The study: two runs of 60 TRs (TR 1 s), TSV captions, ``.npy`` fMRI of 200 columns, a CIFTI
dlabel atlas of the same 200 grayordinates, the offline ``minilm`` text model, 4 atoms and the
parametric test: it passes the whole preflight, so a case's error is the case's own.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml
from nibabel.cifti2 import cifti2_axes as ca

N_COLUMNS = 200
N_TRS = 60
WORDS = ("a red circle", "two blue squares above a green triangle", "one small yellow square",
         "three large purple circles move left")


def write_captions(path, n_cues=15, step=4, words=WORDS, start=0):
    lines = ["onset\tduration\ttext"] + [f"{start + step * i}\t{step}\t{words[i % len(words)]}" for i in range(n_cues)]
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def write_npy(path, n_trs=N_TRS, n_columns=N_COLUMNS, seed=0):
    np.save(path, np.random.default_rng(seed).normal(size=(n_trs, n_columns)).astype(np.float32))
    return Path(path)


def brain_axis(n=N_COLUMNS):
    return ca.BrainModelAxis.from_surface(np.arange(n), n, "CortexLeft")


def write_dtseries(path, n_trs=N_TRS, tr=1.0, n=N_COLUMNS, seed=0):
    data = np.random.default_rng(seed).normal(size=(n_trs, n)).astype(np.float32)
    nib.save(nib.Cifti2Image(data, header=(ca.SeriesAxis(0, tr, n_trs, "SECOND"), brain_axis(n))), str(path))
    return Path(path)


def write_dlabel(path, n=N_COLUMNS, n_networks=4, seed=0):
    labels = (np.arange(n) % n_networks + 1).astype(np.float32)[None]
    if seed:
        labels = np.random.default_rng(seed).permutation(labels[0])[None]
    table = {0: ("???", (0.0, 0.0, 0.0, 0.0))}
    table.update({k: (f"net{k}", (k / n_networks, 0.2, 0.5, 1.0)) for k in range(1, n_networks + 1)})
    axis = ca.LabelAxis(["networks"], [table])
    nib.save(nib.Cifti2Image(labels, header=(axis, brain_axis(n))), str(path))
    return Path(path)


def write_nifti(path, n_trs=N_TRS, tr=1.0, shape=(4, 5, 6), seed=0):
    data = np.random.default_rng(seed).normal(size=(*shape, n_trs)).astype(np.float32)
    img = nib.Nifti1Image(data, np.eye(4))
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = tr
    nib.save(img, str(path))
    return Path(path)


def write_mask(path, shape=(4, 5, 6)):
    nib.save(nib.Nifti1Image(np.ones(shape, np.uint8), np.eye(4)), str(path))
    return Path(path)


def write_video(path, seconds=3.0, fps=10, size=16):
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=Fraction(fps, 1))
        s.width, s.height, s.pix_fmt = size, size, "yuv420p"
        for i in range(int(seconds * fps)):
            frame = np.full((size, size, 3), (i * 7) % 255, np.uint8)
            for pkt in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return Path(path)


def write_frames(folder, n, size=8):
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((size, size, 3), i % 255, np.uint8)).save(folder / f"frame_{i:04d}.png")
    return folder


class Study:
    """The files and the configuration (a dict, written on :meth:`write`) of one small study."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.out = self.root / "run"
        for run in ("r1", "r2"):
            write_captions(self.root / f"{run}.tsv")
        write_npy(self.root / "r1.npy", seed=1)
        write_npy(self.root / "r2.npy", seed=2)
        write_dlabel(self.root / "atlas.dlabel.nii")
        self.cfg = {
            "stimulus": {"kind": "custom", "tr": 1.0,
                         "runs": [{"name": "r1", "n_trs": N_TRS, "captions": "r1.tsv"},
                                  {"name": "r2", "n_trs": N_TRS, "captions": "r2.tsv"}]},
            "fmri": {"kind": "npy", "paths": ["r1.npy", "r2.npy"]},
            "models": [{"name": "minilm"}],
            "dictionary": {"n_atoms": 4},
            "encoding": {"n_shifts": 0},
            "networks": {"atlas": "atlas.dlabel.nii", "null": "none", "n_perm": 0},
            "report": {"surface_figures": False},
        }

    def path(self, name) -> Path:
        return self.root / name

    def shorten(self, n_trs=30) -> Study:
        """Runs of ``n_trs`` TRs, 4 TRs per readout call: a shorter extraction, more batches."""
        for i, (run, name) in enumerate(zip(self.runs, ("r1", "r2"), strict=True)):
            run["n_trs"] = n_trs
            write_npy(self.path(f"{name}.npy"), n_trs=n_trs, seed=i + n_trs)
            write_captions(self.path(f"{name}.tsv"), n_cues=n_trs // 4, words=WORDS[::-1] if i else WORDS)
        self.cfg["models"][0]["batch_size"] = 4
        return self

    @property
    def runs(self) -> list[dict]:
        return self.cfg["stimulus"]["runs"]

    def write(self, text: str | None = None) -> Path:
        path = self.root / "run.yaml"
        path.write_text(text if text is not None else yaml.safe_dump(self.cfg, sort_keys=False))
        return path


@pytest.fixture(autouse=True)
def _restore_logging():
    """The CLI points the vlmbrain logger at this test's captured stderr: undo it afterwards."""
    import logging

    log = logging.getLogger("vlmbrain")
    state = (list(log.handlers), log.level, log.propagate)
    yield
    log.handlers[:], log.level, log.propagate = state


@pytest.fixture
def study(tmp_path):
    return Study(tmp_path)


@pytest.fixture(scope="session")
def inputs():
    """This module: the writers of small inputs, for the tests of this folder."""
    import types

    # the module's own functions: ``sys.modules["conftest"]`` may be another folder's conftest
    return types.SimpleNamespace(**globals())


def temporaries(folder) -> list[str]:
    """Files that look like an atomic write's temporary (a half-written artifact)."""
    from vlmbrain._io import is_temporary

    return [os.path.join(r, f) for r, _, files in os.walk(folder) for f in files if is_temporary(f)]


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("vlmbrain: error:")]


def artifacts(run_dir) -> dict[str, Path]:
    """Every artifact of a run directory by relative path (not the cache, not the run's own logs)."""
    run_dir = Path(run_dir)
    skip = {"warnings.json", "versions.json", ".vlmbrain.lock"}
    return {p.relative_to(run_dir).as_posix(): p for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.name not in skip and "cache" not in p.relative_to(run_dir).parts}


def assert_same_artifacts(a, b, roots=()) -> None:
    """Two run directories hold the same artifacts: arrays bit for bit, tables and JSON as text.

    ``roots``: the two studies' folders, when they differ; their paths are then equated in the
    text files, and the sidecars compared without their step keys (a key includes the inputs'
    paths) and timings.
    """
    import json

    def text(path, root):
        t = path.read_text()
        return t.replace(str(root), "<study>") if root else t

    fa, fb = artifacts(a), artifacts(b)
    assert sorted(fa) == sorted(fb)
    ra, rb = roots if roots else (None, None)
    for rel, pa in fa.items():
        pb = fb[rel]
        if pa.name == "_stage.json":
            ja, jb = (json.loads(text(p, r)) for p, r in ((pa, ra), (pb, rb)))
            drop = ("seconds", "versions") + (("key", "inputs") if roots else ())
            assert {k: v for k, v in ja.items() if k not in drop} == {k: v for k, v in jb.items() if k not in drop}, rel
        elif pa.suffix == ".npy":
            x, y = np.load(pa), np.load(pb)
            assert x.shape == y.shape and x.dtype == y.dtype and np.array_equal(x, y, equal_nan=True), rel
        elif pa.suffix in (".json", ".tsv", ".yaml", ".txt"):
            assert text(pa, ra) == text(pb, rb), rel
        else:
            assert pa.read_bytes() == pb.read_bytes(), rel


def keep_mtime_replace(path, write) -> None:
    """Replace ``path`` by what ``write(tmp_path)`` writes, keeping its size check aside and its
    modification time (as ``cp -p`` / ``rsync -t`` would)."""
    path = Path(path)
    st = path.stat()
    tmp = path.with_name(path.name + ".new" + "".join(path.suffixes))
    write(tmp)
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, path)
