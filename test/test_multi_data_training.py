"""Training on several cameras: the fixed splits of every shared data set, weighted mixing, any image size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import SHARED, require_shared

from seafusion_ros.cli.train import main as train_main
from seafusion_ros.data.dataset_splits import split_pairs
from seafusion_ros.data.pair_dataset import PairCropDataset
from seafusion_ros.models.checkpoint import load_fusion_model

DATA = SHARED / "data"


@pytest.fixture
def shared_data() -> Path:
    return require_shared(DATA / "roadscene_train")


@pytest.mark.parametrize(("name", "family", "train", "val"), [
    ("msrs_dev", "msrs", 216, 49), ("roadscene_train", "roadscene", 137, 34), ("llvip", "llvip", 32, 12),
    ("mfnet_labelled", "mfnet_labelled", 98, 88), ("m3fd", "unsplit", 17, 0), ("fmb", "unsplit", 7, 0)])
def test_every_shared_data_set_splits_by_its_fixed_rule(shared_data, name, family, train, val):
    train_pairs, rule = split_pairs(DATA / name, "train")
    val_pairs, _ = split_pairs(DATA / name, "val")
    assert rule.family == family and (len(train_pairs), len(val_pairs)) == (train, val)
    assert not {p.stem for p in train_pairs} & {p.stem for p in val_pairs}
    assert len(split_pairs(DATA / name, "all")[0]) == train + val


def test_validation_frames_are_whole_sequences_and_scenes(shared_data):
    roadscene = [p.stem for p in split_pairs(DATA / "roadscene_train", "val")[0]]
    assert all(s.startswith("FLIR_") and not s.startswith("FLIR_video") and int(s[5:]) >= 8700 for s in roadscene)
    llvip = {p.stem[:2] for p in split_pairs(DATA / "llvip", "val")[0]}
    assert llvip == {"19", "20"}
    mfnet = {int(p.stem[:5]) // 100 for p in split_pairs(DATA / "mfnet_labelled", "val")[0]}
    assert mfnet == {5, 7}  # sequence 005xx (day) and 007xx (night)
    labelled = split_pairs(DATA / "mfnet_labelled", "train")[0][0]
    assert labelled.ir.parent.name == "thermal" and labelled.visible.parent.name == "rgb"


def test_small_images_are_padded_and_weights_set_the_mix(shared_data):
    roadscene = split_pairs(DATA / "roadscene_train", "train")[0][:3]
    llvip = split_pairs(DATA / "llvip", "train")[0][:2]
    dataset = PairCropDataset([*roadscene, *llvip], crop=200, batch_size=4, crops_per_image=4, seed=3,
                              weights=[1.0, 1.0, 1.0, 0.0, 2.0])
    assert dataset.samples_per_epoch == 20
    assert min(min(i.shape) for i in dataset.infrared) >= 200  # RoadScene frames as small as 161 rows
    drawn = dataset._order(torch.Generator().manual_seed(0)).tolist()
    assert 3 not in drawn and drawn.count(4) > drawn.count(0)
    batch = next(dataset.batches(0))
    assert tuple(batch.visible.shape) == (4, 3, 200, 200) and tuple(batch.infrared.shape) == (4, 1, 200, 200)


def test_training_on_two_cameras_reports_validation_per_data_set(shared_data, tmp_path):
    roots = {}
    for name, stems in (("msrs", ("00004N", "00119D", "01110N")), ("roadscene", ("FLIR_04607", "FLIR_08721"))):
        source = DATA / ("msrs_dev" if name == "msrs" else "roadscene_train")
        for sub in ("ir", "vi"):
            (tmp_path / name / sub).mkdir(parents=True)
            for path in (source / sub).glob("*"):
                if path.stem in stems:
                    (tmp_path / name / sub / path.name).symlink_to(path)
        roots[name] = tmp_path / name
    run = tmp_path / "run"
    assert train_main(["--data", str(roots["msrs"]), "--data", f"{roots['roadscene']}:3", "--out", str(run),
                       "--epochs", "1", "--batch-size", "2", "--crop", "48", "--crops-per-image", "2",
                       "--device", "cpu", "--no-progress"]) == 0
    (record,) = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert {"val_loss", "val_loss/msrs", "val_loss/roadscene"} <= record.keys()
    _, card = load_fusion_model(run / "model.pt")
    assert [(s["family"], s["weight"], s["train_pairs"], s["val_pairs"]) for s in card["training_data"]] == \
        [("msrs", 1.0, 2, 1), ("roadscene", 3.0, 1, 1)]


@pytest.mark.parametrize("weight", ["0", "-1", "nan", "inf"])
def test_a_meaningless_data_weight_is_refused_at_parse_time(tmp_path, capsys, weight):
    with pytest.raises(SystemExit) as info:
        train_main(["--data", f"{tmp_path}:{weight}", "--out", str(tmp_path / "o")])
    assert info.value.code == 2 and "must be a positive number" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
