"""The evaluation commands are registered with their flags, and their modules load only when they run."""

from __future__ import annotations

import subprocess
import sys

from spotart.cli import build_parser


def test_flags_parse():
    parser = build_parser()
    probe = parser.parse_args(["probe", "--checkpoint", "c.pt", "--train", "t", "--val", "v", "--out", "o",
                               "--weight-decays", "1e-4,1e-2", "--max-train", "100", "--pool", "max"])
    assert (probe.checkpoint, probe.init, probe.weight_decays, probe.max_train, probe.pool, probe.epochs) == (
        "c.pt", "checkpoint", (1e-4, 1e-2), 100, "max", 10)
    assert parser.parse_args(["probe", "--init", "random", "--train", "t", "--val", "v", "--out", "o"]).init == "random"
    finetune = parser.parse_args(["finetune", "--checkpoint", "c.pt", "--train", "stl10:train", "--test", "stl10:test",
                                  "--out", "o", "--mode", "linear", "--folds", "none", "--max-folds", "3"])
    assert (finetune.mode, finetune.folds, finetune.max_folds) == ("linear", "none", 3)
    sup = parser.parse_args(["train-supervised", "--data", "d", "--out", "o", "--steps", "5", "--set", "hidden=0",
                             "--resume"])
    assert (sup.steps, sup.set, sup.resume) == (5, ["hidden=0"], True)
    rep = parser.parse_args(["reproduce", "--preset", "full", "--models", "full,random", "--set", "warmup_steps=100"])
    assert (rep.preset, rep.models, rep.set) == ("full", "full,random", ["warmup_steps=100"])
    assert parser.parse_args(["reproduce"]).preset == "quick"


def test_building_the_parser_imports_no_evaluation_module():
    code = ("import sys; from spotart.cli import build_parser; build_parser(); "
            "print(sorted(m for m in sys.modules if m.startswith('spotart.evaluation.') and m != "
            "'spotart.evaluation.commands'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr
