"""Where the data came from: stimulus, timeline, fMRI source and subjects, brain space."""

from __future__ import annotations

from vlmbrain.report.sections._context import ReportContext, read_json_strict
from vlmbrain.report.sections._registry import register_section, skipped

#: what ``BrainData.save`` writes next to the brain data: run names, TR and loader metadata
BRAIN_META = "meta.json"


def _rows(ctx: ReportContext):
    cfg = ctx.config
    stim = cfg.get("stimulus") or {}
    fmri = cfg.get("fmri") or {}
    rows = []
    if stim:
        rows.append(("stimulus", str(stim.get("kind", "not recorded"))))
    tl = ctx.table("timeline")
    if tl is not None:
        runs = list(dict.fromkeys(tl["run"].astype(str)))
        rows.append(("timeline", f"{len(tl)} TRs in {len(runs)} run(s): {', '.join(runs)}"))
        rows.append(("rest TRs", str(int(tl["rest"].sum()))))
    if stim.get("tr") is not None:
        rows.append(("TR (s)", str(stim["tr"])))
    if fmri:
        rows.append(("fMRI source", str(fmri.get("kind", "not recorded"))))
        paths = fmri.get("paths") or []
        subjects = fmri.get("subjects") or []
        if subjects:
            rows.append(("subjects", f"{len(subjects)} (group average of z-scored series)"))
        elif paths:
            rows.append(("subjects", "1"))
        elif fmri.get("kind") == "demo":
            rows.append(("subjects", "phantom (planted ground truth)"))
        rows += [("fMRI file", str(p)) for p in paths[:8]]
    meta = read_json_strict(ctx.layout.brain_dir / BRAIN_META)
    if isinstance(meta, dict):
        loader = meta.get("meta") if isinstance(meta.get("meta"), dict) else {}
        if loader.get("source"):
            rows.append(("fMRI data", str(loader["source"])))
        if loader.get("subjects") is not None and not fmri.get("subjects"):
            rows.append(("subjects (loaded)", str(loader["subjects"])))
        if meta.get("run_names"):
            rows.append(("fMRI runs", ", ".join(map(str, meta["run_names"]))))
    if ctx.space is not None:
        sp = ctx.space
        rows.append(("brain space", f"kind={sp.kind}, name={sp.name}, n_grayordinates={sp.n_grayordinates}"))
        if sp.notes:
            rows.append(("brain space notes", sp.notes))
    return rows


def render_provenance(ctx: ReportContext):
    rows = _rows(ctx)
    if not rows:
        return skipped("no config.yaml, stimulus/timeline.tsv or brain/ in this run directory")
    return ctx.render("section_provenance.html.j2", rows=rows)


register_section("provenance", render_provenance, order=920, title="Data provenance")
