"""The bundled default models: present, loadable, documented, and doing what a fusion model should."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from seafusion_ros.data.labels import MSRS_CLASSES
from seafusion_ros.data.synthetic_scene import CAR, PERSON, render_frame
from seafusion_ros.inference.engine import FusionEngine
from seafusion_ros.models.checkpoint import load_fusion_model
from seafusion_ros.training.content_loss import sobel_magnitude
from seafusion_ros.weights import DEFAULT_FUSION_WEIGHTS, DEFAULT_SEGMENTATION_WEIGHTS, load_segmenter


def test_bundled_fusion_model_loads_with_its_model_card():
    _, card = load_fusion_model(DEFAULT_FUSION_WEIGHTS)
    # fine-tuned on several cameras, each split by its own rule, from the jointly trained MSRS model
    assert card["training_command"].startswith("seafusion-train --data")
    assert [(s["name"], s["family"]) for s in card["training_data"]][:2] == [("msrs_dev", "msrs"),
                                                                         ("roadscene_train", "roadscene")]
    assert card["training_data"][0]["val_pairs"] == 49 and card["training_data"][1]["val_pairs"] == 34
    joint = card["initialised_from"]["model_card"]
    assert joint["command"].startswith("seafusion-train --joint ")  # reference section 4
    assert [r["beta"] for r in joint["log"]] == [0.0, 0.1, 0.2, 0.3]
    results = card["validation_seafusion_eval"]["results"]
    for data_set in ("msrs_dev", "roadscene_train"):  # like for like: each output mode against the same mode
        assert set(results[data_set]) == {"none", "minmax"}
        assert {"this model", "released"} <= set(results[data_set]["none"])
    assert DEFAULT_FUSION_WEIGHTS.with_suffix(".md").is_file()


def test_bundled_segmentation_model_has_the_nine_msrs_classes():
    model, card, _ = load_segmenter("")
    assert model is not None and DEFAULT_SEGMENTATION_WEIGHTS.is_file()
    assert card["classes"] == list(MSRS_CLASSES.names) and card["palette"] == [list(c) for c in MSRS_CLASSES.palette]
    assert card["arch"] == "bisenet_efficientnet_lite0" and model.num_classes == 9
    assert model.inference_size == (240, 320)  # segments at the size it was trained at
    assert card["split"]["validation_sequences"] == [[501, 551], [701, 751]]
    assert card["data"]["train_frames"] == 98 and card["data"]["validation_frames"] == 88
    assert DEFAULT_SEGMENTATION_WEIGHTS.with_suffix(".md").is_file()


def test_bundled_models_see_the_demo_pedestrian_and_car():
    # What `make demo` shows: the walking pedestrian of the embedded scene is labelled person and the parked
    # car car, each not the other.
    segmenter, card, _ = load_segmenter("")
    engine = FusionEngine(device="cpu", precision="fp32", segmenter=segmenter)
    person, car = card["classes"].index("person"), card["classes"].index("car")
    assert (person, car) == (PERSON, CAR)
    shares = {person: [], car: []}
    for index in (0, 10, 20, 40):
        frame = render_frame(index)
        mask = engine.fuse(frame.thermal, frame.rgb, segment=True).mask
        for cls, other in ((person, car), (car, person)):
            drawn, name = mask[frame.labels == cls], card["classes"][cls]
            shares[cls].append(float((drawn == cls).mean()))
            assert shares[cls][-1] > 0.2, f"frame {index}: the {name} is not segmented as one"
            assert (drawn == other).mean() < 0.1, f"frame {index}: the {name} is segmented as {card['classes'][other]}"
    assert np.mean(shares[person]) > 0.5 and np.mean(shares[car]) > 0.4


@pytest.mark.parametrize(("stem", "car_iou", "person_iou"), [("00726N", 0.3, 0.3), ("00535D", 0.5, None)])
def test_bundled_models_find_cars_and_people_on_validation_frames(stem, car_iou, person_iou):
    # frames of the labelled validation split (never trained on), at night and by day
    root = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mfnet_labelled"
    if not root.is_dir():
        pytest.skip(f"shared mfnet_labelled data not found at {root}")
    segmenter, card, _ = load_segmenter("")
    engine = FusionEngine(device="cpu", precision="fp32", segmenter=segmenter)
    thermal = cv2.imread(str(root / "thermal" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
    rgb = cv2.imread(str(root / "rgb" / f"{stem}.png"), cv2.IMREAD_COLOR)
    labels = cv2.imread(str(root / "labels" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
    mask = engine.fuse(thermal, rgb, visible_order="bgr", segment=True).mask
    for name, least in (("car", car_iou), ("person", person_iou)):
        if least is not None:
            k = card["classes"].index(name)
            iou = ((mask == k) & (labels == k)).sum() / ((mask == k) | (labels == k)).sum()
            assert iou > least, f"{stem}: {name} IoU {iou:.2f}"


@pytest.mark.parametrize("stem", ["01102N", "01110N", "00412D"])  # validation frames: never trained on
def test_hot_objects_stay_bright_and_visible_texture_stays_sharp(msrs_dev, stem):
    import torch

    ir = cv2.imread(str(msrs_dev / "ir" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
    vis = cv2.imread(str(msrs_dev / "vi" / f"{stem}.png"), cv2.IMREAD_COLOR)
    fused = FusionEngine(device="cpu", precision="fp32").fuse(ir, vis, visible_order="bgr").luminance
    vis_y = cv2.cvtColor(vis, cv2.COLOR_BGR2YCrCb)[:, :, 0].astype(np.float32) / 255.0
    hot = ir > np.percentile(ir, 99)  # the warmest 1 %: people, engines
    # at least as bright as in the brighter source (the intensity target), not dark silhouettes
    assert fused[hot].mean() >= 0.9 * max(ir[hot].mean() / 255.0, vis_y[hot].mean())

    def texture(y: np.ndarray) -> float:
        return float(sobel_magnitude(torch.from_numpy(y)[None, None]).mean())

    assert texture(fused) >= 0.9 * texture(vis_y)  # the visible detail is kept, not blurred away
