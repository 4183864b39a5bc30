"""Shared test configuration: no downloads, caches in temporary folders, Agg backend."""

import os
import tempfile

_CACHE_ROOT = tempfile.mkdtemp(prefix="vlmbrain-test-cache-")
for _var, _sub in (("HF_HOME", "hf"), ("NILEARN_DATA", "nilearn"), ("MPLCONFIGDIR", "mpl"),
                   ("VLMBRAIN_CACHE", "vlmbrain"), ("TORCH_HOME", "torch")):
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


def pytest_collection_modifyitems(config, items):
    """Skip what needs more than this machine has: a CUDA device (``gpu``), Chromium (``browser``)."""
    import shutil

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

