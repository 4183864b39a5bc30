"""``vlmbrain validate`` on the fast demo: null and planted phantoms in the demo's own brain space."""

import json

import pandas as pd
import pytest

from vlmbrain.config import demo_config
from vlmbrain.validate import run_validation

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def validated(tmp_path_factory):
    run = tmp_path_factory.mktemp("validate") / "run"
    res = run_validation(demo_config(out_fast=True), run, n_null=1, snrs=(0.1, 1.0), n_repeats=2)
    return run, res


def test_writes_tables_figure_and_summary(validated):
    run, res = validated
    out = run / "validate"
    for name in ("false_positives.tsv", "power.tsv", "null_maps.tsv", "power.png", "summary.json"):
        assert (out / name).is_file(), name
    fp = pd.read_csv(out / "false_positives.tsv", sep="\t")
    assert list(fp.columns) == ["kind", "name", "n", "k", "rate", "lower", "upper"]
    assert fp["kind"].iloc[0] == "atom map" and (fp["kind"] == "network").sum() == 12   # CAB-NP
    assert (fp["lower"] <= fp["rate"]).all() and (fp["rate"] <= fp["upper"]).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_atom_maps"] == 4 * 8 and len(summary["planted_atoms"]) == 3


def test_power_rises_to_the_demo_snr(validated):
    _, res = validated
    power = res["power"].set_index("snr")
    # the demo plants its networks at SNR ~1 (demo.noise = 1): a planted atom is found there
    assert power.loc[1.0, "rate"] >= 0.9
    assert power.loc[0.1, "rate"] <= power.loc[1.0, "rate"]
