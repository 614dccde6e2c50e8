"""benchmarks/start_networks.py: a train-spot run's step-0 C rebuilt from its config.yaml, checked against the kNN
the run logged at step 0, probed, and (with this tree's code) equal to the random-init baseline of its seed."""

from __future__ import annotations

import json

import pytest

from spotart.config import build_config
from spotart.evaluation.backbones import fingerprint, load_backbone
from spotart.evaluation.knn import monitor_from_config
from spotart.evaluation.toydata import write_toy_dataset
from spotart.train.stage1 import train_autoencoder
from spotart.train.stage2 import train_spot

from .helpers import benchmark_module, torch_threads


@pytest.fixture(scope="module")
def starts():
    with benchmark_module("start_networks") as module:
        yield module


def test_a_runs_start_is_rebuilt_checked_probed_and_is_the_random_baseline(starts, tmp_path):
    train, val = write_toy_dataset(tmp_path / "toy", train_per_class=8, val_per_class=4)
    fast = ["num_workers=0", "progress=false", "log_every=1", "image_every=100", "checkpoint_every=100",
            f"data={train}", "image_size=32", "batch_size=4", "precision=fp32", "seed=2"]
    with torch_threads(1):
        ae = train_autoencoder(build_config("train-ae", set_pairs=fast + ["steps=1"]), str(tmp_path / "ae"))
        cfg = build_config("train-spot", set_pairs=fast + [
            "steps=2", f"autoencoder={ae}", f"knn_val={val}", "knn_every=2", "knn_max_train=12",
            "disc_init=official", "disc_padding=tf_same"])
        row = tmp_path / "work" / "official"
        train_spot(cfg, str(row / "run"), monitor=monitor_from_config(cfg))
        layers = ("conv1", "conv2", "conv3", "conv4", "conv5")
        (row / "probe").mkdir()
        (row / "probe" / "probe.json").write_text(json.dumps(dict(zip(layers, (40, 50, 45, 44, 43)))))
        random_row = tmp_path / "work" / "random_official-seed2" / "probe"
        random_row.mkdir(parents=True)
        (random_row / "probe.json").write_text(json.dumps(dict(zip(layers, (41, 42, 43, 44, 45)))))
        out = tmp_path / "starts"
        assert starts.main([str(row / "run"), "--preset", "tiny", "--out", str(out),
                            "--table", str(tmp_path / "table.md")]) == 0

    record = json.loads((out / "starts.json").read_text())[str(row.resolve())]
    baseline = load_backbone(None, "random", 32, seed=2,
                             random_config={"disc_init": "official", "disc_padding": "tf_same"})
    assert record["sha256"] == fingerprint(baseline.net)  # C starts as the random row of its seed
    assert record["seed"] == 2 and set(record["start"]) == set(layers)
    assert all(logged == rebuilt for logged, rebuilt in record["knn_step0_logged_rebuilt"].values())
    probe = json.loads(next(out.glob("seed2-*/probe/probe.json")).read_text())
    assert probe["init"] == "checkpoint" and probe["image_size"] == 32
    assert {layer: probe[layer] for layer in layers} == record["start"]
    table = (tmp_path / "table.md").read_text()
    best_start = max(record["start"].values())
    assert f"| official | 2 | {record['sha256'][:12]} |" in table
    assert f"{50 - best_start:+.1f} (conv2 vs " in table and "+5.0 (conv2 vs conv5) |" in table


def test_a_recorded_start_is_not_rebuilt_and_the_table_keeps_every_start(starts, tmp_path, monkeypatch):
    layers = ("conv1", "conv2", "conv3", "conv4", "conv5")
    out = tmp_path / "starts"
    out.mkdir()
    record = {}
    for name, probe in (("official", (40, 50, 45, 44, 43)), ("no_repair", (39, 47, 45, 44, 43))):
        row = tmp_path / "work" / name
        (row / "probe").mkdir(parents=True)
        (row / "probe" / "probe.json").write_text(json.dumps(dict(zip(layers, probe))))
        record[str(row)] = {"seed": 0, "sha256": name * 3, "start": dict(zip(layers, (40, 48, 44, 43, 42))),
                            "knn_step0_logged_rebuilt": {"knn_conv2": [36.8, 36.8]}}
    (tmp_path / "work" / "random_official" / "probe").mkdir(parents=True)
    (tmp_path / "work" / "random_official" / "probe" / "probe.json").write_text(
        json.dumps(dict(zip(layers, (41, 49, 43, 44, 45)))))
    (out / "starts.json").write_text(json.dumps(record))

    def rebuild(*args):
        raise AssertionError("a recorded start was rebuilt")

    monkeypatch.setattr(starts, "run_config", lambda run: None)
    monkeypatch.setattr(starts, "probe_start", rebuild)
    table_path = tmp_path / "table.md"
    assert starts.main([str(tmp_path / "work" / "official" / "run"), "--out", str(out),
                        "--table", str(table_path)]) == 0
    table = table_path.read_text().splitlines()
    assert len(table) == 4  # header, rule, one line per recorded start: the run named and the one before
    assert table[2].startswith("| no_repair | 0 | no_repairno_ |")
    assert table[2].endswith("| -1.0 (conv2 vs conv2) | -2.0 (conv2 vs conv2) |")
    assert table[3].startswith("| official | 0 | officialoffi |")
    assert table[3].endswith("| +2.0 (conv2 vs conv2) | +1.0 (conv2 vs conv2) |")
    with pytest.raises(AssertionError, match="was rebuilt"):
        starts.main([str(tmp_path / "work" / "official" / "run"), "--out", str(out), "--recheck"])


def test_a_run_that_is_not_train_spot_is_refused(starts, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("command: train-rotnet\nseed: 0\n")
    with pytest.raises(SystemExit, match="a train-rotnet run"):
        starts.run_config(run)
