"""Run every analysis of METHOD.md §5–6 on the per-branch results of a run."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from vlmbrain.analysis._common import check_2d, check_neurons
from vlmbrain.analysis.crossmodal import crossmodal_overlap, default_pairs
from vlmbrain.analysis.hierarchy import hierarchy
from vlmbrain.analysis.polarity import bn_mean_timeseries, layer_bn_correlation, layer_profiles, polarity
from vlmbrain.analysis.prediction import prediction_by_network, significant_prediction
from vlmbrain.analysis.redundancy import redundancy
from vlmbrain.errors import ConfigError, DimensionError

logger = logging.getLogger("vlmbrain")

#: Tables always returned by :func:`run_analyses` (written as ``analysis/<name>.tsv``).
TABLES = ("affiliation", "redundancy", "polarity", "crossmodal", "hierarchy", "prediction")
#: Extra tables: signed layer profiles, and the BN-correlation view when brain data and activations are given.
EXTRA_TABLES = ("polarity_profiles", "polarity_bn")


@dataclass(eq=False)
class BranchResult:
    """Everything the analyses need from one model branch.

    Attributes
    ----------
    model, branch : str
    atoms : ndarray of shape (n_timepoints, n_atoms)
    codes : ndarray of shape (n_atoms, n_neurons)
    neurons : DataFrame
        Neuron table (columns model, branch, layer, module, head, unit, group), one row per code column.
    beta, q_beta : ndarray of shape (n_atoms, n_grayordinates)
        Encoding coefficients and their corrected p-values.
    r_cv, q_r : ndarray of shape (n_grayordinates,)
        Cross-validated r and its corrected p-values.
    activations : ndarray of shape (n_timepoints, n_neurons), optional
        Processed AN time courses (for the second polarity view).
    """

    model: str
    branch: str
    atoms: np.ndarray
    codes: np.ndarray
    neurons: pd.DataFrame
    beta: np.ndarray
    q_beta: np.ndarray
    r_cv: np.ndarray
    q_r: np.ndarray
    activations: np.ndarray | None = None

    def validate(self, n_grayordinates: int) -> None:
        """Check the shapes against each other and the atlas; DimensionError naming both shapes."""
        where = f"{self.model}/{self.branch}"
        atoms = check_2d(f"{where} atoms", self.atoms, (None, None))
        T, K = atoms.shape
        check_2d(f"{where} codes", self.codes, (K, None))
        check_neurons(self.neurons, np.shape(self.codes)[1], f"{where} neurons")
        check_2d(f"{where} beta", self.beta, (K, n_grayordinates))
        check_2d(f"{where} q_beta", self.q_beta, (K, n_grayordinates))
        check_2d(f"{where} r_cv", self.r_cv, (n_grayordinates,))
        check_2d(f"{where} q_r", self.q_r, (n_grayordinates,))
        if self.activations is not None:
            check_2d(f"{where} activations", self.activations, (T, np.shape(self.codes)[1]))


@dataclass
class AnalysisOptions:
    """Options of :func:`run_analyses` (defaults of METHOD.md)."""

    alpha: float = 0.05            #: level of β maps, prediction and the mirror test
    threshold: float = 0.15        #: minimal overlap rate of an affiliation
    null: str | None = "spin"      #: spatial null of the affiliation: "spin", "permutation", "none"
    n_perm: int = 1000             #: rotations / permutations of that null
    random_state: int = 0
    crossmodal_pairs: list | None = None  #: [((model, branch), (model, branch)), ...]; default visual×text per model
    chunk_size: int = 8192         #: grayordinates read at a time from the brain data
    n_jobs: int = 1                #: kd-tree threads of the spin test


@dataclass
class AnalysisInputs:
    """Inputs of :func:`run_analyses`.

    Attributes
    ----------
    branches : list of BranchResult
    atlas : vlmbrain.networks.Atlas
    brain : ndarray of shape (n_timepoints, n_grayordinates), optional
        The (group) brain data the encoder was fitted on, for the mean BN⁺/BN⁻ time series;
        a memory map is fine (read in column chunks).
    options : AnalysisOptions
    """

    branches: list[BranchResult]
    atlas: object
    brain: np.ndarray | None = None
    options: AnalysisOptions = field(default_factory=AnalysisOptions)


def _keyed(df: pd.DataFrame, model: str, branch: str) -> pd.DataFrame:
    df = df.copy()
    for col, val in (("branch", branch), ("model", model)):
        if col in df.columns:
            df[col] = val
        else:
            df.insert(0, col, val)
    return df


def run_analyses(inputs: AnalysisInputs) -> dict[str, pd.DataFrame]:
    """Affiliation and the four analyses for every branch.

    Parameters
    ----------
    inputs : AnalysisInputs

    Returns
    -------
    dict of str to DataFrame
        ``affiliation, redundancy, polarity, crossmodal, hierarchy, prediction`` (every table has
        ``model`` and ``branch`` columns; crossmodal has ``model_a, branch_a, model_b, branch_b``),
        plus ``polarity_profiles`` and, when ``inputs.brain`` and the branches' ``activations``
        are given, ``polarity_bn``. Column meanings: see :mod:`vlmbrain.networks` and the
        ``vlmbrain.analysis`` modules.
    """
    from vlmbrain.networks import affiliate, significant_maps

    opts = inputs.options
    atlas = inputs.atlas
    V = atlas.space_size
    if not inputs.branches:
        raise ConfigError("run_analyses got no branches; give at least one BranchResult")
    keys = [(b.model, b.branch) for b in inputs.branches]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"duplicate (model, branch) among the branches: {keys}")
    for b in inputs.branches:
        b.validate(V)
    if inputs.brain is not None and (np.ndim(inputs.brain) != 2 or inputs.brain.shape[1] != V):
        raise DimensionError(f"brain data have shape {np.shape(inputs.brain)}; expected (n_timepoints, {V})")

    out: dict[str, list[pd.DataFrame]] = {name: [] for name in TABLES + EXTRA_TABLES}
    sig = {}
    for b in inputs.branches:
        logger.info("analyses: %s/%s (%d atoms, %d neurons)", b.model, b.branch, b.codes.shape[0], b.codes.shape[1])
        pos, neg = significant_maps(b.beta, b.q_beta, opts.alpha)
        aff = affiliate(pos, neg, atlas, threshold=opts.threshold, null=opts.null, n_perm=opts.n_perm,
                        random_state=opts.random_state, alpha=opts.alpha, n_jobs=opts.n_jobs)
        out["affiliation"].append(_keyed(aff, b.model, b.branch))
        out["prediction"].append(prediction_by_network(b.r_cv, b.q_r, atlas, opts.alpha, b.model, b.branch))
        out["redundancy"].append(redundancy(b.beta, b.q_beta, b.codes, aff, atlas, opts.alpha, b.model, b.branch))
        out["polarity"].append(polarity(b.beta, b.q_beta, b.codes, b.neurons, opts.alpha, b.model, b.branch))
        out["polarity_profiles"].append(layer_profiles(b.codes, b.neurons, b.model, b.branch))
        out["hierarchy"].append(hierarchy(b.codes, b.neurons, aff, b.model, b.branch))
        if inputs.brain is not None and b.activations is not None:
            if inputs.brain.shape[0] != b.activations.shape[0]:
                raise DimensionError(
                    f"brain data have {inputs.brain.shape[0]} TRs but {b.model}/{b.branch} activations have "
                    f"{b.activations.shape[0]}"
                )
            K = pos.shape[0]
            ts = bn_mean_timeseries(inputs.brain, np.concatenate([pos, neg]), opts.chunk_size)
            out["polarity_bn"].append(
                layer_bn_correlation(b.activations, b.neurons, b.codes, ts[:, :K], ts[:, K:], b.model, b.branch)
            )
        sig[(b.model, b.branch)] = significant_prediction(b.r_cv, b.q_r, opts.alpha)

    pairs = opts.crossmodal_pairs if opts.crossmodal_pairs is not None else default_pairs(keys)
    for pa, pb in pairs:
        pa, pb = tuple(pa), tuple(pb)
        for p in (pa, pb):
            if p not in sig:
                raise ConfigError(f"crossmodal pair names {p} but the branches are {keys}")
        out["crossmodal"].append(crossmodal_overlap(sig[pa], sig[pb], atlas, pa[0], pa[1], pb[0], pb[1]))

    tables = {}
    for name, frames in out.items():
        if frames:
            tables[name] = pd.concat(frames, ignore_index=True)
        elif name in TABLES:
            tables[name] = _empty(name)
    return tables


def _empty(name: str) -> pd.DataFrame:
    if name == "crossmodal":
        return pd.DataFrame(columns=["model_a", "branch_a", "model_b", "branch_b", "network_id", "network"])
    return pd.DataFrame(columns=["model", "branch"])
