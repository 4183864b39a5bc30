"""Small inline SVG drawings of the atom explorer: an atom's time course, its ANs by layer × head.

Drawn as plain SVG text (no matplotlib): a report holds one of each per atom, and hundreds of
matplotlib figures would cost minutes and megabytes.
"""

from __future__ import annotations

import html as _html
import math

import numpy as np

__all__ = ["heatmap_svg", "timecourse_svg"]

PEAK_COLOUR = "#c0392b"
TROUGH_COLOUR = "#1f5fa8"


def _esc(text) -> str:
    return _html.escape(str(text), quote=True)


def _envelope(values: np.ndarray, start: int, stop: int, n_cols: int):
    """(positions, values) of a segment drawn as a polyline of at most ~2 points per pixel column."""
    idx = np.arange(start, stop)
    seg = values[start:stop]
    if seg.size <= 2 * n_cols:
        return idx, seg
    edges = np.linspace(0, seg.size, n_cols + 1).astype(int)
    pos, out = [], []
    for a, b in zip(edges[:-1], edges[1:]):
        if b <= a:
            continue
        chunk = seg[a:b]
        lo, hi = int(np.argmin(chunk)), int(np.argmax(chunk))
        for j in sorted({lo, hi}):
            pos.append(start + a + j)
            out.append(chunk[j])
    return np.asarray(pos), np.asarray(out)


def timecourse_svg(card: dict, width: int = 880, height: int = 150) -> str:
    """The atom's time course over the whole movie: runs separated and named, rest TRs shaded,
    TRs left out of the fits blank, peaks (▲, numbered) and troughs (▼, numbered) marked."""
    values = np.array([np.nan if v is None else float(v) for v in card.get("timecourse", [])], dtype=float)
    T = values.size
    left, right, top, bottom = 46, 8, 16, 20
    w, h = width - left - right, height - top - bottom
    finite = values[np.isfinite(values)]
    if T == 0 or not finite.size:
        return f'<svg class="atom-tc" width="{width}" height="40" role="img"><text x="4" y="20">no time course</text></svg>'
    lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        lo, hi = lo - 1, hi + 1
    pad = 0.06 * (hi - lo)
    lo, hi = lo - pad, hi + pad

    def x(t):
        return left + (t + 0.5) / T * w

    def y(v):
        return top + (hi - v) / (hi - lo) * h

    parts = [f'<svg class="atom-tc" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
             f'aria-label="time course of atom {int(card.get("atom", 0))}" xmlns="http://www.w3.org/2000/svg">']
    for a, b in card.get("rest", []):
        parts.append(f'<rect x="{x(a - 0.5):.1f}" y="{top}" width="{max(w * (b - a) / T, 1):.1f}" height="{h}" '
                     f'fill="#eceff2"><title>rest, TRs {a}–{b - 1}</title></rect>')
    if lo < 0 < hi:
        parts.append(f'<line x1="{left}" x2="{left + w}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#bbb" '
                     'stroke-width="0.7"/>')
    for i, run in enumerate(card.get("runs", [])):
        if i:
            xs = x(run["start"] - 0.5)
            parts.append(f'<line x1="{xs:.1f}" x2="{xs:.1f}" y1="{top - 12}" y2="{top + h}" stroke="#555" '
                         'stroke-dasharray="3,2" stroke-width="0.8"/>')
        parts.append(f'<text x="{x(run["start"] - 0.5) + 3:.1f}" y="{top - 4}" font-size="10" fill="#444">'
                     f'{_esc(run["name"])}</text>')
        parts.append(f'<text x="{x(run["start"] - 0.5):.1f}" y="{height - 6}" font-size="9" fill="#777">'
                     f'{run["start"]}</text>')
    parts.append(f'<text x="{left + w}" y="{height - 6}" font-size="9" fill="#777" text-anchor="end">TR {T - 1}</text>')
    # contiguous stretches of finite values, each one polyline
    ok = np.isfinite(values)
    edges = np.flatnonzero(np.diff(np.r_[0, ok.astype(int), 0]))
    n_cols = max(int(w), 1)
    for a, b in zip(edges[::2], edges[1::2]):
        pos, seg = _envelope(values, int(a), int(b), max(1, int(n_cols * (b - a) / T)))
        pts = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(pos, seg))
        parts.append(f'<polyline points="{pts}" fill="none" stroke="#22313f" stroke-width="1.1"/>')
    for kind, colour, d in (("peaks", PEAK_COLOUR, -1), ("troughs", TROUGH_COLOUR, +1)):
        for n, m in enumerate(card.get(kind, []), start=1):
            cx, cy = x(m["tr"]), y(m["value"])
            tip = cy + d * 7
            parts.append(f'<path d="M{cx - 4:.1f},{tip:.1f} L{cx + 4:.1f},{tip:.1f} L{cx:.1f},{cy:.1f} Z" '
                         f'fill="{colour}"><title>{kind[:-1]} {n}: TR {m["tr"]}, value {m["value"]:.3g}</title></path>')
            ty = tip + d * 4 + (0 if d < 0 else 6)
            parts.append(f'<text x="{cx:.1f}" y="{ty:.1f}" font-size="9" fill="{colour}" text-anchor="middle">{n}</text>')
    parts.append(f'<text x="{left - 4}" y="{top + 8}" font-size="9" fill="#777" text-anchor="end">{hi:.2g}</text>')
    parts.append(f'<text x="{left - 4}" y="{top + h}" font-size="9" fill="#777" text-anchor="end">{lo:.2g}</text>')
    parts.append("</svg>")
    return "".join(parts)


def heatmap_svg(by_layer_head: dict, cell: int = 18) -> str:
    """Member ANs counted by layer (rows) × head (columns), darker = more."""
    rows, heads = by_layer_head.get("rows", []), by_layer_head.get("heads", [])
    counts = np.asarray(by_layer_head.get("n", []), dtype=float).reshape(len(rows), len(heads))
    if not rows or not heads:
        return ""
    label_w = 8 + 7 * max(len(str(r)) for r in rows)
    width, height = label_w + cell * len(heads) + 4, 18 + cell * len(rows) + 4
    top = max(counts.max(), 1.0)
    parts = [f'<svg class="atom-heat" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
             'aria-label="member ANs by layer and head" xmlns="http://www.w3.org/2000/svg">']
    for j, head in enumerate(heads):
        parts.append(f'<text x="{label_w + cell * (j + 0.5):.1f}" y="12" font-size="9" fill="#555" '
                     f'text-anchor="middle">{_esc(head)}</text>')
    for i, row in enumerate(rows):
        yy = 18 + cell * i
        parts.append(f'<text x="{label_w - 4}" y="{yy + cell * 0.68:.1f}" font-size="9" fill="#555" '
                     f'text-anchor="end">{_esc(row)}</text>')
        for j, head in enumerate(heads):
            n = counts[i, j]
            level = math.sqrt(n / top)
            r, g, b = (int(round(255 - level * (255 - c))) for c in (31, 78, 121))
            parts.append(f'<rect x="{label_w + cell * j}" y="{yy}" width="{cell - 1}" height="{cell - 1}" '
                         f'fill="rgb({r},{g},{b})"><title>{_esc(row)}, head {_esc(head)}: {int(n)} ANs</title></rect>')
            if n:
                fill = "#fff" if level > 0.55 else "#222"
                parts.append(f'<text x="{label_w + cell * (j + 0.5) - 0.5:.1f}" y="{yy + cell * 0.68:.1f}" '
                             f'font-size="8" fill="{fill}" text-anchor="middle">{int(n)}</text>')
    parts.append("</svg>")
    return "".join(parts)
