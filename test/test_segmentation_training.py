"""A tiny real segmentation training run on real MSRS frames: the loss falls, and resume continues exactly."""

from pathlib import Path

import cv2
import pytest
import torch

from seafusion_ros.data.labels import BOX_CLASSES
from seafusion_ros.data.pseudo_masks import write_pseudo_masks
from seafusion_ros.data.segmentation_data import SegmentationDataset, read_mask
from seafusion_ros.models.checkpoint import CheckpointError
from seafusion_ros.models.segmentation import bisenet_lite, load_segmentation_model
from seafusion_ros.training.ohem_loss import SemanticLoss
from seafusion_ros.training.segmentation_trainer import (
    SegmentationTrainConfig,
    recalibrate_batch_norm,
    train_segmentation,
)

MSRS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "msrs_dev"
STEMS = ["00004N", "00024N", "00095D", "00186D", "00258D", "00828N"]
SIZE = (48, 64)


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    if not MSRS.is_dir():
        pytest.skip("shared msrs_dev data not found next to the repository")
    root = tmp_path_factory.mktemp("frames")
    write_pseudo_masks(MSRS / "ir", MSRS / "detection_yolo", root / "masks", STEMS)
    return MSRS / "vi", root / "masks"


def _config(epochs: int) -> SegmentationTrainConfig:
    return SegmentationTrainConfig(epochs=epochs, batch_size=3, lr=0.01, warmup_iters=2, progress=False)


def _sets(frames):
    images, masks = frames
    train = SegmentationDataset(images, masks, 4, STEMS, SIZE, train=True, crop=(40, 56), seed=3)
    plain = SegmentationDataset(images, masks, 4, STEMS, SIZE)
    return train, plain


def _loss(model, dataset) -> float:
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    masks = torch.stack([dataset[i][1] for i in range(len(dataset))])
    model.eval()
    with torch.no_grad():
        return float(SemanticLoss()(*model.logits_and_aux(images), masks))


def test_augmented_samples_have_the_crop_size_and_valid_labels(frames):
    train, plain = _sets(frames)
    image, mask = train[0]
    assert image.shape == (3, 40, 56) and mask.shape == (40, 56)
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    assert set(mask.unique().tolist()) <= {0, 1, 2, 3, 255}
    assert plain[0][0].shape == (3, *SIZE)


def test_loss_falls_and_resume_continues_the_same_run(frames, tmp_path):
    torch.manual_seed(0)
    train, plain = _sets(frames)
    model = bisenet_lite(4)
    before = _loss(model, plain)
    history = train_segmentation(model, train, plain, _config(12), tmp_path / "full", BOX_CLASSES.card())
    after = _loss(model, plain)
    assert len(history) == 12 and "val_miou" in history[-1]
    assert after < 0.85 * before, (before, after)
    loaded, card = load_segmentation_model(tmp_path / "full" / "segmentation.pt")
    assert loaded.num_classes == 4 and not loaded.training
    assert card["classes"] == list(BOX_CLASSES.names)
    assert card["validation"]["miou"] == history[-1]["val_miou"]
    assert len((tmp_path / "full" / "log.jsonl").read_text().splitlines()) == 12

    torch.manual_seed(0)
    interrupted = bisenet_lite(4)
    train, plain = _sets(frames)
    train_segmentation(interrupted, train, None, _config(4), tmp_path / "sliced", BOX_CLASSES.card(),
                       stop_after_epoch=2)
    assert not (tmp_path / "sliced" / "segmentation.pt").exists()
    with pytest.raises(FileExistsError):
        train_segmentation(bisenet_lite(4), train, None, _config(4), tmp_path / "sliced", BOX_CLASSES.card())
    resumed = bisenet_lite(4)
    train_segmentation(resumed, train, None, _config(4), tmp_path / "sliced", BOX_CLASSES.card(), resume=True)
    torch.manual_seed(0)
    straight = bisenet_lite(4)
    train_segmentation(straight, train, None, _config(4), tmp_path / "straight", BOX_CLASSES.card())
    for (key, a), b in zip(resumed.state_dict().items(), straight.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), key


def test_real_pixel_labels_with_more_classes_are_accepted_and_bad_ids_refused(frames, tmp_path):
    images, masks = frames
    labels = tmp_path / "labels"
    labels.mkdir()
    for i, stem in enumerate(STEMS[:2]):
        mask = read_mask(masks / f"{stem}.png", 4)
        mask[mask == 1] = 8 - i  # pretend MSRS ids up to 8 ("bump")
        cv2.imwrite(str(labels / f"{stem}.png"), mask)
    nine = SegmentationDataset(images, labels, 9, STEMS[:2], SIZE)
    assert int(nine[0][1][nine[0][1] != 255].max()) == 8
    with pytest.raises(ValueError, match=r"class ids \[8\] outside 0..3"):
        SegmentationDataset(images, labels, 4, STEMS[:1], SIZE)
    cv2.imwrite(str(labels / "colour.png"), cv2.cvtColor(read_mask(masks / f"{STEMS[0]}.png", 4),
                                                         cv2.COLOR_GRAY2BGR))
    with pytest.raises(ValueError, match="single-channel"):
        read_mask(labels / "colour.png", 9)


def test_cli_trains_on_the_training_split_and_exports_a_documented_model(tmp_path, capsys):
    if not MSRS.is_dir():
        pytest.skip("shared msrs_dev data not found next to the repository")
    from seafusion_ros.cli.train_segmentation import main

    argv = ["--images", str(MSRS / "vi"), "--pseudo-from", str(MSRS), "--out", str(tmp_path / "run"),
            "--epochs", "1", "--size", "32x48", "--threads", "1", "--no-progress",
            "--export", str(tmp_path / "seg.pt")]
    assert main(argv) == 0
    model, card = load_segmentation_model(tmp_path / "seg.pt")
    assert card["data"]["train_frames"] == 216 and card["data"]["validation_frames"] == 49
    assert card["split"]["validation_frames"] == [[400, 521], [1100, 1200]]
    assert card["command"].endswith(" ".join(argv))
    assert set(card["validation"]["box_ap50"]) == {"person", "bicycle", "car"}
    assert main(argv) == 2 and "exists" in capsys.readouterr().err


def test_a_last_batch_of_one_frame_is_dropped_not_fed_to_batch_norm(frames, tmp_path):
    images, masks = frames
    train = SegmentationDataset(images, masks, 4, STEMS[:5], SIZE, train=True, crop=(40, 56), seed=3)
    config = SegmentationTrainConfig(epochs=2, batch_size=4, lr=0.01, warmup_iters=2, progress=False)
    history = train_segmentation(bisenet_lite(4), train, None, config, tmp_path / "run", BOX_CLASSES.card())
    assert len(history) == 2 and all(h["loss"] == h["loss"] for h in history)


def test_adamw_trains_the_same_groups_and_resume_keeps_the_optimiser(frames, tmp_path):
    torch.manual_seed(0)
    train, plain = _sets(frames)
    model = bisenet_lite(4)
    before = _loss(model, plain)
    config = SegmentationTrainConfig(epochs=8, batch_size=3, lr=1e-3, head_lr_multiplier=1.0, warmup_iters=2,
                                     optimizer="adamw", progress=False)
    train_segmentation(model, train, None, config, tmp_path / "run", BOX_CLASSES.card(), stop_after_epoch=4)
    with pytest.raises(CheckpointError, match="trained with adamw, not sgd"):
        train_segmentation(bisenet_lite(4), train, None, _config(8), tmp_path / "run", BOX_CLASSES.card(),
                           resume=True)
    train_segmentation(model, train, None, config, tmp_path / "run", BOX_CLASSES.card(), resume=True)
    assert _loss(model, plain) < 0.8 * before
    _, card = load_segmentation_model(tmp_path / "run" / "segmentation.pt")
    assert card["train_config"]["optimizer"] == "adamw"
    with pytest.raises(ValueError, match="optimizer must be one of sgd, adamw"):
        train_segmentation(bisenet_lite(4), train, None, SegmentationTrainConfig(optimizer="adam", progress=False),
                           tmp_path / "other", BOX_CLASSES.card())


def test_batch_norm_statistics_are_recomputed_over_the_training_frames(frames, tmp_path):
    torch.manual_seed(0)
    train, plain = _sets(frames)
    model = bisenet_lite(4)
    train_segmentation(model, train, None, _config(6), tmp_path / "run", BOX_CLASSES.card())
    calibrated = {name: value.clone() for name, value in model.named_buffers() if "running" in name}
    layers = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for layer in layers:  # statistics that trail the weights
        layer.running_mean += 3.0
        layer.running_var *= 4.0
    assert recalibrate_batch_norm(model, train, 3) == len(layers)
    for name, value in model.named_buffers():  # the last epoch ended with the same recomputation
        if "running" in name:
            assert torch.allclose(value, calibrated[name], atol=1e-5), name
    assert train.train and all(layer.momentum == 0.1 for layer in layers)
