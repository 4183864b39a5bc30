"""Stage ``extract``: every model's artificial-neuron readouts over the movie.

Writes ``activations/<model>/<branch>.npy`` (T × N, before the HRF), the neuron tables and
``model.json`` (:class:`vlmbrain.artifacts.ModelInfo`). The model's weights and checkpoint are
input files of the step: replacing them recomputes it.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from vlmbrain.artifacts import BranchInfo, ModelInfo, write_model_json
from vlmbrain.stages.base import Stage, Step, register_stage
from vlmbrain.stages.stimulus import stimulus_of

logger = logging.getLogger("vlmbrain")


def model_dirname(name: str) -> str:
    """A folder name for a model alias, hub id or path."""
    base = Path(name).name if ("/" in name and Path(name).exists()) else name
    return re.sub(r"[^A-Za-z0-9_.+-]+", "__", base).strip("_") or "model"


def model_files(mcfg) -> list[Path]:
    """Files a model configuration reads from disk: its weights (a local folder, the folder a
    registered alias loads, the Hugging Face cache snapshot of a hub id) and checkpoint options."""
    import os

    files = []
    p = Path(mcfg.name).expanduser()
    if p.exists():
        files.append(p)
    else:
        files.extend(_registered_weights(mcfg.name))
    for key in ("checkpoint", "tokenizer"):
        value = mcfg.options.get(key)
        if isinstance(value, str) and Path(value).expanduser().exists():
            files.append(Path(value).expanduser())
    if "checkpoint" not in mcfg.options and _family(mcfg.name) == "meter":
        from vlmbrain.models.registry import METER_CKPT_ENV

        env = os.environ.get(METER_CKPT_ENV)
        if env and Path(env).expanduser().is_file():
            files.append(Path(env).expanduser())
    return files


def _family(name: str) -> str | None:
    from vlmbrain.models import list_models

    table = list_models()
    row = table[table["alias"] == name]
    return str(row["family"].iloc[0]) if len(row) else None


def _registered_weights(name: str) -> list[Path]:
    """Where the weights of a registered alias or hub id live on this machine (empty if unknown)."""
    from vlmbrain.models import list_models
    from vlmbrain.models.registry import minilm_path

    table = list_models()
    row = table[table["alias"] == name]
    if len(row):
        family, source = str(row["family"].iloc[0]), str(row["source"].iloc[0])
        if name == "minilm":
            path = minilm_path()
            return [Path(path)] if path and Path(path).is_dir() else []
        if family == "toy":
            from vlmbrain.toyworld.models import toy_model_path

            try:
                return [Path(toy_model_path(name.removeprefix("toy-")))]
            except Exception:  # noqa: BLE001 - the load reports a missing toy model
                return []
        name = source
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        return _hub_snapshot(name)
    return []


def _hub_snapshot(repo_id: str) -> list[Path]:
    try:
        from huggingface_hub import try_to_load_from_cache

        from vlmbrain.models.hf import hf_cache_dir

        found = try_to_load_from_cache(repo_id, "config.json", cache_dir=hf_cache_dir())
    except Exception:  # noqa: BLE001 - no cache, no hub client: nothing to fingerprint
        return []
    return [Path(found).parent] if isinstance(found, str) else []


class ExtractStage(Stage):
    name = "extract"
    command = "extract"
    help = "read out every model's artificial neurons over the movie"
    config_keys = ()
    reads = ("timeline",)
    writes = ("activations", "model.json")

    def input_files(self, config):
        return [f for m in config.models for f in model_files(m)]

    def preflight(self, config):
        from vlmbrain.stages.checks import models_preflight

        models_preflight(config)

    def steps(self, ctx):
        steps = []
        for mcfg in ctx.config.models:
            mdir = model_dirname(mcfg.name)
            out_dir = ctx.layout.activations_dir(mdir)

            def work(mcfg=mcfg, mdir=mdir, out_dir=out_dir):
                from vlmbrain.extract import default_cache_dir, extract_activations
                from vlmbrain.models import load_readout

                readout = load_readout(mcfg.name, site=mcfg.site, pooling=mcfg.pooling, device=mcfg.device,
                                       dtype=mcfg.dtype, **mcfg.options)
                trained = bool(readout.trained)
                if not trained:
                    logger.warning("model %s has UNTRAINED (random) weights: its results show the pipeline, "
                                   "not a finding", mcfg.name)
                done = extract_activations(stimulus_of(ctx), readout, out_dir, batch_size=mcfg.batch_size,
                                           progress=ctx.progress, cache_dir=default_cache_dir(ctx.run_dir))
                info = ModelInfo(
                    name=mcfg.name, folder=mdir, weights_hash=readout.weights_hash(), trained=trained,
                    branches=[BranchInfo(b, readout.modalities[b], readout.streams[b], int(done[b].n_neurons))
                              for b in done],
                    site=mcfg.site, pooling=mcfg.pooling, description=str(getattr(readout, "description", "") or ""),
                    family=type(readout).__name__)
                write_model_json(info, ctx.layout.model_json(mdir))
                return {"branches": list(done), "trained": trained, "weights_hash": info.weights_hash}

            steps.append(Step(f"extract:{mdir}", out_dir, ["model.json"], work, after=["stimulus"],
                              params=mcfg.model_dump(mode="json"), input_files=model_files(mcfg)))
        return steps


register_stage(ExtractStage())
