"""The atom explorer: one card per atom of every dictionary (``analysis/atoms/``).

The cards' data come from the ``atom-cards`` post-analysis hook (fields in
:mod:`vlmbrain.report.cards`); this section lays them out: a strip of atoms per unit (coloured
by the network they are affiliated with) and, for the chosen atom, its time course, the stimulus
at its peaks and troughs, its member ANs, its significant map (a small surface picture and,
when the viewer is on, the interactive map), its networks, mean r, polarity and stability.
Cards are shown one at a time through the page's URL fragment (``#atom-<model>-<unit>-<k>``),
so every card has its own link and the page needs no script to navigate them.
"""

from __future__ import annotations

import base64
import re

import numpy as np

from vlmbrain.report.cards import atoms_dir, read_cards, read_index, slug
from vlmbrain.report.explorer import PEAK_COLOUR, TROUGH_COLOUR, heatmap_svg, timecourse_svg
from vlmbrain.report.sections._context import ReportContext
from vlmbrain.report.sections._registry import register_section, skipped

_MIME = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg"}


def card_id(model: str, unit: str, atom: int) -> str:
    """The anchor of an atom's card."""
    return slug("atom", model, unit, int(atom))


def _hex(colour) -> str:
    r, g, b = (int(round(float(c) * 255)) for c in list(colour)[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def _network_colour(ctx: ReportContext, network_id: int) -> str:
    if ctx.atlas is None:
        return "#888888"
    colour = ctx.atlas.color_of(int(network_id))
    return _hex(colour) if colour is not None else "#888888"


class _Frames:
    """Each thumbnail embedded once (a CSS class with the image), however many cards show it."""

    def __init__(self, folder):
        self.folder = folder
        self.css: dict[str, str] = {}

    def css_class(self, rel: str | None) -> str | None:
        if not rel:
            return None
        name = "fr-" + re.sub(r"[^A-Za-z0-9_-]+", "_", rel.rsplit("/", 1)[-1].rsplit(".", 1)[0])
        if name not in self.css:
            path = self.folder / rel
            if not path.is_file():
                return None
            mime = _MIME.get(path.suffix.lstrip(".").lower(), "image/png")
            self.css[name] = f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"
        return name

    def stylesheet(self) -> str:
        return "\n".join(f".{name}{{background-image:url({uri})}}" for name, uri in self.css.items())


def _moments(frames: _Frames, card: dict, kind: str) -> list[dict]:
    out = []
    for n, m in enumerate(card.get(kind, []), start=1):
        out.append({"n": n, "tr": m["tr"], "run": m.get("run", ""), "run_tr": m.get("run_tr"),
                    "value": m["value"], "stimulus_tr": m.get("stimulus_tr", m["tr"]),
                    "caption": m.get("caption", ""), "frame": frames.css_class(m.get("frame"))})
    return out


def _significant_map(maps: dict, k: int, q: float) -> np.ndarray | None:
    if not {"beta", "q"} <= set(maps):
        return None
    beta, qv = np.asarray(maps["beta"][k], dtype=float), np.asarray(maps["q"][k], dtype=float)
    sig = np.nan_to_num(qv, nan=1.0) < q
    return np.where(sig & (beta != 0), beta, np.nan)


def _map_picture(ctx: ReportContext, values: np.ndarray, name: str) -> str | None:
    """A small surface picture as a data URI (also saved under figures/atoms/), or None."""
    from vlmbrain.report.surface import surface_thumbnail  # noqa: PLC0415

    try:
        png = surface_thumbnail(values, ctx.space)
    except Exception as err:  # noqa: BLE001 - one bad map must not stop the report
        ctx.note(f"atom map {name} could not be drawn: {err}")
        return None
    path = ctx.figures.fig_dir / "atoms" / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _facts(card: dict) -> list[tuple[str, str]]:
    facts = []
    mp = card.get("map") or {}
    mean_r = mp.get("mean_r")
    facts.append(("mean r", "—" if mean_r is None else f"{mean_r:.3f}"))
    facts.append(("significant grayordinates", f"β⁺ {mp.get('n_positive', 0)} · β⁻ {mp.get('n_negative', 0)} "
                  f"(q < {mp.get('q', 0.05):g})"))
    mem = card.get("members") or {}
    facts.append(("member ANs", f"{mem.get('n', 0)} of {mem.get('n_neurons', 0)} "
                  f"({mem.get('n_positive', 0)} with code > 0, {mem.get('n_negative', 0)} < 0)"))
    stab = card.get("stability")
    facts.append(("stability across seeds", "not computed (dictionary.stability_seeds: 0)" if stab is None
                  else f"{stab:.3f}"))
    pol = card.get("polarity")
    if pol:
        r, p = pol.get("r_mirror"), pol.get("p_mirror")
        facts.append(("polarity", f"AN⁺ {pol.get('n_an_pos')} / AN⁻ {pol.get('n_an_neg')}; mirror r "
                      f"{'—' if r is None else format(r, '.2f')}, p {'—' if p is None else format(p, '.3g')}"
                      f"{' (mirrored)' if pol.get('mirrored') else ''}"))
    return facts


def render_atoms(ctx: ReportContext):
    index = read_index(ctx.layout)
    if index is None:
        return skipped("analysis/atoms/ is not in this run directory (the atom-cards step of 'vlmbrain analyze' "
                       "writes it; re-run the analysis)")
    frames = _Frames(atoms_dir(ctx.layout))
    pictures = ctx.figures.enabled and ctx.space is not None
    if pictures:
        from vlmbrain.report.surface import surface_problem  # noqa: PLC0415

        no_surface = surface_problem(ctx.space)
        pictures = no_surface is None
    else:
        no_surface = "figures are off" if not ctx.figures.enabled else "the run has no brain space"
    units, cards_out = [], []
    for entry in index.get("units", []):
        model, unit_name, n_atoms = str(entry["model"]), str(entry["unit"]), int(entry["n_atoms"])
        cards = read_cards(ctx.layout, model, unit_name, n_atoms)
        unit = ctx.unit(model, unit_name)
        maps = ctx.encoding(unit, ("beta", "q")) if unit is not None else {}
        chips = []
        for card in cards:
            k = int(card["atom"])
            cid = card_id(model, unit_name, k)
            affs = card.get("affiliations") or []
            nets = [(a["sign"], a["network"], a["network_id"]) for a in affs]
            colour = _network_colour(ctx, nets[0][2]) if nets else "#d5dbe1"
            chips.append({"id": cid, "atom": k, "colour": colour,
                          "title": ", ".join(f"{n} ({s})" for s, n, _ in nets) or "no affiliated network"})
            values = _significant_map(maps, k, ctx.q)
            label = f"{model} / {unit_name} · atom {k}"
            picture = viewer = None
            if values is not None and np.isfinite(values).any():
                if pictures:
                    picture = _map_picture(ctx, values, f"{model}_{unit_name}_atom{k}")
                viewer = ctx.interactive_map(values, title=f"{label}: significant β (q < {ctx.q:g})", units="β")
            pos_nets = [n for s, n, _ in nets if s == "+"]
            neg_nets = [n for s, n, _ in nets if s == "-"]
            cards_out.append({
                "id": cid, "label": label, "model": model, "unit": unit_name, "atom": k,
                "prev": card_id(model, unit_name, k - 1) if k > 0 else None,
                "next": card_id(model, unit_name, k + 1) if k + 1 < n_atoms else None,
                "facts": _facts(card), "timecourse": timecourse_svg(card),
                "lag": card.get("hrf_lag_trs", 0), "tr": card.get("tr"),
                "peaks": _moments(frames, card, "peaks"), "troughs": _moments(frames, card, "troughs"),
                "pos_nets": pos_nets, "neg_nets": neg_nets,
                "members": card.get("members") or {}, "heatmap": heatmap_svg((card.get("members") or {})
                                                                             .get("by_layer_head", {})),
                "site": card.get("site", ""),
                "affiliations": [{**a, "colour": _network_colour(ctx, a["network_id"])} for a in affs],
                "strongest": [{**a, "colour": _network_colour(ctx, a["network_id"])}
                              for a in card.get("strongest_overlaps") or []],
                "picture": picture, "viewer": viewer, "has_map": values is not None,
                "map_empty": values is not None and not np.isfinite(values).any(),
            })
        units.append({"model": model, "unit": unit_name, "chips": chips,
                      "stability_mean": entry.get("stability_mean")})
    if not cards_out:
        return skipped("analysis/atoms/index.json lists no atoms")
    return ctx.render("section_atoms.html.j2", units=units, cards=cards_out, frames_css=frames.stylesheet(),
                      index=index, no_surface=None if pictures else no_surface, viewer_off=ctx.viewer_off
                      if ctx.viewer is None else "", peak_colour=PEAK_COLOUR, trough_colour=TROUGH_COLOUR)


register_section("atoms", render_atoms, order=250, title="Atom explorer")
