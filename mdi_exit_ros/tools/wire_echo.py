"""Send this package's messages between two processes over ROS 2 and report what arrived.

`mdi-exit wire-echo` with no role starts a receiver process, publishes one of each message
(the Task carrying a 1 MB tensor), and prints what the receiver got, checked field by field
and byte by byte. The `send` and `receive` roles are what the tests and the wire benchmark
run as separate processes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from typing import Any

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from mdi_exit_ros.msg import ExitResult, NeighborState, Task, TaskAck, Tensor
from mdi_exit_ros.tools.procs import spawn_module
from mdi_exit_ros.wire import to_msg
from mdi_exit_ros.wire.qos import reliable

TYPES: dict[str, type] = {
    "Tensor": Tensor, "Task": Task, "TaskAck": TaskAck,
    "ExitResult": ExitResult, "NeighborState": NeighborState,
}
TOPIC = "/mdi/wire_echo"
BACK = "/mdi/wire_echo_back"  # the echo role sends every message back on this topic
READY = "READY"  # printed by a receiver once its subscription exists


def sample_tensor(seed: int, nbytes: int) -> Tensor:
    """A float32 tensor of about `nbytes` bytes whose content depends only on `seed`."""
    rng = np.random.default_rng(seed)
    n = max(nbytes // 4, 1)
    return to_msg(rng.standard_normal(n, dtype=np.float32).reshape(1, n), name="features")


def sample_message(kind: str, seed: int = 0, nbytes: int = 1 << 20) -> Any:
    """A deterministic, fully populated message of `kind` (the same in every process)."""
    if kind == "Tensor":
        return sample_tensor(seed, nbytes)
    if kind == "Task":
        msg = Task(source="robot1", data_id=1000 + seed, task_index=2, model_id="demo-abc123",
                   sender="robot1", attempt=1, hops=1, tensor=sample_tensor(seed, nbytes))
        msg.header.frame_id = "camera"
        msg.header.stamp.sec, msg.header.stamp.nanosec = 1700000000 + seed, 123
        msg.admitted.sec, msg.admitted.nanosec = 1700000001 + seed, 456
        return msg
    if kind == "TaskAck":
        return TaskAck(receiver="robot2", source="robot1", data_id=1000 + seed, task_index=2,
                       attempt=1, accepted=bool(seed % 2), reason="" if seed % 2 else "busy")
    if kind == "ExitResult":
        msg = ExitResult(source="robot1", data_id=1000 + seed, exit_index=3, worker="robot3",
                         class_id=7, class_name="horse", confidence=0.875,
                         logits=[float(i) - 4.5 for i in range(10)], hops=2, latency=0.0625)
        msg.header.frame_id = "camera"
        return msg
    if kind == "NeighborState":
        msg = NeighborState(worker="robot2", lifecycle_state="active", input_queue=3,
                            output_queue=1, compute_delay=0.004, model_id="demo-abc123",
                            tasks_run=42 + seed, exit_thresholds=[0.8, 0.8, 0.9],
                            admission_interval=0.05, tasks_accepted=17, seq=seed)
        msg.header.stamp.sec = 1700000000
        return msg
    raise ValueError(f"unknown message kind {kind!r}; expected one of {sorted(TYPES)}")


def digest(msg: Any) -> dict[str, Any]:
    """Every field of a message as plain JSON values; byte arrays as length + sha256."""
    out: dict[str, Any] = {}
    for field in msg.get_fields_and_field_types():
        value = getattr(msg, field)
        if hasattr(value, "get_fields_and_field_types"):
            out[field] = digest(value)
        elif field == "data" and isinstance(msg, Tensor):
            out[field] = {"len": len(value), "sha256": hashlib.sha256(value).hexdigest()}
        elif isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
            out[field] = [round(v, 6) if isinstance(v, float) else v for v in list(value)]
        elif isinstance(value, float):
            out[field] = round(value, 6)
        else:
            out[field] = value
    return out


def receive(kind: str, count: int, timeout: float, report_each: bool = True) -> int:
    """Receive `count` messages, printing one JSON line each (or a summary); 1 on timeout."""
    rclpy.init()
    node = Node("wire_echo_receiver")
    got: list[float] = []
    sizes: list[int] = []

    def on_msg(msg: Any) -> None:
        got.append(time.perf_counter())
        if isinstance(msg, Task):
            sizes.append(len(msg.tensor.data))
        elif isinstance(msg, Tensor):
            sizes.append(len(msg.data))
        if report_each:
            print(json.dumps({"kind": kind, "digest": digest(msg)}), flush=True)

    node.create_subscription(TYPES[kind], TOPIC, on_msg, reliable(max(count, 10)))
    print(READY, flush=True)
    deadline = time.monotonic() + timeout
    try:
        while len(got) < count and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
        # the result before the DDS teardown, which hung once (docs/TESTING.md)
        span = got[-1] - got[0] if len(got) > 1 else 0.0
        print(json.dumps({"summary": {"received": len(got), "span_s": span,
                                      "bytes": sum(sizes)}}), flush=True)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0 if len(got) >= count else 1


def echo(kind: str, count: int, timeout: float) -> int:
    """Send each message back unchanged on BACK (the far end of a ping-pong) until `count`
    were echoed (0: until SIGINT or the timeout)."""
    rclpy.init()
    node = Node("wire_echo_echo")
    pub = node.create_publisher(TYPES[kind], BACK, reliable(10))
    echoed = [0]

    def on_msg(msg: Any) -> None:
        pub.publish(msg)
        echoed[0] += 1

    node.create_subscription(TYPES[kind], TOPIC, on_msg, reliable(10))
    print(READY, flush=True)
    deadline = time.monotonic() + timeout
    try:
        while (count == 0 or echoed[0] < count) and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0 if echoed[0] >= count else 1


def ping(msgs: list[Task], count: int, timeout: float, warmup: int = 5) -> list[list[float]]:
    """Round-trip seconds of each Task in `msgs` to an `echo` process: `count` rounds (after
    `warmup`) that send every message once, one in flight at a time, so the messages are
    timed side by side under the same load. Each data_id is rewritten to pair the replies.

    Needs rclpy initialised. The first message is repeated until a reply arrives: only then
    are both directions matched (a reliable writer drops what it sent before matching).
    """
    node = Node("wire_echo_ping")
    pub = node.create_publisher(Task, TOPIC, reliable(10))
    back: dict[int, float] = {}
    node.create_subscription(
        Task, BACK, lambda m: back.setdefault(m.data_id, time.perf_counter()), reliable(10))
    deadline = time.monotonic() + timeout

    def wait_for(data_id: int, resend: Task | None = None) -> None:
        last = time.monotonic()
        while data_id not in back:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no echo of message {data_id} within {timeout} s")
            if resend is not None and time.monotonic() - last > 0.5:
                pub.publish(resend)
                last = time.monotonic()
            rclpy.spin_once(node, timeout_sec=0.01)

    try:
        msgs[0].data_id = 0
        pub.publish(msgs[0])
        wait_for(0, resend=msgs[0])
        rtts: list[list[float]] = [[] for _ in msgs]
        data_id = 0
        for round_ in range(warmup + count):
            for j, msg in enumerate(msgs):
                data_id += 1
                msg.data_id = data_id
                start = time.perf_counter()
                pub.publish(msg)
                wait_for(data_id)
                if round_ >= warmup:
                    rtts[j].append(back[data_id] - start)
        return rtts
    finally:
        node.destroy_node()


def send(kind: str, count: int, nbytes: int, timeout: float, seed: int = 0) -> int:
    """Wait for a receiver, then publish `count` messages as fast as the QoS allows."""
    rclpy.init()
    node = Node("wire_echo_sender")
    pub = node.create_publisher(TYPES[kind], TOPIC, reliable(max(count, 10)))
    deadline = time.monotonic() + timeout
    try:
        while pub.get_subscription_count() == 0:
            if time.monotonic() > deadline:
                print("no receiver matched within the timeout", file=sys.stderr)
                return 1
            rclpy.spin_once(node, timeout_sec=0.05)
        messages = [sample_message(kind, seed + i, nbytes) for i in range(min(count, 4))]
        start = time.perf_counter()
        for i in range(count):
            pub.publish(messages[i % len(messages)])
        # Keep the writer alive until the reader has acknowledged everything.
        pub.wait_for_all_acked(rclpy.duration.Duration(seconds=timeout))
        print(json.dumps({"sent": count, "publish_s": time.perf_counter() - start}), flush=True)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def spawn(role: str, kind: str, count: int, nbytes: int, timeout: float,
          env: dict[str, str] | None = None, quiet: bool = False) -> subprocess.Popen:
    """Start `role` of this tool as a separate process in its own session (for SIGINT)."""
    args = [role, "--type", kind, "--count", str(count), "--bytes", str(nbytes),
            "--timeout", str(timeout)] + (["--quiet"] if quiet else [])
    return spawn_module("mdi_exit_ros.tools.wire_echo", args, env=env,
                        stdout=subprocess.PIPE, text=True)


def wait_ready(proc: subprocess.Popen, timeout: float) -> None:
    """Block until a receiver process printed READY (its subscription exists)."""
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.strip() == READY:
            return
        if not line and proc.poll() is not None:
            raise RuntimeError(f"receiver exited with {proc.returncode} before it was ready")
    raise TimeoutError("receiver not ready in time")


def demo(timeout: float) -> int:
    """Publish one of each message to a receiver process and show what arrived."""
    failures = 0
    for kind in TYPES:
        receiver = spawn("receive", kind, 1, 1 << 20, timeout)
        try:
            wait_ready(receiver, timeout)
            sender = spawn("send", kind, 1, 1 << 20, timeout)
            sender.wait(timeout=timeout + 5)
            out, _ = receiver.communicate(timeout=timeout + 5)
        finally:
            for proc in (receiver,):
                if proc.poll() is None:
                    proc.kill()
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        got = [line["digest"] for line in lines if "digest" in line]
        ok = bool(got) and got[0] == digest(sample_message(kind, 0, 1 << 20))
        failures += not ok
        detail = got[0] if got else {}
        if kind in ("Task", "Tensor"):
            tensor = detail.get("tensor", detail)
            detail = {"bytes": tensor.get("data", {}).get("len"),
                      "shape": tensor.get("shape", {}).get("dims"),
                      **{k: v for k, v in detail.items() if k in ("source", "data_id")}}
        print(f"{kind:<14} {'arrived intact' if ok else 'MISSING OR CHANGED'}  {detail}")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mdi-exit wire-echo", description=__doc__)
    parser.add_argument("role", nargs="?", choices=("demo", "send", "receive", "echo"),
                        default="demo")
    parser.add_argument("--type", default="Task", choices=sorted(TYPES))
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--bytes", type=int, default=1 << 20, help="tensor payload size")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds to wait at most")
    parser.add_argument("--quiet", action="store_true", help="receiver: summary line only")
    args = parser.parse_args(argv)
    if args.role == "send":
        return send(args.type, args.count, args.bytes, args.timeout)
    if args.role == "receive":
        return receive(args.type, args.count, args.timeout, report_each=not args.quiet)
    if args.role == "echo":
        return echo(args.type, args.count, args.timeout)
    return demo(args.timeout)


if __name__ == "__main__":
    sys.exit(main())
