"""The image player, run as a separate process over real ROS 2, received in this process.

Frames come from small synthetic image folders made here with Pillow (plus Fashion-MNIST
when the machine has it), so what must arrive is known pixel by pixel.
"""

from __future__ import annotations

import itertools
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from PIL import Image as PILImage
from rclpy.node import Node
from sensor_msgs.msg import Image

from mdi_exit_ros.msg import FrameLabel
from mdi_exit_ros.nodes.image_player import arrival_gaps
from mdi_exit_ros.tools.procs import spawn_module, stop_all
from mdi_exit_ros.wire.qos import data_qos

PLAYER = "mdi_exit_ros.nodes.image_player"
TIMEOUT = 90.0  # generous: two shared cores, a training job in the background

# --------------------------------------------------------------------------------------------
# Fixtures and helpers


def _pixels(cls: int, i: int, size: int = 8) -> np.ndarray:
    """A distinct RGB image per (class, index)."""
    a = np.zeros((size, size, 3), dtype=np.uint8)
    a[..., 0] = 40 * cls + i
    a[..., 1] = np.arange(size, dtype=np.uint8)[None, :] * 3 + i
    a[..., 2] = 200 - i
    return a


@pytest.fixture
def class_folder(tmp_path: Path) -> tuple[Path, list[tuple[np.ndarray, int]]]:
    """root/test/<class>/*.png (and a train split): 3 classes x 4 images of 8x8 RGB.

    Returns the root and the test split's (pixels, class) in the readers' order (classes
    alphabetically, files by name)."""
    root = tmp_path / "imgs"
    expected = []
    for split in ("train", "test"):
        for cls, name in enumerate(["apple", "bear", "cloud"]):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(4):
                px = _pixels(cls, i)
                PILImage.fromarray(px).save(d / f"{i:03d}.png")
                if split == "test":
                    expected.append((px, cls))
    return root, expected


class Receiver:
    """Subscribes to <ns>/image and <ns>/image_label in this process."""

    def __init__(self, ns: str = "/cam") -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node("player_test_receiver", context=self.context)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.images: list[tuple[float, Image]] = []
        self.labels: list[FrameLabel] = []
        self.node.create_subscription(
            Image, f"{ns}/image", lambda m: self.images.append((time.monotonic(), m)),
            data_qos())
        self.node.create_subscription(FrameLabel, f"{ns}/image_label", self.labels.append,
                                      data_qos())

    def receive(self, n: int, proc: subprocess.Popen, timeout: float = TIMEOUT
                ) -> tuple[int, str]:
        """Spin until n images and n labels arrived and the player exited; (code, output).

        The player waits until its readers acknowledged everything before it exits, and says
        how many frames it published: that count, not a pause, rules out extra frames.
        """
        deadline = time.monotonic() + timeout
        while (len(self.images) < n or len(self.labels) < n or proc.poll() is None) \
                and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)
        code, out = finish(proc)
        assert f"published {n} frames" in out, out
        return code, out

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def start_player(*params: str, ns: str = "/cam") -> subprocess.Popen:
    args = ["--ros-args", "-r", f"__ns:={ns}"]
    for p in params:
        args += ["-p", p]
    return spawn_module(PLAYER, args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        text=True)


def finish(proc: subprocess.Popen, timeout: float = TIMEOUT) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        stop_all([proc], timeout=10)
    return proc.returncode, out


def stamp(header) -> tuple[int, int, str]:
    return (header.stamp.sec, header.stamp.nanosec, header.frame_id)


# --------------------------------------------------------------------------------------------
# Pure parts


def test_fixed_gaps_are_one_over_rate() -> None:
    assert list(itertools.islice(arrival_gaps("fixed", 20.0), 3)) == [0.05, 0.05, 0.05]


def test_poisson_gaps_are_seeded_and_exponential() -> None:
    a = list(itertools.islice(arrival_gaps("poisson", 20.0, seed=7), 4000))
    b = list(itertools.islice(arrival_gaps("poisson", 20.0, seed=7), 4000))
    c = list(itertools.islice(arrival_gaps("poisson", 20.0, seed=8), 4000))
    assert a == b and a != c
    assert statistics.mean(a) == pytest.approx(0.05, rel=0.06)
    assert statistics.stdev(a) / statistics.mean(a) == pytest.approx(1.0, rel=0.1)


# --------------------------------------------------------------------------------------------
# Over ROS 2


@pytest.mark.ros
def test_folder_frames_arrive_with_matching_labels(class_folder, receiver) -> None:
    root, expected = class_folder
    n = len(expected)
    proc = start_player(f"dataset:=folder:{root}", "rate:=40", f"count:={n}",
                        "frame_id:=cam_optical")
    code, out = receiver.receive(n, proc)
    assert code == 0, out
    assert "publishing folder:" in out and f"{n} frames" in out and "8x8 rgb8" in out
    assert len(receiver.images) == n, out
    assert len(receiver.labels) == n
    for (_, img), label, (px, cls) in zip(receiver.images, receiver.labels, expected,
                                          strict=True):
        assert (img.encoding, img.height, img.width, img.step) == ("rgb8", 8, 8, 24)
        assert img.is_bigendian == 0
        assert bytes(img.data) == px.tobytes()
        assert stamp(label.header) == stamp(img.header)
        assert img.header.frame_id == "cam_optical"
        assert label.class_id == cls
        assert label.class_name == ["apple", "bear", "cloud"][cls]
    stamps = [stamp(img.header)[:2] for _, img in receiver.images]
    assert stamps == sorted(stamps) and len(set(stamps)) == n


@pytest.mark.ros
def test_count_beyond_the_split_wraps_only_with_loop(class_folder, receiver) -> None:
    root, expected = class_folder
    proc = start_player(f"dataset:=folder:{root}", "rate:=50", "count:=15", "loop:=true",
                        "start_index:=10", "channels:=1")
    code, out = receiver.receive(15, proc)
    assert code == 0, out
    assert len(receiver.images) == 15
    assert all(img.encoding == "mono8" and img.step == 8 for _, img in receiver.images)
    got = [lab.class_id for lab in receiver.labels]
    order = [cls for _, cls in expected]
    assert got == [order[(10 + i) % len(order)] for i in range(15)]

    # without loop the player stops at the end of the split (and says so)
    proc = start_player(f"dataset:=folder:{root}", "count:=5", "start_index:=10",
                        "wait_for_subscribers:=false")
    code, out = finish(proc)
    assert code == 0
    assert "ran out after 2 of 5 frames" in out


@pytest.mark.ros
def test_shuffle_plays_every_frame_once_in_the_seeded_order(class_folder, receiver) -> None:
    root, expected = class_folder
    n = len(expected)
    proc = start_player(f"dataset:=folder:{root}", "rate:=40", "shuffle:=true", "seed:=5")
    code, out = receiver.receive(n, proc)
    assert code == 0, out
    assert "in shuffled order (seed 5)" in out
    order = np.random.default_rng(5).permutation(n).tolist()
    assert order != sorted(order)  # the seed really reorders this split
    assert len(receiver.images) == n
    for (_, img), label, i in zip(receiver.images, receiver.labels, order, strict=True):
        px, cls = expected[i]
        assert bytes(img.data) == px.tobytes()
        assert label.class_id == cls


@pytest.mark.ros
def test_flat_folder_frames_are_unlabelled(tmp_path: Path, receiver) -> None:
    for i in range(3):
        PILImage.fromarray(_pixels(0, i, size=6)).save(tmp_path / f"f{i}.jpg")
    proc = start_player(f"dataset:=folder:{tmp_path}", "rate:=30", "count:=3")
    code, out = receiver.receive(3, proc)
    assert code == 0, out
    assert [lab.class_id for lab in receiver.labels] == [-1, -1, -1]
    assert [(img.width, img.height) for _, img in receiver.images] == [(6, 6)] * 3


def _gaps(receiver: Receiver) -> list[float]:
    t = [img.header.stamp.sec + img.header.stamp.nanosec * 1e-9 for _, img in receiver.images]
    return [b - a for a, b in zip(t, t[1:], strict=False)]


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize("arrival", ["fixed", "poisson"])
def test_arrival_timing(class_folder, receiver, arrival: str) -> None:
    root, _ = class_folder
    n = 50
    proc = start_player(f"dataset:=folder:{root}", "rate:=25.0", f"count:={n}", "loop:=true",
                        f"arrival:={arrival}", "seed:=3")
    code, out = receiver.receive(n, proc)
    assert code == 0, out
    gaps = _gaps(receiver)
    assert len(gaps) == n - 1
    mean = statistics.mean(gaps)
    cv = statistics.stdev(gaps) / mean
    # generous: the machine is shared, but the two processes differ clearly
    assert 0.02 < mean < 0.08, gaps
    if arrival == "fixed":
        assert cv < 0.35, gaps
    else:
        assert cv > 0.55, gaps


@pytest.mark.ros
def test_fashion_mnist_frames_are_mono8_28x28(receiver) -> None:
    from mdi_exit_ros.data import dataset_available

    if not dataset_available("fmnist"):
        pytest.skip("Fashion-MNIST is not installed (apt install dataset-fashion-mnist)")
    proc = start_player("dataset:=fashion-mnist", "rate:=50", "count:=3", "start_index:=5")
    code, out = receiver.receive(3, proc)
    assert code == 0, out
    assert [(i.encoding, i.width, i.height) for _, i in receiver.images] == [("mono8", 28, 28)] * 3
    assert all(0 <= lab.class_id < 10 and lab.class_name for lab in receiver.labels)


@pytest.mark.ros
@pytest.mark.parametrize("params,message", [
    (["arrival:=bursty"], "arrival must be one of fixed, poisson"),
    (["qos:=fast"], "qos must be one of"),
    (["rate:=-2.0"], "rate"),
    (["rate:=fast"], "rate"),
    (["split:=validation"], "split must be one of"),
    (["dataset:=folder:/nonexistent/frames"], "does not exist"),
    (["dataset:=mnist-digits"], "unknown dataset"),
    (["dataset:=folder:{tmp}", "start_index:=999"], "past the end"),
    (["count:=0"], "count"),  # 0 once meant "the split once": that is an unset count now
    (["size:=0"], "size"),  # 0 once meant "as stored": that is an unset size now
])
def test_bad_parameters_exit_2_with_a_message(class_folder, params, message) -> None:
    root, _ = class_folder
    params = [p.replace("{tmp}", str(root)) for p in params]
    proc = start_player(*params, "wait_for_subscribers:=false")
    code, out = finish(proc, timeout=60)
    assert code == 2, out
    assert "bad parameters" in out and message in out, out


@pytest.mark.ros
def test_video_needs_opencv_or_plays(tmp_path: Path, receiver) -> None:
    video = tmp_path / "clip.avi"
    try:
        import cv2
    except ImportError:
        video.write_bytes(b"not really a video")
        proc = start_player(f"dataset:=video:{video}", "wait_for_subscribers:=false")
        code, out = finish(proc, timeout=60)
        assert code == 2, out
        assert "needs OpenCV" in out
        return
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (16, 12))
    for i in range(4):
        writer.write(np.full((12, 16, 3), 50 * i, dtype=np.uint8))
    writer.release()
    proc = start_player(f"dataset:=video:{video}", "rate:=20")
    code, out = receiver.receive(4, proc)
    assert code == 0, out
    assert [(i.encoding, i.width, i.height) for _, i in receiver.images] == [("rgb8", 16, 12)] * 4
