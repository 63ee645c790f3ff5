"""seafusion-fuse --masks: class-id masks of real MSRS pairs beside the fused images, under the same failure
rules as the fused output."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from seafusion_ros.cli.fuse import main as fuse_main
from seafusion_ros.imaging.image_files import temporary_path
from seafusion_ros.models.checkpoint import save_checkpoint
from seafusion_ros.models.segmentation import ARCH, bisenet_lite, segmentation_card_fields
from seafusion_ros.weights import load_segmenter

STEMS = ["00416D", "01106N"]  # a day frame with people and cars, a night frame
CROP = (slice(200, 264), slice(300, 380))


def _pairs(msrs_dev: Path, root: Path, crop: tuple[slice, slice] | None = None) -> tuple[Path, Path]:
    """IR and visible folders with STEMS of msrs_dev: linked, or cropped copies when ``crop`` is given."""
    folders = root / "ir", root / "vi"
    for folder in folders:
        folder.mkdir(parents=True)
        for stem in STEMS:
            source = msrs_dev / folder.name / f"{stem}.png"
            if crop is None:
                (folder / source.name).symlink_to(source)
            else:
                cv2.imwrite(str(folder / source.name), cv2.imread(str(source), cv2.IMREAD_UNCHANGED)[crop])
    return folders


def _read_mask(path: Path) -> np.ndarray:
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert mask is not None, path
    return mask


def test_masks_of_the_bundled_segmentation_model_are_mono8_class_ids(msrs_dev, tmp_path, capsys):
    ir_dir, vis_dir = _pairs(msrs_dev, tmp_path)
    out, masks = tmp_path / "fused", tmp_path / "masks"
    assert fuse_main(["--ir", str(ir_dir), "--vis", str(vis_dir), "--out", str(out), "--masks", str(masks),
                      "--precision", "fp32", "--device", "cpu", "--no-progress"]) == 0
    assert capsys.readouterr().out == f"fused 2 pair(s) into {out}, masks into {masks}; 0 unmatched, 0 failed\n"
    num_classes = load_segmenter(None)[0].num_classes
    assert sorted(p.name for p in masks.iterdir()) == [f"{stem}.png" for stem in STEMS]  # nothing temporary
    for stem in STEMS:
        mask = _read_mask(masks / f"{stem}.png")
        assert mask.dtype == np.uint8 and mask.shape == cv2.imread(str(ir_dir / f"{stem}.png"), 0).shape
        assert mask.max() < num_classes
        assert (out / f"{stem}.png").is_file()
    assert (_read_mask(masks / "00416D.png") > 0).any(), "the people and cars of 00416D are segmented"


def test_segmentation_weights_choose_the_model_behind_the_masks(msrs_dev, random_fusion_weights, tmp_path):
    model = bisenet_lite(3)
    card = {**segmentation_card_fields(model), "classes": ["a", "b", "c"], "palette": [[0, 0, 0]] * 3}
    weights = save_checkpoint(tmp_path / "seg3.pt", model, ARCH, card)
    ir_dir, vis_dir = _pairs(msrs_dev, tmp_path / "data", CROP)
    masks = tmp_path / "masks"
    assert fuse_main(["--ir", str(ir_dir), "--vis", str(vis_dir), "--out", str(tmp_path / "fused"), "--masks",
                      str(masks), "--weights", str(random_fusion_weights), "--segmentation-weights", str(weights),
                      "--device", "cpu", "--no-progress"]) == 0
    for stem in STEMS:
        mask = _read_mask(masks / f"{stem}.png")
        assert mask.shape == (64, 80) and mask.dtype == np.uint8 and mask.max() < 3


def test_a_full_disk_in_the_masks_folder_stops_the_run_naming_the_mask(msrs_dev, random_fusion_weights, tmp_path,
                                                                        capsys):
    ir_dir, vis_dir = _pairs(msrs_dev, tmp_path / "data", CROP)
    out, masks = tmp_path / "fused", tmp_path / "masks"
    masks.mkdir()
    temporary_path(masks / f"{STEMS[0]}.png").symlink_to("/dev/full")
    code = fuse_main(["--ir", str(ir_dir), "--vis", str(vis_dir), "--out", str(out), "--masks", str(masks),
                      "--weights", str(random_fusion_weights), "--device", "cpu", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1
    assert f"failed {STEMS[0]}: cannot write {masks / STEMS[0]}.png: No space left on device" in captured.err
    assert f"every further write into {masks} would fail the same way, so 1 pair(s) were not tried" in captured.err
    assert captured.out == f"fused 0 pair(s) into {out}, masks into {masks}; 0 unmatched, 1 failed, 1 not tried\n"
    assert list(masks.iterdir()) == []  # the temporary file went with the error


def test_masks_option_mistakes_are_refused_before_the_models_load(msrs_dev, tmp_path, capsys):
    ir_dir, vis_dir = _pairs(msrs_dev, tmp_path / "data", CROP)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")  # loading it would be an error too: the checks come first
    common = ["--ir", str(ir_dir), "--vis", str(vis_dir), "--weights", str(junk), "--no-progress"]
    for argv, message in (
            (["--out", str(tmp_path / "o"), "--segmentation-weights", str(junk)], "used only with --masks DIR"),
            (["--out", str(tmp_path / "o"), "--masks", str(tmp_path / "o")], "--masks must be another folder")):
        with pytest.raises(SystemExit) as exit_info:
            fuse_main([*common, *argv])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    blocker = tmp_path / "results.txt"
    blocker.write_text("not a folder")
    assert fuse_main([*common, "--out", str(tmp_path / "o"), "--masks", str(blocker / "masks")]) == 2
    assert capsys.readouterr().err == (f"seafusion-fuse: error: cannot create {blocker / 'masks'}: {blocker} is not "
                                       "a folder\n")
    assert not (tmp_path / "o").exists()
    missing = tmp_path / "missing_seg.pt"
    assert fuse_main(["--ir", str(ir_dir), "--vis", str(vis_dir), "--out", str(tmp_path / "o"), "--masks",
                      str(tmp_path / "m"), "--segmentation-weights", str(missing), "--device", "cpu",
                      "--no-progress"]) == 2
    assert f"segmentation weights file not found: {missing}" in capsys.readouterr().err
