import pytest
import yaml

from vlmbrain.config import RunConfig, demo_config, load_config, validate_config
from vlmbrain.errors import ConfigError, InputFileError


def test_defaults_follow_method_md():
    cfg = RunConfig()
    assert cfg.dictionary.n_atoms == 64 and cfg.dictionary.alpha == 0.1
    assert cfg.encoding.method == "ols" and cfg.encoding.n_shifts == 1000 and cfg.encoding.q == 0.05
    assert cfg.networks.atlas == "auto" and cfg.networks.threshold == 0.15
    assert cfg.signal.hrf == "spm"
    assert cfg.stimulus.tr == 1.0 and cfg.stimulus.frame_offset == 0.5
    m = cfg.models[0]
    assert (m.site, m.pooling) == ("head-unit", "mean")


def test_round_trip_through_yaml(tmp_path):
    cfg = demo_config()
    path = tmp_path / "c.yaml"
    path.write_text(cfg.to_yaml())
    again = load_config(path)
    assert again.to_dict() == cfg.to_dict()


@pytest.mark.parametrize(
    "data, match",
    [
        ({"encoding": {"foo": 1}}, r"unknown key 'encoding.foo'; allowed keys here: method"),
        ({"bogus": 1}, r"unknown key 'bogus'"),
        ({"models": [{"name": "x", "pooling": "max"}]}, r"'models.0.pooling' = 'max' is not allowed"),
        ({"models": [{"site": "mlp"}]}, r"'models.0.name' is required but missing"),
        ({"stimulus": {"tr": -1}}, r"'stimulus.tr' = -1 is invalid: Input should be greater than 0"),
        ({"models": [{"name": "a", "device": "tpu"}]}, r"device must be 'cpu', 'cuda'"),
        ({"dictionary": {"n_atoms": "many"}}, r"'dictionary.n_atoms' = 'many' is invalid"),
    ],
)
def test_bad_values_name_key_value_and_allowed(data, match):
    with pytest.raises(ConfigError, match=match):
        validate_config(data, source="run.yaml")


@pytest.mark.parametrize(
    "data, match",
    [
        ({"encoding": {"method": "olss"}}, r"'encoding.method' = 'olss' is not allowed; expected one of 'ols', 'ar1' or 'ridge'"),
        ({"fmri": {"kind": "mgh"}}, r"'fmri.kind' = 'mgh' is not allowed; expected one of 'cifti', 'nifti', 'npy', 'gifti', 'bids' or 'demo'"),
        ({"stimulus": {"kind": "dvd"}}, r"'stimulus.kind' = 'dvd' is not allowed; expected one of 'hcp7t', 'custom' or 'demo'"),
    ],
)
def test_registry_backed_choices_are_checked_before_any_stage(data, match, tmp_path):
    """Methods and sources are registries (plug-ins add to them): checked by the preflight, before any work."""
    from vlmbrain.pipeline import Pipeline

    with pytest.raises(ConfigError, match=match):
        Pipeline(validate_config(data), tmp_path / "run").run()
    assert not (tmp_path / "run").exists()


def test_file_errors(tmp_path):
    with pytest.raises(InputFileError, match="configuration file .*nope.yaml' does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("encoding: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping of sections"):
        load_config(lst)


def test_precedence_override_over_env_over_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"encoding": {"method": "ar1", "n_shifts": 10}}))
    env = {"VLMBRAIN_ENCODING__N_SHIFTS": "20", "VLMBRAIN_DICTIONARY__ALPHA": "0.5"}
    cfg = load_config(path, environ=env)
    assert cfg.encoding.method == "ar1" and cfg.encoding.n_shifts == 20 and cfg.dictionary.alpha == 0.5
    cfg = load_config(path, overrides={"encoding.n_shifts": 30}, environ=env)
    assert cfg.encoding.n_shifts == 30


def test_relative_paths_resolve_against_config_folder(tmp_path):
    path = tmp_path / "sub" / "c.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump({"fmri": {"kind": "npy", "paths": ["a.npy"]}}))
    cfg = load_config(path)
    assert cfg.fmri.paths[0] == (tmp_path / "sub" / "a.npy").resolve()


def test_environment_over_a_configuration_built_in_code():
    from vlmbrain.config import demo_config, with_environment

    cfg = demo_config()
    assert with_environment(cfg, environ={"VLMBRAIN_CACHE": "/x", "HOME": "/y"}) is cfg   # nothing to lay over
    env = {"VLMBRAIN_REPORT__SURFACE_FIGURES": "false", "VLMBRAIN_DICTIONARY__N_ATOMS": "5"}
    got = with_environment(cfg, environ=env)
    assert got.report.surface_figures is False and got.dictionary.n_atoms == 5
    assert got.models == cfg.models and got.encoding == cfg.encoding
    with pytest.raises(ConfigError, match=r"environment \(VLMBRAIN_\*\).*dictionary\.n_atoms"):
        with_environment(cfg, environ={"VLMBRAIN_DICTIONARY__N_ATOMS": "-3"})
