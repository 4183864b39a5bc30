"""Stage ``extract``: every model's artificial-neuron readouts over the movie.

Writes ``activations/<model>/<branch>.npy`` (T × N, before the HRF), the neuron tables and
``model.json`` (:class:`vlmbrain.artifacts.ModelInfo`). The model's weights and checkpoint are
input files of the step: replacing them recomputes it.
"""

from __future__ import annotations

import logging

from vlmbrain.artifacts import BranchInfo, ModelInfo, write_model_json
from vlmbrain.stages.base import Stage, Step, register_stage
from vlmbrain.stages.model_files import model_dirname, model_files  # noqa: F401  (model_dirname re-exported)
from vlmbrain.stages.stimulus import stimulus_of

logger = logging.getLogger("vlmbrain")


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
                trained = readout.trained if isinstance(readout.trained, bool) else None
                evidence = str(getattr(readout, "trained_evidence", "") or "")
                if trained is False:
                    logger.warning("model %s has UNTRAINED (random) weights: its results show the pipeline, "
                                   "not a finding", mcfg.name)
                elif trained is None:
                    logger.warning("model %s: %s; the report shows its weights as 'unknown'", mcfg.name,
                                   evidence or "nothing says whether its weights were trained (set "
                                   "model.options.trained)")
                done = extract_activations(stimulus_of(ctx), readout, out_dir, batch_size=mcfg.batch_size,
                                           progress=ctx.progress, cache_dir=default_cache_dir(ctx.run_dir))
                info = ModelInfo(
                    name=mcfg.name, folder=mdir, weights_hash=readout.weights_hash(), trained=trained,
                    trained_evidence=evidence,
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
