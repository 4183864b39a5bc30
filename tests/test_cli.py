"""The command line: one clear line and a non-zero exit for bad input, no traceback unless --debug."""

import numpy as np
import pytest
import yaml

from vlmbrain.cli import main
from vlmbrain.errors import ConfigError


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err):
    lines = [line for line in err.strip().splitlines() if line.startswith("vlmbrain: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_unknown_key_is_one_line(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"encoding": {"metod": "ols"}}))
    code, _, err = _run(capsys, "run", str(cfg), "--out", str(tmp_path / "run"))
    assert code == 2
    line = _one_error_line(err)
    assert "unknown key 'encoding.metod'" in line and "method" in line
    assert not (tmp_path / "run").exists()


def test_debug_shows_the_exception(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"encoding": {"metod": "ols"}}))
    with pytest.raises(ConfigError, match="unknown key 'encoding.metod'"):
        main(["run", str(cfg), "--out", str(tmp_path / "run"), "--debug"])


def test_missing_config_file(tmp_path, capsys):
    code, _, err = _run(capsys, "run", str(tmp_path / "absent.yaml"))
    assert code == 2
    assert "absent.yaml' does not exist" in _one_error_line(err)


def test_missing_fmri_file(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "stimulus": {"kind": "custom", "runs": [{"name": "a", "n_trs": 30, "captions": "a.tsv"},
                                                 {"name": "b", "n_trs": 30, "captions": "a.tsv"}]},
        "fmri": {"kind": "npy", "paths": ["nope1.npy", "nope2.npy"]},
        "models": [{"name": "minilm"}],
    }))
    (tmp_path / "a.tsv").write_text("onset\tduration\ttext\n0\t10\ta red circle\n10\t10\ta blue square\n")
    code, _, err = _run(capsys, "run", str(cfg), "--out", str(tmp_path / "run"))
    assert code == 2
    line = _one_error_line(err)
    assert "nope1.npy" in line


def test_stimulus_fmri_length_mismatch_names_both_numbers_and_the_run(tmp_path, capsys, rng):
    np.save(tmp_path / "r1.npy", rng.normal(size=(30, 50)).astype(np.float32))
    np.save(tmp_path / "r2.npy", rng.normal(size=(25, 50)).astype(np.float32))
    (tmp_path / "a.tsv").write_text("onset\tduration\ttext\n0\t10\ta red circle\n10\t10\ta blue square\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "stimulus": {"kind": "custom", "runs": [{"name": "run1", "n_trs": 30, "captions": "a.tsv"},
                                                 {"name": "run2", "n_trs": 30, "captions": "a.tsv"}]},
        "fmri": {"kind": "npy", "paths": ["r1.npy", "r2.npy"]},
        "models": [{"name": "minilm"}],
    }))
    code, _, err = _run(capsys, "run", str(cfg), "--out", str(tmp_path / "run"))
    assert code == 2
    line = _one_error_line(err)
    assert "30" in line and "25" in line and "run2" in line
    # the preflight reads the headers: nothing ran, nothing was written
    assert "nothing was computed" in line
    assert not (tmp_path / "run").exists()


def test_config_command_prints_valid_defaults(capsys):
    code, out, _ = _run(capsys, "config")
    assert code == 0
    from vlmbrain.config import validate_config

    assert validate_config(yaml.safe_load(out)).dictionary.n_atoms == 64


def test_info_lists_versions(capsys):
    code, out, _ = _run(capsys, "info")
    assert code == 0 and "numpy" in out and "vlmbrain" in out


def test_no_command_prints_help(capsys):
    assert main([]) == 2
