"""``spotart reproduce --preset tiny``: every model trained and probed, the results files, and resuming."""

from __future__ import annotations

import json
import shlex

import pytest
import yaml

from spotart.cli import build_parser, main
from spotart.evaluation.errors import EvaluationError
from spotart.evaluation.reproduce import DEFAULT_MODELS, MODELS, run_reproduce
from spotart.models import LAYERS
from spotart.train import rotnet, stage1, stage2


def test_tiny_preset_end_to_end_then_resume(tmp_path, monkeypatch, capsys):
    work, results = tmp_path / "work", tmp_path / "results"
    assert main(["reproduce", "--preset", "tiny", "--work", str(work), "--results", str(results)]) == 0
    table = json.loads((results / "reproduce.json").read_text())
    assert list(table) == [spec.name for spec in DEFAULT_MODELS]  # the RotNet rows run when asked for
    assert {spec.name for spec in MODELS} - set(table) == {"rotnet", "rotnet_equal_time"}
    # the yardstick rows, from the same work folder: RotNet for the full row's images and its stages' time
    table = run_reproduce("tiny", work=str(work), results=str(results), models="rotnet,rotnet_equal_time",
                          command="spotart reproduce --preset tiny --models rotnet,rotnet_equal_time")
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
    _check_rotnet_budgets(work, 0, steps=2)
    assert "² RotNet (Gidaris et al., ICLR 2018; `spotart train-rotnet`)" in markdown
    capsys.readouterr()

    # a second run does nothing but rewrite the results
    def must_not_train(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(stage1, "train_autoencoder", must_not_train)
    monkeypatch.setattr(stage2, "train_spot", must_not_train)
    monkeypatch.setattr(rotnet, "train_rotnet", must_not_train)
    assert run_reproduce("tiny", work=str(work), results=str(results)) == table
    assert run_reproduce("tiny", work=str(work), results=str(results), models="rotnet_equal_time") == table

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


def _check_rotnet_budgets(work, seed, steps, reference="full"):
    """RotNet at ``seed``: the reference row's steps and batch, and the training seconds (last wall_s) of the shared
    stage 1 plus this seed's reference run."""
    suffix = f"-seed{seed}" if seed else ""
    equal = yaml.safe_load((work / f"rotnet{suffix}" / "run" / "config.yaml").read_text())
    timed = yaml.safe_load((work / f"rotnet_equal_time{suffix}" / "run" / "config.yaml").read_text())
    assert (equal["steps"], equal["batch_size"], equal["seed"], timed["seed"]) == (steps, 4, seed, seed)
    walls = [_last_wall(work / "autoencoder"), _last_wall(work / f"{reference}{suffix}")]
    assert timed["max_seconds"] == pytest.approx(sum(walls), abs=0.06)
    rows = _metrics(work / f"rotnet_equal_time{suffix}")
    assert rows[-1]["wall_s"] >= timed["max_seconds"] and rows[-1]["step"] < timed["steps"]
    return equal, timed


def test_bad_rotnet_requests_are_clear(tmp_path):
    work, results = tmp_path / "work", tmp_path / "results"
    with pytest.raises(EvaluationError, match="needs the finished autoencoder run"):
        run_reproduce("tiny", work=str(work), results=str(results), models="rotnet_equal_time")
    with pytest.raises(EvaluationError, match="--equal-time-to 'best' is not a stage-2 row"):
        run_reproduce("tiny", work=str(work), results=str(results), models="rotnet", equal_time_to="best")


@pytest.mark.slow  # about a minute on 2 busy cores: two seeds of three rows, each probed
def test_rotnet_rows_match_the_reference_rows_images_time_and_trunk_at_each_seed(tmp_path):
    work, results = tmp_path / "work", tmp_path / "results"
    knn = [f"knn_val={work / 'data' / 'val'}", "knn_every=2", "knn_max_train=8", "knn_max_val=4", "drop_rate=0.5"]
    run_reproduce("tiny", work=str(work), results=str(results), models="normal,rotnet,rotnet_equal_time",
                  seeds="0,1", spot_set=["steps=3", *knn], variants=["normal:disc_init=normal,disc_padding=centred"],
                  equal_time_to="normal")
    for seed in (0, 1):
        equal, timed = _check_rotnet_budgets(work, seed, steps=3, reference="normal")
        # the reference's trunk and settings, the kNN monitor from step 0 with the --set keys RotNet has (not drop_rate)
        assert (equal["disc_init"], timed["disc_padding"], equal["knn_max_val"]) == ("normal", "centred", 4)
        knn_steps = [row["step"] for row in _metrics(work / ("rotnet" + (f"-seed{seed}" if seed else "")))
                     if "knn_conv2" in row]
        assert knn_steps == [0, 2] and "drop_rate" not in equal
    markdown = (results / "reproduce.md").read_text()
    reached = _metrics(work / "rotnet_equal_time")[-1]["step"]
    seconds = yaml.safe_load((work / "rotnet_equal_time" / "run" / "config.yaml").read_text())["max_seconds"]
    assert "| RotNet, as many images as stage 2 ² | 3 steps x 4 (12 images, each in 4 rotations: those of normal)" \
        in markdown
    assert f"seed 0: {seconds:.0f} s, {reached} steps x 4" in markdown and "| 0, 1 |" in markdown
    assert "the `normal` row's stage 2" in markdown
    command = (work / "rotnet_equal_time" / "run" / "command.txt").read_text()
    args = build_parser().parse_args(shlex.split(command)[1:])  # the recorded command is one the CLI takes
    assert args.command == "train-rotnet" and "max_seconds=" in command
    keys = [pair.partition("=")[0] for pair in args.set]  # the --set knn_* keys, in the reference's config too, once
    assert len(keys) == len(set(keys)) and f"knn_val={work / 'data' / 'val'}" in args.set
    assert list(json.loads((results / "reproduce.json").read_text())) == ["rotnet", "rotnet_equal_time", "normal"]


def test_a_run_logged_without_wall_s_takes_its_time_from_timing_json(tmp_path):
    from spotart.evaluation.reproduce import PRESETS, Reproduction

    run = tmp_path / "full" / "run"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text(json.dumps({"step": 5, "loss": 1.0}) + "\n")
    (run / "config.yaml").write_text("steps: 5\n")
    (tmp_path / "timing.json").write_text(json.dumps({"full": {"train_s": 42.5}}))
    repro = Reproduction(PRESETS["tiny"], tmp_path, tmp_path, tmp_path / "r", [], [], "cmd")
    assert repro.training_seconds("full") == (42.5, "timing.json")
    (run / "config.yaml").write_text("steps: 6\n")  # the run stopped before its last step
    with pytest.raises(EvaluationError, match="needs the finished full run"):
        repro.training_seconds("full")


def _metrics(folder):
    return [json.loads(line) for line in (folder / "run" / "metrics.jsonl").read_text().splitlines()]


def _last_wall(folder):
    return [row["wall_s"] for row in _metrics(folder) if "wall_s" in row][-1]

