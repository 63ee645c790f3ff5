"""seafusion-train on real pairs: the loss falls, checkpoints resume, the export loads with its card."""

from __future__ import annotations

import json

import pytest
import torch

from seafusion_ros.cli.train import main as train_main
from seafusion_ros.data.msrs_split import is_validation, split_stems
from seafusion_ros.data.pair_dataset import select_pairs
from seafusion_ros.models.checkpoint import load_fusion_model, read_checkpoint
from seafusion_ros.training.content_loss import content_loss, sobel_magnitude


def test_content_loss_is_zero_for_the_ideal_fusion_of_identical_sources():
    x = torch.rand(2, 1, 16, 16)
    loss, parts = content_loss(x, x, x)
    assert float(loss) == pytest.approx(0.0, abs=1e-7)
    assert parts["texture"] == pytest.approx(0.0, abs=1e-7)


def test_sobel_magnitude_of_a_vertical_edge():
    x = torch.zeros(1, 1, 5, 6)
    x[..., 3:] = 1.0
    g = sobel_magnitude(x)
    assert float(g[0, 0, 2, 2]) == pytest.approx(4.0) and float(g[0, 0, 2, 0]) == 0.0


def test_split_keeps_sequences_apart(msrs_dev):
    stems = [p.stem for p in (msrs_dev / "ir").glob("*.png")]
    train, val = split_stems(stems)
    assert len(train) == 216 and len(val) == 49
    assert {s[-1] for s in val} == {"D", "N"}  # day and night both validated
    assert not set(train) & set(val)
    assert all(is_validation(s) for s in val)
    assert [p.stem for p in select_pairs(msrs_dev, "val")] == val


def test_short_real_training_lowers_the_loss_and_resumes(msrs_dev, tmp_path):
    data = tmp_path / "data"
    for sub in ("ir", "vi"):
        (data / sub).mkdir(parents=True)
        for stem in ("00004N", "00119D", "00786N", "01110N"):  # 01110N is a validation frame
            (data / sub / f"{stem}.png").symlink_to(msrs_dev / sub / f"{stem}.png")
    run = tmp_path / "run"
    common = ["--data", str(data), "--out", str(run), "--batch-size", "3", "--crop", "48",
              "--crops-per-image", "4", "--lr", "3e-3", "--device", "cpu", "--no-progress"]
    assert train_main([*common, "--epochs", "2"]) == 0
    assert train_main([*common, "--epochs", "4", "--resume", str(run / "last.pt")]) == 0
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[1]["lr"] == pytest.approx(3e-3 * 0.75**2)
    assert read_checkpoint(run / "last.pt")["epoch"] == 4
    model, card = load_fusion_model(run / "model.pt")
    (source,) = card["training_data"]
    assert source["train_pairs"] == 3 and source["val_pairs"] == 1 and source["family"] == "msrs"
    assert card["training_command"].startswith("seafusion-train --data")
    assert "--epochs 2" in card["training_command"]
    assert "--resume" in card["resumed_with"][0] and "--epochs 4" in card["resumed_with"][0]
    assert card["training"]["epochs_run"] == 4
    assert all(h["val_loss"] > 0 for h in history)


def test_resume_from_weights_only_file_is_refused(msrs_dev, tmp_path, random_fusion_weights, capsys):
    rc = train_main(["--data", str(msrs_dev), "--out", str(tmp_path / "r"), "--epochs", "1", "--crop", "32",
                     "--resume", str(random_fusion_weights), "--device", "cpu"])
    assert rc == 2 and "holds weights only; --resume needs a training checkpoint" in capsys.readouterr().err
    rc = train_main(["--data", str(msrs_dev), "--out", str(tmp_path / "r"), "--resume", str(tmp_path / "nope.pt")])
    assert rc == 2 and "checkpoint not found" in capsys.readouterr().err


def _one_pair(msrs_dev, data):
    """A data folder holding one real MSRS training pair (symlinked)."""
    for sub in ("ir", "vi"):
        (data / sub).mkdir(parents=True)
        (data / sub / "00004N.png").symlink_to(msrs_dev / sub / "00004N.png")
    return data


def test_an_existing_run_is_never_overwritten(msrs_dev, tmp_path, capsys):
    data = _one_pair(msrs_dev, tmp_path / "data")
    run = tmp_path / "run"
    common = ["--data", str(data), "--out", str(run), "--epochs", "1", "--batch-size", "2", "--crop", "32",
              "--crops-per-image", "2", "--device", "cpu", "--no-progress"]
    assert train_main(common) == 0
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    capsys.readouterr()
    assert train_main([*common, "--seed", "5"]) == 2
    assert f"{run} already holds a training run" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    assert train_main(["--data", str(data), "--out", str(tmp_path / "r2"), "--batch-size", "2",
                       "--crops-per-image", "1", "--crop", "32", "--device", "cpu"]) == 2
    assert "0 batches per epoch: 1 training pairs x 1 crops per image is less than --batch-size 2" in \
        capsys.readouterr().err
    assert not (tmp_path / "r2" / "model.pt").exists()


@pytest.mark.parametrize("args", [("--epochs", "-3"), ("--batch-size", "0"), ("--crop", "0"), ("--lr", "-1"),
                                  ("--hot-crop-fraction", "1.5")])
def test_meaningless_numbers_are_refused_at_parse_time(tmp_path, capsys, args):
    with pytest.raises(SystemExit) as info:
        train_main(["--data", str(tmp_path), "--out", str(tmp_path / "o"), *args])
    assert info.value.code == 2 and f"argument {args[0]}" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_hot_crops_centre_on_the_warmest_pixels(msrs_dev):
    pairs = select_pairs(msrs_dev, "train")[:4]
    from seafusion_ros.data.pair_dataset import PairCropDataset

    uniform = PairCropDataset(pairs, 64, 16, 4, seed=0)
    hot = PairCropDataset(pairs, 64, 16, 4, seed=0, hot_crop_fraction=1.0)
    u, h = next(uniform.batches(0)), next(hot.batches(0))
    lowest_hot = min(float(torch.quantile(ir.flatten().float(), 0.99)) for ir in hot.infrared) / 255.0
    assert float(h.infrared.amax(dim=(1, 2, 3)).min()) >= lowest_hot  # every crop holds a hot pixel
    assert h.infrared.amax(dim=(1, 2, 3)).mean() > u.infrared.amax(dim=(1, 2, 3)).mean()
    with pytest.raises(ValueError, match="hot_crop_fraction"):
        PairCropDataset(pairs, 64, 16, hot_crop_fraction=1.5)


def test_init_weights_starts_from_a_checkpoint_and_is_recorded(msrs_dev, tmp_path, random_fusion_weights):
    data = _one_pair(msrs_dev, tmp_path / "data")
    run = tmp_path / "run"
    assert train_main(["--data", str(data), "--out", str(run), "--epochs", "1", "--batch-size", "2", "--crop", "32",
                       "--crops-per-image", "2", "--lr", "1e-9", "--init-weights", str(random_fusion_weights),
                       "--device", "cpu", "--no-progress"]) == 0
    model, card = load_fusion_model(run / "model.pt")
    start, _ = load_fusion_model(random_fusion_weights)
    assert card["initialised_from"]["path"] == str(random_fusion_weights)
    for key, value in start.state_dict().items():  # lr 1e-9: still the initial weights
        assert torch.allclose(model.state_dict()[key], value, atol=1e-5), key
