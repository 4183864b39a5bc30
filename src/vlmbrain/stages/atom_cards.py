"""Post-analysis hook ``atom-cards``: what each atom of every dictionary is, one card per atom.

For every atom it gathers, from the analysis' in-memory results and the run directory: its time
course over the whole movie, the stimulus (frame thumbnail and caption) at its strongest peaks
and troughs, its member ANs (by layer × head, by module, the top ones by |code|), its
significant β⁺ / β⁻ maps with the mean cross-validated r over them, the networks they are
affiliated with, its polarity row and its stability across seeds. The cards are written as
``analysis/atoms/<model>/<unit>/atom_<k>.json`` with thumbnails under ``analysis/atoms/frames/``
(the fields are described in :mod:`vlmbrain.report.cards`); the report's atom explorer reads
them and never touches the stimulus.

The stimulus shown for a peak at TR ``t`` is the one at ``t - lag``, ``lag`` being the TR at
which the HRF of ``signal.hrf`` peaks: the atom's time course is HRF-convolved, so what drove
its peak was on screen about that much earlier.
"""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pandas as pd

from vlmbrain._io import atomic_path, json_safe, save_json
from vlmbrain.report.cards import CARD_VERSION, INDEX_JSON, atoms_dir, card_path, frame_relpath
from vlmbrain.stages.analysis import AnalysisHook, register_analysis_hook
from vlmbrain.stages.base import StageContext
from vlmbrain.stages.stimulus import stimulus_of, timeline_of, train_mask

logger = logging.getLogger("vlmbrain")

__all__ = ["extremes", "hrf_lag", "member_summary", "write_atom_cards"]

#: peaks (and troughs) of one atom are at least this many TRs apart, and at least the HRF lag,
#: so that one event of the movie does not fill every slot with its neighbouring TRs
MIN_SEPARATION = 3
#: largest side of a stimulus thumbnail, in pixels
THUMBNAIL_SIDE = 160
#: frames are decoded this many TRs at a time (a long movie never sits in memory)
FRAME_BATCH = 64


def hrf_lag(config) -> int:
    """TRs from a stimulus to the peak of its HRF-convolved response under ``signal.hrf``."""
    sig = config.signal
    if sig.hrf == "none":
        return 0
    if sig.hrf == "lag":
        return int(sig.lag)
    from vlmbrain.signal import tr_kernel

    return int(np.argmax(tr_kernel(config.stimulus.tr, model=sig.hrf, oversampling=sig.oversampling)))


def extremes(values: np.ndarray, k: int, *, largest: bool = True, min_separation: int = MIN_SEPARATION,
             positions: np.ndarray | None = None) -> np.ndarray:
    """Indices of the ``k`` largest (or smallest) finite values, at least ``min_separation`` apart.

    Parameters
    ----------
    values : ndarray of shape (n,)
    k : int
    largest : bool, default=True
        Peaks (largest values) or troughs (smallest).
    min_separation : int, default=MIN_SEPARATION
        Minimal distance between two chosen entries, measured on ``positions``.
    positions : ndarray of shape (n,), optional
        Where each value sits (TR indices); default ``arange(n)``.

    Returns
    -------
    ndarray of int
        Up to ``k`` indices into ``values``, strongest first.
    """
    values = np.asarray(values, dtype=float)
    positions = np.arange(values.size) if positions is None else np.asarray(positions)
    order = np.argsort(-values if largest else values, kind="stable")
    chosen: list[int] = []
    for i in order:
        if not np.isfinite(values[i]):
            continue
        if all(abs(int(positions[i]) - int(positions[j])) >= min_separation for j in chosen):
            chosen.append(int(i))
            if len(chosen) == k:
                break
    return np.asarray(chosen, dtype=int)


def _head_label(head: int) -> str:
    return "–" if head < 0 else str(head)


def member_summary(code: np.ndarray, neurons: pd.DataFrame, top: int) -> dict:
    """The member ANs of one atom (non-zero code): counts by layer × head and module, the top ones.

    Parameters
    ----------
    code : ndarray of shape (n_neurons,)
        The atom's row of the code matrix.
    neurons : pandas.DataFrame
        The neuron table of the code's columns (``branch, layer, module, head, unit, group``).
    top : int
        How many ANs to list, by decreasing |code|.
    """
    code = np.asarray(code, dtype=float)
    nz = np.flatnonzero(code != 0)
    sub = neurons.iloc[nz].reset_index(drop=True)
    vals = code[nz]
    branches = neurons["branch"].astype(str).tolist()
    several = len(set(branches)) > 1
    branch_order = {b: i for i, b in enumerate(dict.fromkeys(branches))}
    # rows of the heatmap: layers, and per branch when the unit joins several
    keys = [(b if several else "", int(layer)) for b, layer in zip(branches, neurons["layer"])]
    all_rows = sorted(set(keys), key=lambda bl: (branch_order.get(bl[0], 0), bl[1]))
    rows_key = [keys[i] for i in nz]
    heads = sorted({int(h) for h in neurons["head"]})
    grid = np.zeros((len(all_rows), len(heads)), dtype=int)
    row_at = {r: i for i, r in enumerate(all_rows)}
    head_at = {h: j for j, h in enumerate(heads)}
    for key, h in zip(rows_key, sub["head"].astype(int)):
        grid[row_at[key], head_at[h]] += 1
    by_module = []
    if len(sub):
        frame = pd.DataFrame({"branch": sub["branch"].astype(str), "module": sub["module"].astype(str),
                              "pos": vals > 0})
        for (branch, module), g in frame.groupby(["branch", "module"], sort=False):
            by_module.append({"branch": branch, "module": module, "n": int(len(g)),
                              "n_positive": int(g["pos"].sum()), "n_negative": int((~g["pos"]).sum())})
        by_module.sort(key=lambda d: -d["n"])
    order = np.argsort(-np.abs(vals), kind="stable")[:top]
    top_rows = [{"branch": str(sub.at[i, "branch"]), "layer": int(sub.at[i, "layer"]),
                 "head": int(sub.at[i, "head"]), "module": str(sub.at[i, "module"]), "unit": int(sub.at[i, "unit"]),
                 "column": int(nz[i]), "code": float(vals[i])} for i in order]
    return {
        "n": int(nz.size), "n_positive": int(np.sum(vals > 0)), "n_negative": int(np.sum(vals < 0)),
        "n_neurons": int(code.size),
        "by_layer_head": {"rows": [f"{b} L{layer}" if b else f"L{layer}" for b, layer in all_rows],
                          "heads": [_head_label(h) for h in heads], "n": grid.tolist()},
        "by_module": by_module,
        "top": top_rows,
    }


def _runs_and_rest(table: pd.DataFrame) -> tuple[list[dict], list[list[int]]]:
    runs = []
    run_index = table["run_index"].to_numpy()
    for r in dict.fromkeys(run_index.tolist()):
        idx = np.flatnonzero(run_index == r)
        runs.append({"name": str(table["run"].iloc[idx[0]]), "start": int(idx[0]), "stop": int(idx[-1] + 1)})
    rest = table["rest"].to_numpy(bool)
    edges = np.flatnonzero(np.diff(np.r_[0, rest.astype(int), 0]))
    return runs, [[int(a), int(b)] for a, b in zip(edges[::2], edges[1::2])]


def _rows(df: pd.DataFrame | None, model: str, unit: str) -> pd.DataFrame | None:
    if df is None or not len(df):
        return None
    return df[(df["model"] == model) & (df["branch"] == unit)]


def _affiliations(aff: pd.DataFrame | None, k: int) -> tuple[list[dict], list[dict]]:
    if aff is None:
        return [], []
    sub = aff[aff["atom"] == k]

    def row(r):
        return {"sign": str(r["sign"]), "network": str(r["network"]), "network_id": int(r["network_id"]),
                "overlap_rate": float(r["overlap_rate"]), "dice": float(r["dice"]), "p_null": float(r["p_null"]),
                "n_overlap": int(r["n_overlap"]), "n_map": int(r["n_map"]), "affiliated": bool(r["affiliated"])}

    hits = sub[sub["affiliated"].astype(bool) & (sub["network_id"] > 0)].sort_values("overlap_rate", ascending=False)
    strongest = []
    for sign in ("+", "-"):
        s = sub[(sub["sign"] == sign) & (sub["network_id"] > 0)]
        if len(s) and s["n_map"].max() > 0:
            strongest.append(row(s.loc[s["overlap_rate"].idxmax()]))
    return [row(r) for _, r in hits.iterrows()], strongest


def _polarity(pol: pd.DataFrame | None, k: int) -> dict | None:
    if pol is None:
        return None
    sub = pol[pol["atom"] == k]
    if not len(sub):
        return None
    r = sub.iloc[0]
    return {c: (r[c].item() if hasattr(r[c], "item") else r[c]) for c in
            ("n_bn_pos", "n_bn_neg", "n_an_pos", "n_an_neg", "r_mirror", "p_mirror", "mirrored")}


def _stability(layout, model: str, unit: str) -> list | None:
    path = layout.dictionary_dir(model, unit) / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    per_atom = (summary.get("stability") or {}).get("per_atom")
    return list(per_atom) if isinstance(per_atom, list) else None


def _thumbnail(frame: np.ndarray):
    """(PIL image, extension): small frames stay PNG (sharp edges), larger ones become JPEG."""
    from PIL import Image

    img = Image.fromarray(np.asarray(frame, dtype=np.uint8))
    if max(img.size) <= THUMBNAIL_SIDE:
        return img, "png"
    img.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    return img, "jpg"


def _write_frames(ctx: StageContext, trs: list[int], out_dir) -> tuple[dict[int, str], str | None]:
    """Thumbnails of the TRs' middle frames: ``{tr: path relative to analysis/atoms}`` and why none, if so."""
    if not trs:
        return {}, None
    try:
        stim = stimulus_of(ctx)
    except Exception as err:  # noqa: BLE001 - the cards stay useful without pictures
        logger.warning("atom cards: the stimulus could not be opened for thumbnails (%s)", err)
        return {}, f"the stimulus could not be opened: {err}"
    if not getattr(stim, "has_frames", False):
        return {}, "the stimulus has no frames (captions only)"
    out: dict[int, str] = {}
    try:
        for start in range(0, len(trs), FRAME_BATCH):
            batch = trs[start:start + FRAME_BATCH]
            for t, frames in zip(batch, stim.frames(batch)):
                img, ext = _thumbnail(frames[len(frames) // 2])
                rel = frame_relpath(t, ext)
                with atomic_path(out_dir / rel) as tmp:
                    img.save(tmp, format="PNG" if ext == "png" else "JPEG", quality=85)
                out[t] = rel
    except Exception as err:  # noqa: BLE001
        logger.warning("atom cards: frames could not be read (%s); cards without thumbnails", err)
        return out, f"frames could not be read: {err}"
    return out, None


def _dump(card: dict, path) -> None:
    text = json.dumps(json_safe(card), separators=(",", ":"), allow_nan=False)
    with atomic_path(path, suffix=".json") as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_atom_cards(ctx: StageContext, branches: list, tables: dict) -> dict:
    """Write every atom's card (the ``run`` of the ``atom-cards`` hook); returns counts for the sidecar."""
    from vlmbrain.networks import significant_maps

    cfg = ctx.config
    layout = ctx.layout
    out_dir = atoms_dir(layout)
    if out_dir.exists():  # cards of a former analysis must not linger
        shutil.rmtree(out_dir)
    table = timeline_of(ctx).table
    mask = train_mask(ctx)
    train_trs = np.flatnonzero(mask)
    captions = table["caption"].astype(str).to_numpy()
    run_index = table["run_index"].to_numpy()
    run_start = {int(r): int(np.flatnonzero(run_index == r)[0]) for r in np.unique(run_index)}
    runs, rest = _runs_and_rest(table)
    lag = hrf_lag(cfg)
    separation = max(MIN_SEPARATION, lag)
    k_peaks = int(cfg.report.atom_peaks)
    q = float(cfg.encoding.q)
    aff_all, pol_all = tables.get("affiliation"), tables.get("polarity")
    sites = {}

    cards: list[dict] = []
    units = []
    for b in branches:
        model, unit = b.model, b.branch
        if model not in sites:
            from vlmbrain.artifacts import read_model_json

            try:
                info = read_model_json(layout.model_json(model))
                sites[model] = (info.site, {x.name: x.stream for x in info.branches})
            except Exception:  # noqa: BLE001 - the site is a label only
                sites[model] = ("", {})
        site, streams = sites[model]
        atoms = np.asarray(b.atoms, dtype=float)
        K = atoms.shape[1]
        pos, neg = significant_maps(b.beta, b.q_beta, q)
        r_cv = np.asarray(b.r_cv, dtype=float)
        aff, pol = _rows(aff_all, model, unit), _rows(pol_all, model, unit)
        stability = _stability(layout, model, unit)
        branch_names = list(dict.fromkeys(b.neurons["branch"].astype(str)))
        for k in range(K):
            course = np.full(len(table), np.nan)
            course[train_trs] = atoms[:, k]

            def moments(idx, course=course):
                out = []
                for i in idx:
                    t = int(train_trs[i])
                    s = max(run_start[int(run_index[t])], t - lag)
                    out.append({"tr": t, "value": float(course[t]), "run": str(table["run"].iloc[t]),
                                "run_tr": int(table["run_tr"].iloc[t]), "stimulus_tr": s,
                                "caption": str(captions[s]), "frame": None})
                return out

            sig = pos[k] | neg[k]
            affiliations, strongest = _affiliations(aff, k)
            cards.append({
                "version": CARD_VERSION, "model": model, "unit": unit, "branches": branch_names,
                "stream": getattr(b, "stream", None) or "+".join(sorted({streams.get(x, "") for x in branch_names})),
                "site": site, "atom": k, "n_atoms": K, "tr": float(cfg.stimulus.tr), "hrf_lag_trs": lag,
                "timecourse": [round(float(v), 4) if np.isfinite(v) else None for v in course],
                "runs": runs, "rest": rest,
                "peaks": moments(extremes(atoms[:, k], k_peaks, largest=True, positions=train_trs,
                                           min_separation=separation)),
                "troughs": moments(extremes(atoms[:, k], k_peaks, largest=False, positions=train_trs,
                                             min_separation=separation)),
                "members": member_summary(b.codes[k], b.neurons, int(cfg.report.atom_top_neurons)),
                "map": {"q": q, "n_positive": int(pos[k].sum()), "n_negative": int(neg[k].sum()),
                        "mean_r": float(np.nanmean(r_cv[sig])) if sig.any() else None},
                "affiliations": affiliations, "strongest_overlaps": strongest,
                "polarity": _polarity(pol, k),
                "stability": (float(stability[k]) if stability is not None and k < len(stability) else None),
            })
        units.append({"model": model, "unit": unit, "n_atoms": K,
                      "stability_mean": (float(np.mean(stability)) if stability else None)})

    frames, no_frames = _write_frames(
        ctx, sorted({m["stimulus_tr"] for c in cards for m in c["peaks"] + c["troughs"]}), out_dir)
    for c in cards:
        for m in c["peaks"] + c["troughs"]:
            m["frame"] = frames.get(m["stimulus_tr"])
        _dump(c, card_path(layout, c["model"], c["unit"], c["atom"]))
    save_json({"version": CARD_VERSION, "units": units, "n_timepoints": len(table), "hrf": cfg.signal.hrf,
               "hrf_lag_trs": lag, "peaks_per_atom": k_peaks, "min_separation_trs": separation,
               "frames": len(frames), "no_frames": no_frames}, out_dir / INDEX_JSON)
    logger.info("atom cards: %d cards, %d thumbnails in %s", len(cards), len(frames), out_dir)
    return {"cards": len(cards), "thumbnails": len(frames)}


register_analysis_hook("atom-cards", AnalysisHook(applies=lambda config: True, run=write_atom_cards,
                                                  config_keys=("report.atom_peaks", "report.atom_top_neurons"),
                                                  outputs=(f"analysis/atoms/{INDEX_JSON}",)))
