"""Shared test fixtures: where ../shared lives, a small random fusion checkpoint, an rclpy context."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from seafusion_ros.models.checkpoint import save_checkpoint
from seafusion_ros.models.seafusion import seafusion

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
RELEASED_WEIGHTS = SHARED / "weights" / "seafusion_official_fusion.pth"
MSRS_DEV = SHARED / "data" / "msrs_dev"


def require_shared(path: Path) -> Path:
    """Skip (with the reason printed by -ra) when a ../shared file is absent."""
    if not path.exists():
        pytest.skip(f"{path} not found: ../shared data is absent beside the checkout")
    return path


@pytest.fixture
def released_weights() -> Path:
    return require_shared(RELEASED_WEIGHTS)


@pytest.fixture
def msrs_dev() -> Path:
    return require_shared(MSRS_DEV)


@pytest.fixture
def random_fusion_weights(tmp_path: Path) -> Path:
    """A randomly initialised fusion network in our checkpoint format (fast, valid, meaningless)."""
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "random_fusion.pt", seafusion(), "seafusion", {"name": "random test model"})


@pytest.fixture
def context() -> Iterator[Any]:
    """A fresh rclpy context in this test session's ROS domain, shut down after the test.

    rclpy is imported here, not at the top, so the ROS-free tests run where ROS is not installed.
    """
    import rclpy
    from rclpy.context import Context
    from ros_graph import DOMAIN_ID

    ctx = Context()
    rclpy.init(context=ctx, domain_id=DOMAIN_ID)
    yield ctx
    ctx.try_shutdown()
