"""The small demo configuration reproduces the stored reference outputs (to 1e-6).

The reference was written by ``make_reference.py`` before the stage registry replaced the
monolithic pipeline; this test keeps every later refactor honest: a table or array that moves
by more than 1e-6 fails here, unless the change means to move it (then re-run the script and
say why in the commit).
"""

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from regression.make_reference import REFERENCE, collect, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    out = tmp_path_factory.mktemp("regression") / "run"
    run(out)
    return collect(out)


def test_same_files(outputs):
    arrays, _, tables = outputs
    ref = json.loads((REFERENCE / "fingerprints.json").read_text())
    assert sorted(arrays) == sorted(ref)
    ref_tables = sorted(p.name for p in (REFERENCE / "tables").iterdir())
    assert sorted(t.replace("/", "__") for t in tables) == ref_tables


def test_arrays_equal(outputs):
    arrays, prints, _ = outputs
    ref = np.load(REFERENCE / "arrays.npz")
    ref_prints = json.loads((REFERENCE / "fingerprints.json").read_text())
    for rel, arr in arrays.items():
        want = ref[rel.replace("/", "__")]
        assert arr.shape == want.shape, rel
        np.testing.assert_allclose(arr, want, rtol=1e-6, atol=1e-6, equal_nan=True, err_msg=rel)
        got, exp = prints[rel], ref_prints[rel]
        assert got["shape"] == exp["shape"] and got["nan"] == exp["nan"], rel
        for key in ("sum", "sumsq"):
            assert got[key] == pytest.approx(exp[key], rel=1e-6, abs=1e-6 * max(1, exp["shape"][-1])), (rel, key)


def _read(text):
    return pd.read_csv(io.StringIO(text), sep="\t", keep_default_na=False, na_values=[""])


def test_tables_equal(outputs):
    _, _, tables = outputs
    for rel, text in tables.items():
        want = _read((REFERENCE / "tables" / rel.replace("/", "__")).read_text())
        got = _read(text)
        assert list(got.columns) == list(want.columns), rel
        assert len(got) == len(want), rel
        for col in want.columns:
            if pd.api.types.is_numeric_dtype(want[col]) and pd.api.types.is_numeric_dtype(got[col]):
                np.testing.assert_allclose(got[col].to_numpy(float), want[col].to_numpy(float), rtol=1e-6,
                                           atol=1e-6, equal_nan=True, err_msg=f"{rel}:{col}")
            else:
                assert got[col].astype(str).tolist() == want[col].astype(str).tolist(), f"{rel}:{col}"
