"""Polarity: AN⁺/AN⁻ layer profiles, BN⁺/BN⁻ correlations, mirror test.

Tables ``analysis/polarity.tsv``, ``polarity_profiles.tsv`` and ``polarity_bn.tsv``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vlmbrain.report import figures as F
from vlmbrain.report.sections._context import ReportContext
from vlmbrain.report.sections._registry import register_section

TABLES = ("polarity", "polarity_profiles", "polarity_bn")


def render_polarity(ctx: ReportContext):
    pol, prof, pbn = (ctx.table(n) for n in TABLES)
    if pol is None and prof is None and pbn is None:
        return ctx.missing(*TABLES)
    figs, text = [], []
    parts = []
    if prof is not None:
        parts.append(prof[["model", "branch", "atom", "side", "layer", "value"]])
    if pbn is not None:
        parts.append(pbn[pbn["an_sign"] == "all"][["model", "branch", "atom", "side", "layer", "value"]])
    parts = [p for p in parts if len(p)]
    if parts:
        both = pd.concat(parts, ignore_index=True)
        figs.append(ctx.figures.add(
            lambda: F.plot_polarity_profiles(both), "polarity_profiles", "Polarity layer profiles",
            "AN side: P±(l) = Σ|A_kj| over the layer's ANs with that code sign, normalised by layer size; "
            "BN side: mean correlation of the layer's ANs with the mean BN⁺ / BN⁻ time series. "
            "Mean ± SEM over atoms."))
    if pol is not None:
        r = pol["r_mirror"].to_numpy(float)
        p = pol["p_mirror"].to_numpy(float)
        ok = np.isfinite(r)
        if ok.any():
            text.append(f"Mirrored profiles: {int(np.sum(r[ok] < 0))} of {int(ok.sum())} atoms have "
                        f"r(P⁺, P⁻) < 0, {int(np.sum((r[ok] < 0) & (p[ok] < 0.05)))} with p < 0.05.")
    missing = [ctx.table_path(n) for n in TABLES if ctx.table(n) is None]
    return ctx.render("section_polarity.html.j2", text=text, figures=figs, missing=missing,
                      tables=[ctx.table_block(n) for n in TABLES])


register_section("polarity", render_polarity, order=400, title="Polarity")
