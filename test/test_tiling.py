"""Tiled inference: frames over the memory budget are fused tile by tile with the whole-frame result.

Each comparison fuses the same real MSRS pair twice, once with a budget that holds the whole frame and
once with one that forces a grid of tiles (edge tiles with a halo on one side only, cores of odd sizes).
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from seafusion_ros.cli.engine_options import add_engine_arguments
from seafusion_ros.inference.engine import DEFAULT_MEMORY_BUDGET_MB, FusionEngine
from seafusion_ros.inference.memory_probe import peak_tensor_bytes
from seafusion_ros.inference.tiling import plan_tiles, receptive_radius
from seafusion_ros.models.seafusion import seafusion
from seafusion_ros.weights import load_segmenter

WHOLE_FRAME_MB = 1 << 20  # holds any test frame: the whole-frame path


@pytest.fixture(autouse=True)
def one_torch_thread():
    """These frames are cut into tiles of a few thousand pixels, where a second thread mostly waits at the
    end of each operator (seconds per frame on a busy 2-core machine); one thread keeps the file fast."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _pair(msrs_dev, height: int, width: int, stem: str = "00786N") -> tuple[np.ndarray, np.ndarray]:
    """A real night pair (8-bit thermal, BGR visible) resized to height x width."""
    ir = cv2.imread(str(msrs_dev / "ir" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
    vis = cv2.imread(str(msrs_dev / "vi" / f"{stem}.png"), cv2.IMREAD_COLOR)
    size = (width, height)
    return cv2.resize(ir, size, interpolation=cv2.INTER_CUBIC), cv2.resize(vis, size, interpolation=cv2.INTER_CUBIC)


def _engines(budget_mb: int, **options) -> tuple[FusionEngine, FusionEngine]:
    return (FusionEngine(device="cpu", memory_budget_mb=WHOLE_FRAME_MB, **options),
            FusionEngine(device="cpu", memory_budget_mb=budget_mb, **options))


def _grey_levels(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


def test_receptive_radius_is_measured_from_the_architecture():
    # stem 1 + two gradient dense blocks of 2 + three decoder convs + the head: 9 pixels
    assert receptive_radius(seafusion()) == 9
    stack = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 5, padding=2))
    assert receptive_radius(stack, inputs=1, limit=2) == 3  # a limit below the radius is doubled


def test_tiles_cover_the_frame_once_and_read_within_the_budget():
    height, width, budget, halo = 533, 711, 200 * 200, 9
    tiles = plan_tiles(height, width, budget, halo)
    covered = np.zeros((height, width), np.int32)
    for tile in tiles:
        covered[tile.core] += 1
        rows, cols = tile.read
        assert (rows.stop - rows.start) * (cols.stop - cols.start) <= budget
        assert rows.start == max(tile.rows.start - halo, 0) and rows.stop == min(tile.rows.stop + halo, height)
        assert cols.start == max(tile.cols.start - halo, 0) and cols.stop == min(tile.cols.stop + halo, width)
    assert (covered == 1).all()
    assert len(tiles) == 12
    assert plan_tiles(height, width, height * width, halo)[0].read == (slice(0, height), slice(0, width))
    with pytest.raises(ValueError, match="core of 2 pixels inside a halo of 9"):
        plan_tiles(height, width, 20 * 20, halo)


def test_tile_size_follows_the_measured_memory_per_pixel():
    engine = FusionEngine(device="cpu", precision="fp32", memory_budget_mb=64)
    with torch.inference_mode():
        other_size = peak_tensor_bytes(lambda: engine.model(torch.rand(1, 1, 40, 56), torch.rand(1, 1, 40, 56)))
    assert other_size / (40 * 56) == pytest.approx(engine.tile_bytes_per_pixel, rel=0.02)  # linear in pixels
    assert engine.tile_pixels == int(64 * 2**20 / engine.tile_bytes_per_pixel)
    assert engine.halo == 9


def test_tiled_fusion_equals_the_whole_frame_on_a_real_pair(msrs_dev):
    ir, vis = _pair(msrs_dev, 487, 651)
    whole, tiled = _engines(96, precision="fp32")
    tiles = tiled.tile_plan(487, 651)
    assert len(tiles) >= 6 and len(whole.tile_plan(487, 651)) == 1
    core_sizes = {(t.rows.stop - t.rows.start, t.cols.stop - t.cols.start) for t in tiles}
    assert any(h % 2 and w % 2 for h, w in core_sizes)
    expected = whole.fuse(ir, vis, visible_order="bgr", output_order="bgr", mono=True)
    result = tiled.fuse(ir, vis, visible_order="bgr", output_order="bgr", mono=True)
    assert np.abs(result.luminance - expected.luminance).max() < 1e-5
    assert _grey_levels(result.image, expected.image) <= 1
    assert (result.image != expected.image).mean() < 1e-4  # a 1e-7 change crosses a rounding step rarely
    assert _grey_levels(result.mono, expected.mono) <= 1


@pytest.mark.parametrize("options", [
    {"precision": "bf16"},
    {"precision": "fp32", "normalize": "minmax"},
    {"precision": "fp32", "internal_scale": 0.75},
], ids=["bf16", "minmax", "internal_scale"])
def test_tiled_variants_stay_within_one_grey_level(msrs_dev, options):
    ir, vis = _pair(msrs_dev, 161, 215)
    whole, tiled = _engines(16, **options)
    assert len(tiled.tile_plan(161, 215)) > 1
    expected = whole.fuse(ir, vis, visible_order="bgr", mono=True)
    result = tiled.fuse(ir, vis, visible_order="bgr", mono=True)
    assert _grey_levels(result.image, expected.image) <= 1
    assert _grey_levels(result.mono, expected.mono) <= 1


def test_tiled_gray_visible_and_16_bit_thermal_match(msrs_dev):
    ir, vis = _pair(msrs_dev, 161, 215)
    thermal = ir.astype(np.uint16) * 64 + 1000
    gray = cv2.cvtColor(vis, cv2.COLOR_BGR2GRAY)
    whole, tiled = _engines(16, precision="fp32")
    expected, result = whole.fuse(thermal, gray), tiled.fuse(thermal, gray)
    assert result.image.shape == (161, 215, 3)
    assert _grey_levels(result.image, expected.image) <= 1


def test_tiled_segmentation_sees_the_whole_image_at_a_bounded_size(msrs_dev):
    ir, vis = _pair(msrs_dev, 161, 215, stem="00298D")  # people and cars
    segmenter, card, _ = load_segmenter(None)  # runs at its inference_size, 240 x 320
    whole, tiled = _engines(16, precision="fp32", segmenter=segmenter)
    expected = whole.fuse(ir, vis, visible_order="bgr", segment=True)
    result = tiled.fuse(ir, vis, visible_order="bgr", segment=True)
    assert (result.mask == expected.mask).mean() > 0.999  # float rounding may flip a near tie
    assert {0, card["classes"].index("car"), card["classes"].index("person")} <= set(np.unique(result.mask))

    class Recorder(nn.Module):  # no inference_size: segments at whatever size it is given
        def __init__(self) -> None:
            super().__init__()
            self.sizes: list[tuple[int, int]] = []

        def forward(self, rgb: torch.Tensor) -> torch.Tensor:
            self.sizes.append(tuple(rgb.shape[-2:]))
            return torch.cat((rgb[:, :1], 1.0 - rgb[:, :1]), dim=1)

    recorder = Recorder()
    tiled.set_segmenter(recorder)
    mask = tiled.fuse(ir, vis, segment=True).mask
    (height, width), = recorder.sizes
    assert height * width <= tiled.tile_pixels < 161 * 215
    assert width / height == pytest.approx(215 / 161, rel=0.02)
    assert mask.shape == (161, 215) and set(np.unique(mask)) <= {0, 1}


@pytest.mark.parametrize("budget", [0, 15, float("nan"), float("inf"), True, "2048"])
def test_engine_refuses_a_bad_memory_budget(random_fusion_weights, budget):
    with pytest.raises(ValueError, match="memory_budget_mb must be a number of megabytes >= 16"):
        FusionEngine(random_fusion_weights, device="cpu", memory_budget_mb=budget)


def test_cli_memory_budget_option(capsys):
    parser = argparse.ArgumentParser(prog="seafusion-fuse")
    add_engine_arguments(parser)
    assert parser.parse_args([]).memory_budget == DEFAULT_MEMORY_BUDGET_MB
    assert parser.parse_args(["--memory-budget", "512"]).memory_budget == 512
    for bad in ("8", "lots", "1.5"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--memory-budget", bad])
        assert f"--memory-budget: expected an integer >= 16, got '{bad}'" in capsys.readouterr().err


def test_node_parameter_is_validated_and_reaches_the_engine(context, tmp_path):
    from rclpy.lifecycle import TransitionCallbackReturn
    from ros_graph import in_process_node, write_random_fusion_weights

    from seafusion_ros.ros.parameters import SPECS, ParameterError, config_from_values

    assert config_from_values({"memory_budget_mb": 512}).memory_budget_mb == 512
    with pytest.raises(ParameterError, match=r"memory_budget_mb = 8 is outside \[16, 1048576\]"):
        config_from_values({"memory_budget_mb": 8})
    (allowed,) = SPECS["memory_budget_mb"].descriptor().integer_range
    assert (allowed.from_value, allowed.to_value) == (16, 1048576)
    node = in_process_node(context, write_random_fusion_weights(tmp_path / "fusion.pt"), memory_budget_mb=64)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.engine.memory_budget_mb == 64
        assert node.engine.tile_pixels == int(64 * 2**20 / node.engine.tile_bytes_per_pixel)
    finally:
        node.stop()
        node.destroy_node()
