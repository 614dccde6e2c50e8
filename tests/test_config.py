import pytest

from spotart.config import ConfigError, SpotConfig, build_config, config_from_dict, config_to_dict


def test_set_overrides_are_type_checked():
    cfg = build_config("train-spot", set_pairs=["drop_rate=0.6", "flip=false", "steps=5", "saturation_range=0.8,1.2"])
    assert isinstance(cfg, SpotConfig)
    assert cfg.drop_rate == 0.6 and cfg.flip is False and cfg.steps == 5 and cfg.saturation_range == (0.8, 1.2)


@pytest.mark.parametrize("pair,message", [
    ("steps=abc", "expects an integer"),
    ("steps=1.5", "expects an integer"),
    ("flip=maybe", "expects true/false"),
    ("drop_rate=lots", "expects a number"),
    ("dropout=0.5", "unknown config key 'dropout'"),
    ("repair=partial", "must be one of masked, unmasked, none"),
    ("drop_rate=1.0", "drop_rate must be in"),
    ("image_size=40", "multiple of 16"),
    ("passes=3", "passes must be 1 or 2"),
    ("nonsense", "expects key=value"),
])
def test_bad_values_give_a_specific_message(pair, message):
    with pytest.raises(ConfigError, match=message):
        build_config("train-spot", set_pairs=[pair])


def test_stage1_rejects_stage2_keys():
    with pytest.raises(ConfigError, match="unknown config key 'drop_rate'"):
        build_config("train-ae", set_pairs=["drop_rate=0.5"])


def test_yaml_then_cli_then_set_precedence(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 0.001\nbatch_size: 8\nimage_size: 64\n")
    cfg = build_config("train-ae", str(path), ["lr=0.002"], {"batch_size": 4, "epochs": None})
    assert cfg.lr == 0.002 and cfg.batch_size == 4 and cfg.image_size == 64 and cfg.epochs == 500


def test_bad_yaml_is_reported(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("lr: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        build_config("train-ae", str(path))
    with pytest.raises(ConfigError, match="config file not found"):
        build_config("train-ae", str(tmp_path / "missing.yaml"))


def test_round_trip_through_a_dict():
    cfg = build_config("train-spot", set_pairs=["repair=unmasked", "saturation_range=0.7,1.3"])
    again = config_from_dict("train-spot", config_to_dict(cfg))
    assert again == cfg
