"""``spotart reproduce --preset tiny``: every model trained and probed, the results files, and resuming."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from spotart.cli import build_parser, main
from spotart.evaluation.errors import EvaluationError
from spotart.evaluation.reproduce import (
    DEFAULT_MODELS,
    MODELS,
    PRESETS,
    Reproduction,
    parse_seeds,
    parse_variant,
    results_path,
    rows_to_run,
    run_folder,
    run_reproduce,
    training_order,
)
from spotart.models import LAYERS
from spotart.train import rotnet, stage1, stage2

from ..helpers import REPO


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
    run_reproduce("tiny", work=str(work), results=str(results), models="random,slow_repair", seeds="0,1",
                  variants=["slow_repair:repair_lr_factor=0.3,repair_every=2,steps=3"])  # --models: what trains
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


def test_ae_config_trains_stage_1_from_a_yaml_and_a_stage_1_trained_otherwise_is_refused(tmp_path, monkeypatch):
    work, results = tmp_path / "work", tmp_path / "results"
    ae_yaml = tmp_path / "ae.yaml"  # the preset's size and steps win over the file's; the file's own keys hold
    ae_yaml.write_text("decoder_upsampling: tf_legacy\nae_init: official\nimage_size: 96\nsteps: 77\nlr: 0.002\n")
    argv = ["reproduce", "--preset", "tiny", "--work", str(work), "--results", str(results), "--models", "autoencoder",
            "--ae-config", str(ae_yaml), "--ae-set", "lr=0.0005"]
    assert main(argv) == 0
    trained = yaml.safe_load((work / "autoencoder" / "run" / "config.yaml").read_text())
    assert (trained["decoder_upsampling"], trained["ae_init"], trained["lr"]) == ("tf_legacy", "official", 0.0005)
    assert (trained["image_size"], trained["steps"]) == (PRESETS["tiny"].image_size, PRESETS["tiny"].ae_steps)
    assert f"--ae-config {ae_yaml} --ae-set lr=0.0005" in (results / "reproduce.md").read_text()

    # the same keys, or none, or other bookkeeping: the stage 1 in WORK is reused
    monkeypatch.setattr(stage1, "train_autoencoder", lambda *a, **k: pytest.fail("trained again"))
    for more in ([], ["--ae-set", "num_workers=0"]):
        assert main(argv + more) == 0
    run_reproduce("tiny", work=str(work), results=str(results), models="autoencoder")
    # keys that ask for another stage 1 are refused, each named with both values
    with pytest.raises(EvaluationError, match=r"decoder_upsampling: trained 'tf_legacy', asked 'half_pixel'; "
                                              r"lr: trained 0.0005, asked 0.002\): give another --work"):
        run_reproduce("tiny", work=str(work), results=str(results), models="autoencoder", ae_config=str(ae_yaml),
                      ae_set=["decoder_upsampling=half_pixel"])


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



# ------------------------------------------------------------------ rows defined without training; --print-results
NORMAL = "normal:disc_init=normal,disc_padding=centred"


def test_a_variant_left_out_of_models_is_defined_not_trained_and_can_be_the_reference(tmp_path, monkeypatch, capsys):
    work, results = tmp_path / "work", tmp_path / "results"
    ran = []
    run_model = Reproduction.run_model

    def recording(self, spec, seed=0):
        ran.append(run_folder(spec, seed))
        return run_model(self, spec, seed)

    monkeypatch.setattr(Reproduction, "run_model", recording)

    def must_not_train(*args, **kwargs):
        raise AssertionError("trained a row that --models leaves out")

    with monkeypatch.context() as patched:  # RotNet at `normal`'s images takes its config, not its training
        patched.setattr(stage1, "train_autoencoder", must_not_train)
        patched.setattr(stage2, "train_spot", must_not_train)
        assert main(["reproduce", "--preset", "tiny", "--work", str(work), "--results", str(results), "--variant",
                     NORMAL, "--models", "rotnet", "--equal-time-to", "normal"]) == 0
    assert ran == ["rotnet"] and not (work / "normal").exists() and not (work / "autoencoder").exists()
    assert json.loads((work / "variants.json").read_text()) == {"normal": NORMAL.split(":")[1].split(",")}
    config = yaml.safe_load((work / "rotnet" / "run" / "config.yaml").read_text())
    assert (config["disc_init"], config["disc_padding"], config["steps"]) == ("normal", "centred", 2)
    assert list(json.loads((results / "reproduce.json").read_text())) == ["rotnet"]

    # RotNet for `normal`'s time needs its finished runs: one line saying so, before anything trains
    capsys.readouterr()
    args = ["reproduce", "--preset", "tiny", "--work", str(work), "--results", str(results), "--variant", NORMAL,
            "--models", "rotnet_equal_time", "--equal-time-to", "normal"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs the finished autoencoder run" in err and "add normal to --models" in err
    run_reproduce("tiny", work=str(work), results=str(results), models="normal")  # defined earlier: trained now
    with pytest.raises(EvaluationError, match="needs the finished normal-seed1 run .* does not train normal: add "
                                              "normal to --models"):
        run_reproduce("tiny", work=str(work), results=str(results), models="rotnet_equal_time", seeds="0,1",
                      variants=[NORMAL], equal_time_to="normal")
    assert ran == ["rotnet", "normal"] and not (work / "rotnet_equal_time").exists()

    # the reference trained by an earlier command serves as it is: RotNet trains for its time, it does not train
    monkeypatch.setattr(stage1, "train_autoencoder", must_not_train)
    monkeypatch.setattr(stage2, "train_spot", must_not_train)
    table = run_reproduce("tiny", work=str(work), results=str(results), models="rotnet_equal_time",
                          variants=[NORMAL], equal_time_to="normal")
    assert ran[-1] == "rotnet_equal_time" and list(table) == ["rotnet", "rotnet_equal_time", "normal"]
    _check_rotnet_budgets(work, 0, steps=2, reference="normal")


def test_rotnet_rows_train_after_the_rows_of_their_seed():
    full, rotnet, equal_time = (next(spec for spec in MODELS if spec.name == name)
                                for name in ("full", "rotnet", "rotnet_equal_time"))
    assert training_order((equal_time, full, rotnet)) == (full, equal_time, rotnet)


def test_models_decides_what_trains():
    variant = parse_variant("slow:repair_every=2")
    assert rows_to_run(None, (), ()) == DEFAULT_MODELS
    assert rows_to_run(None, (variant,), (variant,)) == (variant,)  # without --models: this command's variants
    assert rows_to_run("random", (variant,), (variant,)) == (MODELS[5],)  # with it: only what it names
    assert rows_to_run("slow,random", (), (variant,)) == (variant, MODELS[5])  # a variant defined earlier


def test_print_results_says_where_the_results_are_and_runs_nothing(tmp_path, capsys):
    assert main(["reproduce", "--preset", "cifar-quick", "--results", str(tmp_path / "r"), "--print-results"]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'r' / 'reproduce-cifar10.json'}\n"
    assert main(["reproduce", "--preset", "imagenette-64", "--print-results", "seeds"]) == 0
    assert capsys.readouterr().out == "benchmarks/results/reproduce-imagenette64-seeds.json\n"
    assert main(["reproduce", "--preset", "tiny", "--work", str(tmp_path / "w"), "--print-results", "md"]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'w' / 'results' / 'reproduce.md'}\n"
    assert not list(tmp_path.iterdir())  # nothing was made, nothing was run
    assert results_path(PRESETS["quick"]) == Path("benchmarks/results/reproduce.json")


# ------------------------------------------------------------------------- old commands in the docs and scripts
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.S)
VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")


def reproduce_commands(text: str) -> list[tuple[str, list[str]]]:
    """Every ``spotart reproduce`` and ``python benchmarks/reproduce.py`` command of a markdown text, in code blocks
    and inline code, as (the line, its arguments from ``reproduce`` on), with the shell variables that the text
    defines before it (``R="spotart reproduce ..."``, ``V="--variant ..."``) expanded."""
    variables: dict[str, str] = {}
    found: list[tuple[str, list[str]]] = []

    def read(code: str) -> None:
        assignment = ASSIGNMENT.match(code.strip())
        if assignment:
            variables[assignment.group(1)] = " ".join(shlex.split(assignment.group(2), comments=True))
            return
        words = shlex.split(VARIABLE.sub(lambda m: variables.get(m.group(1), m.group(0)), code), comments=True)
        for i, word in enumerate(words):
            if word == "spotart" and words[i + 1:i + 2] == ["reproduce"]:
                found.append((code.strip(), words[i + 1:]))
                return
            if word.endswith("benchmarks/reproduce.py"):
                found.append((code.strip(), ["reproduce", *words[i + 1:]]))
                return

    start = 0
    for block in [*FENCE.finditer(text), None]:
        for span in re.findall(r"`([^`]+)`", text[start:block.start() if block else len(text)]):
            read(span.replace("\n", " "))
        if block:
            for code in block.group(1).replace("\\\n", " ").splitlines():
                read(code)
            start = block.end()
    return found


def check_reproduce_commands(commands: list[tuple[str, list[str]]]) -> list[str]:
    """What is wrong with each command, as the CLI would see it: argparse, --variant, --seeds, --models (the paper's
    rows or a variant any of the commands defines: they share work folders)."""
    parser, problems = build_parser(), []
    defined = {arg.partition(":")[0] for _, args in commands for flag, arg in zip(args, args[1:])
               if flag == "--variant"}
    for line, args in commands:
        try:
            parsed = parser.parse_args(args)
        except SystemExit:
            problems.append(f"does not parse: {line}")
            continue
        try:
            for variant in parsed.variant:
                parse_variant(variant)
            parse_seeds(parsed.seeds)
        except EvaluationError as err:
            problems.append(f"{err}: {line}")
        known = {spec.name for spec in MODELS} | defined
        unknown = [name for name in (parsed.models or "").split(",") if name and name not in known]
        if unknown or parsed.equal_time_to not in known:
            problems.append(f"unknown rows {unknown or [parsed.equal_time_to]}: {line}")
    return problems


def test_the_reproduce_commands_of_results_md_and_the_docs_still_parse():
    files = [REPO / "benchmarks" / "RESULTS.md", REPO / "README.md", *sorted((REPO / "docs").glob("*.md")),
             *sorted((REPO / "benchmarks" / "results").glob("*.md"))]
    commands = [command for path in files if path.is_file() for command in reproduce_commands(path.read_text())]
    assert len(commands) >= 10, commands  # RESULTS.md alone records more: the extraction still finds them
    assert check_reproduce_commands(commands) == []


def test_the_expansion_of_shell_variables_in_markdown():
    text = ('With `R="python benchmarks/reproduce.py --preset cifar-quick\n--set warmup_steps=100"`:\n\n```bash\n'
            'V="--variant a:repair_every=2"\n$R $V --models a   # a comment\nspotart reproduce --preset tiny \\\n'
            '  --seeds 0,1\npython benchmarks/gains.py --seeds-json x\n```\nand `spotart reproduce --preset full`.\n')
    assert [args for _, args in reproduce_commands(text)] == [
        ["reproduce", "--preset", "cifar-quick", "--set", "warmup_steps=100", "--variant", "a:repair_every=2",
         "--models", "a"],
        ["reproduce", "--preset", "tiny", "--seeds", "0,1"], ["reproduce", "--preset", "full"]]
    assert check_reproduce_commands([("x", ["reproduce", "--preset", "huge"]), ("y", ["reproduce", "--models", "b"])]
                                    ) == ["does not parse: x", "unknown rows ['b']: y"]


STUB = '''#!{python}
"""A stand-in for spotart and python: records each spotart command, answers --print-results as spotart does."""
import json, os, sys
args = sys.argv[1:]
if os.path.basename(sys.argv[0]) == "python":
    if args[:2] != ["-m", "spotart"]:
        with open(os.environ["STUB_RECORD"] + ".other", "a") as out:
            out.write(json.dumps(args) + "\\n")
        sys.exit(0)
    args = args[2:]
with open(os.environ["STUB_RECORD"], "a") as out:
    out.write(json.dumps(args) + "\\n")
if "--print-results" in args:
    from spotart.cli import main
    sys.exit(main(args))
'''


@pytest.mark.parametrize("script, settings, calls", [
    ("official_study.sh", {"PRESET": "tiny", "WORK": "{tmp}/work", "SPOTART": "{stubs}/spotart",
                           "PY": "{stubs}/python"}, 12),
    ("rotnet_study.sh", {"PRESETS": "tiny", "WORK_ROOT": "{tmp}/runs", "PY": "{stubs}/python"}, 1),
])
def test_the_benchmark_scripts_reproduce_commands_parse_and_they_read_the_results_path(tmp_path, script, settings,
                                                                                       calls):
    """Each script run with spotart and python stubbed: every reproduce command it would run parses, and it hands
    gains.py the -seeds.json that ``--print-results seeds`` names."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name in ("spotart", "python"):
        (stubs / name).write_text(STUB.format(python=sys.executable))
        (stubs / name).chmod(0o755)
    record = tmp_path / "record.jsonl"
    env = {**os.environ, "STUB_RECORD": str(record),
           **{key: value.format(tmp=tmp_path, stubs=stubs) for key, value in settings.items()}}
    work = Path(env.get("WORK") or f"{env['WORK_ROOT']}/reproduce-tiny")
    (work / "results").mkdir(parents=True)  # the tiny preset's results folder, which reproduce would have made
    result = subprocess.run(["bash", str(REPO / "benchmarks" / script)], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    recorded = [json.loads(line) for line in record.read_text().splitlines()]
    assert [args[0] for args in recorded] == ["reproduce"] * (calls + 1)
    runs = [(shlex.join(args), args) for args in recorded if "--print-results" not in args]
    assert len(runs) == calls and check_reproduce_commands(runs) == []
    others = [json.loads(line) for line in Path(f"{record}.other").read_text().splitlines()]
    gains = next(args for args in others if args[0] == "benchmarks/gains.py")
    assert gains[1:3] == ["--seeds-json", str(work / "results" / "reproduce-seeds.json")]
