"""``benchmarks/trajectories.py``: kNN top-1 against wall time from run directories' metrics.jsonl."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from .helpers import benchmark_module


@pytest.fixture(scope="module")
def trajectories():
    with benchmark_module("trajectories") as module:
        yield module


def _fake_run(folder, start, slope, seconds_per_step, layers=("conv2", "conv3", "conv5"), wall=True):
    """Training rows every step and kNN rows every 10 steps, as run_loop writes them."""
    folder.mkdir(parents=True)
    rows = []
    for step in range(0, 41):
        wall_s = {"wall_s": step * seconds_per_step} if wall else {}
        if step:
            rows.append({"step": step, "epoch": 0, "loss": 1.0 / step, **wall_s})
        if step % 10 == 0:
            rows.append({"step": step, "epoch": 0, **{f"knn_{layer}": start + i + slope * step
                                                      for i, layer in enumerate(layers)}, **wall_s})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def test_two_runs_make_one_chart_and_a_summary(tmp_path, trajectories, capsys):
    rotnet = _fake_run(tmp_path / "rotnet", 40.0, 0.2, 0.5)
    spot = _fake_run(tmp_path / "spot", 40.0, 0.02, 3.0)
    stage1 = tmp_path / "ae"
    stage1.mkdir()
    (stage1 / "metrics.jsonl").write_text(json.dumps({"step": 5, "loss": 1.0, "wall_s": 30.0}) + "\n")
    reference = tmp_path / "random.json"
    reference.write_text(json.dumps({"random init (seed 0)": {"conv2": 39.0, "conv3": 41.0, "conv5": 42.0},
                                     "random init (seed 1)": {"conv2": 41.0, "conv3": 41.0, "conv5": 40.0}}))
    out = tmp_path / "charts" / "trajectories.png"
    assert trajectories.main(["--run", f"RotNet={rotnet}", "--run", f"full method={spot}", "--out", str(out),
                              "--offset", f"full method={stage1}", "--random-init", str(reference),
                              "--title", "test"]) == 0
    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape[0] > 300 and image.shape[1] > 3 * image.shape[0]  # three panels side by side
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50  # lines, text and markers, not a blank canvas
    printed = capsys.readouterr().out
    # RotNet's conv2: 40 at the start, 40 + 0.2 * 40 = 48 at the end; against random init 40.0 (mean of two seeds)
    assert "RotNet (1 run): conv2 start 40.0 best 48.0 last 48.0, last - random +8.0" in printed
    assert "random init: conv2 40.0, conv3 41.0, conv5 41.0" in printed
    run = trajectories.read_run("full method", spot, ("conv5",), "wall_s", offset=30.0)
    assert run.points["conv5"][0] == (0.5, 42.0) and run.points["conv5"][-1] == pytest.approx((2.5, 42.8))


@pytest.mark.parametrize("problem, message", [
    ("missing", "no metrics.jsonl"),
    ("no_knn", "no knn_conv2 rows"),
    ("no_wall", "without wall_s"),
])
def test_bad_folders_are_one_clear_line(tmp_path, trajectories, capsys, problem, message):
    folder = tmp_path / "run"
    if problem == "no_knn":
        folder.mkdir()
        (folder / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0, "wall_s": 1.0}) + "\n")
    elif problem == "no_wall":
        _fake_run(folder, 40.0, 0.1, 1.0, wall=False)
    assert trajectories.main(["--run", f"x={folder}", "--out", str(tmp_path / "t.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("trajectories: error:") and message in err and "\n" not in err
    assert not (tmp_path / "t.png").exists()


def test_table_lists_each_knn_row_with_the_accuracies_logged_at_that_step(tmp_path, trajectories):
    spot = _fake_run(tmp_path / "official" / "run", 40.0, 0.1, 6.0)
    rows = [json.loads(line) for line in (spot / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        if "loss" in row:
            row.update(disc_acc=0.5 + row["step"] / 100, mask_acc=0.7, mask_acc_fake=0.4)
    (spot / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    table = tmp_path / "table.md"
    assert trajectories.main(["--run", f"official={spot}", "--out", str(tmp_path / "t.png"),
                              "--table", str(table)]) == 0
    lines = table.read_text().splitlines()
    assert lines[0] == ("| row | run | step | minutes | kNN conv2 | kNN conv3 | kNN conv5 | `disc_acc` | `mask_acc` "
                        "| `mask_acc_fake` |")
    assert len(lines) == 2 + 5  # header, rule, steps 0, 10, 20, 30, 40
    assert lines[2] == "| official | official | 0 | 0.0 | 40.0 | 41.0 | 42.0 | - | - | - |"  # no training row at 0
    # step 20: kNN 40 + 0.1 * 20 = 42 on conv2; 120 s of training; disc_acc 0.5 + 0.2
    assert lines[4] == "| official | official | 20 | 2.0 | 42.0 | 43.0 | 44.0 | 0.70 | 0.70 | 0.40 |"
