"""Captions: SRT / WebVTT (webvtt-py), TSV (onset, duration, text), HCP WordNet label files.

Rules (each announced with a :class:`CaptionWarning` pointing at the caller's line)
-----------------------------------------------------------------------------------
- **Empty cues** (no text after stripping tags and whitespace) are dropped.
- **Overlapping cues** (a cue starting before the previous one ends) are kept; a TR they share
  gets their texts joined in onset order (identical consecutive texts once).
- **Out-of-range cues**: a cue starting at or after the end of the run (``n_trs * tr``) or ending
  before 0 is dropped with a warning (``out_of_range="warn"``, default) or raises
  :class:`~vlmbrain.errors.DimensionError` naming the cue (``"error"``). A cue that only runs
  past the end is clipped silently to the run.
- Multi-line cue texts are joined with single spaces; formatting tags are stripped (webvtt-py).

Assignment of cues to TRs (:func:`captions_to_trs`, TR k covers ``[k*tr, (k+1)*tr)``):

- ``"overlap"`` (default): every cue overlapping the TR by more than 0 s;
- ``"midpoint"``: every cue on screen at the TR midpoint;
- ``"max_overlap"``: the one cue with the longest overlap (earliest onset on ties).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vlmbrain.errors import ConfigError, DimensionError, InputFileError

__all__ = [
    "CaptionWarning",
    "Cue",
    "attach_captions",
    "captions_to_trs",
    "read_captions",
    "read_srt",
    "read_tsv",
    "read_vtt",
    "read_wordnet_labels",
    "wordnet_to_trs",
]

RULES = ("overlap", "midpoint", "max_overlap")


class CaptionWarning(UserWarning):
    """A caption file needed a documented fix-up (empty, overlapping or out-of-range cues)."""


@dataclass(frozen=True)
class Cue:
    """One caption cue: ``onset`` and ``duration`` in seconds from the run start."""

    onset: float
    duration: float
    text: str

    @property
    def offset(self) -> float:
        return self.onset + self.duration


def _clean_text(text: str) -> str:
    return " ".join(str(text).split())


def _ts(t) -> float:
    return t.hours * 3600 + t.minutes * 60 + t.seconds + t.milliseconds / 1000.0


def _from_webvtt(path, reader) -> list[Cue]:
    import webvtt

    if not os.path.exists(path):
        raise InputFileError(f"{path}: file not found")
    try:
        doc = reader(str(path))
    except (webvtt.errors.MalformedFileError, webvtt.errors.MalformedCaptionError, UnicodeDecodeError, ValueError) as err:
        raise InputFileError(f"{path}: not a valid caption file ({type(err).__name__}: {err})") from err
    cues = []
    for c in doc.captions:
        start, end = _ts(c.start_time), _ts(c.end_time)
        cues.append(Cue(start, max(end - start, 0.0), _clean_text(c.text)))
    # webvtt-py skips cues whose timing line it cannot parse: count the arrows to notice
    with open(path, encoding="utf-8", errors="replace") as fh:
        n_arrows = sum("-->" in line for line in fh)
    if n_arrows and not cues:
        raise InputFileError(f"{path}: not a valid caption file (no cue timing line could be parsed)")
    if n_arrows > len(cues):
        warnings.warn(f"{path}: {n_arrows - len(cues)} cue(s) with unreadable timing lines were skipped",
                      CaptionWarning, stacklevel=3)
    return cues


def read_srt(path) -> list[Cue]:
    """Cues of a SubRip file (``webvtt.from_srt``), in file order, texts cleaned."""
    import webvtt

    return _from_webvtt(path, webvtt.from_srt)


def read_vtt(path) -> list[Cue]:
    """Cues of a WebVTT file (``webvtt.read``), in file order, texts cleaned."""
    import webvtt

    return _from_webvtt(path, webvtt.read)


def read_tsv(path) -> list[Cue]:
    """Cues of a tab-separated file with a header row and columns ``onset``, ``duration``, ``text``
    (seconds; BIDS events style; ``caption`` is accepted for ``text``)."""
    if not os.path.exists(path):
        raise InputFileError(f"{path}: file not found")
    try:
        df = pd.read_csv(path, sep="\t", keep_default_na=False, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputFileError(f"{path}: not a readable TSV ({err})") from err
    if "text" not in df.columns and "caption" in df.columns:
        df = df.rename(columns={"caption": "text"})
    missing = [c for c in ("onset", "duration", "text") if c not in df.columns]
    if missing:
        raise InputFileError(
            f"{path}: TSV lacks column(s) {missing}; expected a header row 'onset<TAB>duration<TAB>text', "
            f"found {list(df.columns)}"
        )
    cues = []
    for i, row in enumerate(df.itertuples(index=False), start=2):
        try:
            onset, duration = float(row.onset), float(row.duration)
        except ValueError as err:
            raise InputFileError(f"{path}: line {i}: onset/duration must be numbers (seconds), got "
                                 f"{row.onset!r}, {row.duration!r}") from err
        if duration < 0 or not np.isfinite(onset) or not np.isfinite(duration):
            raise InputFileError(f"{path}: line {i}: invalid onset/duration {onset!r}, {duration!r}")
        cues.append(Cue(onset, duration, _clean_text(row.text)))
    return cues


def read_captions(path, fmt: str | None = None) -> list[Cue]:
    """Read a caption file by format (``"srt"``, ``"vtt"``, ``"tsv"``; default from the extension)."""
    fmt = fmt or os.path.splitext(str(path))[1].lower().lstrip(".")
    readers = {"srt": read_srt, "vtt": read_vtt, "tsv": read_tsv, "txt": read_tsv}
    if fmt not in readers:
        raise InputFileError(f"{path}: unsupported caption format {fmt!r}; use .srt, .vtt or .tsv (onset, duration, text)")
    return readers[fmt](path)


def _prepare(cues, run_end, out_of_range, source, stacklevel):
    if out_of_range not in ("warn", "error"):
        raise ConfigError(f"out_of_range must be 'warn' or 'error', got {out_of_range!r}")
    kept = [c for c in cues if c.text]
    n_empty = len(cues) - len(kept)
    if n_empty:
        warnings.warn(f"{source}: dropped {n_empty} empty cue(s)", CaptionWarning, stacklevel=stacklevel)

    def _outside(c):
        return c.onset >= run_end or c.offset < 0 or (c.offset <= 0 and c.duration > 0)

    outside = [c for c in kept if _outside(c)]
    if outside:
        first = outside[0]
        msg = (f"{source}: {len(outside)} cue(s) lie outside the run (0–{run_end:g} s), first {first.text[:40]!r} at "
               f"{first.onset:g}–{first.offset:g} s")
        if out_of_range == "error":
            raise DimensionError(msg + "; check the run's caption file or the run length")
        warnings.warn(msg + "; dropped", CaptionWarning, stacklevel=stacklevel)
        kept = [c for c in kept if c not in outside]
    kept = sorted(kept, key=lambda c: (c.onset, c.offset))
    overlaps = [(a, b) for a, b in zip(kept[:-1], kept[1:], strict=False) if b.onset < a.offset - 1e-9]
    if overlaps:
        a, b = overlaps[0]
        warnings.warn(
            f"{source}: {len(overlaps)} cue(s) overlap the previous one (first {a.text[:30]!r} "
            f"{a.onset:g}–{a.offset:g} s and {b.text[:30]!r} from {b.onset:g} s); texts are joined in onset order",
            CaptionWarning, stacklevel=stacklevel,
        )
    return kept


def _join(texts, sep):
    out = []
    for t in texts:
        if not out or out[-1] != t:
            out.append(t)
    return sep.join(out)


def captions_to_trs(cues: Sequence[Cue], n_trs: int, tr: float, rule: str = "overlap",
                    out_of_range: str = "warn", sep: str = " ", source: str = "captions",
                    _stacklevel: int = 2) -> list[str]:
    """One caption string per TR of a run.

    Parameters
    ----------
    cues : sequence of Cue
        Times in seconds from the run start.
    n_trs : int
    tr : float
    rule : {"overlap", "midpoint", "max_overlap"}, default="overlap"
        See the module docstring.
    out_of_range : {"warn", "error"}, default="warn"
    sep : str, default=" "
        Joins the texts of several cues in one TR.
    source : str
        Name used in warnings and errors (the file name).

    Returns
    -------
    list of str of length n_trs
        ``""`` for TRs without a cue.
    """
    if rule not in RULES:
        raise ConfigError(f"caption rule {rule!r} is unknown; allowed: {', '.join(RULES)}")
    n_trs, tr = int(n_trs), float(tr)
    if tr <= 0:
        raise ConfigError(f"tr must be > 0, got {tr}")
    run_end = n_trs * tr
    kept = _prepare(list(cues), run_end, out_of_range, source, _stacklevel + 1)
    per_tr = [[] for _ in range(n_trs)]  # (overlap, onset, text)
    for c in kept:
        lo = max(int(np.floor(c.onset / tr)), 0)
        hi = min(int(np.ceil(c.offset / tr)), n_trs)
        for k in range(lo, max(hi, lo + 1) if c.duration == 0 else hi):
            if k >= n_trs:
                break
            t0, t1 = k * tr, (k + 1) * tr
            ov = min(c.offset, t1) - max(c.onset, t0)
            if rule == "midpoint":
                mid = t0 + tr / 2
                if not (c.onset <= mid < c.offset):
                    continue
            elif ov <= 0 and not (c.duration == 0 and t0 <= c.onset < t1):
                continue
            per_tr[k].append((ov, c.onset, c.text))
    out = []
    for items in per_tr:
        if not items:
            out.append("")
        elif rule == "max_overlap":
            out.append(sorted(items, key=lambda x: (-x[0], x[1]))[0][2])
        else:
            out.append(_join([t for _, _, t in sorted(items, key=lambda x: x[1])], sep))
    return out


_WN_LINE = re.compile(r"^\s*(\d+)\s*:\s*\{(.*)\}\s*$")
_WN_ITEM = re.compile(r'"([^"]*)"|\'([^\']*)\'')


def read_wordnet_labels(path) -> dict[int, list[str]]:
    """Parse an HCP WordNet label file (``WordNet_MOVIE1_CC1.txt``).

    Lines look like ``000020:{"road.n.01","sky.n.01"}`` (one per second; ``{}`` on rest).

    Returns
    -------
    dict of int -> list of str
        Second → synset names in file order.
    """
    if not os.path.exists(path):
        raise InputFileError(f"{path}: file not found")
    out = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            m = _WN_LINE.match(line)
            if m is None:
                raise InputFileError(
                    f"{path}: line {lineno} is not '<second>:{{\"synset\",...}}': {line.strip()[:60]!r}"
                )
            items = [a or b for a, b in _WN_ITEM.findall(m.group(2))]
            out[int(m.group(1))] = [s.strip() for s in items if s.strip()]
    return out


def synset_word(synset: str) -> str:
    """``"road.n.01"`` → ``"road"``; ``"traffic_light.n.01"`` → ``"traffic light"``."""
    parts = synset.split(".")
    word = ".".join(parts[:-2]) if len(parts) >= 3 else synset
    return word.replace("_", " ")


def wordnet_to_trs(labels, n_trs: int, tr: float = 1.0, sep: str = ", ", words: bool = True,
                   out_of_range: str = "warn", source: str = "WordNet labels", _stacklevel: int = 2) -> list[str]:
    """Per-TR captions from per-second WordNet labels.

    Parameters
    ----------
    labels : dict of int -> list of str, or path
        From :func:`read_wordnet_labels`; second s labels ``[s, s+1)``.
    n_trs : int
    tr : float, default=1.0
    sep : str, default=", "
    words : bool, default=True
        Synset → its word (``road.n.01`` → ``road``); False keeps synset names.
    out_of_range : {"warn", "error"}
        Labelled seconds at or after the run end.

    Returns
    -------
    list of str of length n_trs
        The labels of the seconds overlapping each TR, deduplicated in first-seen order
        (e.g. ``"road, sky"``); ``""`` for rest.
    """
    if not isinstance(labels, Mapping):
        source = str(labels)
        labels = read_wordnet_labels(labels)
    if out_of_range not in ("warn", "error"):
        raise ConfigError(f"out_of_range must be 'warn' or 'error', got {out_of_range!r}")
    n_trs, tr = int(n_trs), float(tr)
    run_end = n_trs * tr
    late = sorted(s for s, v in labels.items() if v and s >= run_end)
    if late:
        msg = f"{source}: {len(late)} labelled second(s) at or after the run end ({run_end:g} s), first {late[0]}"
        if out_of_range == "error":
            raise DimensionError(msg + "; check the run's label file or the run length")
        warnings.warn(msg + "; dropped", CaptionWarning, stacklevel=_stacklevel)
    out = []
    for k in range(n_trs):
        t0, t1 = k * tr, (k + 1) * tr
        seen = []
        for s in range(int(np.floor(t0)), int(np.ceil(t1))):
            if min(s + 1, t1) - max(s, t0) <= 0:
                continue
            for syn in labels.get(s, []):
                w = synset_word(syn) if words else syn
                if w not in seen:
                    seen.append(w)
        out.append(sep.join(seen))
    return out


def attach_captions(timeline, sources, rule: str = "overlap", out_of_range: str = "warn",
                    blank_rest: bool = True, fmt: str | None = None):
    """A copy of ``timeline`` whose ``caption`` column comes from one caption file per run.

    Parameters
    ----------
    timeline : Timeline
    sources : mapping run name -> path (or list of cues), or sequence in run order
        ``.srt``, ``.vtt``, ``.tsv`` or an HCP WordNet label file (``fmt="wordnet"`` or a name
        starting with ``WordNet``). Runs absent from a mapping keep their captions.
    rule, out_of_range : see :func:`captions_to_trs`
    blank_rest : bool, default=True
        Rest TRs get an empty caption (docs/method.md §1.4).
    """
    from vlmbrain.stimulus.timeline import Timeline

    names = timeline.run_names
    if not isinstance(sources, Mapping):
        sources = list(sources)
        if len(sources) != len(names):
            raise ConfigError(f"{len(sources)} caption sources for {len(names)} runs ({names})")
        sources = dict(zip(names, sources, strict=True))
    unknown = [r for r in sources if r not in names]
    if unknown:
        raise ConfigError(f"caption sources name unknown run(s) {unknown}; the timeline has {names}")
    table = timeline.table.copy()
    for run, src in sources.items():
        rows = np.flatnonzero(table["run"].to_numpy() == run)
        n = len(rows)
        if isinstance(src, (str, os.PathLike)):
            name = os.path.basename(str(src))
            kind = fmt or ("wordnet" if name.lower().startswith("wordnet") else None)
            if kind == "wordnet":
                caps = wordnet_to_trs(str(src), n, timeline.tr, out_of_range=out_of_range, _stacklevel=3)
            else:
                caps = captions_to_trs(read_captions(src, kind), n, timeline.tr, rule, out_of_range,
                                       source=str(src), _stacklevel=3)
        else:
            caps = captions_to_trs(list(src), n, timeline.tr, rule, out_of_range, source=f"run {run}", _stacklevel=3)
        table.loc[table.index[rows], "caption"] = caps
    if blank_rest:
        table.loc[table["rest"].to_numpy(bool), "caption"] = ""
    return Timeline(table, timeline.tr)
