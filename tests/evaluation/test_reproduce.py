"""``spotart reproduce --preset tiny``: every model trained and probed, the results files, and resuming."""

from __future__ import annotations

import json

import pytest

from spotart.cli import main
from spotart.evaluation.errors import EvaluationError
from spotart.evaluation.reproduce import MODELS, run_reproduce
from spotart.models import LAYERS
from spotart.train import stage1, stage2


def test_tiny_preset_end_to_end_then_resume(tmp_path, monkeypatch, capsys):
    work, results = tmp_path / "work", tmp_path / "results"
    assert main(["reproduce", "--preset", "tiny", "--work", str(work), "--results", str(results)]) == 0
    table = json.loads((results / "reproduce.json").read_text())
    assert list(table) == [spec.name for spec in MODELS]
    for name, layers in table.items():
        expected = ("enc1", "enc2", "enc3", "enc4", "enc5") if name == "autoencoder" else LAYERS
        assert tuple(layers) == expected and all(0.0 <= v <= 100.0 for v in layers.values()), name
    markdown = (results / "reproduce.md").read_text()
    assert "spotart reproduce --preset tiny" in markdown and "machine:" in markdown and "wall time" in markdown
    for spec in MODELS:
        assert f"| {spec.label}" in markdown
    assert "pending" not in markdown
    assert "repair: none" in (work / "no_repair" / "run" / "config.yaml").read_text()
    assert "passes: 2" in (work / "twice" / "run" / "config.yaml").read_text()
    timing = json.loads((work / "timing.json").read_text())
    assert set(timing) == {spec.name for spec in MODELS} and timing["full"]["train_s"] > 0
    assert not list(work.glob("*/probe/features/*"))  # feature caches are dropped once probed
    capsys.readouterr()

    # a second run does nothing but rewrite the results
    def must_not_train(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(stage1, "train_autoencoder", must_not_train)
    monkeypatch.setattr(stage2, "train_spot", must_not_train)
    assert run_reproduce("tiny", work=str(work), results=str(results)) == table

    # an interrupted stage-2 run (checkpoint, no completion marker, no probe) continues with resume=True
    (work / "full" / "run" / "trained.json").unlink()
    (work / "full" / "probe" / "probe.json").unlink()
    calls = []

    def record(cfg, out, resume=False, monitor=None):
        calls.append(resume)
        return work / "full" / "run" / "checkpoints" / "latest.pt"

    monkeypatch.setattr(stage2, "train_spot", record)
    run_reproduce("tiny", work=str(work), results=str(results), models="random,full")
    assert calls == [True]
    # a subset adds to the table: every model probed in this work folder is listed, in the paper's order
    assert list(json.loads((results / "reproduce.json").read_text())) == [spec.name for spec in MODELS]


def test_unknown_models_and_missing_data_are_clear(tmp_path):
    with pytest.raises(EvaluationError, match="unknown model 'best'"):
        run_reproduce("tiny", work=str(tmp_path), models="full,best")
    with pytest.raises(FileNotFoundError, match="must hold train/ and val/"):
        run_reproduce("quick", data=str(tmp_path / "none"), work=str(tmp_path / "w"))


def test_presets_find_their_evaluation_split(tmp_path):
    from spotart.evaluation.reproduce import PRESETS, data_folder, eval_split, select_models

    assert [spec.name for spec in select_models("random,full")] == ["random", "full"]  # the order asked for
    for split in ("val", "test"):
        root = tmp_path / split
        (root / "train").mkdir(parents=True)
        (root / split).mkdir()
        assert data_folder(PRESETS["cifar-quick"], str(root), tmp_path) == root
        assert eval_split(root) == root / split
    assert PRESETS["cifar-quick"].results_name == "reproduce-cifar10"


def test_seeds_and_variants_add_rows_to_one_table(tmp_path, monkeypatch):
    work, results = tmp_path / "work", tmp_path / "results"
    run_reproduce("tiny", work=str(work), results=str(results), models="random", seeds="0,1",
                  variants=["slow_repair:repair_lr_factor=0.3,repair_every=2,steps=3"])
    table = json.loads((results / "reproduce.json").read_text())
    per_seed = json.loads((results / "reproduce-seeds.json").read_text())
    assert list(table) == ["random", "slow_repair"]  # the paper's rows first, variants last
    for name in table:
        assert sorted(per_seed[name]) == ["0", "1"]
        for layer in LAYERS:  # the table is the mean over the seeds
            expected = (per_seed[name]["0"][layer] + per_seed[name]["1"][layer]) / 2
            assert table[name][layer] == pytest.approx(expected, abs=0.006)
    # seed k lives in <model>-seed<k>: another random init, another stage-2 run with the variant's keys
    first = json.loads((work / "random" / "probe" / "probe.json").read_text())
    second = json.loads((work / "random-seed1" / "probe" / "probe.json").read_text())
    assert first["trunk_sha256"] != second["trunk_sha256"]
    config = (work / "slow_repair-seed1" / "run" / "config.yaml").read_text()
    assert "repair_lr_factor: 0.3" in config and "repair_every: 2" in config and "seed: 1" in config
    assert "seed: 0" in (work / "slow_repair" / "run" / "config.yaml").read_text()
    markdown = (results / "reproduce.md").read_text()
    assert "| full method + repair_lr_factor=0.3, repair_every=2, steps=3 | stage 2: 3 steps x 4 (12 images" in markdown
    assert " ± " in markdown and "| 0, 1 |" in markdown

    # the variant is remembered by the work folder: later runs may name it, and it keeps its meaning
    monkeypatch.setattr(stage2, "train_spot", lambda *a, **k: pytest.fail("trained again"))
    assert run_reproduce("tiny", work=str(work), results=str(results), models="slow_repair", seeds="1,0") == table
    meaning = "repair_lr_factor=0.3, repair_every=2, steps=3"
    with pytest.raises(EvaluationError, match=f"'slow_repair' was run .* with {meaning}"):
        run_reproduce("tiny", work=str(work), results=str(results), variants=["slow_repair:repair_every=4"])


@pytest.mark.parametrize("variant, message", [
    ("slow_repair", "NAME:KEY=VALUE"),
    ("slow_repair:", "NAME:KEY=VALUE"),
    ("full:repair_every=2", "not be one of the paper's models"),
    ("9lives:repair_every=2", "start with a letter"),
    ("bad:no_such_key=1", "variant 'bad': .*no_such_key"),
    ("bad:repair_every=0", "variant 'bad': repair_every must be >= 1"),
])
def test_bad_variants_are_refused_before_any_work(tmp_path, variant, message):
    with pytest.raises(EvaluationError, match=message):
        run_reproduce("tiny", work=str(tmp_path / "w"), variants=[variant])
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("seeds", ["a,b", "-1", ","])
def test_bad_seeds_are_refused(tmp_path, seeds):
    with pytest.raises(EvaluationError, match="--seeds takes"):
        run_reproduce("tiny", work=str(tmp_path / "w"), seeds=seeds)


def test_seed_folders_round_trip():
    from spotart.evaluation.reproduce import parse_variant, run_folder, seed_of_folder

    full, variant = MODELS[0], parse_variant("full.x:repair_every=2")
    for spec in (full, variant):
        for seed in (0, 1, 12):
            assert seed_of_folder(spec, run_folder(spec, seed)) == seed
    assert seed_of_folder(full, "full.x-seed1") is None  # a variant's folder is not a seed of the model it extends
    assert seed_of_folder(full, "full-seedx") is None and seed_of_folder(variant, "full-seed1") is None
