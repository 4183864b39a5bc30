"""warnings.json and the step sidecars: every step keeps what it raised; a partial re-run keeps later steps' warnings."""

import json
import logging

from vlmbrain.config import demo_config
from vlmbrain.pipeline import Pipeline, _sidecar_warnings, _WarningLog
from vlmbrain.stages.base import Stage, Step

logger = logging.getLogger("vlmbrain")


class _Fake(Stage):
    name = "encoding"
    config_keys = ()


def test_a_repeated_warning_is_recorded_by_every_step_that_raises_it(tmp_path):
    pipe = Pipeline(demo_config(), tmp_path)
    pipe._handler = _WarningLog()
    logger.addHandler(pipe._handler)
    try:
        for unit in ("a", "b"):
            def work(unit=unit):
                (tmp_path / unit / "out.txt").write_text("x")
                logger.warning("only 811 of the 1000 shifts are admissible")
                logger.warning("only 811 of the 1000 shifts are admissible")
            pipe._run_step(_Fake(), Step(f"encoding:m/{unit}", tmp_path / unit, ["out.txt"], work))
    finally:
        logger.removeHandler(pipe._handler)
    for unit in ("a", "b"):
        side = json.loads((tmp_path / unit / "_stage.json").read_text())
        assert side["warnings"] == ["only 811 of the 1000 shifts are admissible"]
    assert json.loads((tmp_path / "warnings.json").read_text()) == ["only 811 of the 1000 shifts are admissible"]


def test_sidecars_of_stages_a_run_does_not_reach_keep_their_warnings(tmp_path):
    for folder, step, warns in (("brain", "brain", ["b1"]), ("encoding/m/u", "encoding:m/u", ["e1", "e2"]),
                                ("report", "report", ["r1"]), ("cache/x", "report", ["cached"])):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "_stage.json").write_text(json.dumps({"step": step, "warnings": warns}))
    assert _sidecar_warnings(tmp_path, exclude={"stimulus", "brain"}) == ["e1", "e2", "r1"]
    assert _sidecar_warnings(tmp_path, exclude=set()) == ["b1", "e1", "e2", "r1"]
