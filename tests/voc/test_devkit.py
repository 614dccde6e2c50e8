"""Reading the VOCdevkit layout: splits, annotations, the devkit's label and box conventions, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from spotart.voc import devkit
from spotart.voc.metrics import VOC_CLASSES
from spotart.voc.toy import voc_palette, write_toy_voc


def test_toy_dataset_reads_back_like_voc(voc2007):
    folder = devkit.year_folder(voc2007, "2007")
    assert folder == voc2007 / "VOCdevkit" / "VOC2007"
    ids = devkit.read_split(folder, "trainval")
    assert len(ids) == 64 and len(devkit.read_split(folder, "test")) == 32
    annotations = devkit.read_annotations(folder, ids)
    for ann in annotations[:10]:
        image = Image.open(folder / "JPEGImages" / f"{ann.image_id}.jpg")
        assert image.size == (ann.width, ann.height)
        # devkit boxes are 1-based and inclusive: inside [1, width] x [1, height]
        assert (ann.boxes[:, :2] >= 1).all() and (ann.boxes[:, 2] <= ann.width).all()
        assert (ann.boxes[:, 3] <= ann.height).all()
        assert set(ann.labels.tolist()) <= {0, 1, 2}  # aeroplane, bicycle, bird
    # the per-class split files agree with the annotations, in the devkit's 1 / 0 / -1 convention
    labels = devkit.classification_labels(annotations)
    for column, name in enumerate(VOC_CLASSES[:3]):
        rows = (folder / "ImageSets" / "Main" / f"{name}_trainval.txt").read_text().split("\n")
        listed = np.array([int(row.split()[1]) for row in rows if row.strip()])
        np.testing.assert_array_equal(listed, labels[:, column])
    assert (labels[:, 3:] == -1).all()


def test_classification_labels_mark_difficult_only_classes_zero():
    ann = devkit.Annotation("x", 10, 10, np.zeros((3, 4), np.float32), np.array([0, 1, 1]),
                            np.array([True, True, False]))
    labels = devkit.classification_labels([ann])
    assert labels[0, 0] == 0  # only a difficult aeroplane
    assert labels[0, 1] == 1  # one difficult and one normal bicycle: present
    assert labels[0, 2] == -1


def test_box_conventions_round_trip():
    devkit_box = np.array([[1.0, 1.0, 10.0, 20.0]])
    torchvision_box = devkit.to_torchvision_boxes(devkit_box)
    # pixels 1..10 (1-based inclusive) are 0..9 0-based, i.e. [0, 10) with an exclusive end: width 10 either way
    np.testing.assert_array_equal(torchvision_box, [[0.0, 0.0, 10.0, 20.0]])
    np.testing.assert_array_equal(devkit.to_devkit_boxes(torchvision_box), devkit_box)


def test_masks_are_palette_pngs_with_void_borders(voc2007):
    folder = devkit.year_folder(voc2007, "2007")
    image_id = devkit.read_split(folder, "test")[0]
    with Image.open(folder / "SegmentationClass" / f"{image_id}.png") as png:
        assert png.mode == "P" and png.getpalette()[:9] == voc_palette()[:9]
    mask = devkit.load_mask(folder, image_id)
    values = set(np.unique(mask).tolist())
    assert 0 in values and devkit.IGNORE_INDEX in values and values & {1, 2, 3}


def test_missing_dataset_names_the_layout_and_download(tmp_path):
    with pytest.raises(devkit.VOCError, match=r"VOCdevkit/VOC2012/JPEGImages.*--download"):
        devkit.year_folder(tmp_path, "2012")


def test_missing_split_lists_the_available_ones(voc2007):
    folder = devkit.year_folder(voc2007, "2007")
    with pytest.raises(devkit.VOCError, match=r"val\.txt not found \(available: test, trainval\)"):
        devkit.read_split(folder, "val")


def test_bad_annotation_names_the_file(tmp_path):
    root = tmp_path / "voc"
    folder = write_toy_voc(root, "2007", {"trainval": 2}, size=(64, 64))
    xml = folder / "Annotations" / "000000.xml"
    xml.write_text(xml.read_text().replace("<name>aeroplane</name>", "<name>zeppelin</name>")
                   .replace("<name>bicycle</name>", "<name>zeppelin</name>")
                   .replace("<name>bird</name>", "<name>zeppelin</name>"))
    with pytest.raises(devkit.VOCError, match=r"000000\.xml: unknown class 'zeppelin'"):
        devkit.parse_annotation(xml)
    xml.write_text("<annotation><object>")
    with pytest.raises(devkit.VOCError, match=r"000000\.xml cannot be read"):
        devkit.parse_annotation(xml)


def test_unreadable_image_is_skipped_with_a_warning(tmp_path, caplog):
    folder = write_toy_voc(tmp_path, "2007", {"trainval": 2}, size=(64, 64))
    (folder / "JPEGImages" / "000001.jpg").write_bytes(b"not a jpeg")
    assert devkit.load_image(folder, "000000").size[0] >= 64
    assert devkit.load_image(folder, "000001") is None
    assert "000001.jpg" in caplog.text
