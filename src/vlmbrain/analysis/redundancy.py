"""Redundancy (docs/method.md §6.2).

BN side
    per grayordinate the number of atoms with a significant β (:func:`atoms_per_grayordinate`,
    a ``(n_grayordinates,)`` map for a dscalar); per network the number of affiliated atoms;
    within- vs. between-network Jaccard of the atoms' significant maps.
AN side
    per AN the number of sub-groups it belongs to (ℓ0 of its code column) and its
    distribution; the Jaccard of sub-groups (code supports) within vs. between networks;
    the number of networks each AN inherits through its atoms.

:func:`redundancy` returns one long tidy table; ``measure`` says what ``value`` is:

====================  ====  =======================================================  ========================
measure               side  value                                                    n
====================  ====  =======================================================  ========================
atoms_per_gray        BN    mean number of significant atoms per grayordinate          grayordinates
atoms_per_gray_hist   BN    grayordinates with exactly ``level`` significant atoms     (= value)
affiliated_atoms      BN    distinct atoms affiliated (``sign`` '+', '-' or 'any')     (= value)
map_jaccard_within    BN    mean Jaccard of pairs of affiliated maps, same network     pairs
map_jaccard_between   BN    same, one map in the network and one not in it             pairs
l0_hist               AN    ANs with ℓ0 (number of sub-groups) equal to ``level``      (= value)
l0_mean               AN    mean ℓ0 over ANs                                           ANs
subgroup_jaccard_...  AN    as map_jaccard_*, on the sub-groups' AN sets               pairs
inherited_networks    AN    ANs inheriting exactly ``level`` distinct networks         (= value)
====================  ====  =======================================================  ========================

Network ``"all"`` (``network_id=-1``) pools: within = pairs sharing any network, between =
pairs sharing none. Maps of the same atom (its + and − maps) are never paired.

The optional fault-tolerance test (drop one atom, refit, Δr per network) needs a refit of the
encoding model, which lives outside this layer: :func:`fault_tolerance` takes the refit as a
callable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from vlmbrain.analysis._common import ALL, ALL_ID, check_2d
from vlmbrain.errors import DimensionError

logger = logging.getLogger("vlmbrain")

COLUMNS = ["model", "branch", "side", "measure", "network_id", "network", "sign", "level", "value", "n"]


def atoms_per_grayordinate(q_beta, alpha: float = 0.05) -> np.ndarray:
    """Number of atoms with a significant β at every grayordinate.

    Parameters
    ----------
    q_beta : ndarray of shape (n_atoms, n_grayordinates)
        Corrected p-values of β (NaN = not tested).
    alpha : float, default=0.05

    Returns
    -------
    ndarray of shape (n_grayordinates,), int
    """
    q = np.asarray(q_beta, dtype=float)
    if q.ndim != 2:
        raise DimensionError(f"q_beta has shape {q.shape}; expected (n_atoms, n_grayordinates)")
    return (np.nan_to_num(q, nan=1.0) < alpha).sum(axis=0)


def code_l0(codes, tol: float = 0.0) -> np.ndarray:
    """ℓ0 of every code column: the number of sub-groups each AN belongs to, shape (n_neurons,)."""
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise DimensionError(f"codes has shape {codes.shape}; expected (n_atoms, n_neurons)")
    return (np.abs(codes) > tol).sum(axis=0)


def _jaccard_matrix(sets: np.ndarray) -> np.ndarray:
    M = sets.astype(np.float32)
    inter = M @ M.T
    n = M.sum(axis=1)
    union = n[:, None] + n[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


def within_between(sets: np.ndarray, networks: Sequence[set], owners: Sequence, atlas) -> list[dict]:
    """Mean Jaccard of pairs of sets within and between networks.

    Parameters
    ----------
    sets : ndarray of shape (n_sets, n_elements), bool
    networks : sequence of set of int
        Network ids each set is affiliated with.
    owners : sequence
        Owner (atom) of each set; sets with the same owner are never paired.
    atlas : Atlas

    Returns
    -------
    list of dict with keys network_id, network, kind ('within'/'between'), value, n
    """
    n = len(networks)
    J = _jaccard_matrix(sets) if n else np.zeros((0, 0))
    owners = np.asarray(owners)
    iu, ju = np.triu_indices(n, k=1)
    keep = owners[iu] != owners[ju]
    iu, ju = iu[keep], ju[keep]
    out = []
    groups = [(int(i), name) for i, name in zip(atlas.network_ids, atlas.network_names)] + [(ALL_ID, ALL)]
    member = {nid: np.array([nid in s for s in networks], dtype=bool) for nid, _ in groups if nid != ALL_ID}
    share_any = np.array([bool(networks[i] & networks[j]) for i, j in zip(iu, ju)], dtype=bool)
    for nid, name in groups:
        if nid == ALL_ID:
            within, between = share_any, ~share_any
        else:
            mi, mj = member[nid][iu], member[nid][ju]
            within = mi & mj
            between = mi ^ mj
        for kind, sel in (("within", within), ("between", between)):
            vals = J[iu[sel], ju[sel]]
            vals = vals[np.isfinite(vals)]
            out.append({"network_id": nid, "network": name, "kind": kind,
                        "value": float(vals.mean()) if vals.size else np.nan, "n": int(vals.size)})
    return out


def redundancy(
    beta,
    q_beta,
    codes,
    affiliation: pd.DataFrame,
    atlas,
    alpha: float = 0.05,
    model: str = "",
    branch: str = "",
) -> pd.DataFrame:
    """BN-side and AN-side redundancy of one model branch.

    Parameters
    ----------
    beta, q_beta : ndarray of shape (n_atoms, n_grayordinates)
    codes : ndarray of shape (n_atoms, n_neurons)
    affiliation : DataFrame
        :func:`vlmbrain.networks.affiliate` table of this branch.
    atlas : vlmbrain.networks.Atlas
    alpha : float, default=0.05
    model, branch : str

    Returns
    -------
    DataFrame
        Long table with columns ``model, branch, side, measure, network_id, network, sign,
        level, value, n`` (see the module docstring).
    """
    from vlmbrain.networks import affiliation_summary, significant_maps

    beta = check_2d("beta", beta, (None, atlas.space_size))
    K, V = beta.shape
    q_beta = check_2d("q_beta", q_beta, (K, V))
    codes = check_2d("codes", codes, (K, None))
    rows = []

    def add(side, measure, nid=ALL_ID, name=ALL, sign="", level=np.nan, value=np.nan, n=0):
        rows.append({"side": side, "measure": measure, "network_id": nid, "network": name, "sign": sign,
                     "level": level, "value": value, "n": n})

    # --- BN: atoms per grayordinate
    count = atoms_per_grayordinate(q_beta, alpha)
    for nid, name in zip(atlas.network_ids, atlas.network_names):
        m = atlas.labels == nid
        add("BN", "atoms_per_gray", int(nid), name, value=float(count[m].mean()) if m.any() else np.nan, n=int(m.sum()))
    add("BN", "atoms_per_gray", value=float(count.mean()), n=V)
    hist = np.bincount(count, minlength=K + 1)
    for level, c in enumerate(hist):
        add("BN", "atoms_per_gray_hist", level=level, value=int(c), n=int(c))

    # --- BN: affiliated atoms per network
    summ = affiliation_summary(affiliation)
    summ = summ[summ["network"] != ""]
    for nid, name in zip(atlas.network_ids, atlas.network_names):
        sel = summ[summ["network_id"] == nid]
        for sign in ("+", "-"):
            c = int(sel.loc[sel["sign"] == sign, "atom"].nunique())
            add("BN", "affiliated_atoms", int(nid), name, sign=sign, value=c, n=c)
        c = int(sel["atom"].nunique())
        add("BN", "affiliated_atoms", int(nid), name, sign="any", value=c, n=c)
    c = int(summ["atom"].nunique())
    add("BN", "affiliated_atoms", sign="any", value=c, n=c)

    # --- BN: within / between Jaccard of affiliated maps
    pos, neg = significant_maps(beta, q_beta, alpha)
    maps = [(pos if s == "+" else neg)[int(a)] for a, s in zip(summ["atom"], summ["sign"])]
    sets = np.stack(maps) if maps else np.zeros((0, V), bool)
    nets = [{int(x)} for x in summ["network_id"]]
    for r in within_between(sets, nets, summ["atom"].to_numpy(), atlas):
        add("BN", f"map_jaccard_{r['kind']}", r["network_id"], r["network"], value=r["value"], n=r["n"])

    # --- AN: l0 distribution
    l0 = code_l0(codes)
    for level, c in enumerate(np.bincount(l0, minlength=K + 1)):
        add("AN", "l0_hist", level=level, value=int(c), n=int(c))
    add("AN", "l0_mean", value=float(l0.mean()) if l0.size else np.nan, n=int(l0.size))

    # --- AN: sub-group Jaccard within / between networks (atoms with any affiliated sign)
    atom_nets: dict[int, set] = {}
    for a, nid in zip(summ["atom"], summ["network_id"]):
        atom_nets.setdefault(int(a), set()).add(int(nid))
    atoms = sorted(atom_nets)
    support = np.abs(codes) > 0
    sets = support[atoms] if atoms else np.zeros((0, codes.shape[1]), bool)
    for r in within_between(sets, [atom_nets[a] for a in atoms], atoms, atlas):
        add("AN", f"subgroup_jaccard_{r['kind']}", r["network_id"], r["network"], value=r["value"], n=r["n"])

    # --- AN: networks inherited through the codes
    inherited = np.zeros(codes.shape[1], dtype=np.int64)
    if atoms:
        onehot = np.zeros((K, atlas.n_networks), dtype=np.float32)
        col = {int(i): j for j, i in enumerate(atlas.network_ids)}
        for a in atoms:
            for nid in atom_nets[a]:
                onehot[a, col[nid]] = 1.0
        inherited = ((support.T.astype(np.float32) @ onehot) > 0).sum(axis=1)
    for level, c in enumerate(np.bincount(inherited, minlength=atlas.n_networks + 1)):
        add("AN", "inherited_networks", level=level, value=int(c), n=int(c))

    table = pd.DataFrame(rows)
    table.insert(0, "branch", branch)
    table.insert(0, "model", model)
    return table[COLUMNS]


def fault_tolerance(
    atoms,
    refit: Callable[[np.ndarray], np.ndarray],
    atlas,
    r_full=None,
    drop: Sequence[int] | None = None,
    model: str = "",
    branch: str = "",
) -> pd.DataFrame:
    """Optional fault-tolerance test: drop one atom, refit, Δr per network.

    Parameters
    ----------
    atoms : ndarray of shape (n_timepoints, n_atoms)
    refit : callable
        ``refit(atoms_subset (n_timepoints, n_atoms - 1)) -> r_cv (n_grayordinates,)``: the
        encoding model refitted on the remaining atoms (e.g. a closure over
        ``vlmbrain.encoding``), so that this layer needs no encoder.
    atlas : Atlas
    r_full : ndarray of shape (n_grayordinates,), optional
        r with all atoms; computed with ``refit(atoms)`` when omitted.
    drop : sequence of int, optional
        Atoms to drop one at a time (default all).
    model, branch : str

    Returns
    -------
    DataFrame
        ``model, branch, dropped_atom, network_id, network, mean_r_full, mean_r_dropped, delta_r``
        (Δ = dropped − full, mean over the network's grayordinates with finite r; whole-brain
        row ``network="all"``).
    """
    atoms = np.asarray(atoms)
    if atoms.ndim != 2:
        raise DimensionError(f"atoms has shape {atoms.shape}; expected (n_timepoints, n_atoms)")
    K = atoms.shape[1]
    r_full = np.asarray(refit(atoms) if r_full is None else r_full, dtype=float)
    check_2d("r_full", r_full, (atlas.space_size,))
    groups = [(int(i), n, atlas.labels == i) for i, n in zip(atlas.network_ids, atlas.network_names)]
    groups.append((ALL_ID, ALL, np.ones(atlas.space_size, bool)))
    rows = []
    for k in range(K) if drop is None else drop:
        keep = np.delete(np.arange(K), k)
        r_k = check_2d(f"refit without atom {k}", np.asarray(refit(atoms[:, keep]), dtype=float), (atlas.space_size,))
        for nid, name, member in groups:
            m = member & np.isfinite(r_full) & np.isfinite(r_k)
            full = float(r_full[m].mean()) if m.any() else np.nan
            dropped = float(r_k[m].mean()) if m.any() else np.nan
            rows.append({"model": model, "branch": branch, "dropped_atom": int(k), "network_id": nid,
                         "network": name, "mean_r_full": full, "mean_r_dropped": dropped,
                         "delta_r": dropped - full})
    return pd.DataFrame(rows)
