"""The seafusion ROS 2 node: synchronised thermal + RGB in; fused image, class mask and overlay out.

Topics (relative, so namespaces and remaps give multi-camera setups):

* in  ``thermal/image_raw`` (mono8/8UC1/mono16/16UC1/32FC1), ``rgb/image_raw``
  (rgb8/bgr8/rgba8/bgra8/mono8, cv_bridge passthrough 8UC1/8UC3/8UC4 read as mono8/bgr8/bgra8, and
  packed yuv422 (UYVY) / yuv422_yuy2 (YUYV)), QoS from ``qos.reliability`` / ``qos.depth`` (default best
  effort, keep last 5); with ``image_transport`` (or the per-input override) ``compressed``, the
  ``.../image_raw/compressed`` CompressedImage topics instead, decoded in the worker;
* in  ``rgb/camera_info`` (optional): republished as ``fused/camera_info`` with every fused image;
* out (reliable) ``fused/image`` (``output.encoding``), ``fused/camera_info`` (the RGB camera's, scaled
  to the output size), ``segmentation/mask`` (mono8 class ids),
  ``segmentation/overlay`` (rgb8), each with the RGB input's header; outputs without subscribers are
  not computed;
* out (reliable, transient local = latched) ``segmentation/classes``: std_msgs/String holding JSON
  ``{"classes": [...], "palette": [[r, g, b], ...]}``, index = class id in the mask;
* ``/diagnostics``: rates, drops, sync misses, bad input, per-stage latency, device and GPU memory.

Threads: subscription callbacks only validate the message layout (compressed: payload and format, not the
pixels) and feed the synchroniser; its
callback stores the newest pair; one worker thread converts, registers, runs the engine and publishes
the latest pair, counting every pair that was replaced before it got to it (dropped).

Lifecycle: configure = read and validate parameters, load the models, create the
publishers/subscriptions; activate = start the worker (refused while a previous worker is still busy);
deactivate = stop it, free the fusion model and move the segmenter to the CPU (GPU memory); cleanup =
destroy the entities. Warm-up runs at the real frames' size: the configured output size at load, else
the first RGB message's registered size, in the worker before the first pair. With ``autostart``
(default) a plain run does configure and activate itself. A worker still busy after deactivation's join
timeout finishes its pair without publishing it.

Parameters (``ros2 param set``): invalid values are refused when set, with the reason. On a configured
node (inactive or active) the live ones (output encoding, overlay alpha, normalize, thermal gain,
registration mode and homography, sync mode, queue size and slop, input timeout, stamp offset limit)
apply to the next pair, and changes to the others are refused until the node is cleaned up;
``autostart`` is read at start-up only (a new value is refused, its own value accepted, so a dumped
parameter file loads back).
Parameter names the node does not have (a misspelled params-file key) are named in a warning.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any

import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String
from torch import nn

from seafusion_ros.imaging.compressed import check_compressed
from seafusion_ros.imaging.intrinsics import scale_intrinsics
from seafusion_ros.imaging.overlay import blend_overlay, palette_array
from seafusion_ros.imaging.pair_input import BadInput, decode_input, is_compressed, prepare_pair
from seafusion_ros.imaging.registration import Registration
from seafusion_ros.imaging.stamps import stamp_to_ns
from seafusion_ros.imaging.time_sync import TimeSync, make_sync
from seafusion_ros.inference.engine import FusionEngine
from seafusion_ros.inference.thermal_gain import ThermalGain
from seafusion_ros.ros.dds_profile import segment_bytes, shared_memory_problem, use_large_image_profile
from seafusion_ros.ros.diagnostics import NodeStats
from seafusion_ros.ros.image_conversion import (
    COLOUR_ENCODINGS,
    THERMAL_ENCODINGS,
    ImageFormatError,
    check_layout,
    numpy_to_image,
)
from seafusion_ros.ros.parameters import (
    SPECS,
    NodeConfig,
    ParameterError,
    check_change,
    current_values,
    declare_parameters,
    read_config,
    unknown_parameter_warnings,
)
from seafusion_ros.weights import classes_and_palette, load_segmenter

NODE_NAME = "seafusion_node"
THERMAL, RGB = 0, 1
INPUT_TOPICS = ("thermal/image_raw", "rgb/image_raw")
CAMERA_INFO_TOPIC = "rgb/camera_info"
BAD_INPUT_LOG_PERIOD_S = 5.0
WORKER_JOIN_TIMEOUT_S = 30.0


class SeaFusionNode(LifecycleNode):
    """Lifecycle node around :class:`FusionEngine`.

    segmenter / segmenter_card: a segmentation network given directly (in-process use and tests);
    it replaces ``segmentation_weights``.
    """

    def __init__(
        self,
        node_name: str = NODE_NAME,
        *,
        segmenter: nn.Module | None = None,
        segmenter_card: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(node_name, **kwargs)
        declare_parameters(self)
        for warning in unknown_parameter_warnings(n for n in self._parameter_overrides if not self.has_parameter(n)):
            self.get_logger().warning(warning)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._given_segmenter = segmenter
        self._given_card = dict(segmenter_card or {})
        self.config: NodeConfig | None = None
        self.engine: FusionEngine | None = None
        self.registration: Registration | None = None
        self.classes: list[str] = []
        self.palette: np.ndarray | None = None
        self._segmenter: nn.Module | None = None
        self._pubs: dict[str, Any] = {}
        self._subs: list[Any] = []
        self._timers: list[Any] = []
        self._sync: TimeSync | None = None
        self._mf_sync: Any = None
        self._mf_inputs: list[Any] = []
        self.synchroniser = ""
        self._last_stamp: list[int | None] = [None, None]
        self._bad_logged: dict[str, float] = {}
        self._cv = threading.Condition()
        # the newest pair and when it formed (time.monotonic(), for the stamp-free in-node latency)
        self._pending: tuple[Image | CompressedImage, Image | CompressedImage, float] | None = None
        self._camera_info: CameraInfo | None = None  # the newest rgb/camera_info
        self._worker: threading.Thread | None = None
        self.worker_join_timeout = WORKER_JOIN_TIMEOUT_S  # how long deactivation/activation wait for a busy worker
        self._stop = False
        self._needs_warmup = False  # warm up at the first RGB message's size (no output size configured)
        self._warmup_size: tuple[int, int] | None = None  # a warm-up the worker should run next
        self._active = False
        self.stats = NodeStats(list(zip(("thermal", "rgb"), self._input_topics(), strict=True)))

    def _input_transports(self) -> tuple[str, str]:
        return self.config.transports if self.config is not None else ("raw", "raw")

    def _input_topics(self) -> list[str]:
        """The input topics as subscribed (remaps applied): ``.../compressed`` for a compressed transport."""
        return [self.resolve_topic_name(topic + ("/compressed" if transport == "compressed" else ""))
                for topic, transport in zip(INPUT_TOPICS, self._input_transports(), strict=True)]

    # ----- lifecycle -----------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.config = read_config(self)
            cfg = self.config
            if cfg.torch_threads:
                torch.set_num_threads(cfg.torch_threads)
            self.registration = Registration(cfg.registration_mode, cfg.homography, cfg.output_size)
            self._load_segmenter()
            self._load_engine()
        except (ParameterError, ValueError, FileNotFoundError) as exc:
            self.get_logger().error(f"configuration failed: {exc}")
            self.engine, self.config = None, None
            return TransitionCallbackReturn.FAILURE
        except Exception:  # rclpy's lifecycle would swallow it unlogged (out of GPU memory, permissions...)
            self.get_logger().error(f"configuration failed:\n{traceback.format_exc()}")
            self.engine, self.config = None, None
            return TransitionCallbackReturn.FAILURE
        try:
            self._create_entities()
        except Exception:  # e.g. an invalid remapped topic name: leave the node truly unconfigured
            self.get_logger().error(f"configuration failed:\n{traceback.format_exc()}")
            self._destroy_entities()
            self.engine, self.config = None, None
            return TransitionCallbackReturn.FAILURE
        segmentation = "on" if self._segmenter is not None else "off"
        self.get_logger().info(
            f"configured: device {self.engine.device}, precision {self.engine.precision}, "
            f"synchroniser {self.synchroniser} ({cfg.sync_mode}, queue {cfg.queue_size}, "
            f"slop {cfg.slop_ns / 1e9:g} s), input QoS {self._qos_text()}, "
            f"registration {cfg.registration_mode}, segmentation {segmentation}"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if not self._join_worker():
            self.get_logger().error(
                f"activation refused: the previous worker is still processing a pair after "
                f"{self.worker_join_timeout:g} s (stuck inference?), and a second worker must not run beside it; "
                "activate again later or restart the node"
            )
            return TransitionCallbackReturn.FAILURE
        if self.engine is None:
            try:
                self._load_engine()
            except (ValueError, FileNotFoundError) as exc:
                self.get_logger().error(f"activation failed: {exc}")
                return TransitionCallbackReturn.FAILURE
            except Exception:  # see on_configure
                self.get_logger().error(f"activation failed:\n{traceback.format_exc()}")
                return TransitionCallbackReturn.FAILURE
        self._stop = False
        self._worker = threading.Thread(target=self._work, name="seafusion_worker", daemon=True)
        self._worker.start()
        self._last_stamp = [None, None]
        self.stats.reset_clock()
        self._active = True
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._stop_worker()
        self._release_engine()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._destroy_entities()
        self._release_engine()
        self._segmenter = None
        self.config = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._stop_worker()
        self._destroy_entities()
        self._release_engine()
        return TransitionCallbackReturn.SUCCESS

    # ----- parameters ----------------------------------------------------------------------------

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Refuse what would not be used (or is invalid) with the reason; apply live values at once."""
        changes = {p.name: p.value for p in params if p.name in SPECS}
        if not changes:
            return SetParametersResult(successful=True)
        try:
            config, changed = check_change(current_values(self), changes, configured=self.config is not None)
            registration = self.registration
            if config is not None and changed & {"registration.mode", "registration.homography"}:
                registration = Registration(config.registration_mode, config.homography, config.output_size)
        except (ParameterError, ValueError) as exc:
            self.get_logger().warning(f"parameter change refused: {exc}")
            return SetParametersResult(successful=False, reason=str(exc))
        if config is not None and changed:
            self._apply_live(config, changed, registration)
        return SetParametersResult(successful=True)

    def _apply_live(self, config: NodeConfig, changed: set[str], registration: Registration) -> None:
        """Switch to a validated configuration that differs from the current one in live parameters only.

        Plain attribute swaps: the pair the worker is processing may still use some old values, the next
        one uses all the new ones. A new thermal gain starts its temporal smoothing afresh.
        """
        self.config, self.registration = config, registration
        engine = self.engine  # None while inactive: activation builds the engine from self.config
        if engine is not None:
            engine.normalize = config.normalize
            if any(name.startswith("thermal_gain.") for name in changed):
                engine.gain = ThermalGain(config.thermal_gain)
        if any(name.startswith("sync.") for name in changed):
            self._create_sync()
        self.get_logger().info(f"applied at once: {', '.join(sorted(changed))}")

    def _load_segmenter(self) -> None:
        cfg = self.config
        self._segmenter, card = None, {}
        if not (cfg.publish_mask or cfg.publish_overlay):
            return
        if self._given_segmenter is not None:
            self._segmenter, card = self._given_segmenter, self._given_card
        else:
            self._segmenter, card, note = load_segmenter(cfg.segmentation_weights)
            (self.get_logger().info if self._segmenter is not None else self.get_logger().warning)(note)
        if self._segmenter is not None:
            self.classes, palette = classes_and_palette(card, self._segmenter)
            self.palette = palette_array(palette)

    def _load_engine(self) -> None:
        """Load the fusion (and segmentation) models onto the device and warm them up."""
        cfg = self.config
        self.engine = FusionEngine(
            weights=cfg.fusion_weights or None,
            device=cfg.device,
            precision=cfg.precision,
            normalize=cfg.normalize,
            thermal_gain=cfg.thermal_gain,
            segmenter=self._segmenter,
            backend=cfg.backend,
            internal_scale=cfg.internal_scale,
            memory_budget_mb=cfg.memory_budget_mb,
            int8_calibration=cfg.int8_calibration or None,
        )
        # Warm up at the size real frames will have, so kernel selection and allocation happen once: the
        # configured output size now, else the first RGB message's (registered) size, in the worker.
        self._needs_warmup = cfg.warmup and cfg.output_size is None
        self._warmup_size = None
        if cfg.warmup and cfg.output_size is not None:
            self._warm_up(cfg.output_size)

    def _warm_up(self, size: tuple[int, int]) -> None:
        engine = self.engine
        if engine is None:
            return
        engine.warmup(size[0], size[1], segment=self._segmenter is not None)
        engine.gain.reset()

    def _release_engine(self) -> None:
        """Drop the fusion model and move the kept segmenter to the CPU: deactivation frees the GPU memory."""
        if self.engine is None:
            return
        on_gpu = self.engine.device.type == "cuda"
        self.engine = None
        if self._segmenter is not None:
            self._segmenter.to("cpu")  # the engine moved it to its device; the node keeps it for re-activation
        gc.collect()
        if on_gpu:
            torch.cuda.empty_cache()

    def _qos_text(self) -> str:
        return f"{self.config.reliability}, keep_last depth {self.config.depth}"

    def _create_entities(self) -> None:
        cfg = self.config
        reliable = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE
        )
        latched = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=1,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        if cfg.publish_fused:
            self._pubs["fused"] = self.create_publisher(Image, "fused/image", reliable)
            self._pubs["camera_info"] = self.create_publisher(CameraInfo, "fused/camera_info", reliable)
        if self._segmenter is not None:
            if cfg.publish_mask:
                self._pubs["mask"] = self.create_publisher(Image, "segmentation/mask", reliable)
            if cfg.publish_overlay:
                self._pubs["overlay"] = self.create_publisher(Image, "segmentation/overlay", reliable)
            self._pubs["classes"] = self.create_publisher(String, "segmentation/classes", latched)
            palette = self.palette[: len(self.classes)].tolist()
            self._pubs["classes"].publish(
                String(data=json.dumps({"classes": self.classes, "palette": palette}))
            )
        self._pubs["diagnostics"] = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._create_sync()
        sensor = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=cfg.depth,
            reliability=ReliabilityPolicy.RELIABLE
            if cfg.reliability == "reliable"
            else ReliabilityPolicy.BEST_EFFORT,
        )
        for index, (topic, transport) in enumerate(zip(self._input_topics(), self._input_transports(), strict=True)):
            self.stats.inputs[index].topic = topic
            message_type = CompressedImage if transport == "compressed" else Image  # by transport: remaps rename
            self._subs.append(
                self.create_subscription(message_type, topic, lambda msg, i=index: self._on_input(i, msg), sensor)
            )
        self._camera_info = None
        if cfg.publish_fused:  # best effort matches a reliable camera_info publisher too
            self._subs.append(self.create_subscription(CameraInfo, CAMERA_INFO_TOPIC, self._on_camera_info, sensor))
        self._timers.append(self.create_timer(cfg.diagnostics_period, self._publish_diagnostics))

    def _create_sync(self) -> None:
        cfg = self.config
        self._sync, self._mf_sync, self._mf_inputs = None, None, []
        message_filters = None
        if cfg.use_message_filters:
            try:
                import message_filters
            except ImportError:
                message_filters = None
        if message_filters is not None:
            self._mf_inputs = [message_filters.SimpleFilter() for _ in INPUT_TOPICS]
            if cfg.sync_mode == "approximate":
                self._mf_sync = message_filters.ApproximateTimeSynchronizer(
                    self._mf_inputs, cfg.queue_size, cfg.slop_ns / 1e9
                )
            else:
                self._mf_sync = message_filters.TimeSynchronizer(self._mf_inputs, cfg.queue_size)
            self._mf_sync.registerCallback(self._on_pair)
            self.synchroniser = "message_filters"
        else:
            self._sync = make_sync(
                cfg.sync_mode, len(INPUT_TOPICS), cfg.queue_size, cfg.slop_ns, self._on_pair
            )
            self.synchroniser = "seafusion_ros.imaging.time_sync"

    def _destroy_entities(self) -> None:
        for timer in self._timers:
            self.destroy_timer(timer)
        for sub in self._subs:
            self.destroy_subscription(sub)
        for pub in self._pubs.values():
            self.destroy_publisher(pub)
        self._timers, self._subs, self._pubs = [], [], {}
        self._sync, self._mf_sync, self._mf_inputs = None, None, []

    # ----- input side ----------------------------------------------------------------------------

    def _report_bad(self, kind: str, message: str, rejected_input: bool = False) -> None:
        """Count for /diagnostics and log, at most once per kind every few seconds.

        rejected_input: the message was refused before the synchroniser (it can never be a sync miss).
        """
        self.stats.bad(kind, message, rejected_input)
        now = time.monotonic()
        if now - self._bad_logged.get(kind, -1e9) >= BAD_INPUT_LOG_PERIOD_S:
            self._bad_logged[kind] = now
            self.get_logger().warning(f"bad input ({kind}): {message}")

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def _on_input(self, index: int, msg: Image | CompressedImage) -> None:
        if not self._active:
            return
        stamp = stamp_to_ns(msg.header.stamp)
        self.stats.input_arrived(index, (self.get_clock().now().nanoseconds - stamp) / 1e9)
        name = self.stats.inputs[index].topic
        allowed = THERMAL_ENCODINGS if index == THERMAL else COLOUR_ENCODINGS
        try:
            if is_compressed(msg):
                check_compressed(msg)  # the pixels are decoded in the worker, only for the pairs it fuses
            else:
                check_layout(msg, allowed)
            if index == RGB and self._needs_warmup:  # before any pair can form, so it runs before the first one
                size = decode_input(msg, allowed)[0].shape[:2] if is_compressed(msg) else (msg.height, msg.width)
                self._needs_warmup = False
                with self._cv:
                    self._warmup_size = self.registration.output_shape(size)
                    self._cv.notify()
        except ImageFormatError as exc:
            self._report_bad(exc.kind, f"{name}: {exc}", rejected_input=True)
            return
        last = self._last_stamp[index]
        self._last_stamp[index] = stamp
        if last is not None and stamp < last:
            # A looping bag, a restarted camera or a clock jump: queued messages of the old timeline would
            # never pair with new ones (and would evict them), so start the synchroniser afresh.
            self._report_bad(
                "stamp_backwards",
                f"{name}: stamp {stamp / 1e9:.6f} s is older than the previous {last / 1e9:.6f} s; "
                "time reset assumed: synchroniser queues cleared",
            )
            self._last_stamp = [None] * len(INPUT_TOPICS)
            self._last_stamp[index] = stamp
            self._create_sync()
        if self._sync is not None:
            self._sync.add(index, stamp, msg)
        elif self._mf_inputs:
            self._mf_inputs[index].signalMessage(msg)

    def _on_pair(self, thermal: Image | CompressedImage, rgb: Image | CompressedImage) -> None:
        """Synchroniser callback: keep only the newest pair for the worker."""
        with self._cv:
            replaced = self._pending is not None
            self._pending = (thermal, rgb, time.monotonic())
            self.stats.pair_formed(replaced)
            self._cv.notify()

    def sync_misses(self) -> int:
        """Input messages that left the synchroniser without a partner."""
        if self._sync is not None:
            return sum(self._sync.evicted)
        if self._mf_sync is not None and hasattr(self._mf_sync, "queues"):
            queued = sum(len(q) for q in self._mf_sync.queues)
            synchronised = sum(s.received for s in self.stats.inputs) - self.stats.rejected_inputs
            return max(0, synchronised - 2 * self.stats.paired - queued)
        return 0

    # ----- worker --------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop taking input and join the worker (also used on shutdown outside the lifecycle)."""
        self._active = False
        self._stop_worker()

    def worker_alive(self) -> bool:
        """A worker still runs (busy with a pair after a join timed out)."""
        return self._worker is not None and self._worker.is_alive()

    def _stop_worker(self) -> None:
        with self._cv:
            self._stop = True
            self._pending = None
            self._warmup_size = None
            self._cv.notify_all()
        self._join_worker()

    def _join_worker(self) -> bool:
        """Wait for a stopping worker; False (and it stays known) if it is still busy after the timeout."""
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=self.worker_join_timeout)
            if worker.is_alive():
                self.get_logger().warning(
                    f"the worker is still processing a pair after {self.worker_join_timeout:g} s; "
                    "it exits when that pair is done, without publishing it"
                )
                return False
        self._worker = None
        return True

    def _work(self) -> None:
        while True:
            with self._cv:
                while self._pending is None and self._warmup_size is None and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                warmup_size, self._warmup_size = self._warmup_size, None
                if warmup_size is None:
                    thermal, rgb, formed = self._pending
                    self._pending = None
            if warmup_size is not None:
                try:
                    self._warm_up(warmup_size)
                except Exception as exc:  # a failed warm-up only costs the first frame its speed
                    self.get_logger().warning(f"warm-up at {warmup_size} failed: {type(exc).__name__}: {exc}")
                continue
            try:
                self._process(thermal, rgb, formed)
            except (BadInput, ImageFormatError) as exc:
                self._report_bad(exc.kind, str(exc))
            except Exception as exc:  # one bad pair must never stop the worker
                self._report_bad("processing_error", f"{type(exc).__name__}: {exc}")

    def _wanted(self, key: str) -> bool:
        pub = self._pubs.get(key)
        return pub is not None and pub.get_subscription_count() > 0

    def _fused_camera_info(self, header: Any, size: tuple[int, int]) -> CameraInfo | None:
        """The RGB camera's newest CameraInfo under the fused image's header, scaled to its size (height, width)."""
        info = self._camera_info
        if info is None:
            return None
        fused = CameraInfo()
        fused.header = header
        fused.distortion_model, fused.d, fused.r = info.distortion_model, info.d, info.r
        calibrated = (int(info.height), int(info.width))
        if min(calibrated) > 0 and calibrated != size:
            k, p = scale_intrinsics(info.k, info.p, calibrated, size)
            fused.k, fused.p = k, p
        else:
            fused.k, fused.p = info.k, info.p
        fused.height, fused.width = size
        return fused

    def _process(self, thermal_msg: Image | CompressedImage, rgb_msg: Image | CompressedImage, formed: float) -> None:
        """Fuse (and segment) one pair and publish; ``formed``: time.monotonic() when the pair formed."""
        engine, registration, cfg = self.engine, self.registration, self.config
        if engine is None:
            return
        want_fused, want_mask, want_overlay = (
            self._wanted("fused"),
            self._wanted("mask"),
            self._wanted("overlay"),
        )
        if not (want_fused or want_mask or want_overlay):
            self.stats.pair_skipped()
            return
        t0 = time.perf_counter()
        pair = prepare_pair(thermal_msg, rgb_msg, registration)
        t1 = time.perf_counter()
        out = engine.fuse(pair.thermal, pair.visible, visible_order=pair.visible_order, output_order="rgb",
                          segment=want_mask or want_overlay,
                          mono=want_fused and cfg.output_encoding == "mono8")
        t2 = time.perf_counter()
        header = rgb_msg.header
        messages = []
        if want_fused:
            if cfg.output_encoding == "mono8":
                fused = out.mono
            elif cfg.output_encoding == "bgr8":
                fused = out.image[:, :, ::-1]
            else:
                fused = out.image
            messages.append(("fused", numpy_to_image(fused, cfg.output_encoding, header)))
            camera_info = self._fused_camera_info(header, fused.shape[:2])
            if camera_info is not None:
                messages.append(("camera_info", camera_info))
        if want_mask:
            messages.append(("mask", numpy_to_image(out.mask, "mono8", header)))
        if want_overlay:
            overlay = blend_overlay(out.image, out.mask, self.palette, cfg.overlay_alpha)
            messages.append(("overlay", numpy_to_image(overlay, "rgb8", header)))
        with self._cv:  # deactivation sets _stop under this lock: it comes wholly before or after the publishing
            if self._stop:  # deactivated while this pair was in the engine (the worker outlived the join timeout)
                return
            for key, msg in messages:
                self._pubs[key].publish(msg)
        t3 = time.perf_counter()
        stamp_ns = stamp_to_ns(header.stamp)
        timings = out.timings
        self.stats.pair_processed(
            {
                "decode": t1 - t0,
                "fuse": timings.get("prepare", 0.0) + timings.get("fuse", 0.0) + timings.get("finish", 0.0),
                "segment": timings.get("segment", 0.0),
                "publish": t3 - t2,
                "in_node": time.monotonic() - formed,
                "end_to_end": (self.get_clock().now().nanoseconds - stamp_ns) / 1e9,
            }
        )

    # ----- diagnostics ---------------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        cfg, engine = self.config, self.engine
        extra = {
            "state": "active" if self._active else "inactive",
            "synchroniser": self.synchroniser,
            "sync_mode": cfg.sync_mode,
            "sync_misses": str(self.sync_misses()),
            "input_qos": self._qos_text(),
            "segmentation": "on" if self._segmenter is not None else "off",
            "device": str(engine.device) if engine is not None else "released",
            "precision": engine.precision if engine is not None else cfg.precision,
        }
        if engine is not None and engine.device.type == "cuda":
            extra["gpu_memory_allocated_mib"] = f"{torch.cuda.memory_allocated(engine.device) / 2**20:.1f}"
            extra["gpu_memory_reserved_mib"] = f"{torch.cuda.memory_reserved(engine.device) / 2**20:.1f}"
        else:
            extra["gpu_memory_allocated_mib"] = "n/a (cpu)"
        status = self.stats.status(
            self.get_fully_qualified_name(),
            extra["device"],
            extra,
            cfg.input_timeout,
            self._qos_text(),
            cfg.diagnostics_period,
            cfg.max_stamp_offset,
        )
        if self._active:
            silent = self.stats.silent_inputs(cfg.input_timeout)
            if silent:
                topics = ", ".join(f"{topic} for {since:.1f} s" for topic, since in silent)
                self.get_logger().warning(
                    f"no message on {topics} (subscriber QoS: {self._qos_text()}; a reliable subscriber gets "
                    "nothing from a best-effort publisher)",
                    throttle_duration_sec=10.0,
                )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._pubs["diagnostics"].publish(array)


SHUTDOWN_JOIN_TIMEOUT_S = 1.0  # on SIGINT/SIGTERM: how long a busy worker may finish its pair
SPIN_PERIOD_S = 0.1  # how often the executor returns to Python, where signal handlers run


class ShutdownRequest:
    """SIGINT and SIGTERM (the first one) ask the node to stop; later ones while it stops are ignored.

    Python handlers instead of rclpy's: rclpy's second-signal path aborts the process (exit 134) when it
    arrives during the clean-up, and the executor is spun in short slices so the handler runs promptly.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum

    @property
    def requested(self) -> bool:
        return self.signum is not None


def main(
    args: list[str] | None = None,
    segmenter: nn.Module | None = None,
    segmenter_card: dict[str, Any] | None = None,
) -> int:
    """Run the node until shutdown; exit status 1 when configuration fails, 2 for invalid parameters, 0 after
    SIGINT or SIGTERM (a clean shutdown, within about SHUTDOWN_JOIN_TIMEOUT_S + a second)."""
    profile = use_large_image_profile()
    segment = segment_bytes(profile)
    shm_problem = shared_memory_problem(segment) if segment is not None else None
    shutdown = ShutdownRequest()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    worker_busy = False
    try:
        try:
            node = SeaFusionNode(segmenter=segmenter, segmenter_card=segmenter_card)
        except (ValueError, TypeError, ParameterException) as exc:
            print(f"seafusion_node: invalid parameters: {exc}", file=sys.stderr)
            return 2
        if shm_problem is not None:
            node.get_logger().warning(f"large images may not cross DDS: {shm_problem}")
        if not shutdown.requested and node.get_parameter("autostart").value:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                print("seafusion_node: configuration failed (see the error above)", file=sys.stderr)
                return 1
            if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                print("seafusion_node: activation failed (see the error above)", file=sys.stderr)
                return 1
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while not shutdown.requested and rclpy.ok():
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)
    except ExternalShutdownException:
        pass
    finally:
        if node is not None:
            if shutdown.requested:
                node.get_logger().info(f"{signal.Signals(shutdown.signum).name}: shutting down")
            node.worker_join_timeout = SHUTDOWN_JOIN_TIMEOUT_S
            node.stop()
            worker_busy = node.worker_alive()
            node.destroy_node()
        rclpy.try_shutdown()
    if worker_busy:  # a pair still in the engine: do not wait for it in the interpreter's teardown
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
