"""Shared test configuration: no downloads, caches in temporary folders, Agg backend, each xdist
worker its share of the cores."""

import os
import tempfile

# ``pytest -n N``: N workers share the machine's cores; each worker's BLAS (OpenBLAS), torch
# (OpenMP) and the encoding's chunk workers (as many as the BLAS has threads) default to every
# core, so N workers oversubscribe the machine N-fold and spin-wait. A worker gets its share of
# the cores instead (set before numpy or torch is first imported; subprocesses inherit it).
# The dictionary's float32 results move by ~1e-6 with the BLAS thread count: the regression test,
# which compares to 1e-6, runs with the thread count of its reference (regression/make_reference.py).
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _threads = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, _threads)

_CACHE_ROOT = tempfile.mkdtemp(prefix="vlmbrain-test-cache-")
for _var, _sub in (("HF_HOME", "hf"), ("NILEARN_DATA", "nilearn"), ("MPLCONFIGDIR", "mpl"),
                   ("VLMBRAIN_CACHE", "vlmbrain"), ("TORCH_HOME", "torch"), ("NUMBA_CACHE_DIR", "numba")):
    os.environ[_var] = os.path.join(_CACHE_ROOT, _sub)
    os.makedirs(os.environ[_var], exist_ok=True)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng():
    return np.random.default_rng(42)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


SHARED = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
METER_FIXTURES = os.path.join(SHARED, "fixtures", "meter")


@pytest.fixture
def meter_fixtures():
    if not os.path.isdir(METER_FIXTURES):
        pytest.skip("../shared/fixtures/meter is not present")
    return METER_FIXTURES


#: The longest test files (most CPU time first), measured with ``--durations=0``.
LONGEST_FILES = ("tests/test_pipeline.py", "tests/validity/test_validate_demo.py", "tests/validity/test_global_null.py",
                 "tests/regression/test_reference_outputs.py", "tests/explorer/test_atom_cards.py",
                 "tests/toyworld/test_weights.py")


def pytest_collection_modifyitems(config, items):
    """Skip what needs more than this machine has: a CUDA device (``gpu``), Chromium (``browser``).

    Under xdist (``-n 2 --dist loadfile --no-loadscope-reorder``, the README's test command) the
    workers are handed whole files in collection order: the longest files go first (then the other
    files with ``slow`` tests, then the rest, each in their collection order), so that a long file
    never starts last while the other worker runs out of work.
    """
    import shutil

    if os.environ.get("PYTEST_XDIST_WORKER"):
        slow_files = {i.nodeid.split("::")[0] for i in items if i.get_closest_marker("slow")}

        def rank(item):
            path = item.nodeid.split("::")[0]
            if path in LONGEST_FILES:
                return LONGEST_FILES.index(path)
            return len(LONGEST_FILES) + (0 if path in slow_files else 1)

        items.sort(key=rank)   # stable: each file keeps its own order

    has_cuda = None
    has_chromium = any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome"))
    for item in items:
        if "gpu" in item.keywords:
            if has_cuda is None:
                try:
                    import torch

                    has_cuda = torch.cuda.is_available()
                except ImportError:  # pragma: no cover
                    has_cuda = False
            if not has_cuda:
                item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))
        if "browser" in item.keywords and not has_chromium:
            item.add_marker(pytest.mark.skip(reason="needs a headless Chromium (apt-get install chromium)"))

