"""Findings first: one screen that says, per model and unit, what the run found.

Per unit: the networks best predicted (mean cross-validated r, noise-normalised r where
``analysis/noise_ceiling.tsv`` exists, significant grayordinates), the networks its atoms are
affiliated with (each atom linked to its card), the cross-modal Dice with the other stream and
the polarity result; every column links to the section that details it. Read from the tables,
nothing recomputed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vlmbrain.artifacts import TABLES
from vlmbrain.report.cards import read_index
from vlmbrain.report.sections._context import ReportContext, network_rows
from vlmbrain.report.sections._registry import register_section, registered_sections, skipped

#: how many networks the "predicted" column names per unit
TOP_NETWORKS = 3


def _num(x):
    return None if x is None or not np.isfinite(float(x)) else float(x)


def _units(ctx: ReportContext, tables: dict) -> list[tuple[str, str]]:
    keys = [(u.model, u.name) for u in ctx.units]
    for name in ("prediction", "affiliation", "polarity"):
        df = tables.get(name)
        if df is not None:
            keys += list(zip(df["model"].astype(str), df["branch"].astype(str)))
    return list(dict.fromkeys(keys))


def _prediction(pred, ceil, model, unit) -> tuple[dict | None, list[dict]]:
    if pred is None:
        return None, []
    sub = pred[(pred["model"] == model) & (pred["branch"] == unit)]
    if not len(sub):
        return None, []
    norm = {}
    whole_norm = None
    if ceil is not None:
        cs = ceil[(ceil["model"] == model) & (ceil["branch"] == unit)]
        norm = {int(r.network_id): _num(r.mean_r_normalized) for r in cs.itertuples()}
        whole_norm = norm.get(-1)
    whole = sub[sub["network_id"] == -1]
    total = None
    if len(whole):
        w = whole.iloc[0]
        total = {"mean_r": _num(w["mean_r"]), "n_significant": int(w["n_significant"]), "n_valid": int(w["n_valid"]),
                 "r_norm": whole_norm}
    nets = network_rows(sub)
    sig = nets[nets["n_significant"] > 0]
    ranked = (sig if len(sig) else nets).sort_values("mean_r", ascending=False).head(TOP_NETWORKS)
    return total, [{"network": str(r.network), "mean_r": _num(r.mean_r), "n_significant": int(r.n_significant),
                    "n_valid": int(r.n_valid), "r_norm": norm.get(int(r.network_id))} for r in ranked.itertuples()]


def _affiliated(ctx, aff, model, unit, with_cards) -> list[dict]:
    if aff is None:
        return []
    from vlmbrain.report.sections.atoms import card_id  # noqa: PLC0415

    sub = network_rows(aff[(aff["model"] == model) & (aff["branch"] == unit) & aff["affiliated"]])
    out = []
    for net, g in sub.groupby("network", sort=False):
        atoms = [{"atom": int(r.atom), "sign": str(r.sign),
                  "href": f"#{card_id(model, unit, int(r.atom))}" if with_cards else None}
                 for r in g.sort_values("overlap_rate", ascending=False).itertuples()]
        out.append({"network": str(net), "atoms": atoms, "best": float(g["overlap_rate"].max())})
    out.sort(key=lambda d: (-len(d["atoms"]), -d["best"]))
    return out


def _dice(xm, model, unit) -> list[dict]:
    if xm is None:
        return []
    whole = xm[xm["network_id"] == -1]
    out = []
    for r in whole.itertuples():
        if (r.model_a, r.branch_a) == (model, unit):
            other = r.branch_b if r.model_b == model else f"{r.model_b}/{r.branch_b}"
        elif (r.model_b, r.branch_b) == (model, unit):
            other = r.branch_a if r.model_a == model else f"{r.model_a}/{r.branch_a}"
        else:
            continue
        out.append({"other": str(other), "dice": _num(r.dice), "n_shared": int(r.n_shared)})
    return out


def _polarity(pol, model, unit) -> dict | None:
    if pol is None:
        return None
    sub = pol[(pol["model"] == model) & (pol["branch"] == unit)]
    if not len(sub):
        return None
    tested = int(np.isfinite(sub["r_mirror"].to_numpy(float)).sum())
    return {"n_atoms": int(len(sub)), "n_tested": tested, "n_mirrored": int(sub["mirrored"].astype(bool).sum())}


def _headline(rows: list[dict], has_affiliation: bool) -> list[str]:
    lines = []
    best = [(p["mean_r"], r["label"], p["network"]) for r in rows for p in r["predicted"] if p["mean_r"] is not None]
    if best:
        r, label, net = max(best)
        lines.append(f"Best predicted: {net} by {label} (mean r {r:.3f}).")
    n_aff = sum(len(r["affiliated"]) > 0 for r in rows)
    if has_affiliation:
        nets = sorted({a["network"] for r in rows for a in r["affiliated"]})
        lines.append(f"{n_aff} of {len(rows)} units have atoms affiliated with a network"
                     + (f" ({', '.join(nets)})." if nets else "."))
    return lines


def render_summary(ctx: ReportContext):
    names = ("prediction", "noise_ceiling", "affiliation", "crossmodal", "polarity")
    tables = {n: ctx.table(n) for n in names}
    if all(t is None for t in tables.values()):
        return skipped("no analysis table (analysis/prediction.tsv, affiliation.tsv, ...) is in this run directory")
    index = read_index(ctx.layout)
    carded = {(u["model"], u["unit"]) for u in (index or {}).get("units", [])}
    rows = []
    for model, unit in _units(ctx, tables):
        total, predicted = _prediction(tables["prediction"], tables["noise_ceiling"], model, unit)
        info = ctx.models.get(model)
        u = ctx.unit(model, unit)
        rows.append({
            "label": f"{model} / {unit}", "modality": u.modality if u is not None else "",
            "untrained": info is not None and info.trained is False,
            "whole": total, "predicted": predicted,
            "affiliated": _affiliated(ctx, tables["affiliation"], model, unit, (model, unit) in carded),
            "dice": _dice(tables["crossmodal"], model, unit), "polarity": _polarity(tables["polarity"], model, unit),
        })
    present = {s.name for s in registered_sections()}
    links = {name: (f"#{name}" if name in present else None)
             for name in ("prediction", "noise_ceiling", "affiliation", "atoms", "crossmodal", "polarity", "recovery")}
    recovery = None
    if "recovery" in TABLES:
        rec = ctx.table("recovery")
        if isinstance(rec, pd.DataFrame) and "recovered" in rec.columns and len(rec):
            recovery = {"n": int(len(rec)), "n_ok": int(rec["recovered"].astype(bool).sum())}
    return ctx.render("section_summary.html.j2", rows=rows, links=links, headline=_headline(rows, tables["affiliation"] is not None),
                      has_ceiling=tables["noise_ceiling"] is not None, has_cards=bool(carded), recovery=recovery,
                      q=ctx.q)


register_section("summary", render_summary, order=5, title="Findings")
