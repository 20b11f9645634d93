"""Test support: worker/source processes, driven from the test process over real ROS 2.

Each robot runs in a process of its own (as `ros2 launch` would start it), on the test
run's ROS_DOMAIN_ID; the test process talks to them only through topics and the standard
lifecycle and parameter services. Every wait is bounded and every process is ended by PID.
"""

from __future__ import annotations

import array
import os
import subprocess
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
import rclpy.time
import yaml
from lifecycle_msgs.msg import Transition
from rcl_interfaces.srv import SetParameters
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from mdi_exit_ros.msg import ExitResult, FrameLabel, WorkerStats
from mdi_exit_ros.tools.lifecycle_client import LifecycleClient
from mdi_exit_ros.tools.procs import spawn_module, stop_all
from mdi_exit_ros.topics import (
    CLASSIFICATION,
    DEFAULT_FLEET,
    IMAGE,
    IMAGE_LABEL,
    NODE_NAME,
    robot_namespace,
    stats_topic,
)
from mdi_exit_ros.wire import qos

TIMEOUT = 60.0
# Source parameters for tests that must see every frame they send admitted (at up to
# 200 frames/s): mu starts at 5 ms and Alg. 3 may not raise it past that under load (the
# tests' frames come every 50-100 ms), no slow start, no latency budget (backlog guard).
ADMIT_EVERY_FRAME: dict[str, Any] = {
    "admission_mode": "rate", "initial_interval": 0.005, "max_interval": 0.005,
    "slow_start": False, "latency_budget": 3600.0}


def make_checkpoint(path: Path, seed: int = 0) -> Path:
    """A randomly initialised Fashion-MNIST early-exit model saved as a checkpoint."""
    import torch

    from mdi_exit_ros.model.builders import build_model
    from mdi_exit_ros.model.checkpoint import save_checkpoint

    torch.manual_seed(seed)
    model = build_model("fmnist_cnn_ee").eval()
    save_checkpoint(model, path, dtype="float32")
    return path


def frames(n: int, seed: int = 0) -> np.ndarray:
    """n grey 28x28 uint8 frames with some structure (not only noise)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    ramp = np.linspace(0, 255, 28, dtype=np.float32)[None, None, :]
    mix = rng.random((n, 1, 1)).astype(np.float32)
    return (base * (1 - mix) + ramp * mix).astype(np.uint8)


class Robot:
    """One worker or source process."""

    def __init__(self, worker_id: str, source: bool, params: dict[str, Any],
                 log_dir: Path, log_level: str = "warn", fleet: str = DEFAULT_FLEET) -> None:
        args = ["--ros-args", "-r", f"__ns:={robot_namespace(fleet, worker_id)}", "-r",
                f"__node:={NODE_NAME}", "--log-level", log_level]
        if fleet != DEFAULT_FLEET:
            params = {"fleet": fleet, **params}
        for name, value in params.items():
            args += ["-p", f"{name}:={_yaml(value)}"]
        self.worker_id = worker_id
        self.log = log_dir / (f"{worker_id}.log" if fleet == DEFAULT_FLEET else
                              f"{fleet.strip('/').replace('/', '_')}_{worker_id}.log")
        self._log_file = open(self.log, "w")  # noqa: SIM115 - closed in stop()
        module = "mdi_exit_ros.nodes.source" if source else "mdi_exit_ros.nodes.worker"
        self.proc = spawn_module(module, args, stdout=self._log_file, stderr=self._log_file)

    def stop(self) -> int | None:
        code = stop_all([self.proc], timeout=20.0)[0]
        self._log_file.close()
        return code


def _yaml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_yaml(v) for v in value) + "]"
    if isinstance(value, str):
        return f"'{value}'"
    return repr(value)


class Driver:
    """The test process's ROS node: lifecycle, parameters, camera frames, results.

    Nothing is published before both ends of its topic matched (`connect`), and nothing is
    concluded from silence: tests wait for counters the nodes publish (`wait_settled`).
    It drives the robots of one fleet namespace (`fleet`, default /).
    """

    def __init__(self, fleet: str = DEFAULT_FLEET, context: Context | None = None) -> None:
        """`fleet`: the fleet namespace the robots run under; `context`: an rclpy context of
        the caller's (own discovery settings); default: the process's global one."""
        if context is None and not rclpy.ok():
            rclpy.init()
        self.fleet = fleet
        self.node = Node("fleet_test_driver", namespace=fleet, context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.lifecycle = LifecycleClient(self.node,
                                         lambda t: self.executor.spin_once(timeout_sec=t))
        self.results: dict[str, list[ExitResult]] = defaultdict(list)
        self.stats: dict[str, WorkerStats] = {}
        self.sent: dict[str, int] = defaultdict(int)  # frames published per source
        self._image_pubs: dict[str, Any] = {}
        self._label_pubs: dict[str, Any] = {}
        self._result_subs: dict[str, Any] = {}
        self.node.create_subscription(WorkerStats, stats_topic(fleet), self._on_stats,
                                      qos.state_qos())

    def topic(self, worker: str, name: str) -> str:
        """`name` in `worker`'s namespace (its node's services: `worker/<service>`)."""
        return f"{robot_namespace(self.fleet, worker)}/{name}"

    def _on_stats(self, msg: WorkerStats) -> None:
        self.stats[msg.worker] = msg

    def now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def listen(self, source: str) -> Any:
        """Subscribe to a source's classification (once); returns the subscription."""
        if source not in self._result_subs:
            self._result_subs[source] = self.node.create_subscription(
                ExitResult, self.topic(source, CLASSIFICATION),
                lambda m: self.results[source].append(m), qos.data_qos())
        return self._result_subs[source]

    def spin_until(self, predicate, timeout: float = TIMEOUT) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return predicate()

    def spin_for(self, seconds: float) -> None:
        """Serve callbacks for `seconds` (pacing only: never a check that nothing happens)."""
        self.spin_until(lambda: False, seconds)

    def stats_after(self, worker: str, after_ns: int, timeout: float = TIMEOUT
                    ) -> WorkerStats:
        """The first WorkerStats of `worker` stamped after `after_ns` (its clock = ours)."""
        def fresh() -> bool:
            s = self.stats.get(worker)
            return s is not None and rclpy.time.Time.from_msg(s.header.stamp).nanoseconds \
                > after_ns
        assert self.spin_until(fresh, timeout), f"no WorkerStats from {worker} in {timeout} s"
        return self.stats[worker]

    def call(self, client, request, timeout: float = TIMEOUT):
        """Call a service; the request is sent again every RESEND_AFTER s without an answer
        (tools/lifecycle_client.py says why), so it must be safe to repeat (state queries,
        parameter sets); TimeoutError after `timeout`."""
        return self.lifecycle.call(client, request, time.monotonic() + timeout).result()

    def transition(self, worker: str, transition_id: int) -> bool:
        """Ask for a lifecycle transition; True when the worker took it (a refusal of a
        re-sent request counts when the worker is in the state the transition leads to)."""
        name = self.topic(worker, NODE_NAME)
        outcome = self.lifecycle.change_state([name], transition_id, time.monotonic() + TIMEOUT)
        return outcome[name] is None

    def state(self, worker: str) -> str:
        state = self.lifecycle.state(self.topic(worker, NODE_NAME), time.monotonic() + TIMEOUT)
        assert state is not None, f"{worker} could not say its state"
        return state.label

    def bring_up(self, worker: str) -> None:
        assert self.transition(worker, Transition.TRANSITION_CONFIGURE), f"{worker} configure"
        assert self.transition(worker, Transition.TRANSITION_ACTIVATE), f"{worker} activate"

    def set_params(self, worker: str, check: bool = True, **values: Any) -> list:
        """Set parameters through the node's service; with `check`, each must be accepted."""
        client = self.node.create_client(SetParameters,
                                         self.topic(worker, f"{NODE_NAME}/set_parameters"))
        try:
            req = SetParameters.Request()
            req.parameters = [Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
            results = list(self.call(client, req).results)
        finally:
            self.node.destroy_client(client)
        if check:
            assert all(r.successful for r in results), (worker, values, results)
        return results

    def _image_pub(self, source: str):
        if source not in self._image_pubs:
            self._image_pubs[source] = self.node.create_publisher(
                Image, self.topic(source, IMAGE), qos.reliable(10))
            self._label_pubs[source] = self.node.create_publisher(
                FrameLabel, self.topic(source, IMAGE_LABEL), qos.data_qos())
        return self._image_pubs[source]

    def connect(self, source: str, timeout: float = TIMEOUT) -> None:
        """Wait until frames can flow both ways between this driver and `source`.

        Our image and label publishers matched the source's subscriptions and our
        classification subscription matched its publisher (seen here), and the source reports
        the same matches from its side (WorkerStats, stamped after we started waiting).
        """
        image, label = self._image_pub(source), self._label_pubs[source]
        results = self.listen(source)
        since = self.now_ns()

        def matched() -> bool:
            if not (image.get_subscription_count() and label.get_subscription_count()
                    and results.get_publisher_count()):
                return False
            s = self.stats.get(source)
            return (s is not None
                    and rclpy.time.Time.from_msg(s.header.stamp).nanoseconds > since
                    and s.image_publishers > 0 and s.label_publishers > 0
                    and s.classification_subscribers > 0)

        assert self.spin_until(matched, timeout), (
            f"/{source} not connected both ways in {timeout} s: ours image "
            f"{image.get_subscription_count()} label {label.get_subscription_count()} "
            f"results {results.get_publisher_count()}; theirs {self.stats.get(source)}")

    def publish_frames(self, source: str, pixels: np.ndarray, labels: list[int] | None,
                       rate: float) -> list[tuple[int, int]]:
        """Publish frames at `rate` Hz (after `connect`); returns their stamps (sec, nanosec).

        Stamps are unique per source over the whole run (the source matches labels and
        users match results by them). Whether they arrived, the source's frames_received
        says (`settled`).
        """
        pub = self._image_pub(source)
        stamps = []
        for frame in pixels:
            msg = Image(height=frame.shape[0], width=frame.shape[1], encoding="mono8",
                        step=frame.shape[1])
            msg.data = array.array("B", frame.tobytes())
            msg.header.frame_id = "camera"
            stamp = (1000 + self.sent[source], 7)
            msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
            if labels is not None:  # the label first: the source scores the answer with it
                self.publish_labels(source, [stamp], [labels[len(stamps)]])
            pub.publish(msg)
            self.sent[source] += 1
            stamps.append(stamp)
            self.spin_for(1.0 / rate)
        return stamps

    def publish_labels(self, source: str, stamps: list[tuple[int, int]],
                       labels: list[int]) -> None:
        """Publish the ground truth of frames by their stamps (as `publish_frames` gives
        them), also after their results: a label may come late."""
        for (sec, nanosec), class_id in zip(stamps, labels, strict=True):
            label = FrameLabel(class_id=class_id)
            label.header.frame_id = "camera"
            label.header.stamp.sec, label.header.stamp.nanosec = sec, nanosec
            self._label_pubs[source].publish(label)

    def forget(self, source: str) -> None:
        """`source` was configured again: its frame counters restart from zero, so do ours."""
        self.sent[source] = 0
        self.results[source].clear()

    def settled(self, source: str) -> bool:
        """Every frame sent reached the source, each was admitted or dropped (counted), every
        admitted one is classified, and every classification published has arrived here."""
        s = self.stats.get(source)
        return (s is not None and s.frames_received == self.sent[source]
                and s.frames_admitted + s.frames_dropped == s.frames_received
                and s.frames_classified == s.frames_admitted
                and len(self.results[source]) == s.frames_classified)

    def wait_settled(self, source: str, timeout: float = TIMEOUT) -> WorkerStats:
        assert self.spin_until(lambda: self.settled(source), timeout), \
            f"{source} did not settle in {timeout} s: sent {self.sent[source]}, results " \
            f"{len(self.results[source])}; {self.describe()}"
        return self.stats[source]

    def describe(self) -> str:
        """Every worker's counters, for failure messages."""
        parts = []
        for name, s in sorted(self.stats.items()):
            parts.append(
                f"{name}: I={s.input_queue} O={s.output_queue} Γ={s.compute_delay:.4f} "
                f"run={s.tasks_run} recv={s.tasks_received} back={s.tasks_taken_back} "
                f"dup={s.duplicates} offloads="
                f"{dict(zip(s.offload_targets, s.offloads_sent, strict=True))} "
                f"frames recv={s.frames_received} admitted={s.frames_admitted} "
                f"dropped={s.frames_dropped} classified={s.frames_classified} "
                f"overdue={s.frames_overdue}")
        return "; ".join(parts)

    def close(self) -> None:
        self.executor.remove_node(self.node)
        self.node.destroy_node()


def spawn_bench(scenario: dict[str, Any], tmp_path: Path) -> tuple[Any, Path]:
    """`mdi-exit bench` on `scenario` (written as YAML under `tmp_path`) in a process of its
    own, stdout and stderr piped; returns it and its --out folder."""
    path = tmp_path / f"{scenario['name']}.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    out = tmp_path / "bench"
    proc = spawn_module("mdi_exit_ros.tools.bench", [str(path), "--out", str(out)],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return proc, out
