"""A small study with a planted driver, for runs on every brain space.

Two runs of 60 TRs; every 3 TRs a caption of 2 to 7 words. The test model ``plant-text``
(registered by the ``plant_model`` fixture) has 12 units that all follow the caption's word
count, so its dictionary atom carries that driver; the phantom fMRI of every space plants
the driver with a plus sign in one network and a minus sign in another.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import pytest
import yaml

from vlmbrain.cli import main
from vlmbrain.models.base import Readout

CAPTIONS = ("a dog", "two cats sleep", "a red ball rolls away", "three birds sit on a wire",
            "rain falls on the old grey roof", "one tree")
N_RUNS, N_TRS, TR = 2, 60, 1.5
RUNS = ("r1", "r2")


class PlantTextReadout(Readout):
    """Two layers of six units; unit u = w_u * (words - 4) + a small word-hash term."""

    name = "plant-text"
    branches = ("text",)
    modalities = {"text": "text"}
    description = "word-count units (a test model with a known driver)"

    def __init__(self, **kw):
        rng = np.random.default_rng(3)
        self._w = rng.uniform(0.5, 1.5, size=12).astype(np.float32) * np.where(np.arange(12) % 3 == 0, -1, 1)
        self._h = rng.normal(scale=0.15, size=(16, 12)).astype(np.float32)

    def neuron_table(self):
        from vlmbrain.models.base import make_neuron_table

        return make_neuron_table([{"model": self.name, "branch": "text", "layer": u // 6, "module": "hidden",
                                   "head": -1, "unit": u % 6, "group": None} for u in range(12)])

    def readout(self, images, captions):
        out = np.zeros((len(captions), 12), np.float32)
        for i, cap in enumerate(captions):
            words = cap.split()
            out[i] = self._w * (len(words) - 4.0)
            for w in words:
                out[i] += self._h[zlib.crc32(w.encode()) % 16]
        return {"text": out}

    def weights_hash(self):
        return "plant-text-v1"


@pytest.fixture
def plant_model():
    from vlmbrain.models import registry as models

    models.register_model("plant-text", "plant", "none", lambda *a, **k: PlantTextReadout(), "test family")
    yield "plant-text"
    models._REGISTRY.pop("plant-text", None)


def driver() -> list[np.ndarray]:
    """Per run, the caption's word count at every TR, z-scored within the run."""
    out = []
    for r in range(N_RUNS):
        d = np.array([len(CAPTIONS[(t // 3 + 2 * r) % len(CAPTIONS)].split()) for t in range(N_TRS)], float)
        out.append((d - d.mean()) / d.std())
    return out


def phantom(rng, n_columns, plus, minus, effect=0.9) -> list[np.ndarray]:
    """Per run (T, n_columns) float32: noise, + driver in the ``plus`` columns, - driver in ``minus``."""
    runs = []
    for d in driver():
        y = rng.normal(size=(N_TRS, n_columns)).astype(np.float32)
        y[:, plus] += effect * d[:, None]
        y[:, minus] -= effect * d[:, None]
        runs.append(y)
    return runs


def study_config(folder, fmri: dict, networks: dict | None = None, **sections) -> str:
    """Write the captions and the YAML configuration of a run; returns the configuration's path."""
    for r, run in enumerate(RUNS):
        lines = ["onset\tduration\ttext"] + [
            f"{3 * TR * i:g}\t{3 * TR:g}\t{CAPTIONS[(i + 2 * r) % len(CAPTIONS)]}" for i in range(N_TRS // 3)]
        (folder / f"{run}.tsv").write_text("\n".join(lines) + "\n")
    cfg = {
        "stimulus": {"kind": "custom", "tr": TR,
                     "runs": [{"name": run, "n_trs": N_TRS, "captions": f"{run}.tsv"} for run in RUNS]},
        "fmri": fmri,
        "models": [{"name": "plant-text"}],
        "signal": {"hrf": "none"},
        "dictionary": {"n_atoms": 1},
        "encoding": {"n_shifts": 0},
        "networks": {"n_perm": 40, **(networks or {})},
        "report": {"surface_figures": False},
    }
    for section, values in sections.items():
        cfg.setdefault(section, {}).update(values)
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def run(config, out) -> int:
    return main(["run", str(config), "--out", str(out), "-q"])


def read(out, name) -> pd.DataFrame:
    return pd.read_csv(out / "analysis" / f"{name}.tsv", sep="\t", keep_default_na=False)


def assert_planted(out, planted: dict[str, int]) -> pd.DataFrame:
    """Every planted network is affiliated, by the atom that carries the driver, with the planted sign.

    The atom's own sign is arbitrary: a map's sign times the sign of its atom's correlation with
    the driver must be the planted sign.
    """
    aff = read(out, "affiliation")
    atoms = np.load(out / "dictionary" / "plant-text" / "text" / "atoms.npy")
    d = np.concatenate(driver())
    corr = np.array([np.corrcoef(atoms[:, k], d)[0, 1] for k in range(atoms.shape[1])])
    carrier = np.flatnonzero(np.abs(corr) > 0.5)
    assert carrier.size, f"no atom follows the driver (correlations {corr})"
    hits = aff[aff["affiliated"].astype(str).str.lower().eq("true") & aff["atom"].isin(carrier)]
    for network, sign in planted.items():
        rows = hits[hits["network"] == network]
        best = aff[aff["is_max"].astype(str).str.lower().eq("true")]
        assert len(rows), f"{network} is not affiliated with the driver's atom:\n{best.to_string()}"
        for _, row in rows.iterrows():
            map_sign = 1 if row["sign"] == "+" else -1
            assert map_sign * np.sign(corr[int(row["atom"])]) == sign, (network, row.to_dict(), corr)
    return hits


# ----------------------------------------------------------------------------- volumes
NETWORKS = ("Visual", "Language", "Default")
VOX_SHAPE, VOX_MM = (12, 14, 10), 4.0
VOX_AFFINE = np.array([[VOX_MM, 0, 0, -24.0], [0, VOX_MM, 0, -28.0], [0, 0, VOX_MM, -20.0], [0, 0, 0, 1]])


def _parcels(xyz, centres):
    """Voronoi parcel (1-based) of every position."""
    d = ((xyz[:, None, :] - centres[None]) ** 2).sum(-1)
    return d.argmin(axis=1) + 1


def volume_atlas(folder, seed=0):
    """A 2 mm NIfTI label image of 12 parcels (4 per network, interleaved) and its lookup TSV.

    Returns (atlas path, lookup path, function world xyz -> network name).
    """
    import nibabel as nib

    rng = np.random.default_rng(seed)
    centres = rng.uniform(-20, 20, size=(12, 3)) * np.array([1.0, 1.2, 0.8])
    network_of_parcel = {p: NETWORKS[(p - 1) % 3] for p in range(1, 13)}
    shape = (26, 30, 22)
    affine = np.array([[2.0, 0, 0, -25.0], [0, 2.0, 0, -29.0], [0, 0, 2.0, -21.0], [0, 0, 0, 1]])
    ijk = np.indices(shape).reshape(3, -1).T
    xyz = nib.affines.apply_affine(affine, ijk)
    labels = _parcels(xyz, centres).reshape(shape).astype(np.int16)
    path = folder / "parcels.nii.gz"
    nib.save(nib.Nifti1Image(labels, affine), str(path))
    lookup = folder / "parcels_lookup.tsv"
    pd.DataFrame({"index": range(1, 13), "name": [f"parcel{p}" for p in range(1, 13)],
                  "network": [network_of_parcel[p] for p in range(1, 13)]}).to_csv(lookup, sep="\t", index=False)

    def network(points):
        return np.array([network_of_parcel[p] for p in _parcels(np.asarray(points, float), centres)])

    return path, lookup, network


def volume_runs(folder, rng, network, prefix="run", subdir=None, tr=TR):
    """4-D NIfTI runs (4 mm grid, ellipsoid mask) planting + driver in Language, - in Default.

    Returns (run paths, mask path).
    """
    import nibabel as nib

    target = folder if subdir is None else folder / subdir
    target.mkdir(parents=True, exist_ok=True)
    ijk = np.indices(VOX_SHAPE).reshape(3, -1).T
    xyz = nib.affines.apply_affine(VOX_AFFINE, ijk)
    inside = ((xyz / np.array([22.0, 26.0, 18.0])) ** 2).sum(axis=1) <= 1
    mask = inside.reshape(VOX_SHAPE)
    nets = network(xyz[inside])                     # mask voxels in C order, as the loaders order them
    runs = phantom(rng, int(inside.sum()), np.flatnonzero(nets == "Language"), np.flatnonzero(nets == "Default"))
    paths = []
    for r, y in enumerate(runs):
        vol = np.zeros(VOX_SHAPE + (y.shape[0],), np.float32)
        vol[mask] = y.T + 100.0
        img = nib.Nifti1Image(vol, VOX_AFFINE)
        img.header.set_zooms((VOX_MM, VOX_MM, VOX_MM, tr))
        img.header.set_xyzt_units("mm", "sec")
        p = target / f"{prefix}-{r + 1}_bold.nii.gz" if "{" not in prefix else target / prefix.format(run=r + 1)
        nib.save(img, str(p))
        paths.append(str(p))
    mask_path = target / "mask.nii.gz"
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), VOX_AFFINE), str(mask_path))
    return paths, str(mask_path)


# ----------------------------------------------------------------------------- surfaces
def fsaverage5_networks(seed=0) -> dict[str, np.ndarray]:
    """Per hemisphere a network index 0..2 of every fsaverage5 vertex: 30 Voronoi patches on the sphere, 10 per network."""
    from nilearn import datasets, surface

    rng = np.random.default_rng(seed)
    fs = datasets.fetch_surf_fsaverage("fsaverage5")
    out = {}
    for hemi in ("left", "right"):
        xyz = surface.load_surf_mesh(fs[f"sphere_{hemi}"]).coordinates
        centres = rng.normal(size=(30, 3))
        centres *= 100 / np.linalg.norm(centres, axis=1, keepdims=True)
        patch = ((xyz[:, None, :] - centres[None]) ** 2).sum(-1).argmin(axis=1)
        out[hemi] = (patch % 3).astype(np.int32)
    return out


def write_annots(folder, networks: dict[str, np.ndarray]) -> str:
    """lh.nets.annot / rh.nets.annot of the networks; returns the left file's path."""
    import nibabel as nib

    ctab = np.array([[120, 18, 134, 0, 0], [220, 180, 140, 0, 0], [205, 62, 78, 0, 0]], dtype=np.int32)
    for hemi, prefix in (("left", "lh"), ("right", "rh")):
        nib.freesurfer.write_annot(str(folder / f"{prefix}.nets.annot"), networks[hemi], ctab, list(NETWORKS),
                                   fill_ctab=True)
    return str(folder / "lh.nets.annot")


def write_func_gii(path, data, hemi, tr=TR):
    """A (T, n_vertices) series as fMRIPrep writes it: one data array per volume, TimeStep in ms."""
    import nibabel as nib

    structure = {"left": "CortexLeft", "right": "CortexRight"}[hemi]
    img = nib.gifti.GiftiImage(meta=nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary": structure}))
    for row in data:
        img.add_gifti_data_array(nib.gifti.GiftiDataArray(
            np.asarray(row, np.float32), intent="NIFTI_INTENT_TIME_SERIES", datatype="NIFTI_TYPE_FLOAT32",
            meta=nib.gifti.GiftiMetaData({"TimeStep": f"{1000 * tr:f}"})))
    nib.save(img, str(path))
    return str(path)


def surface_runs(folder, rng, networks, name="sub-01_task-movie_run-{run}_hemi-{hemi}_space-fsaverage5_bold.func.gii",
                 tr=TR) -> list[str]:
    """GIFTI runs of both hemispheres: + driver on Language vertices, - on Default (columns: left then right)."""
    nets = np.concatenate([networks["left"], networks["right"]])
    n_left = networks["left"].size
    runs = phantom(rng, nets.size, np.flatnonzero(nets == 1), np.flatnonzero(nets == 2))
    paths = []
    for r, y in enumerate(runs):
        for hemi, cols in (("left", slice(0, n_left)), ("right", slice(n_left, None))):
            p = folder / name.format(run=r + 1, hemi="L" if hemi == "left" else "R")
            p.parent.mkdir(parents=True, exist_ok=True)
            paths.append(write_func_gii(p, y[:, cols], hemi, tr))
    return paths


def _chromium_module():
    """The explorer tests' DevTools client (tests/explorer/chromium_cdp.py), loaded by its path."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "explorer" / "chromium_cdp.py"
    spec = importlib.util.spec_from_file_location("vlmbrain_tests_chromium_cdp", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_renders_in_chromium(out) -> None:
    """The run's report opens offline in headless Chromium: its sections are there, no console
    error, no exception, no request beyond the file itself. Nothing is checked without Chromium."""
    cdp = _chromium_module()
    if cdp.CHROMIUM is None:
        return
    url = (out / "report" / "index.html").as_uri()
    with cdp.Chromium(1200, 900) as b:
        b.offline()
        b.goto(url)
        sections = b.eval("[...document.querySelectorAll('main > section')].map(s => s.id)")
        errors = [t for level, t in b.console if level in ("error", "assert")] + b.exceptions
        fetched = [u for u in b.requests if not u.startswith(("file:", "data:", "blob:", "about:"))]
    assert "prediction" in sections and "space" in " ".join(sections), sections
    assert errors == [], errors
    assert fetched == [], fetched
