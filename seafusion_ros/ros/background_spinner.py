"""Spinning a node on a daemon thread, so a script can publish, wait and read results meanwhile."""

from __future__ import annotations

import threading

from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node


class BackgroundSpinner:
    """Runs ``node``'s callbacks in a thread of its own until :meth:`stop`."""

    def __init__(self, node: Node, context: Context, period_s: float = 0.05) -> None:
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(node)
        self._period_s = period_s
        self._running = True
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self._running:
            self.executor.spin_once(timeout_sec=self._period_s)

    def stop(self) -> None:
        self._running = False
        self._thread.join(timeout=5)
        self.executor.shutdown(timeout_sec=1.0)
