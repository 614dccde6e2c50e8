"""``reproduce --variant NAME:config=FILE,...`` and ``NAME:init=random,...``: the rows of the official-code study."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spotart.cli import main
from spotart.evaluation.errors import EvaluationError
from spotart.evaluation.reproduce import PRESETS, Reproduction, parse_variant, random_trunk_config
from spotart.train import stage2

from ..helpers import REPO

OFFICIAL = str(REPO / "configs" / "official_stl10.yaml")


def test_a_config_variant_starts_from_the_file_and_the_preset_and_its_keys_win(tmp_path, monkeypatch):
    spec = parse_variant(f"official_paper_loss:config={OFFICIAL},repair_loss=paper")
    assert spec.kind == "spot" and spec.config_file == OFFICIAL and spec.keys == ["repair_loss=paper"]
    (tmp_path / "work").mkdir()
    repro = Reproduction(PRESETS["imagenette-64"], tmp_path, tmp_path / "work", tmp_path / "results",
                         ["knn_every=200"], [], "test")
    monkeypatch.setattr(Reproduction, "autoencoder", lambda self: Path("ae.pt"))
    seen = {}

    def fake_train_spot(cfg, out, resume=False, monitor=None):
        seen["cfg"] = cfg
        Path(out).mkdir(parents=True)
        return Path(out) / "checkpoints" / "latest.pt"

    monkeypatch.setattr(stage2, "train_spot", fake_train_spot)
    monkeypatch.setattr("spotart.evaluation.knn.monitor_from_config", lambda cfg: None)
    repro.checkpoint_for(spec, seed=1)
    cfg = seen["cfg"]
    # the preset's budget and data ...
    assert (cfg.image_size, cfg.batch_size, cfg.steps, cfg.data, cfg.seed) == (64, 64, 1000, str(tmp_path / "train"), 1)
    # ... the file's keys (fp32, the official init, padding, loss terms) ...
    assert (cfg.precision, cfg.disc_init, cfg.repair_init, cfg.disc_padding, cfg.fc1_bn_scale, cfg.weight_decay) == (
        "fp32", "official", "official", "tf_same", False, 2.5e-5)
    # ... then --set, then the row's own key
    assert cfg.knn_every == 200 and cfg.repair_loss == "paper"
    assert repro.spot_budget(spec) == (1000, 64)


def test_a_random_variant_takes_the_files_init_scheme_and_padding():
    spec = parse_variant(f"random_official:init=random,config={OFFICIAL}")
    assert spec.kind == "random" and spec.label == f"random init + config={OFFICIAL}"
    assert random_trunk_config(spec) == {"disc_init": "official", "disc_padding": "tf_same"}
    centred = parse_variant(f"random_centred:init=random,config={OFFICIAL},disc_padding=centred")
    assert random_trunk_config(centred) == {"disc_init": "official", "disc_padding": "centred"}
    assert random_trunk_config(parse_variant("random_pt:init=random,disc_padding=tf_same")) == {
        "disc_init": "default", "disc_padding": "tf_same"}


@pytest.mark.parametrize("variant, message", [
    ("r:init=random,warmup_steps=5", "a random-init row takes only disc_init, disc_padding"),
    ("r:init=checkpoints,disc_init=official", "init is 'random'"),
    ("r:config=configs/no_such.yaml", "config file not found"),
])
def test_bad_study_variants_are_refused(tmp_path, variant, message):
    with pytest.raises(EvaluationError, match=message):
        parse_variant(variant)


def test_a_random_official_row_probes_the_official_trunk_on_the_tiny_preset(tmp_path):
    work = tmp_path / "work"
    assert main(["reproduce", "--preset", "tiny", "--work", str(work),
                 "--variant", f"random_official:init=random,config={OFFICIAL}"]) == 0
    probe = json.loads((work / "random_official" / "probe" / "probe.json").read_text())
    assert probe["init"] == "random" and probe["origin"] == "random init (seed 0, disc_init official, padding tf_same)"
    table = json.loads((work / "results" / "reproduce.json").read_text())
    assert list(table) == ["random_official"]


def test_probe_random_init_takes_config_and_set_and_refuses_them_with_a_checkpoint(tmp_path, capsys):
    from ..helpers import write_images

    data = write_images(tmp_path / "images", 8, size=32)
    out = tmp_path / "probe"
    assert main(["probe", "--init", "random", "--image-size", "32", "--train", str(data), "--val", str(data),
                 "--out", str(out), "--epochs", "1", "--workers", "0", "--config", OFFICIAL,
                 "--set", "disc_padding=centred"]) == 0
    assert json.loads((out / "probe.json").read_text())["origin"].endswith("disc_init official, padding centred)")
    assert main(["probe", "--checkpoint", "x.pt", "--train", str(data), "--val", str(data), "--out", str(out),
                 "--set", "disc_init=official"]) == 2
    assert "describe the network of --init random" in capsys.readouterr().err
