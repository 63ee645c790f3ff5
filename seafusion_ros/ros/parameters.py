"""The node's parameters: one table (name, default, description, range or choices) declared with ROS
descriptors, read into a validated :class:`NodeConfig` on configure.

ROS checks ranges itself when a value is set (also from a params file, at start-up); the choices and
the cross-parameter rules are checked here, all problems reported together in one
:class:`ParameterError`. Values are read on each configure transition; the ``live`` ones (output look,
thermal gain, registration warp, synchroniser) also apply at once when changed on a configured node,
and the node refuses changes to the others until it is unconfigured again, so a configured node never
reports a value it is not using.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node

from seafusion_ros.imaging.registration import IDENTITY_HOMOGRAPHY, REGISTRATION_MODES, Registration
from seafusion_ros.imaging.time_sync import SYNC_MODES
from seafusion_ros.inference.engine import (
    BACKENDS,
    DEFAULT_MEMORY_BUDGET_MB,
    ENGINE_PRECISIONS,
    MIN_MEMORY_BUDGET_MB,
    NORMALIZATIONS,
)
from seafusion_ros.inference.thermal_gain import GAIN_MODES, ThermalGainConfig

RELIABILITIES = ("best_effort", "reliable")
TRANSPORTS = ("raw", "compressed")
OUTPUT_ENCODINGS = ("rgb8", "bgr8", "mono8")


class ParameterError(ValueError):
    """Invalid parameter values; the message lists every problem."""


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    live: bool = False  # applied at once on a configured node; else read on configure only
    startup_only: bool = False  # only a start-up value (params file, launch) makes sense

    def descriptor(self) -> ParameterDescriptor:
        constraints = [f"one of: {', '.join(self.choices)}"] if self.choices else []
        if self.startup_only:
            constraints.append("read at start-up only")
        elif self.live:
            constraints.append("changes apply at once")
        else:
            constraints.append("read on configure: change it while the node is unconfigured")
        desc = ParameterDescriptor(
            name=self.name,
            description=self.description,
            additional_constraints="; ".join(constraints),
        )
        if self.low is not None and self.high is not None:
            if isinstance(self.default, bool):
                pass
            elif isinstance(self.default, int):
                desc.integer_range = [IntegerRange(from_value=int(self.low), to_value=int(self.high), step=0)]
            elif isinstance(self.default, float):
                desc.floating_point_range = [
                    FloatingPointRange(from_value=float(self.low), to_value=float(self.high), step=0.0)
                ]
        return desc


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "autostart",
        True,
        "configure and activate at start-up (false: wait for lifecycle transitions)",
        startup_only=True,
    ),
    ParamSpec("device", "auto", "torch device: auto (CUDA if available, else CPU), cpu, cuda, cuda:N"),
    ParamSpec("precision", "auto", "inference precision: auto = fp16 on CUDA, bf16 on CPUs with native bf16, "
              "else fp32; int8 = backend openvino with int8_calibration (fusion quantised: faster, lower quality)",
              choices=ENGINE_PRECISIONS),
    ParamSpec("int8_calibration", "", "with precision int8: a folder of real pairs from these cameras (ir/ + vi/) to "
              "calibrate the quantisation on; the quantised model is cached in ~/.cache/seafusion_ros"),
    ParamSpec("backend", "auto", "inference backend: auto (openvino on a CPU when installed, else torch), torch, "
              "onnxruntime (exact fp32) or openvino (CPU only, bf16 where the CPU has it)",
              choices=BACKENDS),
    ParamSpec("internal_scale", 1.0, "run the fusion network at this fraction of the resolution and upsample "
              "guided by both images (CPU degrade knob; 1.0 = full resolution)", low=0.25, high=1.0),
    ParamSpec("memory_budget_mb", DEFAULT_MEMORY_BUDGET_MB, "working memory of one fusion tile in MB: larger frames "
              "are fused in overlapping tiles, with the same output up to float rounding", low=MIN_MEMORY_BUDGET_MB,
              high=1048576),
    ParamSpec(
        "normalize",
        "none",
        "output stretch: none (stable across frames) or minmax (per frame)",
        choices=NORMALIZATIONS,
        live=True,
    ),
    ParamSpec("fusion_weights", "", "fusion checkpoint path; empty = the bundled default model"),
    ParamSpec(
        "segmentation_weights",
        "",
        "segmentation checkpoint path; empty = the bundled default if installed, else no mask/overlay",
    ),
    ParamSpec("torch_threads", 0, "CPU threads for torch; 0 = torch's default", low=0, high=256),
    ParamSpec("warmup", True, "run one dummy frame at the output size (when set) after loading the models, "
              "else at the first RGB image's size before its pair is fused"),
    ParamSpec("thermal_gain.mode", "percentile", "16-bit/float thermal to [0, 1]", choices=GAIN_MODES,
              live=True),
    ParamSpec("thermal_gain.low_percentile", 1.0, "lower percentile of the gain window", low=0.0, high=100.0,
              live=True),
    ParamSpec(
        "thermal_gain.high_percentile", 99.0, "upper percentile of the gain window", low=0.0, high=100.0,
        live=True,
    ),
    ParamSpec("thermal_gain.fixed_low", 0.0, "raw value mapped to 0 in fixed mode", low=-1e9, high=1e9,
              live=True),
    ParamSpec("thermal_gain.fixed_high", 65535.0, "raw value mapped to 1 in fixed mode", low=-1e9, high=1e9,
              live=True),
    ParamSpec(
        "thermal_gain.smoothing", 0.0, "temporal smoothing of the gain window (0 = none)", low=0.0, high=0.999,
        live=True,
    ),
    ParamSpec(
        "registration.mode",
        "none",
        "thermal -> RGB warp: none (sizes must match), scale (stretch), homography",
        choices=REGISTRATION_MODES,
        live=True,
    ),
    ParamSpec(
        "registration.homography",
        list(IDENTITY_HOMOGRAPHY),
        "3x3 thermal -> RGB pixel homography, row-major (mode homography)",
        live=True,
    ),
    ParamSpec("registration.output_width", 0, "fused output width; 0 = RGB width", low=0, high=16384),
    ParamSpec("registration.output_height", 0, "fused output height; 0 = RGB height", low=0, high=16384),
    ParamSpec(
        "sync.mode",
        "approximate",
        "pairing: approximate (within slop) or exact stamps",
        choices=SYNC_MODES,
        live=True,
    ),
    ParamSpec("sync.queue_size", 10, "messages kept per input while waiting for a partner", low=1, high=1000,
              live=True),
    ParamSpec(
        "sync.slop", 0.05, "approximate sync: max stamp difference in seconds (strict)", low=0.0, high=10.0,
        live=True,
    ),
    ParamSpec(
        "sync.use_message_filters",
        True,
        "use message_filters when importable (else the built-in synchroniser, same behaviour)",
    ),
    ParamSpec("image_transport", "raw", "input transport: raw (sensor_msgs/Image on thermal/image_raw, "
              "rgb/image_raw) or compressed (sensor_msgs/CompressedImage on .../image_raw/compressed)",
              choices=TRANSPORTS),
    ParamSpec("thermal_image_transport", "", "thermal input's transport; empty = image_transport",
              choices=("", *TRANSPORTS)),
    ParamSpec("rgb_image_transport", "", "RGB input's transport; empty = image_transport", choices=("", *TRANSPORTS)),
    ParamSpec("qos.reliability", "best_effort", "input subscriptions' reliability", choices=RELIABILITIES),
    ParamSpec("qos.depth", 5, "input subscriptions' keep-last depth", low=1, high=1000),
    ParamSpec("output.encoding", "rgb8", "fused image encoding (mono8: the fused luminance, stretched per "
              "frame with normalize minmax)", choices=OUTPUT_ENCODINGS, live=True),
    ParamSpec("overlay.alpha", 0.5, "weight of the class colours in the overlay", low=0.0, high=1.0, live=True),
    ParamSpec("outputs.fused", True, "publish fused/image (and fused/camera_info while rgb/camera_info is published)"),
    ParamSpec("outputs.mask", True, "publish segmentation/mask (needs a segmentation model)"),
    ParamSpec("outputs.overlay", True, "publish segmentation/overlay (needs a segmentation model)"),
    ParamSpec("diagnostics.period", 1.0, "seconds between /diagnostics messages", low=0.05, high=60.0),
    ParamSpec(
        "diagnostics.input_timeout",
        3.0,
        "warn when an input was silent this many seconds",
        low=0.1,
        high=3600.0,
        live=True,
    ),
    ParamSpec(
        "diagnostics.max_stamp_offset",
        1.0,
        "warn when input stamps are this many seconds from the node's clock at arrival (clock offset, time jump)",
        low=0.001,
        high=86400.0,
        live=True,
    ),
)


@dataclass(frozen=True)
class NodeConfig:
    """Validated parameter values, grouped as the ROS-free modules take them."""

    autostart: bool
    device: str
    precision: str
    backend: str
    internal_scale: float
    memory_budget_mb: int
    normalize: str
    fusion_weights: str
    int8_calibration: str
    segmentation_weights: str
    torch_threads: int
    warmup: bool
    thermal_gain: ThermalGainConfig
    registration_mode: str
    homography: tuple[float, ...]
    output_size: tuple[int, int] | None
    sync_mode: str
    queue_size: int
    slop_ns: int
    use_message_filters: bool
    transports: tuple[str, str]  # thermal, RGB: raw or compressed
    reliability: str
    depth: int
    output_encoding: str
    overlay_alpha: float
    publish_fused: bool
    publish_mask: bool
    publish_overlay: bool
    diagnostics_period: float
    input_timeout: float
    max_stamp_offset: float


SPECS: dict[str, ParamSpec] = {spec.name: spec for spec in PARAMETERS}


def declare_parameters(node: Node) -> None:
    """Declare every parameter with its descriptor (params-file values override the defaults)."""
    node.declare_parameters("", [(spec.name, spec.default, spec.descriptor()) for spec in PARAMETERS])


def value_problems(name: str, value: Any) -> list[str]:
    """What is wrong with one parameter's value on its own (choices, range, shape), if anything."""
    spec = SPECS[name]
    if spec.choices and value not in spec.choices:
        return [f"{name} = {value!r} is not one of {', '.join(spec.choices)}"]
    if spec.low is not None and not isinstance(value, bool) and not spec.low <= value <= spec.high:
        return [f"{name} = {value!r} is outside [{spec.low}, {spec.high}]"]
    if name == "registration.homography" and len(value) != 9:
        return [f"registration.homography needs 9 values (3x3 row-major), got {len(value)}"]
    if name == "device" and value != "auto" and not str(value).startswith(("cpu", "cuda")):
        return [f"device = {value!r}: use auto, cpu, cuda or cuda:N"]
    return []


def config_from_values(values: dict[str, Any]) -> NodeConfig:
    """Validate a name -> value mapping (missing names take the defaults) into a NodeConfig."""
    unknown = sorted(set(values) - set(SPECS))
    v = {name: values.get(name, spec.default) for name, spec in SPECS.items()}
    problems = [f"unknown parameter {name!r}" for name in unknown]
    for name, value in v.items():
        problems += value_problems(name, value)
    thermal_gain = None
    try:
        thermal_gain = ThermalGainConfig(
            mode=v["thermal_gain.mode"] if v["thermal_gain.mode"] in GAIN_MODES else "percentile",
            low_percentile=v["thermal_gain.low_percentile"],
            high_percentile=v["thermal_gain.high_percentile"],
            fixed_low=v["thermal_gain.fixed_low"],
            fixed_high=v["thermal_gain.fixed_high"],
            smoothing=v["thermal_gain.smoothing"],
        )
    except ValueError as exc:
        problems.append(str(exc))
    homography = tuple(float(x) for x in v["registration.homography"])
    if v["registration.mode"] == "homography" and len(homography) == 9:
        try:
            Registration("homography", homography)
        except ValueError as exc:
            problems.append(f"registration.homography: {exc}")
    width, height = v["registration.output_width"], v["registration.output_height"]
    if (width == 0) != (height == 0):
        problems.append(
            f"registration.output_width and output_height must both be 0 (RGB size) or both set, "
            f"got {width} x {height}"
        )
    if v["sync.mode"] == "approximate" and v["sync.slop"] <= 0.0:
        problems.append("sync.slop must be > 0 with sync.mode approximate (pairs must be strictly closer than "
                        "slop); use sync.mode exact for identical stamps")
    if problems:
        raise ParameterError("invalid parameters: " + "; ".join(problems))
    return NodeConfig(
        autostart=v["autostart"],
        device=v["device"],
        precision=v["precision"],
        backend=v["backend"],
        internal_scale=v["internal_scale"],
        memory_budget_mb=v["memory_budget_mb"],
        normalize=v["normalize"],
        fusion_weights=v["fusion_weights"],
        int8_calibration=v["int8_calibration"],
        segmentation_weights=v["segmentation_weights"],
        torch_threads=v["torch_threads"],
        warmup=v["warmup"],
        thermal_gain=thermal_gain,
        registration_mode=v["registration.mode"],
        homography=homography,
        output_size=(height, width) if width else None,
        sync_mode=v["sync.mode"],
        queue_size=v["sync.queue_size"],
        slop_ns=round(v["sync.slop"] * 1e9),
        use_message_filters=v["sync.use_message_filters"],
        transports=(v["thermal_image_transport"] or v["image_transport"],
                    v["rgb_image_transport"] or v["image_transport"]),
        reliability=v["qos.reliability"],
        depth=v["qos.depth"],
        output_encoding=v["output.encoding"],
        overlay_alpha=v["overlay.alpha"],
        publish_fused=v["outputs.fused"],
        publish_mask=v["outputs.mask"],
        publish_overlay=v["outputs.overlay"],
        diagnostics_period=v["diagnostics.period"],
        input_timeout=v["diagnostics.input_timeout"],
        max_stamp_offset=v["diagnostics.max_stamp_offset"],
    )


def current_values(node: Node) -> dict[str, Any]:
    """The node's current value of every parameter in the table."""
    return {spec.name: node.get_parameter(spec.name).value for spec in PARAMETERS}


def read_config(node: Node) -> NodeConfig:
    """The node's current parameter values, validated."""
    return config_from_values(current_values(node))


def _comparable(value: Any) -> Any:
    """Array parameters arrive as lists or array.array: compare them as tuples."""
    return value if isinstance(value, (str, bytes)) or not isinstance(value, Iterable) else tuple(value)


def check_change(
    current: dict[str, Any], changes: dict[str, Any], configured: bool
) -> tuple[NodeConfig | None, set[str]]:
    """Validate a request to set some of the node's parameters; returns (config, names that change).

    Unconfigured, each value is checked on its own (the next configure checks how they fit together,
    so related values can be set one at a time) and config is None. Configured, only ``live``
    parameters may change, and the result must be a valid configuration: config is the one to apply.
    Raises ParameterError naming every refused value.
    """
    changed = {name for name, value in changes.items() if _comparable(value) != _comparable(current[name])}
    startup = sorted(name for name in changed if SPECS[name].startup_only)
    if startup:  # not ROS's read_only: that refuses even the same value, so a dumped file would not load back
        raise ParameterError(f"{', '.join(startup)} is read at start-up only: restart the node with the new value")
    if not configured:
        problems = [problem for name in sorted(changes) for problem in value_problems(name, changes[name])]
        if problems:
            raise ParameterError("invalid parameters: " + "; ".join(problems))
        return None, changed
    fixed = sorted(name for name in changed if not SPECS[name].live)
    if fixed:
        raise ParameterError(
            f"{', '.join(fixed)} {'is' if len(fixed) == 1 else 'are'} read on configure and the node is "
            "configured: deactivate and clean up the node, set the value, then configure and activate it "
            "again (or restart the node with the new value)"
        )
    return config_from_values({**current, **changes}), changed


def unknown_parameter_warnings(names: Iterable[str]) -> list[str]:
    """One warning per given parameter name the node does not have, with the closest real name.

    A misspelled key in a params file is otherwise silently ignored (ROS drops undeclared overrides).
    """
    warnings = []
    for name in sorted(set(names)):
        if name.startswith("qos_overrides."):
            continue
        close = difflib.get_close_matches(name, list(SPECS), n=1, cutoff=0.6)
        hint = f": did you mean {close[0]!r}?" if close else ""
        warnings.append(f"unknown parameter {name!r} ignored (seafusion_node has no such parameter){hint}")
    return warnings
