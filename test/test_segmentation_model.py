"""The light segmentation network, its checkpoint loader and its use through the engine."""

from pathlib import Path

import numpy as np
import pytest
import torch

from seafusion_ros.data.labels import BOX_CLASSES, MSRS_CLASSES
from seafusion_ros.inference.engine import FusionEngine
from seafusion_ros.models.checkpoint import CheckpointError, save_checkpoint
from seafusion_ros.models.seafusion import seafusion
from seafusion_ros.models.segmentation import (
    ARCH,
    bisenet_lite,
    load_segmentation_model,
    segmentation_card_fields,
)


def _save(path: Path, model, label_set=BOX_CLASSES) -> Path:
    return save_checkpoint(path, model, ARCH, {**label_set.card(), **segmentation_card_fields(model)})


def test_size_is_light_and_trainable_from_scratch():
    n = sum(p.numel() for p in bisenet_lite(4).parameters())
    assert 500_000 <= n <= 2_000_000


@pytest.mark.parametrize("size", [(64, 80), (50, 70), (33, 47)])
def test_eval_returns_main_logits_at_input_size_and_train_returns_main_and_aux(size):
    torch.manual_seed(0)
    model = bisenet_lite(9)
    x = torch.rand(2, 3, *size)
    model.train()
    main, aux = model(x)
    assert main.shape == aux.shape == (2, 9, *size)
    model.eval()
    with torch.no_grad():
        out = model(x)
        assert isinstance(out, torch.Tensor) and out.shape == (2, 9, *size)
        both = model.logits_and_aux(x)
    assert torch.equal(both[0], out)
    assert not torch.equal(both[1], out)


def test_heads_are_separate_from_backbone():
    model = bisenet_lite(4)
    heads = {id(p) for p in model.head_parameters()}
    backbone = {id(p) for p in model.backbone.parameters()}
    assert heads and backbone and not heads & backbone
    assert len(heads) + len(backbone) == len(list(model.parameters()))


def test_checkpoint_round_trip_keeps_outputs_and_card(tmp_path):
    torch.manual_seed(1)
    model = bisenet_lite(MSRS_CLASSES.num_classes, widths=(8, 16, 24, 32, 48), context=32)
    model.train()
    model(torch.rand(4, 3, 64, 64))  # move the BatchNorm running statistics away from their defaults
    model.eval()
    path = _save(tmp_path / "seg.pt", model, MSRS_CLASSES)
    loaded, card = load_segmentation_model(path)
    assert not loaded.training
    assert card["classes"] == list(MSRS_CLASSES.names) and card["num_classes"] == 9
    assert card["palette"][1] == [64, 0, 128]
    x = torch.rand(1, 3, 48, 64)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x))


def test_loader_refuses_fusion_checkpoints_and_incomplete_cards(tmp_path):
    fusion = save_checkpoint(tmp_path / "fusion.pt", seafusion(), "seafusion", {})
    with pytest.raises(CheckpointError, match="not a bisenet_lite"):
        load_segmentation_model(fusion)
    bare = save_checkpoint(tmp_path / "bare.pt", bisenet_lite(4), ARCH, {"num_classes": 4})
    with pytest.raises(CheckpointError, match="lacks"):
        load_segmentation_model(bare)
    card = {**BOX_CLASSES.card(), "num_classes": 5}
    wrong = save_checkpoint(tmp_path / "wrong.pt", bisenet_lite(5), ARCH, card)
    with pytest.raises(CheckpointError, match="5 classes but 4 names"):
        load_segmentation_model(wrong)
    with pytest.raises(CheckpointError, match="not found"):
        load_segmentation_model(tmp_path / "missing.pt")


def test_engine_segments_with_the_loaded_model(tmp_path):
    torch.manual_seed(2)
    fusion = save_checkpoint(tmp_path / "fusion.pt", seafusion(), "seafusion", {})
    segmenter, _ = load_segmentation_model(_save(tmp_path / "seg.pt", bisenet_lite(4)))
    engine = FusionEngine(weights=fusion, device="cpu", segmenter=segmenter)
    rng = np.random.default_rng(0)
    out = engine.fuse(rng.integers(0, 256, (64, 80), dtype=np.uint8),
                      rng.integers(0, 256, (64, 80, 3), dtype=np.uint8), segment=True)
    assert out.mask is not None and out.mask.shape == (64, 80) and out.mask.dtype == np.uint8
    assert out.mask.max() < 4


def test_inference_size_runs_the_network_at_its_training_scale(tmp_path):
    torch.manual_seed(3)
    model = bisenet_lite(4, inference_size=(48, 64)).eval()
    frame = torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        out = model(frame)
        small = model.logits_and_aux(torch.nn.functional.interpolate(frame, size=(48, 64), mode="bilinear"))[0]
    assert out.shape == (1, 4, 96, 128)
    assert torch.allclose(out, torch.nn.functional.interpolate(small, size=(96, 128), mode="bilinear"), atol=1e-5)
    loaded, card = load_segmentation_model(_save(tmp_path / "seg.pt", model))
    assert card["inference_size"] == [48, 64] and loaded.inference_size == (48, 64)
