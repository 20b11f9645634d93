"""Hostile input (issue #9): random and mutated messages of every type a robot subscribes to,
sent to a live source and a live worker. Afterwards both are still up, have refused and
counted what they could not use, have hit no internal error, classify real frames exactly as
the model does offline, and their memory stayed within a stated bound.

CI sends MDI_FUZZ_MESSAGES messages (default 2,000); `make fuzz` sends 10,000.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fleet_harness import Driver, Robot, frames, make_checkpoint
from fuzz_messages import MessageFuzzer
from rclpy.duration import Duration
from sensor_msgs.msg import Image

from mdi_exit_ros.model.checkpoint import load_model
from mdi_exit_ros.msg import ExitResult, FrameLabel, NeighborState, Task, TaskAck
from mdi_exit_ros.nodes.engine import Engine
from mdi_exit_ros.wire import qos, torch_to_msg

pytestmark = pytest.mark.ros
MESSAGES = int(os.environ.get("MDI_FUZZ_MESSAGES", "2000"))
RSS_GROWTH_BOUND = 96 * 1024 * 1024  # bytes per process; measured growth is in docs
SOURCE, WORKER = "fz1", "fz2"


def rss(pid: int) -> int:
    """Resident memory of a process, bytes (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def templates(model_id: str) -> dict[type, object]:
    """One valid message of each type, for mutation (names are ghosts, not live robots)."""
    import torch

    tensor = torch_to_msg(torch.zeros(1, 1, 28, 28), encoding="raw")
    image = Image(height=28, width=28, encoding="mono8", step=28)
    image.data = bytes(784)
    return {
        Task: Task(source="ghost", data_id=1, task_index=1, model_id=model_id,
                   sender="ghost", tensor=tensor, exit_thresholds=[0.5, 0.5, 0.5]),
        TaskAck: TaskAck(receiver="ghost", source=SOURCE, data_id=1, task_index=2,
                         accepted=True),
        NeighborState: NeighborState(worker="ghost", lifecycle_state="active",
                                     model_id=model_id, compute_delay=0.01, seq=5),
        ExitResult: ExitResult(source=SOURCE, data_id=0, exit_index=1, worker="ghost",
                               class_id=3, confidence=0.9, logits=[0.0] * 10),
        FrameLabel: FrameLabel(class_id=2),
        Image: image,
    }


def test_hostile_messages_are_refused_and_the_robots_still_classify(tmp_path) -> None:
    ckpt = make_checkpoint(tmp_path / "model.safetensors")
    common = {"model": str(ckpt), "stats_period": 0.2, "exit_thresholds": [1.0, 1.0, 1.0]}
    robots = {SOURCE: Robot(SOURCE, True, {**common, "neighbors": [WORKER], "qos": "reliable",
                                           "admission_mode": "rate",
                                           "initial_interval": 0.001,
                                           "slow_start": False,
                                           "latency_budget": 3600.0}, tmp_path),
              WORKER: Robot(WORKER, False, {**common, "neighbors": [SOURCE]}, tmp_path)}
    driver = Driver()
    try:
        for name in robots:
            driver.bring_up(name)
        driver.connect(SOURCE)
        model_id = driver.stats_after(WORKER, driver.now_ns()).model_id
        before = {name: rss(r.proc.pid) for name, r in robots.items()}

        topics = {Task: [f"/{SOURCE}/tasks", f"/{WORKER}/tasks"],
                  TaskAck: [f"/{SOURCE}/task_acks", f"/{WORKER}/task_acks"],
                  NeighborState: ["/mdi/neighbor_state"], ExitResult: [f"/{SOURCE}/exits"],
                  FrameLabel: [f"/{SOURCE}/image_label"], Image: [f"/{SOURCE}/image"]}
        pubs = {(t, topic): driver.node.create_publisher(t, topic, qos.data_qos())
                for t, names in topics.items() for topic in names}
        assert driver.spin_until(lambda: all(p.get_subscription_count() for p in pubs.values()))
        fuzz = MessageFuzzer(seed=20261130, avoid=set(robots))
        valid = templates(model_id)
        keys = list(pubs)
        for i in range(MESSAGES):
            msg_type, topic = keys[i % len(keys)]
            msg = fuzz.random_msg(msg_type) if i % 2 else fuzz.mutate(valid[msg_type])
            pubs[(msg_type, topic)].publish(msg)
            if i % 50 == 49:
                driver.spin_for(0.05)  # ~1,000 messages/s: the robots keep reading
        for pub in pubs.values():  # delivered (or dropped by a full reader history)
            pub.wait_for_all_acked(Duration(seconds=30))
        for robot in robots.values():
            assert robot.proc.poll() is None, robot.log.read_text()[-3000:]

        # The fuzz's own valid frames are answered too; then real frames, checked offline.
        def answered() -> bool:
            s = driver.stats.get(SOURCE)
            return s is not None and s.frames_classified == s.frames_admitted
        driver.stats_after(SOURCE, driver.now_ns())  # a report made after the fuzz
        assert driver.spin_until(answered, 120.0), driver.describe()
        base = driver.stats[SOURCE]
        driver.sent[SOURCE] = base.frames_received
        driver.results[SOURCE].clear()
        pixels = frames(12, seed=3)
        stamps = driver.publish_frames(SOURCE, pixels, [i % 10 for i in range(12)], 10.0)
        # results since the baseline: the fuzz's frames were answered before it
        driver.results[SOURCE] = [r for r in driver.results[SOURCE]
                                  if (r.header.stamp.sec, r.header.stamp.nanosec) in stamps]
        driver.spin_until(lambda: len(driver.results[SOURCE]) >= 12, 120.0)
        stats = driver.stats_after(SOURCE, driver.now_ns())
        assert stats.frames_received - base.frames_received == 12, driver.describe()
        got = {(r.header.stamp.sec, r.header.stamp.nanosec): r.class_id
               for r in driver.results[SOURCE]}
        model, _ = load_model(str(ckpt))
        engine = Engine(str(ckpt), 1, "cpu")
        expected = [int(model.infer_early_exit(engine.preprocess(p[:, :, None]),
                                               [1.0, 1.0, 1.0])[0][0]) for p in pixels]
        assert [got.get(s) for s in stamps] == expected

        reports = {name: driver.stats_after(name, driver.now_ns()) for name in robots}
        after = {name: rss(r.proc.pid) for name, r in robots.items()}
        print(f"\nfuzz: {MESSAGES} messages; RSS MiB before/after "
              + ", ".join(f"{n} {before[n] / 2**20:.0f}/{after[n] / 2**20:.0f}" for n in robots)
              + "; refused " + ", ".join(
                  f"{n}: messages {s.messages_refused}, tasks {s.tasks_refused}, frames "
                  f"{s.frames_dropped}" for n, s in reports.items()))
        for name, s in reports.items():
            assert s.internal_errors == 0, (name, robots[name].log.read_text()[-3000:])
            assert s.health == "" and s.tasks_failed == 0, (name, s.health)
            assert after[name] - before[name] <= RSS_GROWTH_BOUND, (name, before, after)
        assert reports[WORKER].tasks_refused > 0 and reports[SOURCE].tasks_refused > 0
        assert reports[SOURCE].messages_refused > 0 and reports[WORKER].messages_refused > 0
        assert reports[SOURCE].frames_dropped > 0  # undecodable images, counted
    finally:
        driver.close()
        codes = {name: robot.stop() for name, robot in robots.items()}
    assert all(code == 0 for code in codes.values()), codes


