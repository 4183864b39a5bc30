"""Run every registered analysis on the per-branch results of a run (docs/method.md §5–6).

Analyses form a registry (:data:`ANALYSES`): each is an :class:`Analysis` with a name, the
tables it writes (their schemas are declared in :mod:`vlmbrain.artifacts`) and a function of
the :class:`AnalysisInputs` and the shared per-branch state (significant maps, affiliation).
Adding one is a module plus one :func:`register_analysis` call.

Runs without a network atlas (``AnalysisInputs.atlas = None``: none fits the data, or
``networks.atlas: none``) skip the analyses that declare ``needs_atlas`` — their tables are
written empty and :func:`run_analyses` reports why — and run every other analysis on an atlas
without networks, so that their whole-brain rows (``network = "all"``) and the model-side
results are computed; every map then counts as unaffiliated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from vlmbrain.analysis._common import check_2d, check_neurons
from vlmbrain.analysis.ceiling import normalised_prediction
from vlmbrain.analysis.crossmodal import crossmodal_overlap, default_pairs
from vlmbrain.analysis.hierarchy import hierarchy
from vlmbrain.analysis.polarity import bn_mean_timeseries, layer_bn_correlation, layer_profiles, polarity
from vlmbrain.analysis.prediction import prediction_by_network, significant_prediction
from vlmbrain.analysis.redundancy import redundancy
from vlmbrain.errors import ConfigError, DimensionError
from vlmbrain.registry import Registry

logger = logging.getLogger("vlmbrain")

#: Tables of the built-in analyses (written as ``analysis/<name>.tsv``).
TABLES = ("affiliation", "redundancy", "polarity", "crossmodal", "hierarchy", "prediction")


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
    #: the input the unit encodes: "image", "text" or "image+text" (pairs branches for the cross-modal analysis)
    stream: str | None = None

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
    """Options of :func:`run_analyses` (defaults: docs/method.md §5.7)."""

    alpha: float = 0.05            #: level of β maps, prediction and the mirror test
    threshold: float = 0.15        #: minimal overlap rate of an affiliation
    null: str | None = "spin"      #: spatial null of the affiliation: "spin", "permutation", "none"
    n_perm: int = 1000             #: rotations / permutations of that null
    random_state: int = 0
    crossmodal_pairs: list | None = None  #: [((model, branch), (model, branch)), ...]; default visual×text per model
    chunk_size: int = 8192         #: grayordinates read at a time from the brain data
    n_jobs: int = 1                #: kd-tree threads of the spin test
    progress: bool = False         #: progress bars (tqdm, with ETA) over the spatial null's rotations


@dataclass
class AnalysisInputs:
    """Inputs of :func:`run_analyses`.

    Attributes
    ----------
    branches : list of BranchResult
    atlas : vlmbrain.networks.Atlas or None
        None: no atlas; the analyses that need one are skipped (module docstring).
    brain : ndarray of shape (n_timepoints, n_grayordinates), optional
        The (group) brain data the encoder was fitted on, for the mean BN⁺/BN⁻ time series;
        a memory map is fine (read in column chunks).
    options : AnalysisOptions
    """

    branches: list[BranchResult]
    atlas: object | None
    brain: np.ndarray | None = None
    options: AnalysisOptions = field(default_factory=AnalysisOptions)
    #: per-grayordinate noise ceiling (NaN where unreliable), when the data have one
    ceiling: np.ndarray | None = None
    #: why there is no atlas (when ``atlas`` is None), for the skipped analyses' reasons
    no_atlas_reason: str = "no network atlas"


def _keyed(df: pd.DataFrame, model: str, branch: str) -> pd.DataFrame:
    df = df.copy()
    for col, val in (("branch", branch), ("model", model)):
        if col in df.columns:
            df[col] = val
        else:
            df.insert(0, col, val)
    return df


@dataclass
class Analysis:
    """One analysis of the study.

    Attributes
    ----------
    name : str
    tables : tuple of str
        The tables it returns (``analysis/<name>.tsv``), each registered in :mod:`vlmbrain.artifacts`.
    compute : callable
        ``compute(inputs: AnalysisInputs, shared: SharedState) -> dict[str, DataFrame]``.
    optional_tables : tuple of str
        Tables it may leave out (e.g. one that needs the brain data).
    needs_atlas : bool
        It means nothing without networks: skipped (tables written empty, the reason
        reported) when the run has no atlas. Otherwise it runs on an atlas without networks
        and writes what it can (whole-brain rows).
    """

    name: str
    tables: tuple[str, ...]
    compute: Callable[[AnalysisInputs, SharedState], dict[str, pd.DataFrame]]
    optional_tables: tuple[str, ...] = ()
    needs_atlas: bool = False


@dataclass
class SharedState:
    """What several analyses use, computed once per branch: significant maps and the affiliation."""

    pos: dict = field(default_factory=dict)          #: (model, branch) -> (K, V) bool, β > 0 and q < alpha
    neg: dict = field(default_factory=dict)
    affiliation: dict = field(default_factory=dict)  #: (model, branch) -> affiliation table of that branch


ANALYSES: Registry[Analysis] = Registry("analysis")


def register_analysis(analysis: Analysis, before: str | None = None) -> Analysis:
    """Add an analysis (its table schemas must be registered with :func:`vlmbrain.artifacts.register_table`)."""
    return ANALYSES.register(analysis.name, analysis, before=before)


def _per_branch(inputs, fn) -> pd.DataFrame | None:
    frames = [fn(b) for b in inputs.branches]
    frames = [f for f in frames if f is not None]
    return pd.concat(frames, ignore_index=True) if frames else None


def _affiliation(inputs: AnalysisInputs, shared: SharedState):
    from vlmbrain.networks import affiliate, significant_maps

    opts = inputs.options

    def one(b):
        key = (b.model, b.branch)
        pos, neg = significant_maps(b.beta, b.q_beta, opts.alpha)
        shared.pos[key], shared.neg[key] = pos, neg
        aff = affiliate(pos, neg, inputs.atlas, threshold=opts.threshold, null=opts.null, n_perm=opts.n_perm,
                        random_state=opts.random_state, alpha=opts.alpha, n_jobs=opts.n_jobs,
                        progress=opts.progress, desc=f"{b.model}/{b.branch}")
        shared.affiliation[key] = aff
        return _keyed(aff, b.model, b.branch)

    return {"affiliation": _per_branch(inputs, one)}


def _without_networks(inputs: AnalysisInputs) -> AnalysisInputs:
    """The inputs with an atlas of no networks (every analysis then computes its whole-brain rows)."""
    from dataclasses import replace

    from vlmbrain.networks import Atlas

    V = int(np.shape(inputs.branches[0].beta)[-1])
    whole = Atlas("whole-brain", np.zeros(V, dtype=np.int64), {}, {}, V, source="no network atlas", form="none")
    return replace(inputs, atlas=whole)


def _unaffiliated(inputs: AnalysisInputs, shared: SharedState) -> None:
    """The shared state without an atlas: significant maps, and every map affiliated with no network."""
    from vlmbrain.artifacts import table_schema
    from vlmbrain.networks import significant_maps

    columns = [c for c in table_schema("affiliation").column_names if c not in ("model", "branch")]
    for b in inputs.branches:
        key = (b.model, b.branch)
        pos, neg = significant_maps(b.beta, b.q_beta, inputs.options.alpha)
        shared.pos[key], shared.neg[key] = pos, neg
        K = pos.shape[0]
        rows = pd.DataFrame({"atom": np.tile(np.arange(K), 2), "sign": np.repeat(["+", "-"], K),
                             "network_id": 0, "network": "", "n_map": np.r_[pos.sum(axis=1), neg.sum(axis=1)],
                             "n_network": 0, "n_overlap": 0, "overlap_rate": np.nan, "dice": np.nan,
                             "jaccard": np.nan, "p_null": np.nan, "is_max": False, "affiliated": False,
                             "null": "none"})
        shared.affiliation[key] = rows[columns]


def _prediction(inputs, shared):
    a = inputs.options.alpha
    return {"prediction": _per_branch(
        inputs, lambda b: prediction_by_network(b.r_cv, b.q_r, inputs.atlas, a, b.model, b.branch))}


def _redundancy(inputs, shared):
    a = inputs.options.alpha
    return {"redundancy": _per_branch(inputs, lambda b: redundancy(
        b.beta, b.q_beta, b.codes, shared.affiliation[(b.model, b.branch)], inputs.atlas, a, b.model, b.branch))}


def _polarity(inputs, shared):
    opts = inputs.options
    out = {
        "polarity": _per_branch(inputs, lambda b: polarity(b.beta, b.q_beta, b.codes, b.neurons, opts.alpha,
                                                           b.model, b.branch)),
        "polarity_profiles": _per_branch(inputs, lambda b: layer_profiles(b.codes, b.neurons, b.model, b.branch)),
    }

    def bn(b):
        if inputs.brain is None or b.activations is None:
            return None
        if inputs.brain.shape[0] != b.activations.shape[0]:
            raise DimensionError(f"brain data have {inputs.brain.shape[0]} TRs but {b.model}/{b.branch} activations "
                                 f"have {b.activations.shape[0]}")
        key = (b.model, b.branch)
        K = shared.pos[key].shape[0]
        ts = bn_mean_timeseries(inputs.brain, np.concatenate([shared.pos[key], shared.neg[key]]), opts.chunk_size)
        return layer_bn_correlation(b.activations, b.neurons, b.codes, ts[:, :K], ts[:, K:], b.model, b.branch)

    table = _per_branch(inputs, bn)
    if table is not None:
        out["polarity_bn"] = table
    return out


def _hierarchy(inputs, shared):
    return {"hierarchy": _per_branch(inputs, lambda b: hierarchy(
        b.codes, b.neurons, shared.affiliation[(b.model, b.branch)], b.model, b.branch))}


def _crossmodal(inputs, shared):
    opts = inputs.options
    keys = [(b.model, b.branch) for b in inputs.branches]
    sig = {(b.model, b.branch): significant_prediction(b.r_cv, b.q_r, opts.alpha) for b in inputs.branches}
    if opts.crossmodal_pairs is not None:
        pairs = opts.crossmodal_pairs
    else:
        pairs = default_pairs({(b.model, b.branch): b.stream for b in inputs.branches if b.stream})
    frames = []
    for pa, pb in pairs:
        pa, pb = tuple(pa), tuple(pb)
        for p in (pa, pb):
            if p not in sig:
                raise ConfigError(f"crossmodal pair names {p} but the branches are {keys}")
        frames.append(crossmodal_overlap(sig[pa], sig[pb], inputs.atlas, pa[0], pa[1], pb[0], pb[1]))
    return {"crossmodal": pd.concat(frames, ignore_index=True) if frames else None}


def _noise_ceiling(inputs, shared):
    if inputs.ceiling is None:
        return {}
    return {"noise_ceiling": _per_branch(inputs, lambda b: normalised_prediction(b.r_cv, inputs.ceiling, inputs.atlas,
                                                                                 b.model, b.branch))}


register_analysis(Analysis("affiliation", ("affiliation",), _affiliation, needs_atlas=True))
register_analysis(Analysis("prediction", ("prediction",), _prediction))
register_analysis(Analysis("redundancy", ("redundancy",), _redundancy))
register_analysis(Analysis("polarity", ("polarity", "polarity_profiles"), _polarity, optional_tables=("polarity_bn",)))
register_analysis(Analysis("hierarchy", ("hierarchy",), _hierarchy))
register_analysis(Analysis("crossmodal", ("crossmodal",), _crossmodal))
register_analysis(Analysis("noise_ceiling", (), _noise_ceiling, optional_tables=("noise_ceiling",)))


def run_analyses(inputs: AnalysisInputs, analyses=None, skipped: dict | None = None) -> dict[str, pd.DataFrame]:
    """Every registered analysis (or those named in ``analyses``) for every branch.

    Parameters
    ----------
    inputs : AnalysisInputs
    analyses : list of str, optional
        Names of registered analyses, run in registry order; default all. Affiliation is
        always run first when another analysis needs it.
    skipped : dict, optional
        Filled with ``analysis name -> reason`` for every analysis left out (those that
        declare ``needs_atlas`` when ``inputs.atlas`` is None).

    Returns
    -------
    dict of str to DataFrame
        One table per name in the analyses' ``tables`` (every table has ``model`` and
        ``branch`` columns; crossmodal has ``model_a, branch_a, model_b, branch_b``), plus
        the optional tables they could compute (``polarity_bn`` when ``inputs.brain`` and the
        branches' ``activations`` are given). An analysis that finds nothing returns the
        table's schema with no rows.
    """
    from vlmbrain.artifacts import table_schema

    if not inputs.branches:
        raise ConfigError("run_analyses got no branches; give at least one BranchResult")
    skipped = {} if skipped is None else skipped
    atlas = inputs.atlas
    if atlas is None:
        inputs = _without_networks(inputs)
    V = inputs.atlas.space_size
    keys = [(b.model, b.branch) for b in inputs.branches]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"duplicate (model, branch) among the branches: {keys}")
    for b in inputs.branches:
        b.validate(V)
    if inputs.brain is not None and (np.ndim(inputs.brain) != 2 or inputs.brain.shape[1] != V):
        raise DimensionError(f"brain data have shape {np.shape(inputs.brain)}; expected (n_timepoints, {V})")
    names = ANALYSES.names() if analyses is None else [n for n in ANALYSES.names() if n in set(analyses)]
    for n in analyses or ():
        ANALYSES.get(n)
    if "affiliation" not in names:
        names.insert(0, "affiliation")
    shared = SharedState()
    tables: dict[str, pd.DataFrame] = {}
    for name in names:
        analysis = ANALYSES.get(name)
        if analysis.needs_atlas and atlas is None:
            skipped[name] = f"needs a network atlas: {inputs.no_atlas_reason}"
            logger.info("analysis: %s skipped (%s)", name, skipped[name])
            for t in analysis.tables:
                tables[t] = table_schema(t).empty()
            if name == "affiliation":
                _unaffiliated(inputs, shared)
            continue
        logger.info("analysis: %s", name)
        result = analysis.compute(inputs, shared)
        for t in analysis.tables:
            table = result.get(t)
            tables[t] = table_schema(t).empty() if table is None else table
        for t in analysis.optional_tables:
            if result.get(t) is not None:
                tables[t] = result[t]
    return tables
