"""Image player: replays a labelled dataset (or a video) on `image` as a camera would.

A source robot needs frames and, to report live accuracy, the truth about them. The player
publishes `sensor_msgs/Image` on `image` and a `FrameLabel` with the identical header (stamp
and frame_id) on `image_label`, both relative names, so `-r __ns:=/robot1` feeds robot1.

Frames come from Fashion-MNIST (mono8 28x28), the CIFAR-10 JPEG tar (rgb8 32x32), a folder
(`folder:<path>`: class subfolders as in mdi_exit_ros.data, or a flat folder of unlabelled
images) or a video (`video:<path>`, needs OpenCV). They are published at a fixed `rate` or
with Poisson arrivals of that mean rate (`arrival:=poisson`, seeded by `seed`).

    ros2 run mdi_exit_ros image_player --ros-args -r __ns:=/robot1 \\
        -p dataset:=fashion-mnist -p rate:=20.0 -p count:=100
"""

from __future__ import annotations

import random
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.duration import Duration
from rclpy.exceptions import (
    ParameterException,
    ParameterUninitializedException,
    ROSInterruptException,
)
from rclpy.executors import ExternalShutdownException
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from mdi_exit_ros.msg import FrameLabel
from mdi_exit_ros.params import IMAGE_QOS
from mdi_exit_ros.topics import IMAGE, IMAGE_LABEL
from mdi_exit_ros.wire.image import array_to_image
from mdi_exit_ros.wire.qos import data_qos, image_qos

ARRIVALS = ("fixed", "poisson")
QOS_CHOICES = tuple(c for c in IMAGE_QOS if c != "auto")  # a publisher chooses its own
SPLITS = ("train", "test")
EXIT_BAD_PARAMETERS = 2
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif",
                  ".tiff")


class PlayerConfigError(ValueError):
    """A parameter or the data it names is unusable; the message says which and why."""


@dataclass
class Frames:
    """Where frames come from: `get(i)` -> (HxWxC uint8 RGB/grey pixels, class id or -1)."""

    name: str
    length: int | None  # None: unknown (a video whose container does not say)
    classes: list[str]
    get: Callable[[int], tuple[np.ndarray, int] | None]  # None: past the end (video)
    shape: str = ""  # e.g. "28x28 mono8", for the start-up log
    rewind: Callable[[], None] = lambda: None
    seekable: bool = True  # get(i) honours i; a video only reads on from where it is


def _encoding(channels: int) -> str:
    return {1: "mono8", 3: "rgb8"}.get(channels, f"{channels}ch")


def _dataset_frames(spec: str, split: str, size: int, channels: int) -> Frames:
    """A dataset of mdi_exit_ros.data, decoded into memory once."""
    from mdi_exit_ros.data import load_dataset

    kwargs: dict[str, Any] = {}
    if spec.startswith("folder:"):
        kwargs = {"size": size or None, "channels": channels}
    arrays = load_dataset(spec, split, **kwargs)
    images, labels = arrays.images, arrays.labels
    h, w, c = images.shape[1:]
    return Frames(name=f"{spec} ({split})", length=len(arrays), classes=list(arrays.classes),
                  get=lambda i: (images[i], int(labels[i])),
                  shape=f"{w}x{h} {_encoding(c)}")


def _flat_folder_frames(root: Path, size: int, channels: int) -> Frames:
    """A folder of images without class subfolders: unlabelled frames, read one at a time."""
    from PIL import Image as PILImage

    files = sorted(p for p in root.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise PlayerConfigError(f"{root}: no images (and no class subfolders)")

    def get(i: int) -> tuple[np.ndarray, int]:
        with PILImage.open(files[i]) as im:
            im = im.convert("RGB" if channels == 3 else "L")
            if size and im.size != (size, size):
                im = im.resize((size, size), PILImage.BILINEAR)
            pixels = np.asarray(im, dtype=np.uint8)
        return (pixels if pixels.ndim == 3 else pixels[..., None]), -1

    first = get(0)[0]
    shape = f"{first.shape[1]}x{first.shape[0]} {_encoding(channels)}"
    return Frames(name=f"folder {root}", length=len(files), classes=[], get=get,
                  shape=shape + ("" if size else " (first image)"))


def _video_frames(path: Path, size: int, channels: int) -> Frames:
    """A video file read sequentially with OpenCV (frames must be requested in order)."""
    try:
        import cv2
    except ImportError as exc:
        raise PlayerConfigError(
            "dataset video:<path> needs OpenCV, which is not installed "
            "(pip install opencv-python-headless, or apt install python3-opencv)") from exc
    if not path.is_file():
        raise PlayerConfigError(f"video file {path} does not exist")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise PlayerConfigError(f"OpenCV cannot open video {path}")
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))

    def get(_: int) -> tuple[np.ndarray, int] | None:
        ok, bgr = cap.read()
        if not ok:
            return None
        if size:
            bgr = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA)
        if channels == 1:
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)[..., None], -1
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), -1

    def rewind() -> None:
        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)

    shape = f"{size or width}x{size or height} {_encoding(channels)}"
    return Frames(name=f"video {path}", length=count or None, classes=[], get=get,
                  shape=shape, rewind=rewind, seekable=False)


def open_frames(dataset: str, split: str, size: int = 0, channels: int = 3) -> Frames:
    """Resolve the `dataset` parameter; PlayerConfigError with the reason if it cannot."""
    try:
        if dataset.startswith("video:"):
            return _video_frames(Path(dataset[len("video:"):]).expanduser(), size, channels)
        if dataset.startswith("folder:"):
            root = Path(dataset[len("folder:"):]).expanduser()
            if not root.is_dir():
                raise PlayerConfigError(f"image folder {root} does not exist")
            if not any(d.is_dir() and not d.name.startswith(".") for d in root.iterdir()):
                return _flat_folder_frames(root, size, channels)
            return _dataset_frames(f"folder:{root}", split, size, channels)
        return _dataset_frames(dataset, split, size, channels)
    except PlayerConfigError:
        raise
    except (ValueError, OSError) as exc:  # includes DatasetUnavailable (FileNotFoundError)
        raise PlayerConfigError(f"dataset {dataset!r} (split {split!r}): {exc}") from exc


def arrival_gaps(arrival: str, rate: float, seed: int = 0) -> Iterator[float]:
    """Seconds between frames: 1/rate, or exponential gaps of mean 1/rate (Poisson
    arrivals), the same sequence for the same seed."""
    if arrival == "poisson":
        rng = random.Random(seed)
        while True:
            yield rng.expovariate(rate)
    while True:
        yield 1.0 / rate


def _range(low: float, high: float) -> dict[str, Any]:
    if isinstance(low, int) and isinstance(high, int):
        return {"integer_range": [IntegerRange(from_value=low, to_value=high, step=0)]}
    return {"floating_point_range": [FloatingPointRange(from_value=float(low),
                                                        to_value=float(high), step=0.0)]}


# name -> (default, description, range or None); all read-only: they shape the whole run.
# A default of None: an integer that is unset unless given (no value in a range means "none").
PARAMETERS: dict[str, tuple[Any, str, tuple[float, float] | None]] = {
    "dataset": ("fashion-mnist", "fashion-mnist | cifar10 | folder:<path> | video:<path>",
                None),
    "split": ("test", "Dataset split: train | test (ignored for flat folders and videos)", None),
    "size": (None, "Resize folder/video frames to size x size; unset: as stored", (1, 4096)),
    "channels": (3, "Folder/video frames: 3 = rgb8, 1 = mono8", (1, 3)),
    "rate": (10.0, "Frames per second (the mean rate for poisson arrivals)", (0.001, 10000.0)),
    "arrival": ("fixed", "fixed: one frame every 1/rate s; poisson: exponential gaps", None),
    "seed": (0, "Seed of the poisson arrival gaps and of the shuffled order", (0, 2**31 - 1)),
    "shuffle": (False, "Play the split in a seeded random order instead of as stored (the "
                "CIFAR-10 tars store the images class by class)", None),
    "count": (None, "Frames to publish; unset: the split once (endless with loop)",
              (1, 2**31 - 1)),
    "loop": (False, "Wrap around at the end of the split", None),
    "start_index": (0, "Index of the first frame in the split", (0, 2**31 - 1)),
    "frame_id": ("camera", "header.frame_id of images and labels", None),
    "qos": ("reliable", "Image QoS: reliable | best_effort | sensor_data", None),
    "wait_for_subscribers": (True, "Publish nothing until `image` and `image_label` have a "
                             "subscriber (at most wait_timeout)", None),
    "wait_timeout": (30.0, "Seconds to wait for a subscriber before publishing anyway",
                     (0.1, 86400.0)),
    "exit_when_done": (True, "Exit (code 0) after the last frame", None),
}


class ImagePlayer(Node):
    """Publishes dataset frames and their ground truth, paced like a camera."""

    def __init__(self) -> None:
        super().__init__("image_player")
        for name, (default, text, bounds) in PARAMETERS.items():
            extra = _range(*bounds) if bounds else {}
            # Doubles also take integers (`-p rate:=20`); _check validates their range.
            extra["dynamic_typing"] = isinstance(default, float)
            self.declare_parameter(name, Parameter.Type.INTEGER if default is None else default,
                                   ParameterDescriptor(description=text, read_only=True,
                                                       **extra))
        p = {name: self._value(name) for name in PARAMETERS}
        self._check(p)
        for name, (default, _, _) in PARAMETERS.items():
            if isinstance(default, float):
                p[name] = float(p[name])
        self.params = p
        self.frames = open_frames(p["dataset"], p["split"], p["size"], p["channels"])
        n = self.frames.length
        if n is not None and p["start_index"] >= n:
            raise PlayerConfigError(f"start_index {p['start_index']} is past the end of "
                                    f"{self.frames.name} ({n} frames)")
        if p["shuffle"] and not self.frames.seekable:
            raise PlayerConfigError(f"shuffle needs frames that can be read in any order; "
                                    f"{self.frames.name} is read front to back")
        # Index i of the played sequence is frame order[i] of the split.
        self._order = (np.random.default_rng(p["seed"]).permutation(n).tolist()
                       if p["shuffle"] else None)
        self.total = self._total(p["count"], p["loop"], p["start_index"], n)
        self.image_pub = self.create_publisher(Image, IMAGE, image_qos(p["qos"]))
        self.label_pub = self.create_publisher(FrameLabel, IMAGE_LABEL, data_qos())
        self.published = 0
        self._index = p["start_index"]
        self._gaps = arrival_gaps(p["arrival"], p["rate"], p["seed"])

    def _value(self, name: str) -> Any:
        """A parameter's value; None for one that is unset."""
        try:
            return self.get_parameter(name).value
        except ParameterUninitializedException:
            return None

    @staticmethod
    def _check(p: dict[str, Any]) -> None:
        for name, choices in (("arrival", ARRIVALS), ("qos", QOS_CHOICES), ("split", SPLITS)):
            if p[name] not in choices:
                raise PlayerConfigError(f"{name} must be one of {', '.join(choices)}; "
                                        f"got {p[name]!r}")
        for name, (default, _, bounds) in PARAMETERS.items():
            if not isinstance(default, float):
                continue
            value = p[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise PlayerConfigError(f"{name} must be a number; got {value!r}")
            if bounds and not bounds[0] <= value <= bounds[1]:
                raise PlayerConfigError(f"{name} must lie in [{bounds[0]:g}, {bounds[1]:g}]; "
                                        f"got {value!r}")
        if p["channels"] not in (1, 3):
            raise PlayerConfigError(f"channels must be 1 or 3; got {p['channels']}")
        if not p["dataset"]:
            raise PlayerConfigError("dataset is empty")
        if not p["frame_id"]:
            raise PlayerConfigError("frame_id is empty")

    @staticmethod
    def _total(count: int | None, loop: bool, start: int, n: int | None) -> int | None:
        """Frames to publish; None = until the source ends (or forever with loop)."""
        if count is not None:
            return count
        if loop or n is None:
            return None
        return n - start

    def describe(self) -> str:
        p = self.params
        amount = (f"{self.total} frames" if self.total is not None
                  else "until stopped" if p["loop"] else "until the video ends")
        size = f"{self.frames.length} frames" if self.frames.length is not None else "? frames"
        classes = f", {len(self.frames.classes)} classes" if self.frames.classes else \
            ", unlabelled"
        order = f" in shuffled order (seed {p['seed']})" if p["shuffle"] else ""
        return (f"publishing {self.frames.name}: {size} {self.frames.shape}{classes}; "
                f"{amount} from index {p['start_index']}{' (looping)' if p['loop'] else ''}"
                f"{order} "
                f"at {p['rate']:g} Hz ({p['arrival']} arrivals) on "
                f"{self.image_pub.topic_name} + {self.label_pub.topic_name}, qos {p['qos']}")

    def next_gap(self) -> float:
        return next(self._gaps)

    def done(self) -> bool:
        return self.total is not None and self.published >= self.total

    def publish_next(self) -> bool:
        """Publish one frame and its label; False when the data has run out."""
        n = self.frames.length
        if n is not None and self._index >= n:
            if not self.params["loop"]:
                return False
            self._index = 0
            self.frames.rewind()
        item = self.frames.get(self._order[self._index] if self._order is not None else self._index)
        if item is None:  # a video ended
            if not self.params["loop"] or self._index == 0:
                return False
            self._index = 0
            self.frames.rewind()
            item = self.frames.get(0)
            if item is None:
                return False
        pixels, class_id = item
        image = array_to_image(pixels)
        image.header.stamp = self.get_clock().now().to_msg()
        image.header.frame_id = self.params["frame_id"]
        label = FrameLabel(header=image.header, class_id=class_id)
        if 0 <= class_id < len(self.frames.classes):
            label.class_name = self.frames.classes[class_id]
        self.image_pub.publish(image)
        self.label_pub.publish(label)
        self.published += 1
        self._index += 1
        return True

    def wait_for_subscribers(self, stop: Callable[[], bool]) -> bool:
        """Spin until `image` and `image_label` both have a reader; False on timeout.

        A source subscribes to both; a label published before its reader matched is lost
        for good (volatile), and that frame would count as unlabelled.
        """
        deadline = time.monotonic() + self.params["wait_timeout"]
        while (self.image_pub.get_subscription_count() == 0
               or self.label_pub.get_subscription_count() == 0):
            if time.monotonic() > deadline or stop():
                return False
            rclpy.spin_once(self, timeout_sec=0.05)
        return True

    def play(self) -> None:
        """Publish on schedule until done: absolute deadlines, so gaps do not accumulate."""
        if self.params["wait_for_subscribers"] and not self.wait_for_subscribers(lambda: False):
            missing = [p.topic_name for p in (self.image_pub, self.label_pub)
                       if p.get_subscription_count() == 0]
            self.get_logger().warning(
                f"no subscriber on {' and '.join(missing)} after "
                f"{self.params['wait_timeout']:g} s; publishing anyway")
        due = time.monotonic()
        while not self.done():
            now = time.monotonic()
            if now < due:
                rclpy.spin_once(self, timeout_sec=min(due - now, 0.1))
                continue
            if not self.publish_next():
                if self.total is not None:
                    self.get_logger().warning(
                        f"{self.frames.name} ran out after {self.published} of {self.total} "
                        "frames; set loop:=true to wrap around")
                break
            due += self.next_gap()
            if due < now - 1.0:  # far behind (a stalled machine): don't burst to catch up
                due = now
        self.image_pub.wait_for_all_acked(Duration(seconds=5.0))
        self.label_pub.wait_for_all_acked(Duration(seconds=5.0))
        self.get_logger().info(f"published {self.published} frames")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv if argv is None else ["image_player", *argv]
    rclpy.init(args=args)
    player: ImagePlayer | None = None
    try:
        try:
            player = ImagePlayer()
        except (PlayerConfigError, ParameterException) as exc:
            get_logger("image_player").error(f"bad parameters: {exc}")
            return EXIT_BAD_PARAMETERS
        player.get_logger().info(player.describe())
        player.play()
        if not player.params["exit_when_done"]:
            rclpy.spin(player)
        return 0
    except (KeyboardInterrupt, ExternalShutdownException, ROSInterruptException):
        # Ctrl-C in a terminal reaches us twice (from the terminal and from ros2 launch):
        # end once, cleanly, instead of dying in the middle of the clean-up.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        return 0
    finally:
        if player is not None:
            player.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
