"""The bundled demo: the toy-world movie, phantom fMRI planted from its attributes, toy models.

``vlmbrain demo --out DIR`` runs the whole pipeline offline on it and scores, per planted
network, whether the framework recovered it with the right sign (``DIR/demo/recovery.tsv``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

logger = logging.getLogger("vlmbrain")

__all__ = ["run_demo", "demo_summary"]


def _toy_metrics() -> list[str]:
    lines = []
    try:
        from vlmbrain.toyworld.models import toy_model_path
    except ImportError:  # pragma: no cover - toyworld always ships
        return lines
    for kind in ("clip", "meter"):
        try:
            meta = json.loads((toy_model_path(kind) / "training.json").read_text())
        except (OSError, ValueError, LookupError):
            continue
        metrics = meta.get("heldout", meta.get("metrics", {}))
        shown = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
        lines.append(f"  toy-{kind}: trained weights ({shown})")
    return lines


def demo_summary(run_dir) -> str | None:
    """A terminal summary of the demo: which models, and planted vs recovered per network."""
    run_dir = Path(run_dir)
    path = run_dir / "demo" / "recovery.tsv"
    if not path.is_file():
        return None
    summary = pd.read_csv(path, sep="\t", keep_default_na=False)
    if "by" not in summary.columns:  # a per-branch table (runs of vlmbrain before the summary existed)
        from vlmbrain.demo.recovery import summarize_recovery

        summary = summarize_recovery(summary)
    sign = {1: "+", -1: "-", 0: "none"}
    lines = ["", "Demo: toy-world movie, phantom fMRI planted from stimulus attributes (not model features)"]
    lines += _toy_metrics()
    lines.append("")
    lines.append(f"  {'network':22s} {'planted':>8s} {'recovered':>10s}  ok   by")
    for _, r in summary.iterrows():
        lines.append(
            f"  {r.network:22s} {sign[int(r.planted_sign)]:>8s} {sign.get(int(r.recovered_sign), '?'):>10s}  "
            f"{'yes' if r.recovered else 'NO ':3s}  {r.by}"
        )
    n_ok = int(summary["recovered"].sum())
    lines.append(f"  {n_ok} of {len(summary)} planted networks recovered with the correct sign")
    cm = run_dir / "analysis" / "crossmodal.tsv"
    if cm.is_file():
        table = pd.read_csv(cm, sep="\t")
        whole = table[table["network"] == "all"] if "network" in table.columns else table.iloc[0:0]
        if len(whole):
            lines.append("  branch overlap, Dice of the significant maps (segregated < shared): " + ", ".join(
                f"{r.model_a} {r.branch_a}/{r.branch_b} {r.dice:.2f}" for r in whole.itertuples()))
    lines.append(f"  report: {run_dir / 'report' / 'index.html'}")
    return "\n".join(lines)


def run_demo(out, fast: bool = False, force: bool = False, progress: bool = False):
    """Run the demo configuration into ``out``; return (step results, terminal summary).

    ``VLMBRAIN_<SECTION>__<KEY>`` environment variables change the demo's configuration as
    they change a configuration file's (e.g. ``VLMBRAIN_DICTIONARY__INCOHERENCE=1``).
    """
    from vlmbrain.config import demo_config, with_environment
    from vlmbrain.pipeline import run_pipeline

    config = with_environment(demo_config(out_fast=fast))
    logger.info("demo: toy-world movie (%d runs x %d TRs), phantom fMRI on 91,282 grayordinates, models %s",
                config.demo.n_runs, config.demo.run_length, ", ".join(m.name for m in config.models))
    results = run_pipeline(config, out, force=force, progress=progress)
    return results, demo_summary(out)
