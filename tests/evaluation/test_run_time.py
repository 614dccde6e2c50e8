"""A reproduce row's training time, from reproduce's clock or from the run's own metrics.jsonl."""

from __future__ import annotations

import json

from spotart.evaluation.reproduce import MODELS, PRESETS, Reproduction
from spotart.evaluation.run_time import recorded_training_seconds


def _run(folder, rows, batch=8):
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"command: train-spot\nsteps: 100\nbatch_size: {batch}\n")
    (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows) + '{"step": 9')  # torn
    return folder


def test_wall_s_rows_give_the_run_s_own_clock(tmp_path):
    run = _run(tmp_path / "run", [{"step": 0, "knn_conv5": 10.0, "wall_s": 0.0},
                                  {"step": 10, "c_loss": 1.0, "images_per_s": 4.0, "wall_s": 30.5},
                                  {"step": 20, "c_loss": 1.0, "images_per_s": 4.0, "wall_s": 61.0}])
    assert recorded_training_seconds(run) == (61.0, "wall_s")


def test_without_wall_s_the_logged_throughput_gives_the_time(tmp_path):
    # 10 steps of 8 images at 4 img/s, then 10 at 2 img/s: 20 s + 40 s
    run = _run(tmp_path / "run", [{"step": 0, "knn_conv5": 10.0},
                                  {"step": 10, "c_loss": 1.0, "images_per_s": 4.0},
                                  {"step": 20, "c_loss": 1.0, "images_per_s": 2.0}])
    assert recorded_training_seconds(run) == (60.0, "throughput")


def test_a_run_without_metrics_records_no_time(tmp_path):
    assert recorded_training_seconds(tmp_path) is None


def _reproduction(work):
    return Reproduction(PRESETS["tiny"], work / "data", work, work / "results", [], [], "spotart reproduce")


def test_a_row_trained_outside_reproduce_reports_its_own_training_time(tmp_path):
    """reproduce only timed a resume that found nothing to do (2 s); the run says it trained for 600 s."""
    work = tmp_path / "work"
    _run(work / "full" / "run", [{"step": 100, "c_loss": 1.0, "images_per_s": 4.0, "wall_s": 600.0}])
    timing = {"full": {"train_s": 2.0, "probe_s": 30.0}}
    repro = _reproduction(work)
    assert repro.train_seconds("full", timing) == 600.0
    full = next(spec for spec in MODELS if spec.name == "full")
    assert repro.row_seconds(full, timing) == 630.0


def test_a_row_trained_by_reproduce_keeps_reproduce_s_clock(tmp_path):
    work = tmp_path / "work"
    _run(work / "full" / "run", [{"step": 100, "c_loss": 1.0, "images_per_s": 4.0}])  # 200 s of steps
    _run(work / "full-seed1" / "run", [{"step": 100, "c_loss": 1.0, "images_per_s": 2.0}])  # 400 s, not timed
    timing = {"full": {"train_s": 250.0, "probe_s": 30.0}}  # set-up included: more than the steps alone
    repro = _reproduction(work)
    full = next(spec for spec in MODELS if spec.name == "full")
    assert repro.train_seconds("full", timing) == 250.0
    assert repro.row_seconds(full, timing) == 250.0 + 30.0 + 400.0  # the seed run trained outside counts too


def test_the_table_shows_the_time_of_a_row_trained_outside(tmp_path):
    work = tmp_path / "work"
    _run(work / "full" / "run", [{"step": 100, "c_loss": 1.0, "images_per_s": 4.0, "wall_s": 600.0}])
    (work / "timing.json").write_text(json.dumps({"full": {"train_s": 2.0, "probe_s": 30.0}}))
    repro = _reproduction(work)
    full = next(spec for spec in MODELS if spec.name == "full")
    row = next(line for line in repro.markdown((full,), {"full": {}}, 40.0).splitlines()
               if line.startswith(f"| {full.label}"))
    assert "| 10.5 min |" in row
