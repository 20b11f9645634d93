"""sensor_msgs/Image decoding for the encodings cameras send, and the image QoS choice."""

from __future__ import annotations

import array

import numpy as np
import pytest
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import Image

from mdi_exit_ros.wire import qos
from mdi_exit_ros.wire.image import ImageDecodeError, array_to_image, image_to_array

RGB = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)


def _image(pixels: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False) -> Image:
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1).view(np.uint8)
    rows = np.concatenate([rows, np.zeros((h, pad), np.uint8)], axis=1)
    msg = Image(height=h, width=w, encoding=encoding, step=rows.shape[1],
                is_bigendian=int(bigendian))
    msg.data = array.array("B", rows.tobytes())
    return msg


@pytest.mark.parametrize("encoding, pixels", [
    ("rgb8", RGB), ("bgr8", RGB[:, :, ::-1]),
    ("rgba8", np.dstack([RGB, np.full((5, 7), 9, np.uint8)])),
    ("bgra8", np.dstack([RGB[:, :, ::-1], np.full((5, 7), 9, np.uint8)])),
])
def test_colour_encodings_decode_to_rgb(encoding: str, pixels: np.ndarray) -> None:
    out = image_to_array(_image(np.ascontiguousarray(pixels), encoding, pad=3))
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8
    assert np.array_equal(out, RGB)


def test_mono8_and_mono16_decode_to_grey() -> None:
    grey = RGB[:, :, 0]
    assert np.array_equal(image_to_array(_image(grey, "mono8"))[:, :, 0], grey)
    wide = grey.astype("<u2") * 256 + 17
    assert np.array_equal(image_to_array(_image(wide, "mono16"))[:, :, 0], grey)
    big = wide.astype(">u2")
    assert np.array_equal(image_to_array(_image(big, "mono16", bigendian=True))[:, :, 0], grey)


@pytest.mark.parametrize("mutate, reason", [
    (lambda m: setattr(m, "encoding", "yuv422"), "unsupported image encoding 'yuv422'"),
    (lambda m: setattr(m, "step", 5), "step 5 is shorter than a row of 21 bytes"),
    (lambda m: m.data.pop(), "need 105"),
    (lambda m: setattr(m, "width", 0), "empty image"),
])
def test_malformed_images_are_refused(mutate, reason: str) -> None:
    msg = _image(RGB, "rgb8")
    mutate(msg)
    with pytest.raises(ImageDecodeError, match=reason):
        image_to_array(msg)


def test_array_to_image_round_trips_and_refuses_bad_pixels() -> None:
    assert np.array_equal(image_to_array(array_to_image(RGB)), RGB)
    assert np.array_equal(image_to_array(array_to_image(RGB, "bgr8")), RGB)
    grey = RGB[:, :, 1]
    msg = array_to_image(grey)
    assert msg.encoding == "mono8" and msg.step == 7
    assert isinstance(msg.data, array.array)
    with pytest.raises(ImageDecodeError, match="uint8"):
        array_to_image(RGB.astype(np.float32))
    with pytest.raises(ImageDecodeError, match="does not fit"):
        array_to_image(grey, "rgb8")


def test_auto_qos_matches_the_camera_publishers() -> None:
    reliable, best = ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT
    assert qos.image_qos("auto", []) is None  # wait for a publisher
    assert qos.image_qos("auto", [reliable]).reliability == reliable
    assert qos.image_qos("auto", [reliable, best]).reliability == best
    assert qos.image_qos("reliable", [best]).reliability == reliable
    assert qos.image_qos("sensor_data").reliability == best
    with pytest.raises(ValueError, match="image qos must be one of"):
        qos.image_qos("fast")
