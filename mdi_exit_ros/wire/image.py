"""`sensor_msgs/Image` <-> numpy, for the encodings cameras actually send.

Plain numpy does the decoding, with or without a ROS install, so a pip install needs neither
cv_bridge nor OpenCV and both installs decode a frame identically. Output is always HxWxC
uint8 in RGB order (C = 1 or 3), which is what the models' input specs describe.
"""

from __future__ import annotations

import array

import numpy as np
from sensor_msgs.msg import Image

# encoding -> (numpy dtype of one channel, channels, order of colour channels)
ENCODINGS: dict[str, tuple[str, int, str]] = {
    "rgb8": ("u1", 3, "rgb"),
    "bgr8": ("u1", 3, "bgr"),
    "rgba8": ("u1", 4, "rgba"),
    "bgra8": ("u1", 4, "bgra"),
    "mono8": ("u1", 1, "mono"),
    "8UC1": ("u1", 1, "mono"),
    "mono16": ("u2", 1, "mono"),
    "16UC1": ("u2", 1, "mono"),
    "rgb16": ("u2", 3, "rgb"),
    "bgr16": ("u2", 3, "bgr"),
}


MAX_SIDE = 16384  # pixels per side: beyond any camera, and it bounds what decoding allocates


class ImageDecodeError(ValueError):
    """An Image message cannot be turned into pixels; the message says why."""


def image_to_array(msg: Image) -> np.ndarray:
    """Decode an Image into a read-only HxWxC uint8 RGB (C=3) or grey (C=1) array.

    16-bit images are scaled to 8 bits (>> 8); alpha is dropped; BGR is reordered.
    """
    if msg.encoding not in ENCODINGS:
        raise ImageDecodeError(
            f"unsupported image encoding {msg.encoding!r} "
            f"(supported: {', '.join(sorted(ENCODINGS))})")
    if msg.width > MAX_SIDE or msg.height > MAX_SIDE:
        raise ImageDecodeError(f"image of {msg.width}x{msg.height} exceeds {MAX_SIDE} pixels "
                               f"per side")
    kind, channels, order = ENCODINGS[msg.encoding]
    dtype = np.dtype(kind).newbyteorder(">" if msg.is_bigendian else "<")
    row = msg.width * channels * dtype.itemsize
    if msg.height == 0 or msg.width == 0:
        raise ImageDecodeError(f"empty image ({msg.width}x{msg.height})")
    if msg.step < row:
        raise ImageDecodeError(f"step {msg.step} is shorter than a row of {row} bytes")
    if len(msg.data) < msg.step * msg.height:
        raise ImageDecodeError(
            f"image data holds {len(msg.data)} bytes, {msg.height} rows of step "
            f"{msg.step} need {msg.step * msg.height}")
    raw = np.frombuffer(msg.data, dtype=np.uint8, count=msg.step * msg.height)
    rows = raw.reshape(msg.height, msg.step)[:, :row]
    pixels = np.ascontiguousarray(rows).view(dtype).reshape(msg.height, msg.width, channels)
    if dtype.itemsize == 2:
        pixels = (pixels >> 8).astype(np.uint8)
    if order in ("bgr", "bgra"):
        pixels = pixels[:, :, 2::-1]
    elif order == "rgba":
        pixels = pixels[:, :, :3]
    return pixels


def array_to_image(pixels: np.ndarray, encoding: str | None = None,
                   out: Image | None = None) -> Image:
    """Encode HxW or HxWxC uint8 pixels as an Image (rgb8 for C=3, mono8 for grey).

    The payload is assigned as an array.array: a numpy array through the generated setter
    costs ~130 ms per MB.
    """
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise ImageDecodeError(f"pixels must be uint8, got {pixels.dtype}")
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3, 4):
        raise ImageDecodeError(f"pixels must be HxW or HxWxC with C in 1, 3, 4; got "
                               f"{pixels.shape}")
    channels = pixels.shape[2]
    encoding = encoding or {1: "mono8", 3: "rgb8", 4: "rgba8"}[channels]
    if encoding not in ENCODINGS or ENCODINGS[encoding][0] != "u1" \
            or ENCODINGS[encoding][1] != channels:
        raise ImageDecodeError(f"encoding {encoding!r} does not fit {channels} uint8 channels")
    if ENCODINGS[encoding][2] in ("bgr", "bgra"):
        pixels = np.concatenate([pixels[:, :, 2::-1], pixels[:, :, 3:]], axis=2)
    pixels = np.ascontiguousarray(pixels)
    msg = out if out is not None else Image()
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(pixels.shape[1] * channels)
    payload = array.array("B")
    payload.frombytes(memoryview(pixels).cast("B"))
    msg.data = payload
    return msg
