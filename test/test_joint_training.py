"""Joint adaptive training end to end on a few real frames at low resolution, with resume."""

import json
from pathlib import Path

import cv2
import pytest
import torch

from seafusion_ros.cli.train_joint import main
from seafusion_ros.models.checkpoint import load_fusion_model
from seafusion_ros.models.segmentation import load_segmentation_model

MSRS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "msrs_dev"
STEMS = ["00004N", "00024N", "00095D", "00186D", "00404D", "00412D"]  # last two: validation frames


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    if not MSRS.is_dir():
        pytest.skip("shared msrs_dev data not found next to the repository")
    root = tmp_path_factory.mktemp("msrs_joint")
    for sub in ("ir", "vi", "detection_yolo"):
        (root / sub).mkdir()
    for stem in STEMS:
        for sub, flag in (("ir", cv2.IMREAD_GRAYSCALE), ("vi", cv2.IMREAD_COLOR)):
            image = cv2.imread(str(MSRS / sub / f"{stem}.png"), flag)
            cv2.imwrite(str(root / sub / f"{stem}.png"), cv2.resize(image, (128, 96), interpolation=cv2.INTER_AREA))
        (root / "detection_yolo" / f"{stem}.txt").write_text((MSRS / "detection_yolo" / f"{stem}.txt").read_text())
    return root


def test_rounds_log_checkpoints_and_resume(small_data, tmp_path, capsys):
    out = tmp_path / "joint"
    common = ["--data", str(small_data), "--out", str(out), "--fusion-epochs", "1", "--seg-epochs", "1",
              "--batch-size", "2", "--seg-batch-size", "2", "--size", "48x64", "--crop", "32", "--threads", "1",
              "--no-progress"]
    assert main([*common, "--rounds", "1"]) == 0
    first = (out / "round_1" / "fusion.pt").stat().st_mtime_ns
    assert main([*common, "--rounds", "2"]) == 2  # an existing run needs --resume
    assert main([*common, "--rounds", "2", "--resume", "--fusion-lr", "0.01"]) == 2  # not under another recipe
    assert "fusion_lr: 0.001 in the run, 0.01 now" in capsys.readouterr().err
    assert main([*common, "--rounds", "2", "--resume", "--betas", "0.5,1"]) == 2  # round 1 trained at beta 0
    assert "beta of round 1: 0 in the run, 0.5 now" in capsys.readouterr().err
    assert main([*common, "--rounds", "2", "--resume", "--betas", "0,0.5",  # later rounds may branch
                 "--export-fusion", str(tmp_path / "f.pt"),
                 "--export-segmentation", str(tmp_path / "s.pt")]) == 0
    assert (out / "round_1" / "fusion.pt").stat().st_mtime_ns == first  # finished round not retrained
    log = [json.loads(line) for line in (out / "joint_log.jsonl").read_text().splitlines()]
    assert [r["round"] for r in log] == [1, 2] and [r["beta"] for r in log] == [0.0, 0.5]
    assert log[0]["fusion"]["semantic"] == 0.0 and log[1]["fusion"]["semantic"] > 0.0
    for record in log:
        validation = record["validation"]
        assert {"EN", "SD", "SF", "MI", "VIF", "Qabf", "content_loss", "segmentation"} <= set(validation)
        assert 0.0 <= validation["segmentation"]["miou"] <= 1.0
    assert len(list((out / "round_2" / "fused").glob("*.png"))) == len(STEMS)
    _, fusion_card = load_fusion_model(tmp_path / "f.pt")
    _, seg_card = load_segmentation_model(tmp_path / "s.pt")
    assert fusion_card["command"].startswith("seafusion-train --joint ") and len(fusion_card["log"]) == 2
    assert seg_card["classes"] == ["background", "person", "bicycle", "car"]
    assert seg_card["inference_size"] == [48, 64]  # the node segments at the size it was trained at


def test_initial_fusion_weights_are_used_and_recorded(small_data, tmp_path, random_fusion_weights):
    out = tmp_path / "joint_init"
    assert main(["--data", str(small_data), "--out", str(out), "--rounds", "1", "--fusion-epochs", "1",
                 "--seg-epochs", "1", "--batch-size", "2", "--seg-batch-size", "2", "--size", "48x64",
                 "--crop", "64", "--threads", "1", "--no-progress", "--fusion-lr", "0",
                 "--init-fusion", str(random_fusion_weights)]) == 0
    initial, _ = load_fusion_model(random_fusion_weights)
    trained, card = load_fusion_model(out / "fusion_joint.pt")
    for name, value in initial.state_dict().items():  # lr 0: the weights are the initial ones
        assert torch.equal(value, trained.state_dict()[name]), name
    assert card["initialised_from"]["path"] == str(random_fusion_weights)
    assert card["initialised_from"]["model_card"]["name"] == "random test model"


TINY = ["--fusion-epochs", "1", "--seg-epochs", "1", "--batch-size", "2", "--seg-batch-size", "2", "--size", "48x64",
        "--crop", "32", "--threads", "1", "--no-progress"]


def test_round_one_needs_a_segmenter_for_a_semantic_loss(small_data, tmp_path, capsys):
    out = tmp_path / "joint"
    assert main(["--data", str(small_data), "--out", str(out), "--rounds", "1", "--betas", "0.5", *TINY]) == 2
    assert "round 1 has no segmentation network" in capsys.readouterr().err
    assert not out.exists()  # refused before anything is written


@pytest.fixture
def box_segmenter(tmp_path) -> Path:
    """A small segmenter of the box classes (background, person, bicycle, car) for a run to start from."""
    from seafusion_ros.data.labels import BOX_CLASSES
    from seafusion_ros.models.checkpoint import save_checkpoint
    from seafusion_ros.models.segmentation import ARCH, bisenet_lite, segmentation_card_fields

    torch.manual_seed(0)
    model = bisenet_lite(BOX_CLASSES.num_classes, widths=(8, 16, 24, 32, 48), context=32)
    return save_checkpoint(tmp_path / "box4.pt", model, ARCH, {**BOX_CLASSES.card(), **segmentation_card_fields(model)})


def test_an_initial_segmenter_gives_round_one_its_semantic_loss(small_data, box_segmenter, tmp_path):
    out = tmp_path / "joint"
    assert main(["--data", str(small_data), "--out", str(out), "--rounds", "1", "--betas", "0.5",
                 "--init-segmentation", str(box_segmenter), *TINY]) == 0
    log = [json.loads(line) for line in (out / "joint_log.jsonl").read_text().splitlines()]
    assert log[0]["beta"] == 0.5 and log[0]["fusion"]["semantic"] > 0.0
    initial, _ = load_segmentation_model(box_segmenter)
    tuned, card = load_segmentation_model(out / "segmentation_joint.pt")
    assert card["segmentation_initialised_from"]["path"] == str(box_segmenter)
    assert card["inference_size"] == [48, 64]
    changed = [n for n, v in initial.state_dict().items() if not torch.equal(v, tuned.state_dict()[n])]
    assert changed and set(tuned.state_dict()) == set(initial.state_dict())  # trained on from the initial one


def test_a_segmenter_of_other_classes_is_refused(small_data, tmp_path, capsys):
    from seafusion_ros.data.labels import MSRS_CLASSES
    from seafusion_ros.models.checkpoint import save_checkpoint
    from seafusion_ros.models.segmentation import ARCH, bisenet_lite, segmentation_card_fields

    model = bisenet_lite(MSRS_CLASSES.num_classes, widths=(8, 16, 24, 32, 48), context=32)
    path = save_checkpoint(tmp_path / "msrs9.pt", model, ARCH,
                           {**MSRS_CLASSES.card(), **segmentation_card_fields(model)})
    out = tmp_path / "joint"
    assert main(["--data", str(small_data), "--out", str(out), "--rounds", "1", "--init-segmentation", str(path),
                 *TINY]) == 2
    assert "but joint training labels ['background', 'person', 'bicycle', 'car']" in capsys.readouterr().err
    assert not out.exists()


def test_semantic_loss_input_is_scaled_per_axis_and_differentiable():
    from seafusion_ros.training.joint_training import to_segmentation_scale

    rgb = torch.rand(2, 3, 64, 64, requires_grad=True)
    mask = torch.zeros(2, 64, 64, dtype=torch.long)
    mask[:, :32] = 255  # ignore label and class ids survive nearest sampling unchanged
    mask[:, 32:, :16] = 3
    small_rgb, small_mask = to_segmentation_scale(rgb, mask, (0.5, 0.25))
    assert small_rgb.shape == (2, 3, 32, 16) and small_mask.shape == (2, 32, 16)
    assert set(small_mask.unique().tolist()) == {0, 3, 255}
    assert torch.allclose(small_rgb[0, 0, 0, 0], rgb[0, 0, :2, :4].mean())  # area average
    small_rgb.sum().backward()
    assert rgb.grad is not None and float(rgb.grad.abs().sum()) > 0
    same_rgb, same_mask = to_segmentation_scale(rgb, mask, (1.0, 1.0))
    assert same_rgb is rgb and same_mask is mask


@pytest.mark.parametrize("args", [("--rounds", "0"), ("--fusion-epochs", "-1"), ("--seg-epochs", "0"),
                                  ("--betas", "0,-1"), ("--crop", "4")])
def test_meaningless_numbers_are_refused_at_parse_time(tmp_path, capsys, args):
    with pytest.raises(SystemExit) as info:
        main(["--data", str(tmp_path), "--out", str(tmp_path / "o"), *args])
    assert info.value.code == 2 and f"argument {args[0]}" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


MFNET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mfnet_labelled"
LABELLED_STEMS = ["00111D", "00121D", "01113N", "01123N", "00511D", "00713N"]  # last two: validation sequences


@pytest.fixture(scope="module")
def small_labelled(tmp_path_factory):
    if not MFNET.is_dir():
        pytest.skip("shared mfnet_labelled data not found next to the repository")
    root = tmp_path_factory.mktemp("mfnet_joint")
    for sub, flag, interpolation in (("rgb", cv2.IMREAD_COLOR, cv2.INTER_AREA),
                                     ("thermal", cv2.IMREAD_GRAYSCALE, cv2.INTER_AREA),
                                     ("labels", cv2.IMREAD_UNCHANGED, cv2.INTER_NEAREST)):
        (root / sub).mkdir()
        for stem in LABELLED_STEMS:
            image = cv2.imread(str(MFNET / sub / f"{stem}.png"), flag)
            cv2.imwrite(str(root / sub / f"{stem}.png"), cv2.resize(image, (128, 96), interpolation=interpolation))
    return root


def test_labelled_run_scores_every_class_by_name(small_data, small_labelled, tmp_path):
    from seafusion_ros.data.labels import MSRS_CLASSES

    out = tmp_path / "joint"
    assert main(["--data", str(small_data), "--data", f"{small_labelled}:2", "--labelled", str(small_labelled),
                 "--seg-arch", "bisenet_efficientnet_lite0", "--out", str(out), "--rounds", "2", "--betas", "0,0.5",
                 *TINY]) == 0
    log = [json.loads(line) for line in (out / "joint_log.jsonl").read_text().splitlines()]
    assert log[0]["fusion"]["semantic"] == 0.0 and log[1]["fusion"]["semantic"] > 0.0
    for record in log:
        validation = record["validation"]
        assert {"EN", "SD", "SF", "MI", "VIF", "Qabf", "content_loss"} <= set(validation)
        segmentation = validation["segmentation"]
        assert list(segmentation["iou"]) == list(MSRS_CLASSES.names)
        assert 0.0 <= segmentation["miou"] <= 1.0 and segmentation["frames"] == 2
    # the labelled frames at the working size, the first --data folder's validation frames at native size
    assert sorted(p.stem for p in (out / "round_2" / "fused").glob("*.png")) == sorted(LABELLED_STEMS)
    assert sorted(p.stem for p in (out / "round_2" / "fused_validation").glob("*.png")) == ["00404D", "00412D"]
    model, card = load_segmentation_model(out / "segmentation_joint.pt")
    assert card["arch"] == "bisenet_efficientnet_lite0" and model.num_classes == 9
    assert card["classes"] == list(MSRS_CLASSES.names) and card["inference_size"] == [48, 64]
    assert card["config"]["segmentation"]["backbone_lr_multiplier"] == 0.1  # the pretrained backbone's default
    weights = {Path(d["root"]).name: (d["weight"], d["train_pairs"]) for d in card["fusion_data"]}
    assert weights == {small_data.name: (1.0, 4), small_labelled.name: (2.0, 4)}


def test_labelled_run_refuses_a_segmenter_of_the_box_classes(small_data, small_labelled, box_segmenter, tmp_path,
                                                             capsys):
    out = tmp_path / "joint"
    assert main(["--data", str(small_data), "--labelled", str(small_labelled), "--out", str(out), "--rounds", "1",
                 "--init-segmentation", str(box_segmenter), *TINY]) == 2
    assert "but joint training labels ['unlabelled', 'car', 'person'" in capsys.readouterr().err
    assert not out.exists()


def test_box_pseudo_masks_take_one_data_folder(small_data, small_labelled, tmp_path, capsys):
    out = tmp_path / "joint"
    assert main(["--data", str(small_data), "--data", str(small_labelled), "--out", str(out), "--rounds", "1",
                 *TINY]) == 2
    assert "box pseudo-masks come from one data folder, got 2" in capsys.readouterr().err
    assert main(["--data", str(small_data), "--labelled", str(small_data), "--out", str(out), "--rounds", "1",
                 *TINY]) == 2
    assert "not a labelled data folder (expected rgb/, thermal/ and labels/)" in capsys.readouterr().err
    assert not out.exists()


def _forget_settings(path: Path, *keys: str) -> None:
    """Rewrite a round checkpoint as a version that did not record ``keys`` would have saved it."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    config = state["model_card"]["config"]
    for key in keys:
        section, _, name = key.rpartition(".")
        (config[section] if section else config).pop(name)
    torch.save(state, path)


def test_a_run_saved_before_a_setting_existed_resumes(small_data, small_labelled, tmp_path, capsys):
    out = tmp_path / "joint"
    common = ["--data", str(small_data), "--out", str(out), *TINY]
    assert main([*common, "--rounds", "1"]) == 0
    _forget_settings(out / "round_1" / "fusion.pt", "segmentation.backbone_lr_multiplier", "seg_arch", "labelled")
    first = (out / "round_1" / "fusion.pt").stat().st_mtime_ns
    assert main([*common, "--rounds", "2", "--resume", "--betas", "0,0.5", "--labelled", str(small_labelled)]) == 2
    assert f"labelled: None in the run, {small_labelled.resolve()} now" in capsys.readouterr().err
    assert main([*common, "--rounds", "2", "--resume", "--seg-arch", "bisenet_efficientnet_lite0"]) == 2
    assert "seg_arch: bisenet_lite in the run, bisenet_efficientnet_lite0 now" in capsys.readouterr().err
    assert main([*common, "--rounds", "2", "--resume", "--betas", "0,0.5"]) == 0
    assert (out / "round_1" / "fusion.pt").stat().st_mtime_ns == first
    log = [json.loads(line) for line in (out / "joint_log.jsonl").read_text().splitlines()]
    assert [r["round"] for r in log] == [1, 2]
