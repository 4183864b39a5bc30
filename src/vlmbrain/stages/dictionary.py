"""Stage ``dictionary``: sparse temporal atoms of every unit's AN time courses (docs/method.md §3).

Writes ``dictionary/<model>/<unit>/atoms.npy`` (T_train × K), ``codes.npy`` (K × N),
``neurons.tsv`` and ``summary.json`` (objective, its history, atom stability across seeds).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from vlmbrain._io import save_json, save_npy, save_tsv
from vlmbrain.artifacts import Unit, read_model_json
from vlmbrain.stages.base import Stage, StageContext, Step, register_stage
from vlmbrain.stages.model_files import model_dirname
from vlmbrain.stages.stimulus import train_mask

logger = logging.getLogger("vlmbrain")


def units_of(ctx: StageContext) -> list[Unit]:
    """The dictionary units of the run: one per branch, or one per model (``dictionary.scope``)."""
    out = []
    for m in ctx.config.models:
        info = read_model_json(ctx.layout.model_json(model_dirname(m.name)))
        out.extend(info.units(ctx.config.dictionary.scope))
    return out


def unit_timecourses(ctx: StageContext, unit: Unit) -> np.ndarray:
    """The unit's processed AN time courses, its branches side by side (all TRs)."""
    return np.concatenate([np.load(ctx.layout.timecourses(unit.model, b)) for b in unit.branches], axis=1)


def _fmt(v) -> str:
    return "inf" if v is None else f"{v:.3g}"


class DictionaryStage(Stage):
    name = "dictionary"
    command = "dictionary"
    help = "learn the sparse temporal dictionary of every unit"
    config_keys = ("dictionary", "seed", "stimulus.exclude_rest", "stimulus.exclude_testretest")
    reads = ("timecourses", "timeline")
    writes = ("atoms", "codes")

    def preflight(self, config):
        from vlmbrain.stages.checks import dictionary_preflight

        dictionary_preflight(config)

    def steps(self, ctx):
        from vlmbrain.dictionary import TemporalDictionary, atom_collinearity, atom_stability

        cfg = ctx.config.dictionary
        seed = ctx.config.seed
        steps = []
        for unit in units_of(ctx):
            out_dir = ctx.layout.dictionary_dir(unit.model, unit.name)

            def work(unit=unit, out_dir=out_dir):
                A = unit_timecourses(ctx, unit)[train_mask(ctx)]
                neurons = pd.concat([pd.read_csv(ctx.layout.signal_neurons(unit.model, b), sep="\t")
                                     for b in unit.branches], ignore_index=True)
                K = min(cfg.n_atoms, A.shape[1])
                if K < cfg.n_atoms:
                    logger.warning("%s/%s has only %d ANs: %d atoms instead of %d", unit.model, unit.name,
                                   A.shape[1], K, cfg.n_atoms)

                def fit(s):
                    return TemporalDictionary(n_atoms=K, alpha=cfg.alpha, batch_size=cfg.batch_size,
                                              n_epochs=cfg.n_epochs, max_iter=cfg.max_iter, tol=cfg.tol,
                                              incoherence=cfg.incoherence, random_state=s, progress=ctx.progress,
                                              desc=f"dictionary {unit.model}/{unit.name}").fit(A)

                td = fit(seed)
                save_npy(td.atoms_.astype(np.float32), out_dir / "atoms.npy")
                save_npy(td.codes_.astype(np.float32), out_dir / "codes.npy")
                save_tsv(neurons, out_dir / "neurons.tsv")
                summary = {"objective": float(td.objective_), "n_iter": int(td.n_iter_),
                           "objective_history": [float(v) for v in td.objective_history_], "n_atoms": K,
                           "n_neurons": int(A.shape[1]), "n_timepoints": int(A.shape[0]), "branches": unit.branches,
                           "nonzero_codes": int(np.count_nonzero(td.codes_)), "incoherence": float(cfg.incoherence),
                           "unused_atoms": [int(k) for k in np.flatnonzero(~np.any(td.codes_ != 0, axis=1))]}
                if summary["unused_atoms"]:
                    logger.warning("%s/%s: %d of the %d atoms code no AN (atoms %s)%s", unit.model, unit.name,
                                   len(summary["unused_atoms"]), K, summary["unused_atoms"][:10],
                                   ": the data have fewer incoherent directions than atoms; fewer atoms "
                                   "(dictionary.n_atoms) fit them" if cfg.incoherence > 0 else "")
                # the atoms are the encoding's regressors: strongly collinear atoms leave each
                # atom's β map with few significant grayordinates (docs/method.md §3.3)
                col = atom_collinearity(td.atoms_)
                summary["collinearity"] = col
                if col["collinear"]:
                    cn = col["condition_number"]
                    logger.warning(
                        "%s/%s: the %d atoms are collinear (median VIF %s, max VIF %s, %d atoms with VIF > %g; "
                        "condition number %s, flagged above %g): per-atom encoding maps will be weak; fewer "
                        "atoms (dictionary.n_atoms) or dictionary.incoherence (e.g. 1) lower the collinearity",
                        unit.model, unit.name, K,
                        _fmt(col["median_vif"]), _fmt(col["max_vif"]), col["n_high_vif"], col["vif_threshold"],
                        _fmt(cn), col["condition_threshold"])
                if cfg.stability_seeds:
                    others = [fit(seed + s + 1).atoms_ for s in range(cfg.stability_seeds)]
                    stab = atom_stability([td.atoms_, *others])
                    summary["stability"] = {"mean": stab.mean, "per_atom": stab.per_atom.tolist(),
                                            "pairwise": stab.pairwise.tolist()}
                save_json(summary, out_dir / "summary.json")
                return {"objective": summary["objective"]}

            steps.append(Step(f"dictionary:{unit.model}/{unit.name}", out_dir,
                              ["atoms.npy", "codes.npy", "summary.json"], work,
                              after=[f"signal:{unit.model}/{b}" for b in unit.branches]))
        return steps


register_stage(DictionaryStage())
