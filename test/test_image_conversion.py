"""sensor_msgs/Image <-> numpy: every encoding, row padding, byte order, bad layouts, cv_bridge parity."""

from __future__ import annotations

import numpy as np
import pytest
from sensor_msgs.msg import Image

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
        ({"encoding": "yuv422"}, "unknown_encoding", "unsupported encoding"),
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
