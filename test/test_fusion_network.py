"""The fusion network's architecture and the checkpoint loaders (released and own format)."""

from __future__ import annotations

import pickle

import pytest
import torch

from seafusion_ros.models.checkpoint import (
    CheckpointError,
    convert_released_state_dict,
    load_fusion_model,
    read_checkpoint,
    save_checkpoint,
)
from seafusion_ros.models.seafusion import seafusion


def test_parameter_count_matches_reference():
    assert sum(p.numel() for p in seafusion().parameters()) == 166_657


@pytest.mark.parametrize("size", [(1, 1), (37, 53), (64, 80)])
def test_output_keeps_input_size_and_lies_in_unit_interval(size):
    torch.manual_seed(0)
    vis, ir = torch.rand(2, 1, *size), torch.rand(2, 1, *size)
    with torch.inference_mode():
        out = seafusion().eval()(vis, ir)
    assert out.shape == (2, 1, *size)
    assert float(out.min()) > 0.0 and float(out.max()) < 1.0


def test_released_checkpoint_loads_every_used_key(released_weights):
    raw = torch.load(released_weights, map_location="cpu", weights_only=True)
    assert len(raw) == 72
    model, card = load_fusion_model(released_weights)
    state = model.state_dict()
    assert torch.equal(state["visible_encoder.stem.weight"], raw["vis_conv.conv.weight"])
    assert torch.equal(state["infrared_encoder.block2.edges.kernel_y"], raw["inf_rgbd2.sobelconv.convy.weight"])
    assert torch.equal(state["decoder.0.weight"], raw["decode4.conv.weight"])
    assert torch.equal(state["head.weight"], raw["decode1.conv.weight"])
    assert "released" in card["name"]


def test_released_checkpoint_missing_key_is_named(released_weights, tmp_path):
    raw = dict(torch.load(released_weights, map_location="cpu", weights_only=True))
    del raw["inf_rgbd1.convup.conv.bias"]
    torch.save(raw, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match="infrared_encoder.block1.edge_out.bias"):
        load_fusion_model(tmp_path / "broken.pth")


def test_released_checkpoint_wrong_shape_is_named(released_weights, tmp_path):
    raw = dict(torch.load(released_weights, map_location="cpu", weights_only=True))
    raw["decode2.conv.weight"] = torch.zeros(16, 32, 1, 1)
    torch.save(raw, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match=r"decoder.2.weight has shape \(16, 32, 1, 1\)"):
        load_fusion_model(tmp_path / "broken.pth")


def test_unknown_released_key_is_rejected():
    with pytest.raises(CheckpointError, match="unexpected keys"):
        convert_released_state_dict({"vis_conv.conv.weight": torch.zeros(1), "vis_extra.weight": torch.zeros(1)})


def test_own_format_round_trip_keeps_weights_and_card(tmp_path):
    torch.manual_seed(3)
    model = seafusion()
    card = {"name": "test", "training_command": "seafusion-train --data X --out Y", "metrics": {"EN": 7.0}}
    save_checkpoint(tmp_path / "m.pt", model, "seafusion", card)
    loaded, loaded_card = load_fusion_model(tmp_path / "m.pt")
    assert loaded_card == card
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    assert not list(tmp_path.glob(".m.pt.*")), "temporary file left behind"
    assert (tmp_path / "m.pt").stat().st_mode & 0o044 == 0o044, "checkpoint must be readable by others (umask)"


def test_wrong_architecture_is_refused(tmp_path):
    save_checkpoint(tmp_path / "seg.pt", torch.nn.Conv2d(3, 2, 1), "other_net", {})
    with pytest.raises(CheckpointError, match="not a SeAFusion fusion network"):
        load_fusion_model(tmp_path / "seg.pt")


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_arbitrary_pickles_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"format": "x", "obj": _Payload()}, handle)
    with pytest.raises(CheckpointError, match="weights-only"):
        read_checkpoint(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        read_checkpoint(tmp_path / "nope.pt")
