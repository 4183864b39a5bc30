"""Cross-modal mapping (docs/method.md §6.4).

``V_b`` = grayordinates significant for branch b (significant positive cross-validated r, see
:func:`vlmbrain.analysis.prediction.significant_prediction`). For a pair of branches (a, b)
(default: a model's visual and text branches): shared = V_a ∩ V_b, a-only = V_a \\ V_b,
b-only = V_b \\ V_a; their Dice / Jaccard, and how each set is composed of networks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vlmbrain.analysis._common import ALL, ALL_ID, check_2d

def default_pairs(streams) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """Within every model, pair each image-stream unit with each text-stream unit.

    Parameters
    ----------
    streams : mapping of (model, branch) to str
        The input each branch (or dictionary unit) encodes: ``"image"``, ``"text"``, or
        ``"image+text"`` for a joint unit (which is paired with nothing). The model's readout
        says it (``Readout.streams``, saved in ``model.json``); it is never guessed from names.

    Returns
    -------
    list of ((model, image_branch), (model, text_branch))
    """
    streams = dict(streams)
    keys = list(streams)
    pairs = []
    for model in dict.fromkeys(m for m, _ in keys):
        vis = [b for m, b in keys if m == model and streams[(m, b)] == "image"]
        txt = [b for m, b in keys if m == model and streams[(m, b)] == "text"]
        pairs += [((model, v), (model, t)) for v in vis for t in txt]
    return pairs


def crossmodal_overlap(
    sig_a,
    sig_b,
    atlas,
    model_a: str = "",
    branch_a: str = "vision",
    model_b: str | None = None,
    branch_b: str = "text",
) -> pd.DataFrame:
    """Shared / a-only / b-only grayordinates of two branches, overall and per network.

    Parameters
    ----------
    sig_a, sig_b : ndarray of shape (n_grayordinates,), bool
        ``V_a`` and ``V_b``.
    atlas : vlmbrain.networks.Atlas
    model_a, branch_a, model_b, branch_b : str
        Labels copied into the table (``model_b`` defaults to ``model_a``).

    Returns
    -------
    DataFrame
        One row per network plus a whole-brain row (``network="all"``, ``network_id=-1``):
        ``model_a, branch_a, model_b, branch_b, network_id, network, n_network, n_a, n_b,
        n_shared, n_a_only, n_b_only, dice, jaccard, composition_shared,
        composition_a_only, composition_b_only``. ``dice``/``jaccard`` compare V_a and V_b
        restricted to that network (NaN when both are empty there); ``composition_X`` is the
        share of set X that lies in that network (1 on the whole-brain row when X is not empty).
    """
    model_b = model_a if model_b is None else model_b
    a = check_2d("sig_a", sig_a, (atlas.space_size,)).astype(bool)
    b = check_2d("sig_b", sig_b, (atlas.space_size,)).astype(bool)
    shared, a_only, b_only = a & b, a & ~b, b & ~a
    totals = {"shared": shared.sum(), "a_only": a_only.sum(), "b_only": b_only.sum()}
    groups = [(int(i), n, atlas.labels == i) for i, n in zip(atlas.network_ids, atlas.network_names)]
    groups.append((ALL_ID, ALL, np.ones(atlas.space_size, bool)))
    rows = []
    for nid, name, member in groups:
        na, nb, ns = int((a & member).sum()), int((b & member).sum()), int((shared & member).sum())
        nao, nbo = int((a_only & member).sum()), int((b_only & member).sum())
        union = na + nb - ns
        row = {
            "model_a": model_a, "branch_a": branch_a, "model_b": model_b, "branch_b": branch_b,
            "network_id": nid, "network": name, "n_network": int(member.sum()),
            "n_a": na, "n_b": nb, "n_shared": ns, "n_a_only": nao, "n_b_only": nbo,
            "dice": 2.0 * ns / (na + nb) if na + nb else np.nan,
            "jaccard": ns / union if union else np.nan,
        }
        for key, n in (("shared", ns), ("a_only", nao), ("b_only", nbo)):
            row[f"composition_{key}"] = n / totals[key] if totals[key] else np.nan
        rows.append(row)
    return pd.DataFrame(rows)
