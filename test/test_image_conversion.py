"""sensor_msgs/Image <-> numpy: every encoding, row padding, byte order, bad layouts, cv_bridge parity,
cv_bridge passthrough (8UC*) and packed YUV 4:2:2 input, and the colour order prepare_pair reports."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import Image

from seafusion_ros.imaging.encodings import COLOUR_ENCODINGS, THERMAL_ENCODINGS
from seafusion_ros.imaging.pair_input import prepare_pair
from seafusion_ros.imaging.registration import Registration
from seafusion_ros.ros.image_conversion import (
    ENCODINGS,
    ImageFormatError,
    check_layout,
    image_to_numpy,
    numpy_to_image,
)


def _sample(encoding: str, height: int = 5, width: int = 7) -> np.ndarray:
    dtype, channels = ENCODINGS[encoding]
    shape = (height, width) if channels == 1 else (height, width, channels)
    rng = np.random.default_rng(0)
    if dtype.kind == "f":
        return rng.normal(300.0, 40.0, shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)


def _raw(array: np.ndarray, encoding: str, pad: int = 0, big_endian: bool = False) -> Image:
    """A message built byte by byte, as a camera driver with row padding / other byte order sends it."""
    wire = array.astype(array.dtype.newbyteorder(">" if big_endian else "<"))
    rows = wire.reshape(array.shape[0], -1).view(np.uint8)
    padded = np.concatenate([rows, np.full((rows.shape[0], pad), 0xAB, np.uint8)], axis=1)
    return Image(
        height=array.shape[0],
        width=array.shape[1],
        encoding=encoding,
        is_bigendian=int(big_endian),
        step=padded.shape[1],
        data=padded.tobytes(),
    )


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_round_trip_is_exact_and_published_images_are_unpadded(encoding):
    array = _sample(encoding)
    msg = numpy_to_image(array, encoding)
    dtype, channels = ENCODINGS[encoding]
    assert msg.step == 7 * channels * dtype.itemsize and len(msg.data) == msg.step * 5
    back = image_to_numpy(msg)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1", "32FC1", "bgr8", "rgba8"])
@pytest.mark.parametrize("big_endian", [False, True])
def test_step_padding_and_byte_order_are_honoured(encoding, big_endian):
    array = _sample(encoding)
    msg = _raw(array, encoding, pad=5, big_endian=big_endian)
    decoded = image_to_numpy(msg)
    assert decoded.dtype.isnative and decoded.flags.c_contiguous and decoded.flags.writeable
    np.testing.assert_array_equal(decoded, array)
    msg.data[0] ^= 0xFF  # the decoded array is a copy, not a view of the message
    np.testing.assert_array_equal(decoded, array)


def test_extra_trailing_data_is_ignored():
    array = _sample("16UC1")
    msg = numpy_to_image(array, "16UC1")
    msg.data = bytes(msg.data) + b"\x00" * 10
    np.testing.assert_array_equal(image_to_numpy(msg), array)


@pytest.mark.parametrize(
    ("change", "kind", "message"),
    [
        ({"encoding": "bayer_rggb8"}, "unknown_encoding", "unsupported encoding"),
        ({"height": 0}, "zero_size", "empty"),
        ({"width": 0}, "zero_size", "empty"),
        ({"step": 10}, "short_data", "step 10 is smaller"),
        ({"height": 6}, "short_data", "step x height needs"),
    ],
)
def test_bad_layouts_are_named(change, kind, message):
    msg = numpy_to_image(_sample("16UC1"), "16UC1")
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(ImageFormatError, match=message) as info:
        image_to_numpy(msg)
    assert info.value.kind == kind


def test_encoding_not_accepted_on_an_input():
    msg = numpy_to_image(_sample("bgr8"), "bgr8")
    with pytest.raises(ImageFormatError, match="not accepted"):
        check_layout(msg, ("mono16", "16UC1"))


def test_numpy_to_image_refuses_mismatched_arrays():
    with pytest.raises(ValueError, match="dtype"):
        numpy_to_image(np.zeros((2, 2), np.uint16), "mono8")
    with pytest.raises(ValueError, match="channel"):
        numpy_to_image(np.zeros((2, 2), np.uint8), "rgb8")
    with pytest.raises(ValueError, match="unsupported"):
        numpy_to_image(np.zeros((2, 2), np.uint8), "jpeg")
    with pytest.raises(ValueError, match="'yuv422' is accepted as input only"):
        numpy_to_image(np.zeros((2, 2, 3), np.uint8), "yuv422")


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_same_as_cv_bridge_when_installed(encoding):
    cv_bridge = pytest.importorskip("cv_bridge", reason="cv_bridge is not installed here (not on PyPI)")
    bridge = cv_bridge.CvBridge()
    array = _sample(encoding)
    padded = _raw(array, encoding, pad=3)
    np.testing.assert_array_equal(image_to_numpy(padded), bridge.imgmsg_to_cv2(padded, "passthrough"))
    theirs = bridge.cv2_to_imgmsg(array, encoding)
    ours = numpy_to_image(array, encoding)
    assert (ours.step, bytes(ours.data), ours.encoding) == (theirs.step, bytes(theirs.data), theirs.encoding)


def test_8uc1_is_read_exactly_like_mono8_on_both_inputs():
    array = _sample("mono8")
    mono8, passthrough = _raw(array, "mono8", pad=3), _raw(array, "8UC1", pad=3)
    for allowed in (THERMAL_ENCODINGS, COLOUR_ENCODINGS):
        assert check_layout(passthrough, allowed) == check_layout(mono8, allowed)
    np.testing.assert_array_equal(image_to_numpy(passthrough), image_to_numpy(mono8))
    thermal = _raw(_sample("16UC1"), "16UC1")
    ours, reference = (prepare_pair(thermal, msg, Registration()) for msg in (passthrough, mono8))
    np.testing.assert_array_equal(ours.visible, reference.visible)
    ours, reference = (prepare_pair(msg, mono8, Registration()) for msg in (passthrough, mono8))
    np.testing.assert_array_equal(ours.thermal, reference.thermal)


@pytest.mark.parametrize(("passthrough", "named"), [("8UC3", "bgr8"), ("8UC4", "bgra8")])
def test_cv_bridge_passthrough_colour_is_bgr(passthrough, named):
    """OpenCV images are BGR(A): an 8UC3/8UC4 message must reach the engine exactly as bgr8/bgra8 does."""
    height, width = 6, 8
    bgr = np.zeros((height, width, 4), np.uint8)
    bgr[..., 0], bgr[..., 1], bgr[..., 2], bgr[..., 3] = 200, np.arange(width) * 10, 30, 255
    array = bgr if named == "bgra8" else np.ascontiguousarray(bgr[..., :3])
    thermal = _raw(_sample("16UC1", height, width), "16UC1")
    ours = prepare_pair(thermal, _raw(array, passthrough, pad=2), Registration())
    reference = prepare_pair(thermal, _raw(array, named), Registration())
    assert ours.visible_order == reference.visible_order == "bgr"
    np.testing.assert_array_equal(ours.visible, reference.visible)
    np.testing.assert_array_equal(ours.visible, bgr[..., :3])


def _yuv422_rows(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """H x 2W bytes of rgb in BT.601 studio-swing YUV 4:2:2 (cv2's convention), chroma averaged per pixel pair.

    Written from the byte-order definitions (yuv422 = U Y0 V Y1, yuv422_yuy2 = Y0 U Y1 V), not with cv2,
    so the decoder is checked against the ROS layout rather than against itself.
    """
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    u_pair, v_pair = (u[:, 0::2] + u[:, 1::2]) / 2, (v[:, 0::2] + v[:, 1::2]) / 2
    y0, y1 = y[:, 0::2], y[:, 1::2]
    quads = (u_pair, y0, v_pair, y1) if encoding == "yuv422" else (y0, u_pair, y1, v_pair)
    return np.clip(np.rint(np.stack(quads, axis=-1)), 0, 255).astype(np.uint8).reshape(rgb.shape[0], -1)


def _yuv422_message(rgb: np.ndarray, encoding: str, pad: int = 0) -> Image:
    rows = _yuv422_rows(rgb, encoding)
    padded = np.concatenate([rows, np.full((rows.shape[0], pad), 0xAB, np.uint8)], axis=1)
    return Image(height=rgb.shape[0], width=rgb.shape[1], encoding=encoding, is_bigendian=0,
                 step=padded.shape[1], data=padded.tobytes())


def _mean_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.mark.parametrize("encoding", ["yuv422", "yuv422_yuy2"])
@pytest.mark.parametrize("pad", [0, 6])
def test_yuv422_decodes_to_rgb(encoding, pad):
    """A smooth image whose red and blue differ everywhere, so a swapped order or byte layout cannot pass."""
    ys, xs = np.mgrid[0:24, 0:32]
    rgb = np.stack([40 + 6 * xs, 60 + 4 * ys, 230 - 5 * xs], axis=-1).astype(np.uint8)
    msg = _yuv422_message(rgb, encoding, pad)
    assert check_layout(msg, COLOUR_ENCODINGS) == (np.dtype(np.uint8), 2)
    decoded = image_to_numpy(msg)
    assert decoded.shape == rgb.shape and decoded.dtype == np.uint8
    assert _mean_abs_error(decoded, rgb) < 3
    assert _mean_abs_error(decoded, rgb[..., ::-1]) > 50
    pair = prepare_pair(_raw(_sample("16UC1", 24, 32), "16UC1"), msg, Registration())
    assert pair.visible_order == "rgb"
    np.testing.assert_array_equal(pair.visible, decoded)


@pytest.mark.parametrize("encoding", ["yuv422", "yuv422_yuy2"])
def test_yuv422_decodes_a_real_camera_image(msrs_dev: Path, encoding):
    path = msrs_dev / "vi" / "00055D.png"  # daytime: red and blue differ enough to tell the order apart
    if not path.exists():
        pytest.skip(f"{path} not found in the ../shared MSRS dev split")
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    decoded = image_to_numpy(_yuv422_message(rgb, encoding, pad=16))
    error, swapped = _mean_abs_error(decoded, rgb), _mean_abs_error(decoded, rgb[..., ::-1])
    assert error < 3 and swapped > 2 * error + 3, (error, swapped)


def test_yuv422_odd_width_is_named():
    msg = _yuv422_message(np.zeros((4, 8, 3), np.uint8), "yuv422")
    msg.width = 7
    for read in (lambda: check_layout(msg, COLOUR_ENCODINGS), lambda: image_to_numpy(msg)):
        with pytest.raises(ImageFormatError, match="even width") as info:
            read()
        assert info.value.kind == "odd_width"
