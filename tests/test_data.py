import numpy as np
import pytest
import torch
from PIL import Image

from spotart.data import (
    Augment,
    CenterCrop,
    DataError,
    FolderSource,
    ImageDataset,
    SeededSampler,
    collate_skipping,
    open_source,
)

from .helpers import write_images


def test_class_folders_give_labels_and_flat_folders_none(tmp_path):
    labelled = FolderSource(write_images(tmp_path / "a", 6, classes=3))
    assert labelled.classes == ["class_0", "class_1", "class_2"] and sorted(set(labelled.labels)) == [0, 1, 2]
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (20, 20)).save(flat / "x.png")
    assert FolderSource(flat).labels == [-1]


def test_missing_and_empty_paths_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        open_source(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files"):
        open_source(str(tmp_path / "empty"))
    with pytest.raises(DataError, match="no data given"):
        open_source("")


def test_stl10_missing_says_how_to_download(tmp_path):
    with pytest.raises(DataError, match="download=true"):
        open_source("stl10", data_root=str(tmp_path))


def test_unreadable_files_are_skipped_and_reported(tmp_path):
    folder = write_images(tmp_path / "d", 4, classes=1)
    (folder / "class_0" / "broken.jpg").write_bytes(b"not an image at all")
    (folder / "class_0" / "empty.png").write_bytes(b"")
    Image.new("RGB", (3, 3)).save(folder / "class_0" / "tiny.png")
    grey16 = Image.fromarray((np.arange(400).reshape(20, 20) * 100).astype(np.uint16))
    grey16.save(folder / "class_0" / "deep.png")
    Image.new("CMYK", (20, 20), (0, 255, 0, 0)).save(folder / "class_0" / "cmyk.jpg")
    Image.new("L", (20, 20), 128).save(folder / "class_0" / "grey.jpg")
    Image.new("P", (20, 20)).save(folder / "class_0" / "palette.gif")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        folder / "class_0" / "whole.jpg")
    whole = (folder / "class_0" / "whole.jpg").read_bytes()
    (folder / "class_0" / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    ds = ImageDataset(FolderSource(folder), Augment(size=16))
    batch = collate_skipping([ds[(i, i)] for i in range(len(ds))])
    # 4 PNGs + 16-bit grey + CMYK + 8-bit grey + palette + the whole JPEG, all converted to RGB
    assert batch["images"].shape == (9, 3, 16, 16)
    assert len(batch["skipped"]) == 4
    assert any("broken.jpg" in r for r in batch["skipped"]) and any("only 3x3" in r for r in batch["skipped"])
    assert any("truncated.jpg" in r for r in batch["skipped"]) and any("empty.png" in r for r in batch["skipped"])
    assert batch["images"].min() >= -1 and batch["images"].max() <= 1


def test_augmentation_is_a_function_of_the_seed(image_folder):
    source = FolderSource(image_folder)
    img, _ = source.load(0)
    aug = Augment(size=32)
    assert torch.equal(aug(img, 5), aug(img, 5))
    assert not torch.equal(aug(img, 5), aug(img, 6))
    assert aug(img, 5).shape == (3, 32, 32)


def test_center_crop_view():
    img = Image.new("RGB", (100, 80), (255, 0, 0))
    out = CenterCrop(32)(img)
    assert out.shape == (3, 32, 32) and torch.allclose(out[0], torch.ones(32, 32))


def test_sampler_splits_ranks_and_resumes_mid_epoch():
    full = list(SeededSampler(40, 4, seed=1))
    assert len(full) == 40 and len({i for i, _ in full}) == 40
    ranks = [list(SeededSampler(40, 4, seed=1, rank=r, world_size=2)) for r in range(2)]
    assert not {i for i, _ in ranks[0]} & {i for i, _ in ranks[1]}
    resumed = SeededSampler(40, 4, seed=1)
    resumed.set_epoch(0, start_batch=3)
    assert list(resumed) == full[12:]
    nxt = SeededSampler(40, 4, seed=1)
    nxt.set_epoch(1)
    assert [i for i, _ in nxt] != [i for i, _ in full]


def test_sampler_rejects_a_dataset_smaller_than_a_batch():
    with pytest.raises(DataError, match="fewer than one global batch"):
        SeededSampler(3, 4, seed=0)
