"""Lifecycle details: SIGINT runs the shutdown transition; an error in a transition is
answered by on_error, which releases everything and returns the node to unconfigured."""

from __future__ import annotations

import signal
import subprocess
import threading
import time

import pytest
import rclpy
from fleet_harness import Driver, Robot, make_checkpoint
from lifecycle_msgs.msg import State, TransitionEvent
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter

from mdi_exit_ros import core
from mdi_exit_ros.nodes.worker import WorkerNode
from mdi_exit_ros.topics import stats_topic

pytestmark = pytest.mark.ros


def test_sigint_runs_the_shutdown_transition_of_an_active_worker(tmp_path) -> None:
    """Ctrl-C (SIGINT) on an active worker: it publishes the transition to finalized on its
    transition_event topic, logs the release, and exits 0."""
    ckpt = make_checkpoint(tmp_path / "model.safetensors")
    robot = Robot("robot7", False, {"model": str(ckpt), "neighbors": ["-"]}, tmp_path,
                  log_level="info")
    driver = Driver()
    events: list[TransitionEvent] = []
    sub = driver.node.create_subscription(TransitionEvent, "/robot7/worker/transition_event",
                                          events.append, 10)
    try:
        driver.bring_up("robot7")
        assert driver.spin_until(lambda: sub.get_publisher_count() > 0, 30.0)
        assert driver.state("robot7") == "active"
        robot.proc.send_signal(signal.SIGINT)
        assert driver.spin_until(
            lambda: any(e.goal_state.id == State.PRIMARY_STATE_FINALIZED for e in events),
            30.0), [(e.start_state.label, e.goal_state.label) for e in events]
        try:
            code = robot.proc.wait(timeout=30.0)
        except subprocess.TimeoutExpired:
            code = None
    finally:
        driver.close()
        robot.stop()
    log = robot.log.read_text()
    assert code == 0, log
    finals = [e for e in events if e.goal_state.id == State.PRIMARY_STATE_FINALIZED]
    assert [e.start_state.id for e in finals] == [State.TRANSITION_STATE_SHUTTINGDOWN], finals
    assert "signal received: shutting down" in log, log
    assert "robot7 shut down from active" in log, log


class _FailsToActivateOnce(WorkerNode):
    """A worker whose first activation raises (a fault injected into a real node)."""

    failed = False

    def on_activate(self, state):  # noqa: ANN001, ANN201
        if not self.failed:
            self.failed = True
            raise RuntimeError("injected activation failure")
        return super().on_activate(state)


def _our_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name in ("inference", "sender")}


def test_an_error_in_a_transition_releases_everything_back_to_unconfigured(tmp_path) -> None:
    ckpt = make_checkpoint(tmp_path / "model.safetensors")
    if not rclpy.ok():
        rclpy.init()
    before = _our_threads()
    node = _FailsToActivateOnce(namespace="/robot8", parameter_overrides=[
        Parameter("model", value=str(ckpt)), Parameter("neighbors", value=["-"])])
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.engine is not None and _our_threads() - before == {"inference", "sender"}
        assert stats_topic() in {p.topic_name for p in node.publishers}

        assert node.trigger_activate() == TransitionCallbackReturn.ERROR  # on_error ran
        assert node.engine is None and node.core is None  # the model and the core released
        assert _our_threads() == before  # the inference and sender threads ended
        assert stats_topic() not in {p.topic_name for p in node.publishers}

        # unconfigured again: it configures and activates as new
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert node.active and node.core is not None
        assert node.trigger_shutdown() == TransitionCallbackReturn.SUCCESS
        assert _our_threads() == before
    finally:
        node.destroy_node()


class _SlowTask(WorkerNode):
    """A worker whose task blocks until the test lets it go (a device that takes long)."""

    def __init__(self, **kwargs) -> None:  # noqa: ANN003
        super().__init__(**kwargs)
        self.started, self.release, self.finished = (threading.Event(), threading.Event(),
                                                     threading.Event())

    def run_task(self, task) -> None:  # noqa: ANN001
        self.started.set()
        self.release.wait(60.0)
        self.finished.set()


def test_deactivate_returns_while_a_task_still_runs(tmp_path) -> None:
    """The executor never joins the inference thread on deactivate: the transition returns
    while the running task is still blocked (before, it waited up to 30 s for it), and the
    task finishes afterwards on its own thread; cleanup then ends the thread."""
    ckpt = make_checkpoint(tmp_path / "model.safetensors")
    if not rclpy.ok():
        rclpy.init()
    before = _our_threads()
    node = _SlowTask(namespace="/robot6", parameter_overrides=[
        Parameter("model", value=str(ckpt)), Parameter("neighbors", value=["-"])])
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        with node.lock:
            node.core.submit(core.Task(core.TaskKey("robot6", 1, 1)), time.monotonic())
        node._wake.set()
        assert node.started.wait(30.0), "the inference thread took no task"
        t0 = time.monotonic()
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        took = time.monotonic() - t0
        assert not node.finished.is_set() and took < 15.0, took  # it did not wait
        node.release.set()
        assert node.finished.wait(30.0)
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert _our_threads() == before
    finally:
        node.release.set()
        node.destroy_node()
