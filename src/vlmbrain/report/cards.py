"""Atom cards: what one atom of a dictionary is, in one JSON file per atom.

The post-analysis hook ``atom-cards`` (:mod:`vlmbrain.stages.atom_cards`) writes them; the
report's atom explorer reads them. Both spell the paths through this module::

    analysis/atoms/index.json                      the units, their atom counts, the options used
    analysis/atoms/<model>/<unit>/atom_<k>.json    one card per atom (fields below)
    analysis/atoms/frames/tr_<t>.png | .jpg        stimulus thumbnails, shared by the cards

A card holds:

- ``model``, ``unit``, ``branches``, ``stream``, ``atom``, ``n_atoms``, ``tr``, ``site``;
- ``timecourse``: the atom's value at every TR of the movie (``null`` at TRs left out of the
  fits), with ``runs`` (``name``, ``start``, ``stop``) and ``rest`` (``[start, stop)``
  intervals of rest TRs);
- ``peaks`` / ``troughs``: the TRs of the strongest highs and lows (``tr``, ``value``, ``run``,
  ``run_tr``), each with the stimulus shown ``hrf_lag_trs`` earlier (``stimulus_tr``,
  ``caption``, ``frame``: a thumbnail path relative to ``analysis/atoms/``, or null);
- ``members``: the ANs with a non-zero code (``n``, ``n_positive``, ``n_negative``), counted by
  layer × head (``by_layer_head``) and by branch and module (``by_module``), and the
  ``top`` ANs by |code|;
- ``map``: its significant grayordinates (``n_positive`` for β⁺, ``n_negative`` for β⁻, at
  ``q``) and ``mean_r``, the unit's cross-validated r averaged over them;
- ``affiliations``: every network its β⁺ or β⁻ map is affiliated with (``sign``, ``network``,
  ``network_id``, ``overlap_rate``, ``dice``, ``p_null``, ``n_overlap``), and
  ``strongest_overlaps``: per sign, the network its map overlaps most, affiliated or not;
- ``polarity``: its row of ``analysis/polarity.tsv`` (or null), ``stability``: its
  stability across seeds from ``dictionary/<model>/<unit>/summary.json`` (or null).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from vlmbrain.artifacts import RunLayout
from vlmbrain.errors import InputFileError

__all__ = ["CARD_VERSION", "atoms_dir", "card_path", "frame_relpath", "read_cards", "read_index", "slug"]

#: version of the card fields; a reader refuses cards of another version
CARD_VERSION = 1
INDEX_JSON = "index.json"
FRAMES = "frames"


def atoms_dir(layout: RunLayout) -> Path:
    """``analysis/atoms``: where the cards, their index and the thumbnails live."""
    return layout.analysis_dir / "atoms"


def card_path(layout: RunLayout, model: str, unit: str, atom: int) -> Path:
    """``analysis/atoms/<model>/<unit>/atom_<k>.json``."""
    return atoms_dir(layout) / model / unit / f"atom_{int(atom)}.json"


def frame_relpath(tr: int, ext: str = "png") -> str:
    """The thumbnail of a TR, relative to ``analysis/atoms/``."""
    return f"{FRAMES}/tr_{int(tr):05d}.{ext}"


def slug(*parts) -> str:
    """An HTML id made of the parts (letters, digits, ``-`` and ``_`` only)."""
    return "-".join(re.sub(r"[^A-Za-z0-9_]+", "_", str(p)) for p in parts)


def _read(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise InputFileError(f"{path} is not valid JSON ({err}); re-run 'vlmbrain analyze' to rewrite it") from None


def read_index(layout: RunLayout) -> dict | None:
    """``analysis/atoms/index.json``, or None when the run has no atom cards."""
    path = atoms_dir(layout) / INDEX_JSON
    if not path.is_file():
        return None
    index = _read(path)
    if not isinstance(index, dict) or index.get("version") != CARD_VERSION:
        raise InputFileError(f"{path}: atom cards of version {index.get('version') if isinstance(index, dict) else '?'}"
                             f", this vlmbrain reads version {CARD_VERSION}; re-run 'vlmbrain analyze'")
    return index


def read_cards(layout: RunLayout, model: str, unit: str, n_atoms: int) -> list[dict]:
    """The cards of one unit in atom order (a missing card is an error: the index lists it)."""
    cards = []
    for k in range(int(n_atoms)):
        path = card_path(layout, model, unit, k)
        if not path.is_file():
            raise InputFileError(f"{path} is listed in analysis/atoms/index.json but missing; "
                                 "re-run 'vlmbrain analyze'")
        cards.append(_read(path))
    return cards
