"""Pseudo-masks from YOLO boxes: warm pixels inside a box are the object, the rest of the box ignore; or, as
the image-free control, the inner part of each box."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from seafusion_ros.data.pseudo_masks import Box, box_mask, pseudo_mask, read_yolo_boxes, write_pseudo_masks

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MSRS = SHARED / "data" / "msrs_dev"


def _scene() -> np.ndarray:
    ir = np.full((60, 80), 30, np.uint8)
    ir[20:40, 30:40] = 200  # a warm body
    return ir


def test_warm_pixels_inside_a_box_are_the_object_and_the_rest_of_the_box_is_ignored():
    mask = pseudo_mask(_scene(), [Box(0, 25, 15, 45, 45)])
    assert (mask[20:40, 30:40] == 1).all()
    box = mask[15:45, 25:45].copy()
    box[5:25, 5:15] = 0
    assert set(np.unique(box)) == {0, 255} and (mask[15:45, 25:45][box == 255] == 255).all()
    outside = np.ones_like(mask, bool)
    outside[15:45, 25:45] = False
    assert (mask[outside] == 0).all()


def test_box_without_a_warm_region_is_ignored_as_a_whole():
    ir = np.full((60, 80), 30, np.uint8)
    ir[20:40, 30:40] = 36  # barely warmer than its surroundings
    mask = pseudo_mask(ir, [Box(2, 25, 15, 45, 45)])
    assert (mask[15:45, 25:45] == 255).all()


def test_smaller_overlapping_box_decides_its_pixels():
    ir = _scene()
    ir[40:50, 28:42] = 180  # the warm bicycle below the rider
    mask = pseudo_mask(ir, [Box(1, 22, 12, 48, 55), Box(0, 28, 18, 42, 41)])  # bicycle, rider
    assert (mask[20:40, 30:40] == 1).all()  # rider pixels: person (the smaller box)
    assert (mask[42:50, 28:42] == 2).all()  # warm pixels only in the bicycle box: bicycle


def test_yolo_parsing_clips_and_reports_bad_lines(tmp_path):
    good = tmp_path / "a.txt"
    good.write_text("0 0.5 0.5 0.25 0.5\n\n2 0.99 0.1 0.2 0.4\n")
    boxes = read_yolo_boxes(good, 100, 200)
    assert boxes[0] == Box(0, 75, 25, 125, 75)
    assert boxes[1].x1 == 200 and boxes[1].y0 == 0
    assert read_yolo_boxes(tmp_path / "missing.txt", 100, 200) == []
    bad = tmp_path / "b.txt"
    bad.write_text("0 0.5 0.5 0.25\n")
    with pytest.raises(ValueError, match="b.txt:1"):
        read_yolo_boxes(bad, 100, 200)


def test_rejects_non_8bit_infrared():
    with pytest.raises(ValueError, match="8-bit"):
        pseudo_mask(np.zeros((10, 10), np.uint16), [])


def test_real_msrs_masks_mark_warm_objects_inside_their_boxes(tmp_path):
    if not MSRS.is_dir():
        pytest.skip("shared msrs_dev data not found next to the repository")
    stems = ["00004N", "00404D", "00095D", "01066N"]
    paths = write_pseudo_masks(MSRS / "ir", MSRS / "detection_yolo", tmp_path, stems=stems)
    for stem, path in zip(stems, paths, strict=True):
        mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        ir = cv2.imread(str(MSRS / "ir" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
        boxes = read_yolo_boxes(MSRS / "detection_yolo" / f"{stem}.txt", *ir.shape)
        assert mask.shape == ir.shape and set(np.unique(mask)) <= {0, 1, 2, 3, 255}
        inside = np.zeros(mask.shape, bool)
        for b in boxes:
            inside[b.y0:b.y1, b.x0:b.x1] = True
        assert (mask[~inside] == 0).all() and (mask[inside] != 0).all()
        objects = (mask >= 1) & (mask <= 3)
        assert objects.any(), stem
        assert ir[objects].mean() > ir[mask == 0].mean() + 20
    # cached: a second call keeps the existing files
    before = paths[0].stat().st_mtime_ns
    write_pseudo_masks(MSRS / "ir", MSRS / "detection_yolo", tmp_path, stems=stems)
    assert paths[0].stat().st_mtime_ns == before


def test_box_labels_are_the_inner_part_of_each_box_whatever_the_image():
    mask = box_mask((60, 80), [Box(2, 20, 10, 40, 50)])  # 20 wide, 40 tall: bands of 2 and 4 pixels
    assert (mask[14:46, 22:38] == 3).all()
    band = mask[10:50, 20:40].copy()
    band[4:36, 2:18] = 0
    assert set(np.unique(band)) == {0, 255} and (band != 0).sum() == 20 * 40 - 16 * 32
    assert (mask == 0).sum() == 60 * 80 - 20 * 40


def test_box_labels_overlaps_small_boxes_and_bad_borders():
    mask = box_mask((60, 80), [Box(1, 10, 10, 50, 50), Box(0, 20, 15, 30, 40), Box(2, 60, 5, 63, 30)])
    assert (mask[18:38, 21:29] == 1).all()  # the rider's box decides its inner pixels
    assert mask[15, 25] == 255  # its band is ignore, over the bicycle's inner part
    assert (mask[14:46, 14:20] == 2).all()
    assert (mask[5:30, 60:63] == 255).all()  # 3 pixels wide: too small to label
    assert (box_mask((60, 80), [Box(0, 20, 10, 40, 50)], border=0.0)[11:49, 21:39] == 1).all()  # 1-pixel band
    with pytest.raises(ValueError, match="border"):
        box_mask((60, 80), [], border=0.5)


def test_box_labels_come_from_the_boxes_only_and_accept_16_bit_infrared(tmp_path):
    (tmp_path / "ir").mkdir()
    (tmp_path / "boxes").mkdir()
    cv2.imwrite(str(tmp_path / "ir" / "a.png"), np.full((40, 60), 4000, np.uint16))
    (tmp_path / "boxes" / "a.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    [path] = write_pseudo_masks(tmp_path / "ir", tmp_path / "boxes", tmp_path / "masks", scheme="box")
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (40, 60) and (mask[12:28, 18:42] == 1).all() and mask[10, 15] == 255
    with pytest.raises(ValueError, match="unknown label scheme 'hot'"):
        write_pseudo_masks(tmp_path / "ir", tmp_path / "boxes", tmp_path / "m2", scheme="hot")
    with pytest.raises(ValueError, match="8-bit"):
        write_pseudo_masks(tmp_path / "ir", tmp_path / "boxes", tmp_path / "m3")
