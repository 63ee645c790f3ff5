"""Compressed image transport: format strings, 16-bit PNG thermal, JPEG colour, bad payloads; scaled intrinsics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from seafusion_ros.data.synthetic_scene import render_frame
from seafusion_ros.imaging.compressed import decode_compressed, encode_compressed, parse_format
from seafusion_ros.imaging.encodings import ImageFormatError
from seafusion_ros.imaging.intrinsics import scale_intrinsics
from seafusion_ros.imaging.pair_input import prepare_pair
from seafusion_ros.imaging.registration import Registration


@dataclass
class Compressed:
    format: str
    data: bytes


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, np.ndarray]:
    frame = render_frame(10, 480, 640)
    return frame.thermal, frame.rgb


def compressed(array: np.ndarray, encoding: str, codec: str) -> Compressed:
    return Compressed(*encode_compressed(array, encoding, codec))


def test_image_transport_format_strings_parse() -> None:
    assert parse_format("bgr8; jpeg compressed bgr8").original == "bgr8"
    assert parse_format("rgb8; jpeg compressed bgr8").codec == "jpeg"
    assert parse_format("mono16; png compressed mono16").original == "mono16"
    assert parse_format("jpeg").original is None
    for bad in ("16UC1; compressedDepth png", "yuv422; jpeg compressed bgr8", "webp", ""):
        with pytest.raises(ImageFormatError) as error:
            parse_format(bad)
        assert error.value.kind == "unknown_format"


def test_sixteen_bit_png_thermal_stays_sixteen_bit_and_exact(scene) -> None:
    thermal, _ = scene
    assert thermal.dtype == np.uint16
    msg = compressed(thermal, "mono16", "png")
    assert msg.format == "mono16; png compressed mono16"
    array, encoding = decode_compressed(msg)
    assert encoding == "mono16" and array.dtype == np.uint16
    np.testing.assert_array_equal(array, thermal)


def test_rgb8_jpeg_decodes_to_bgr_within_jpeg_loss(scene) -> None:
    _, rgb = scene
    msg = compressed(rgb, "rgb8", "jpeg")
    assert msg.format == "rgb8; jpeg compressed bgr8"
    array, encoding = decode_compressed(msg)
    assert encoding == "bgr8" and array.shape == rgb.shape
    error = np.abs(array[:, :, ::-1].astype(int) - rgb.astype(int)).mean()
    wrong_order = np.abs(array.astype(int) - rgb.astype(int)).mean()
    assert error < 4.0 and wrong_order > 2 * error  # the scene's sensor noise is what JPEG loses most
    assert len(msg.data) < rgb.nbytes / 10


def test_bad_payloads_are_named(scene) -> None:
    thermal, rgb = scene
    good = compressed(rgb, "bgr8", "jpeg")
    cases = {
        "empty_payload": Compressed(good.format, b""),
        "corrupt_compressed": Compressed(good.format, b"\xff\xd8\xff" + bytes(200)),
        "compressed_mismatch": Compressed("mono16; png compressed mono16", good.data),  # 8-bit colour data
        "unknown_format": Compressed("bgr8; webp compressed bgr8", good.data),
    }
    for kind, msg in cases.items():
        with pytest.raises(ImageFormatError) as error:
            decode_compressed(msg)
        assert error.value.kind == kind, (kind, str(error.value))
    cut_jpeg = Compressed(good.format, good.data[: len(good.data) * 9 // 10])  # libjpeg would fill it with grey
    with pytest.raises(ImageFormatError) as error:
        decode_compressed(cut_jpeg)
    assert error.value.kind == "corrupt_compressed" and "truncated" in str(error.value)
    truncated = compressed(thermal, "mono16", "png")
    with pytest.raises(ImageFormatError) as error:
        decode_compressed(Compressed(truncated.format, truncated.data[: len(truncated.data) // 2]))
    assert error.value.kind == "corrupt_compressed"


def test_a_compressed_pair_is_prepared_like_the_raw_one(scene) -> None:
    thermal, rgb = scene
    pair = prepare_pair(compressed(thermal, "mono16", "png"), compressed(rgb, "rgb8", "jpeg"), Registration())
    np.testing.assert_array_equal(pair.thermal, thermal)
    assert pair.visible_order == "bgr"
    with pytest.raises(ImageFormatError) as error:  # colour data on the thermal input
        prepare_pair(compressed(rgb, "rgb8", "jpeg"), compressed(rgb, "rgb8", "jpeg"), Registration())
    assert error.value.kind == "unknown_encoding"


def test_intrinsics_scale_with_the_output_size() -> None:
    k = [500.0, 0.0, 320.0, 0.0, 510.0, 240.0, 0.0, 0.0, 1.0]
    p = [500.0, 0.0, 320.0, -25.0, 0.0, 510.0, 240.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    k2, p2 = scale_intrinsics(k, p, (480, 640), (240, 320))
    assert k2 == [250.0, 0.0, 160.0, 0.0, 255.0, 120.0, 0.0, 0.0, 1.0]
    assert p2 == [250.0, 0.0, 160.0, -12.5, 0.0, 255.0, 120.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert scale_intrinsics(k, p, (480, 640), (480, 640)) == (k, p)
    with pytest.raises(ValueError):
        scale_intrinsics(k[:8], p, (480, 640), (240, 320))
