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


@pytest.mark.parametrize("old,new", [
    ({"official_loss_quirk": True}, {"repair_loss": "paper_plus_c"}),
    ({"official_loss_quirk": False}, {"repair_loss": "paper"}),
    ({"repair_zero_init": True}, {"repair_init": "identity"}),
    ({"repair_zero_init": False}, {"repair_init": "default"}),
])
def test_an_old_runs_config_yaml_keeps_its_meaning(old, new):
    """Run directories written before the renames hold official_loss_quirk / repair_zero_init: they load as the
    keys that replaced them, with the behaviour they were trained with, and the old keys are never written again."""
    saved = {**config_to_dict(SpotConfig()), **old}
    for key in ("repair_loss", "repair_init"):
        saved.pop(key)  # an old config.yaml does not have the new keys
    cfg = config_from_dict("train-spot", saved)
    assert {key: getattr(cfg, key) for key in new} == new
    assert not set(old) & set(config_to_dict(cfg))


def test_renamed_keys_work_on_the_command_line_and_conflicts_are_refused(tmp_path):
    assert build_config("train-spot", set_pairs=["official_loss_quirk=yes"]).repair_loss == "paper_plus_c"
    with pytest.raises(ConfigError, match="sets both 'official_loss_quirk: true'.*keep only repair_loss"):
        build_config("train-spot", set_pairs=["official_loss_quirk=true", "repair_loss=official"])
    path = tmp_path / "old.yaml"
    path.write_text("official_loss_quirk: true\n")
    assert build_config("train-spot", str(path), ["repair_loss=official"]).repair_loss == "official"  # later wins


@pytest.mark.parametrize("pair,message", [
    ("repair_loss=quirk", "repair_loss' must be one of paper, paper_plus_c, official"),
    ("disc_padding=same", "disc_padding' must be one of symmetric, tf_same, centred"),
    ("disc_init=glorot", "disc_init' must be one of default, normal, official"),
    ("repair_init=zero", "repair_init' must be one of identity, default, official"),
    ("bias_grad_factor=0", "bias_grad_factor must be positive"),
])
def test_fidelity_keys_are_checked(pair, message):
    with pytest.raises(ConfigError, match=message):
        build_config("train-spot", set_pairs=[pair])


def test_defaults_keep_the_earlier_behaviour():
    cfg = SpotConfig()
    assert (cfg.repair_loss, cfg.repair_init, cfg.disc_init, cfg.disc_padding, cfg.fc1_bn_scale) == (
        "paper", "identity", "default", "symmetric", True)
    assert (cfg.tf_adam_epsilon, cfg.bias_grad_factor, cfg.weight_decay) == (False, 1.0, 5e-5)
    ae = build_config("train-ae")
    assert (ae.ae_init, ae.decay_output_bias, ae.tf_adam_epsilon, ae.bias_grad_factor) == ("default", False, False, 1.0)
    with pytest.raises(ConfigError, match="unknown config key 'repair_loss'"):
        build_config("train-ae", set_pairs=["repair_loss=official"])
