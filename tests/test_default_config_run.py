"""A default-config run on 2 runs x 300 TRs completes (issue 13, acceptance).

The configuration is what ``vlmbrain config`` prints, with only the stimulus (a small custom
captions study) and the fMRI (``.npy`` runs of a few hundred columns) replaced: the default
model (``toy-clip``, bundled, loads offline), 64 atoms, 1,000 shifts (more than the 541
admissible lags of 600 TRs: all of them are used, with a warning), the default networks and
report settings. The columns are plain ``.npy`` columns (no geometry), so the maps are ``.npy``
and there is no atlas (``networks.atlas: auto``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from vlmbrain._testing import STUDY_WORDS
from vlmbrain.cli import main

pytestmark = pytest.mark.slow

N_TRS = 300
N_COLUMNS = 200


def test_default_config_on_two_runs_of_300_trs_completes(tmp_path, capsys, rng):
    assert main(["config"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["models"][0]["name"] == "toy-clip" and cfg["encoding"]["n_shifts"] == 1000  # the defaults
    runs, paths = [], []
    for name in ("run1", "run2"):
        lines = ["onset\tduration\ttext"] + [f"{5 * i}\t4\t{STUDY_WORDS[i % len(STUDY_WORDS)]}"
                                               for i in range(N_TRS // 5)]
        (tmp_path / f"{name}.tsv").write_text("\n".join(lines) + "\n")
        runs.append({"name": name, "n_trs": N_TRS, "captions": f"{name}.tsv"})
        path = tmp_path / f"{name}.npy"
        np.save(path, rng.normal(size=(N_TRS, N_COLUMNS)).astype(np.float32))
        paths.append(str(path))
    cfg["stimulus"].update(kind="custom", runs=runs)
    cfg["fmri"].update(kind="npy", paths=paths)
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out), "-q"]) == 0
    assert (out / "report" / "index.html").is_file()
    summary = json.loads((out / "encoding" / "toy-clip" / "text" / "summary.json").read_text())
    assert summary["n_timepoints"] == 2 * N_TRS and summary["n_shifts"] < summary["n_shifts_requested"] == 1000
    assert (out / "encoding" / "toy-clip" / "text" / "beta.npy").is_file()   # an array space: .npy maps
