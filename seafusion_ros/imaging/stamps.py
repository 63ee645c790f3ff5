"""ROS time stamps (``sec`` + ``nanosec``, rclpy or rosbags messages) <-> integer nanoseconds."""

from __future__ import annotations

from typing import Any

NS_PER_S = 1_000_000_000


def stamp_to_ns(stamp: Any) -> int:
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def ns_to_sec_nanosec(stamp_ns: int) -> tuple[int, int]:
    sec, nanosec = divmod(int(stamp_ns), NS_PER_S)
    return sec, nanosec
