"""Tar shards: ``spotart pack``, reading shards as folders are read, the ``webdataset`` library reading ours, and
one clear line for a truncated shard."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spotart.cli import main
from spotart.config import build_config
from spotart.data import DataError, FolderSource, ImageDataset, collate_skipping, open_source, training_loader
from spotart.data.pack import pack_folder
from spotart.data.shards import INDEX_NAME, ShardSource
from spotart.evaluation.datasets import open_labelled
from spotart.evaluation.errors import EvaluationError
from spotart.train import stage1
from spotart.train.checkpoints import load_checkpoint
from spotart.train.stage1 import train_autoencoder

from .helpers import torch_threads, write_images


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


def write_jpegs(folder: Path, count: int, size: tuple[int, int] = (40, 40), classes: int = 2, seed: int = 0) -> Path:
    """Smooth random colour JPEGs in class folders (stored as they are by ``pack``, so pixels compare exactly)."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        base = rng.uniform(0, 255, size=(4, 4, 3)).astype(np.uint8)
        out = folder / f"class_{i % classes}"
        out.mkdir(parents=True, exist_ok=True)
        Image.fromarray(base).resize(size, Image.BILINEAR).save(out / f"img_{i:03d}.jpg", quality=90)
    return folder


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


def test_pack_round_trip_keeps_count_classes_labels_and_pixels(tmp_path):
    folder = FolderSource(write_images(tmp_path / "imgs", 10, size=40, classes=3))  # PNGs: re-encoded as JPEG
    index = pack_folder(str(folder.root), str(tmp_path / "shards"), shard_size=4)
    assert (index["images"], index["classes"], index["skipped"]) == (10, ["class_0", "class_1", "class_2"], 0)
    assert [entry["images"] for entry in index["shards"]] == [4, 4, 2]
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == [
        "imgs-000000.tar", "imgs-000001.tar", "imgs-000002.tar", INDEX_NAME]
    assert index["pattern"] == "imgs-{000000..000002}.tar"
    shards = open_source(str(tmp_path / "shards"))
    assert isinstance(shards, ShardSource) and len(shards) == 10 and shards.classes == folder.classes
    assert shards.labels == folder.labels
    for i in range(10):
        packed, label = shards.load(i)
        original, original_label = folder.load(i)
        assert label == original_label and packed.size == original.size and packed.mode == "RGB"
        assert np.abs(pixels(packed) - pixels(original)).mean() < 2.0  # JPEG at quality 95
    assert "imgs-000001.tar:000005_img_" in shards.describe(5)


def test_jpegs_are_stored_as_they_are_unless_shrunk_or_re_encoded(tmp_path):
    folder = FolderSource(write_jpegs(tmp_path / "imgs", 4, size=(40, 30)))
    pack_folder(str(folder.root), str(tmp_path / "a"))
    as_is = open_source(str(tmp_path / "a"))
    assert [as_is.read_bytes(i) for i in range(4)] == [f.read_bytes() for f in folder.files]
    pack_folder(str(folder.root), str(tmp_path / "b"), max_side=24, quality=50)
    shrunk = open_source(str(tmp_path / "b"))
    assert all(shrunk.load(i)[0].size == (24, 18) for i in range(4))  # the longer side, aspect kept
    assert json.loads((tmp_path / "b" / INDEX_NAME).read_text())["quality"] == 50


def test_brace_patterns_globs_and_missing_shards(tmp_path):
    write_jpegs(tmp_path / "imgs", 10, classes=2)
    pack_folder(str(tmp_path / "imgs"), str(tmp_path / "s"), shard_size=3, prefix="train")  # 3+3+3+1
    whole = open_source(str(tmp_path / "s"))
    assert len(open_source(str(tmp_path / "s" / "train-{000000..000003}.tar"))) == 10
    part = open_source(str(tmp_path / "s" / "train-{000001..000002}.tar"))
    assert len(part) == 6 and part.labels == whole.labels[3:9] and part.keys == whole.keys[3:9]
    assert len(open_source(str(tmp_path / "s" / "train-00000[03].tar"))) == 4
    assert len(open_source(str(tmp_path / "s" / "train-000003.tar"))) == 1
    with pytest.raises(DataError, match=r"shard not found: .*train-000004\.tar"):
        open_source(str(tmp_path / "s" / "train-{000003..000004}.tar"))


@pytest.mark.parametrize("rank", [0, 1])
def test_folder_and_its_shards_give_the_same_training_stream(tmp_path, rank):
    write_jpegs(tmp_path / "imgs", 12, classes=3)
    pack_folder(str(tmp_path / "imgs"), str(tmp_path / "shards"), shard_size=5)
    streams = []
    for data, workers in ((tmp_path / "imgs", 0), (tmp_path / "shards/imgs-{000000..000002}.tar", 2 * rank)):
        cfg = build_config("train-ae", set_pairs=[f"data={data}", "image_size=32", "batch_size=2",
                                                  f"num_workers={workers}"])  # workers open their own shard files
        loader, sampler, _ = training_loader(cfg, rank=rank, world_size=2)
        sampler.set_epoch(1, start_batch=1)  # as a resumed run sets it
        streams.append([(batch["images"], batch["labels"]) for batch in loader])
    assert len(streams[0]) == len(streams[1]) == 2  # 12 images, global batch 4: 3 batches, the first skipped
    for (folder_images, folder_labels), (shard_images, shard_labels) in zip(*streams):
        assert torch.equal(folder_labels, shard_labels) and torch.equal(folder_images, shard_images)


def test_a_corrupt_member_is_skipped_and_counted(tmp_path):
    folder = write_jpegs(tmp_path / "imgs", 4, classes=1)
    whole = (folder / "class_0" / "img_000.jpg").read_bytes()
    (folder / "class_0" / "cut.jpg").write_bytes(whole[:-100])  # its header reads: stored as it is
    (folder / "class_0" / "junk.jpg").write_bytes(b"not an image at all")  # cannot be opened: skipped when packing
    index = pack_folder(str(folder), str(tmp_path / "shards"))
    assert (index["images"], index["skipped"]) == (5, 1)
    shards = open_source(str(tmp_path / "shards"))
    batch = collate_skipping([ImageDataset(shards, lambda img, seed: torch.zeros(1))[i] for i in range(len(shards))])
    assert batch["images"].shape[0] == 4 and len(batch["skipped"]) == 1
    assert "shards/imgs-000000.tar:000000_cut.jpg: OSError: image file is truncated" in batch["skipped"][0]


def test_a_truncated_shard_is_one_clear_error_naming_the_file(tmp_path, capsys):
    write_jpegs(tmp_path / "imgs", 6)
    pack_folder(str(tmp_path / "imgs"), str(tmp_path / "shards"), shard_size=3)
    shard = tmp_path / "shards" / "imgs-000001.tar"
    shard.write_bytes(shard.read_bytes()[:3000])
    with pytest.raises(DataError, match=r"shard .*imgs-000001\.tar is truncated: 3000 bytes"):
        open_source(str(tmp_path / "shards"))
    assert main(["train-ae", "--data", str(tmp_path / "shards"), "--out", str(tmp_path / "run"), "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "imgs-000001.tar is truncated" in err and "Traceback" not in err
    (tmp_path / "shards" / INDEX_NAME).unlink()  # without an index the tar headers are scanned: same verdict
    with pytest.raises(DataError, match=r"shard .*imgs-000001\.tar is truncated"):
        open_source(str(tmp_path / "shards"))
    shard.write_bytes(shard.read_bytes()[:1024])  # cut right after the first member: tarfile sees no error
    with pytest.raises(DataError, match=r"shard .*imgs-000001\.tar is truncated: its end-of-archive marker"):
        open_source(str(tmp_path / "shards"))
    shard.write_bytes(b"x" * 2048)
    with pytest.raises(DataError, match=r"shard .*imgs-000001\.tar is not a readable tar file"):
        open_source(str(tmp_path / "shards"))


def test_the_webdataset_library_reads_our_shards_and_we_read_its(tmp_path):
    import webdataset as wds

    write_jpegs(tmp_path / "imgs", 7, classes=3)
    pack_folder(str(tmp_path / "imgs"), str(tmp_path / "shards"), shard_size=3)
    ours = open_source(str(tmp_path / "shards"))
    theirs = list(wds.WebDataset(str(tmp_path / "shards" / "imgs-{000000..000002}.tar"), shardshuffle=False)
                  .decode("rgb8").to_tuple("__key__", "jpg", "cls"))
    assert [key for key, _, _ in theirs] == ours.keys
    assert [label for _, _, label in theirs] == ours.labels
    for i, (_, image, _) in enumerate(theirs):
        assert np.array_equal(image, np.asarray(ours.load(i)[0]))
    # shards written by webdataset's own ShardWriter, with no index: the tar headers are scanned
    (tmp_path / "foreign").mkdir()
    with wds.ShardWriter(str(tmp_path / "foreign" / "part-%03d.tar"), maxcount=4) as sink:
        for i in range(7):
            sink.write({"__key__": f"sample{i:03d}", "png": np.asarray(ours.load(i)[0]), "cls": i % 2})
    foreign = open_labelled(str(tmp_path / "foreign"), "train", "training")
    assert foreign.classes == ["0", "1"] and len(foreign) == 7 and foreign.source.labels == [i % 2 for i in range(7)]
    assert np.array_equal(np.asarray(foreign.source.load(3)[0]), np.asarray(ours.load(3)[0]))  # PNG: lossless


def test_flat_folders_pack_without_labels_and_existing_shards_are_kept(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(3):
        Image.new("RGB", (20, 16), (i * 80, 0, 0)).save(flat / f"x.{i}.png")  # dots in names: keys must not have any
    pack_folder(str(flat), str(tmp_path / "shards"))
    shards = open_source(str(tmp_path / "shards"))
    assert shards.labels == [-1, -1, -1] and shards.classes == [] and shards.keys == ["000000_x_0", "000001_x_1",
                                                                                      "000002_x_2"]
    with pytest.raises(EvaluationError, match="have no .cls labels"):
        open_labelled(str(tmp_path / "shards"), "train", "training")
    with pytest.raises(DataError, match="already holds shards"):
        pack_folder(str(flat), str(tmp_path / "shards"))


def test_pack_command_line(tmp_path, capsys):
    write_jpegs(tmp_path / "imgs", 5)
    assert main(["pack", str(tmp_path / "imgs"), "--out", str(tmp_path / "s"), "--shard-size", "2",
                 "--max-side", "32", "--quality", "80", "--prefix", "train"]) == 0
    assert "packed 5 images (2 classes, 0 unreadable skipped) into 3 shards" in capsys.readouterr().out
    assert len(open_source(str(tmp_path / "s" / "train-{000000..000002}.tar"))) == 5
    assert main(["pack", str(tmp_path / "imgs"), "--out", str(tmp_path / "t"), "--quality", "0"]) == 2
    assert "--quality must be 1..100" in capsys.readouterr().err


FAST = ["num_workers=0", "progress=false", "log_every=1", "image_every=100", "checkpoint_every=2",
        "precision=fp32", "image_size=32", "batch_size=4"]


def test_train_ae_on_shards_resumes_exactly(tmp_path, monkeypatch):
    write_jpegs(tmp_path / "imgs", 12, classes=2)
    pack_folder(str(tmp_path / "imgs"), str(tmp_path / "shards"), shard_size=5)
    data = tmp_path / "shards" / "imgs-{000000..000002}.tar"
    assert main(["train-ae", "--data", str(data), "--out", str(tmp_path / "two"), "--steps", "2",
                 *[f"--set={pair}" for pair in FAST]]) == 0
    rows = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2] and all(np.isfinite(row["loss"]) for row in rows)
    # 4 steps whole against 4 steps with a crash after the checkpoint at step 2 and a resume
    cfg = build_config("train-ae", set_pairs=FAST + [f"data={data}", "steps=4"])
    train_autoencoder(cfg, str(tmp_path / "whole"))
    real_step, calls = stage1.autoencoder_step, []

    def crash_at_step_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("simulated crash")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(stage1, "autoencoder_step", crash_at_step_3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_autoencoder(cfg, str(tmp_path / "part"))
    monkeypatch.setattr(stage1, "autoencoder_step", real_step)
    train_autoencoder(cfg, str(tmp_path / "part"), resume=True)
    whole = load_checkpoint(tmp_path / "whole" / "checkpoints" / "latest.pt")
    part = load_checkpoint(tmp_path / "part" / "checkpoints" / "latest.pt")
    assert part["step"] == 4
    for key, value in whole["model"].items():
        assert torch.equal(value, part["model"][key]), key


def test_probe_and_the_knn_monitor_on_shards(tmp_path):
    from spotart.evaluation.knn import KnnMonitor
    from spotart.evaluation.probe import ProbeOptions, run_probe
    from spotart.evaluation.toydata import write_toy_dataset
    from spotart.models import LAYERS

    train, val = write_toy_dataset(tmp_path / "toy", train_per_class=8, val_per_class=4)
    pack_folder(str(train), str(tmp_path / "shards" / "train"))
    pack_folder(str(val), str(tmp_path / "shards" / "val"))
    report = run_probe(str(tmp_path / "shards" / "train" / "train-000000.tar"), str(tmp_path / "shards" / "val"),
                       tmp_path / "probe", init="random", options=ProbeOptions(image_size=32, workers=0,
                                                                              progress=False))
    assert (report["train_images"], report["val_images"], report["classes"]) == (24, 12, 3)
    assert all(report[layer] >= 90.0 for layer in LAYERS), report
    monitor = KnnMonitor(str(tmp_path / "shards" / "train"), str(tmp_path / "shards" / "val"), 32, every=1)
    assert monitor.train_labels.tolist() == FolderSource(train).labels
    assert monitor.val_labels.tolist() == FolderSource(val).labels


def test_reproduce_reads_a_folder_of_train_and_val_shards(tmp_path):
    from spotart.evaluation.reproduce import run_reproduce
    from spotart.evaluation.toydata import write_toy_dataset

    train, val = write_toy_dataset(tmp_path / "toy", train_per_class=8, val_per_class=4)
    pack_folder(str(train), str(tmp_path / "shards" / "train"))
    pack_folder(str(val), str(tmp_path / "shards" / "val"))
    table = run_reproduce("tiny", data=str(tmp_path / "shards"), work=str(tmp_path / "work"),
                          results=str(tmp_path / "results"), models="full")
    assert list(table) == ["full"] and all(0 <= value <= 100 for value in table["full"].values())
    config = (tmp_path / "work" / "full" / "run" / "config.yaml").read_text()
    assert f"data: {tmp_path / 'shards' / 'train'}" in config


def test_train_supervised_on_labelled_shards(tmp_path):
    write_jpegs(tmp_path / "imgs", 8, classes=2)
    pack_folder(str(tmp_path / "imgs"), str(tmp_path / "shards"))
    assert main(["train-supervised", "--data", str(tmp_path / "shards"), "--out", str(tmp_path / "run"),
                 "--image-size", "32", "--batch-size", "4", "--steps", "1",
                 *[f"--set={pair}" for pair in ("num_workers=0", "progress=false", "precision=fp32")]]) == 0
    assert json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 1
