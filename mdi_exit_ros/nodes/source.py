"""The MDI-Exit source: a worker that owns data (executable `source`, node name `worker`).

On top of the worker it subscribes to a camera (`image`, sensor_msgs/Image; remap it onto a
real camera), admits frames through Alg. 3 (`admission_mode: rate`, the interval mu adapts
and frames arriving faster are dropped and counted) or Alg. 4 (`threshold`: every frame is
admitted and T_e adapts), and publishes exactly one ExitResult per admitted frame on
`classification` (header = the frame's). Frames past `frame_deadline` are admitted again
under a new data_id, so a frame lost with a dead robot is still answered once.
"""

from __future__ import annotations

import secrets
import sys
import time
from collections import OrderedDict, deque
from typing import Any

from rclpy.event_handler import (
    QoSMessageLostInfo,
    QoSSubscriptionMatchedInfo,
    SubscriptionEventCallbacks,
)
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import Image

from mdi_exit_ros import core
from mdi_exit_ros.core.gaps import MAX_GAP
from mdi_exit_ros.msg import ExitResult, FrameLabel, WorkerStats
from mdi_exit_ros.nodes.engine import Payload
from mdi_exit_ros.nodes.worker import WorkerNode, run_node
from mdi_exit_ros.topics import CLASSIFICATION, EXITS, IMAGE, IMAGE_LABEL, NODE_NAME
from mdi_exit_ros.wire import qos
from mdi_exit_ros.wire.image import ImageDecodeError, image_to_array

LABEL_MEMORY = 10_000  # ground-truth labels kept while their frames are in flight
MAX_FRAME_ID = 256  # characters of a label's header.frame_id (labels are kept in memory)
EXPIRED = "expired"  # class_name of a frame answered after its last deadline
LATENCY_WINDOW = 1000  # results over which latency percentiles are reported
# Answered frames remembered to recognise late and duplicate results (then counted as unknown):
# minutes of frames at camera rates; a bound, so a soak's memory stays flat.
FRAME_MEMORY = 10_000
QOS_DISCOVERY_PERIOD = 0.5  # s between looks at the camera's publishers (qos: auto)
UNNUMBERED = 2**64 - 1  # rmw/types.h RMW_MESSAGE_INFO_SEQUENCE_NUMBER_UNSUPPORTED


def _remember(memory: OrderedDict[tuple, int], key: tuple, class_id: int) -> None:
    """Keep a label or an unscored answer, the oldest going beyond LABEL_MEMORY."""
    memory[key] = class_id
    while len(memory) > LABEL_MEMORY:
        memory.popitem(last=False)


def new_incarnation() -> int:
    """The first data_id of a configured source: a random incarnation in the upper 31 bits.

    Workers remember the task keys they saw and sources match exits by data_id, so a source
    that restarted (or was cleaned up and configured again) must not reuse its previous
    incarnation's ids: tasks would be refused as duplicates and stale exits would answer new
    frames. The lower 32 bits count frames (4 billion per incarnation).
    """
    return secrets.randbits(31) << 32


def frame_key(header: Any) -> tuple[int, int, str]:
    return (header.stamp.sec, header.stamp.nanosec, header.frame_id)


class SourceNode(WorkerNode):
    """A worker with a camera, admission control and the frame ledger."""

    is_source = True

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.controller: core.RateController | core.ThresholdController | None = None
        self.frames: core.FrameLedger | None = None
        self._inputs: dict[int, Payload] = {}  # admitted frames' task-1 input, until answered
        self._labels: OrderedDict[tuple, int] = OrderedDict()
        # answered frames whose label had not come yet: frame key -> the class answered
        self._unscored: OrderedDict[tuple, int] = OrderedDict()
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._counts = {"received": 0, "labelled": 0, "correct": 0, "bad": 0, "expired": 0,
                        "shed": 0, "lost_in_transport": 0}
        self._camera_gaps = core.SequenceGaps()  # frames lost before _on_image (core/gaps.py)
        self._next_id = 0
        self._gate = core.RateGate(0.0)  # Alg. 3: at most one frame per mu
        self._frame_seconds = 0.0  # this robot's compute per frame (configure)
        self._image_sub = None
        self._label_sub = None
        self._discovery = None
        self._source_timers: list[Any] = []
        self._control_timer = None
        self._classification = None

    # -- parameters ---------------------------------------------------------------------

    def check_parameter(self, name: str, value: Any, current: dict[str, Any]) -> str | None:
        reason = super().check_parameter(name, value, current)
        if reason is None and self.controller is not None:
            try:  # dry run on a copy: a bad combination changes nothing
                self._make_controller({**current, name: value})
            except ValueError as exc:
                reason = str(exc)
        return reason

    def apply_parameter(self, name: str, value: Any, current: dict[str, Any]) -> None:
        super().apply_parameter(name, value, current)
        if name == "offload_first_task" and self.core is not None:
            self.core.offload_first_task = bool(value)  # from the next admitted frame on
        if self.controller is None:
            return
        if name in ("queue_thresholds", "alpha", "beta", "zeta", "control_period",
                    "min_interval", "max_interval", "min_exit_threshold", "latency_budget"):
            # Validated by check_parameter's dry run; the controller keeps mu / T_e, its
            # step schedule and its camera count.
            try:
                self.controller.update_params(**self._controller_params(current))
            except ValueError as exc:  # check_parameter's dry run refuses these first
                self.get_logger().error(f"admission control unchanged: {exc}")
            if name == "control_period":
                self._restart_control_timer(float(value))
        elif name in ("threshold_source", "exit_threshold", "exit_thresholds") and \
                isinstance(self.controller, core.ThresholdController):
            self.controller.set_te(max(min(self.core.thresholds.values), self.controller.te_min))

    @staticmethod
    def _queue_control(v: dict[str, Any]) -> dict[str, float]:
        return {"t_q1": v["queue_thresholds"][0], "t_q2": v["queue_thresholds"][1],
                "alpha": v["alpha"], "beta": v["beta"], "zeta": v["zeta"],
                "period": v["control_period"]}

    def _controller_params(self, v: dict[str, Any]) -> dict[str, float]:
        """The parameters in `v` as `update_params` arguments of the controller in force."""
        if isinstance(self.controller, core.RateController):
            return {**self._queue_control(v), "mu_min": v["min_interval"],
                    "mu_max": v["max_interval"], "latency_budget": v["latency_budget"]}
        return {**self._queue_control(v), "te_min": v["min_exit_threshold"]}

    def _make_controller(self, v: dict[str, Any]) -> core.RateController | core.ThresholdController:
        control = self._queue_control(v)
        if v["admission_mode"] == "rate":
            mu = core.start_interval(v["initial_interval"], self._frame_seconds,
                                     bool(v["slow_start"]), v["min_interval"],
                                     v["max_interval"])
            return core.RateController(mu, mu_min=v["min_interval"], mu_max=v["max_interval"],
                                       slow_start=bool(v["slow_start"]), counts_frames=True,
                                       latency_budget=v["latency_budget"], **control)
        te = min(self.thresholds_from(v).values)
        return core.ThresholdController(max(te, v["min_exit_threshold"]),
                                        te_min=v["min_exit_threshold"], **control)

    def _restart_control_timer(self, period: float) -> None:
        """The Alg. 3/4 timer follows `control_period` (the controller's own schedule)."""
        if self._control_timer is not None:
            self.destroy_timer(self._control_timer)
        self._control_timer = self.create_timer(period, self._on_control)

    # -- lifecycle ----------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_configure(state)
        if result != TransitionCallbackReturn.SUCCESS:
            return result
        values = self.param_values()
        self.core.offload_first_task = bool(values["offload_first_task"])
        try:
            # What one task takes on this robot: the device profile's service time where
            # one is set (the worker pads to it), else the measured compute x slowdown.
            service = values["service_times"]
            task_seconds = list(service) if service else [
                t * values["compute_slowdown"] for t in self.engine.measure_task_seconds()]
            self._frame_seconds = core.frame_seconds(
                task_seconds, self.engine.exit_fraction(self.core.thresholds.values))
            self.controller = self._make_controller(values)
            self.get_logger().info(
                f"compute per frame here: {self._frame_seconds * 1e3:.2f} ms ("
                f"{'service_times' if service else 'measured x compute_slowdown'}); initial mu "
                f"{self.admission_interval() * 1e3:.1f} ms, slow start "
                f"{'on' if values['slow_start'] else 'off'}")
        except ValueError as exc:
            self.get_logger().error(f"admission control: {exc}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        # A configuration starts a new incarnation: every frame counter from zero together.
        self.frames = core.FrameLedger(completed_capacity=FRAME_MEMORY)
        self._next_id = new_incarnation()
        self._counts = dict.fromkeys(self._counts, 0)
        self._camera_gaps = core.SequenceGaps()
        self._labels.clear()
        self._unscored.clear()
        self._latencies.clear()
        self._classification = self.create_publisher(ExitResult, CLASSIFICATION,
                                                     qos.data_qos())
        self._label_sub = self.create_subscription(FrameLabel, IMAGE_LABEL, self._on_label,
                                                   qos.data_qos())
        self._subs += [
            self.create_subscription(ExitResult, EXITS, self._on_exit_msg, qos.data_qos()),
            self._label_sub,
        ]
        self._source_timers = [self.create_timer(core.OVERDUE_PERIOD, self._on_overdue)]
        self._restart_control_timer(float(values["control_period"]))
        self._subscribe_image(values["qos"])
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._gate.restart(time.monotonic())
        return super().on_activate(state)

    def _release(self) -> None:
        for timer in self._source_timers + [t for t in (self._discovery, self._control_timer)
                                            if t is not None]:
            self.destroy_timer(timer)
        self._source_timers, self._discovery, self._control_timer = [], None, None
        if self._image_sub is not None:
            self.destroy_subscription(self._image_sub)
            self._image_sub = None
        if self._classification is not None:
            self.destroy_publisher(self._classification)
            self._classification = None
        if self.frames is not None and self.frames.pending():
            self.get_logger().warning(
                f"{len(self.frames.pending())} admitted frame(s) were not answered before "
                f"cleanup")
        self.controller, self.frames, self._label_sub = None, None, None
        super()._release()

    # -- camera and admission -----------------------------------------------------------

    def _subscribe_image(self, choice: str) -> None:
        """Subscribe now, or (qos: auto) follow the camera publishers on the graph."""
        topic = self.resolve_topic_name(IMAGE)
        depth = int(self.param("image_depth"))
        if choice != "auto":
            self._image_sub = self._create_image_sub(qos.image_qos(choice, depth=depth))
            return

        def look() -> None:
            """Follow the camera: (re)subscribe whenever its publishers need other QoS."""
            infos = self.get_publishers_info_by_topic(topic)
            profile = qos.image_qos("auto", [i.qos_profile.reliability for i in infos], depth)
            if profile is None:
                return  # no camera (yet, or any more): keep what we have
            current = self._image_sub.qos_profile.reliability if self._image_sub else None
            if profile.reliability == current:
                return
            if self._image_sub is not None:
                self.destroy_subscription(self._image_sub)
            self._image_sub = self._create_image_sub(profile)
            self.get_logger().info(
                f"{'re-' if current is not None else ''}subscribed to {topic} with "
                f"{profile.reliability.name.lower()} QoS, matching {len(infos)} publisher(s)")

        self._discovery = self.create_timer(QOS_DISCOVERY_PERIOD, look)
        self.get_logger().info(f"waiting for a publisher on {topic} to match its QoS")

    def _create_image_sub(self, profile: Any) -> Any:
        """The camera subscription; frames lost before `_on_image` are counted."""
        return self.create_subscription(
            Image, IMAGE, self._on_image, profile,
            event_callbacks=SubscriptionEventCallbacks(message_lost=self._on_image_lost,
                                                       matched=self._on_image_matched))

    def _on_image_matched(self, info: QoSSubscriptionMatchedInfo) -> None:
        """A camera came or went: where samples do not say which writer sent them (Jazzy),
        the numbers followed so far may be another camera's, so counting starts over."""
        if int(info.current_count_change) != 0:
            self._camera_gaps.forget(None)

    def _on_image_lost(self, info: QoSMessageLostInfo) -> None:
        """DDS lost camera samples on the way (never the keep-last queue's replacements)."""
        self._counts["lost_in_transport"] += int(info.total_count_change)
        self.get_logger().warning(
            f"DDS lost {info.total_count_change} camera frame(s) on the way "
            f"({self._counts['lost_in_transport']} so far)", throttle_duration_sec=5.0)

    def _count_lost(self, info: dict) -> None:
        """Frames this camera publisher sent since its previous delivered one that never
        reached us (core.SequenceGaps): counted in frames_lost, logged at a bounded rate."""
        seq = info.get("publication_sequence_number")
        # an RMW that does not number samples says RMW_MESSAGE_INFO_SEQUENCE_NUMBER_UNSUPPORTED
        # (UINT64_MAX): nothing to count with
        if not isinstance(seq, int) or not 0 <= seq < UNNUMBERED:
            return
        gid = info.get("publisher_gid")  # Kilted's rclpy; Jazzy's MessageInfo has none
        if gid is not None:
            publisher: Any = bytes(gid["data"])
        elif self._image_sub is not None and self._image_sub.get_publisher_count() == 1:
            publisher = None  # one camera: its numbers are the only ones
        else:  # several cameras and no way to tell their numbers apart: count nothing
            self._camera_gaps.forget(None)
            return
        implausible = self._camera_gaps.implausible
        lost = self._camera_gaps.observe(publisher, seq)
        if self._camera_gaps.implausible != implausible:
            self.get_logger().warning(
                f"camera sequence number {seq} not believed (a jump of more than "
                f"{MAX_GAP} frames, or out of order; {self._camera_gaps.implausible} so "
                f"far): not counted as lost", throttle_duration_sec=5.0)
        if lost:
            self.get_logger().warning(
                f"{lost} camera frame(s) lost before admission ({self._camera_gaps.lost} so "
                f"far): the image queue (image_depth {self.param('image_depth')}) overflowed "
                f"while this source was busy, or they were lost on the way",
                throttle_duration_sec=5.0)

    def _on_label(self, msg: FrameLabel) -> None:
        if len(msg.header.frame_id) > MAX_FRAME_ID:
            self.refuse(f"label with a frame_id of {len(msg.header.frame_id)} characters")
            return
        key = frame_key(msg.header)
        with self.lock:  # the inference thread scores answers under it too
            guess = self._unscored.pop(key, None)
            if guess is not None:  # its answer came first (a fast fleet answers before it)
                self._score(msg.class_id, guess)
                return
            _remember(self._labels, key, msg.class_id)

    def _score(self, label: int, guess: int) -> None:
        """Accuracy counts one answered frame whose ground truth is known."""
        if label >= 0:
            self._counts["labelled"] += 1
            self._counts["correct"] += int(label == guess)

    def _on_image(self, msg: Image, info: dict) -> None:
        self._counts["received"] += 1
        self._count_lost(info)
        now = time.monotonic()
        if not self.active:
            self.frames.refuse()  # inactive: counted as dropped, never silent
            return
        if isinstance(self.controller, core.RateController):
            self.controller.on_frame()  # the camera bound of mu (docs/ALGORITHMS.md)
            if not self._gate.admit(now, self.controller.mu):  # one frame per mu seconds
                self.frames.refuse()
                return
        if not self._has_room():  # the overload guard below Alg. 3/4 (core.has_room)
            self._counts["shed"] += 1
            self.frames.refuse()
            self.get_logger().warning(
                f"queues full (max_queue {self.param('max_queue')}, or their work would "
                f"take over half of frame_deadline): frame not admitted "
                f"({self._counts['shed']} so far)", throttle_duration_sec=5.0)
            return
        try:
            pixels = image_to_array(msg)
        except ImageDecodeError as exc:
            self._counts["bad"] += 1
            self.frames.refuse()
            self.get_logger().warning(f"frame not admitted: {exc}",
                                      throttle_duration_sec=5.0)
            return
        x = self.engine.preprocess(pixels)
        with self.lock:
            data_id = self._new_data_id()
            self._inputs[data_id] = Payload(msg.header, x)
            self.frames.admit(data_id, now, now + self.param("frame_deadline"))
        self._submit(data_id, data_id, now)

    def _has_room(self) -> bool:
        """The overload guard (core.has_room) with this source's queues and Gamma_n."""
        with self.lock:
            return core.has_room(len(self.core.input), len(self.core.output),
                                 self.param("max_queue"), self.core.gamma(),
                                 self.param("frame_deadline"))

    def _new_data_id(self) -> int:
        data_id = self._next_id
        self._next_id += 1
        return data_id

    def _submit(self, frame_id: int, data_id: int, now: float) -> None:
        """Queue task 1 of a frame under `data_id` (the frame's own id or a re-admission's).

        The frame carries this source's T_e^k: the source decides its frames' accuracy
        wherever their tasks run (and Alg. 4 adapts them here).
        """
        with self.lock:
            stored = self._inputs[frame_id]
            payload = Payload(stored.header, stored.data)
            task = core.Task(core.TaskKey(self.worker_id, data_id, 1), payload=payload,
                             size_bytes=payload.nbytes(), admitted_at=now,
                             exit_thresholds=self.core.thresholds)
            self.core.submit(task, now)
            sends = self.core.offload_pass(now)
        self.send_tasks(sends)
        self._wake.set()

    def _on_control(self) -> None:
        """Alg. 3 or Alg. 4, every control_period (the paper's 'sleep for s seconds')."""
        if not self.active:
            return
        now = time.monotonic()
        with self.lock:
            if isinstance(self.controller, core.RateController):  # with the backlog guard
                step = self.controller.step(now, len(self.core.input), len(self.core.output),
                                            in_flight=self.frames.counters()["pending"])
            else:
                step = self.controller.step(now, len(self.core.input), len(self.core.output))
            if isinstance(self.controller, core.ThresholdController):
                self.core.set_thresholds(self.controller.te)  # Alg. 4, line 9
        if step is not None and getattr(step, "branch", None) is not None:
            self.get_logger().debug(f"admission control: {step}")

    def _on_overdue(self) -> None:
        """Frames past their deadline are admitted again under a new data_id (an alias), or
        answered as expired when they used up `max_readmissions` or the queues are full
        (core.overdue_action): a new copy must not feed the overload that made it late."""
        if not self.active:
            return
        now = time.monotonic()
        for frame_id in self.frames.overdue(now):
            with self.lock:
                if not self.frames.is_pending(frame_id):
                    continue  # answered since `overdue` listed it (the inference thread)
                record = self.frames.get(frame_id)
                action = core.overdue_action(len(record.aliases),
                                             self.param("max_readmissions"), self._has_room())
                if action is core.OverdueAction.READMIT:
                    # re-admitted and queued under one lock: an answer in between would
                    # find the frame's image gone (the lock is re-entrant)
                    data_id = self._new_data_id()
                    self.frames.readmit(frame_id, data_id, now,
                                        now + self.param("frame_deadline"))
                    self._submit(frame_id, data_id, now)
            if action is core.OverdueAction.EXPIRE:
                self._expire(frame_id)
                continue
            self.get_logger().warning(  # at most every 5 s: overload must not flood the log
                f"frame {frame_id} overdue: admitting it again as data_id {data_id} "
                f"({self.frames.counters()['overdue']} overdue so far)",
                throttle_duration_sec=5.0)

    def _expire(self, frame_id: int) -> None:
        """Answer a frame that ran out of deadlines: one result, marked expired, counted."""
        stored = self._inputs.get(frame_id)
        result = ExitResult(source=self.worker_id, data_id=frame_id, exit_index=0,
                            worker=self.worker_id, class_id=-1, class_name=EXPIRED)
        if stored is not None:
            result.header = stored.header
        record = self.frames.get(frame_id)
        readmissions = len(record.aliases) if record is not None else 0
        if not self.on_exit_result(result):
            return  # answered meanwhile (by the inference thread): not expired after all
        self._counts["expired"] += 1
        self.get_logger().warning(  # throttled like the re-admissions
            f"frame {frame_id} expired ({readmissions} re-admission(s); "
            f"{self._counts['expired']} expired so far)", throttle_duration_sec=5.0)

    # -- results ------------------------------------------------------------------------

    def _on_exit_msg(self, result: ExitResult) -> None:
        """An exit from another worker: checked against this model before it is published."""
        problem = core.exit_problem(result.exit_index, result.class_id, len(result.logits),
                                    result.confidence, result.worker, result.class_name,
                                    self.engine.num_exits, len(self.engine.class_names))
        if problem:
            self.refuse(f"exit for data_id {result.data_id}: {problem}")
            return
        self.on_exit_result(result)

    def deliver_exit(self, result: ExitResult) -> None:
        if result.source == self.worker_id:
            self.on_exit_result(result)
        else:
            super().deliver_exit(result)

    def on_exit_result(self, result: ExitResult) -> bool:
        """Publish the first result of each admitted frame on `classification`, once; True
        if this was it."""
        now = time.monotonic()
        with self.lock:
            if self.frames is None:
                return False
            frame_id = self.frames.frame_of(result.data_id)
            record = self.frames.get(frame_id)
            status = self.frames.result(result.data_id, now, result.class_id)
            if status is not core.ResultStatus.FIRST:
                return False
            result.data_id = frame_id  # one id per frame for users, whatever copy answered
            if isinstance(self.controller, core.RateController):
                self.controller.on_answer()  # the fleet's delivery rate (slow start's exit)
            admitted = self._inputs.pop(frame_id, None)
            if admitted is not None:  # the camera's own header, not the one on the wire
                result.header = admitted.header
            # Its other copies still queued here would run for nothing (an expired frame's,
            # or a re-admitted frame's that the other copy answered): they go, counted.
            copies = [frame_id, *record.aliases] if record is not None else [frame_id]
            self.core.discard_frame(self.worker_id, copies)
            if record is not None:
                result.latency = now - record.admitted_at
                self._latencies.append(result.latency)
            key = frame_key(result.header)
            label = self._labels.pop(key, None)
            if label is not None:
                self._score(label, result.class_id)
            elif admitted is not None:  # its label may still be on its way: scored then
                _remember(self._unscored, key, result.class_id)
        self._classification.publish(result)
        return True

    # -- reports ------------------------------------------------------------------------

    def admission_interval(self) -> float:
        return self.controller.mu if isinstance(self.controller, core.RateController) else 0.0

    def fill_source_stats(self, msg: WorkerStats) -> None:
        counters = self.frames.counters()
        latencies = sorted(self._latencies)

        def pct(q: float) -> float:
            return latencies[min(len(latencies) - 1, int(q * len(latencies)))] \
                if latencies else 0.0

        msg.frames_received = self._counts["received"]
        msg.frames_admitted = counters["admitted"]
        msg.frames_dropped = counters["dropped_at_admission"]
        msg.frames_classified = counters["completed"]
        msg.frames_overdue = counters["overdue"]
        msg.frames_expired = self._counts["expired"]
        msg.frames_shed = self._counts["shed"]
        msg.frames_lost = self._camera_gaps.lost
        msg.frames_lost_in_transport = self._counts["lost_in_transport"]
        msg.frames_labelled = self._counts["labelled"]
        msg.frames_correct = self._counts["correct"]
        msg.admission_mode = self.param("admission_mode")
        msg.admission_interval = self.admission_interval()
        msg.latency_p50, msg.latency_p95 = pct(0.5), pct(0.95)
        msg.image_publishers = self._image_sub.get_publisher_count() if self._image_sub else 0
        msg.label_publishers = self._label_sub.get_publisher_count() if self._label_sub else 0
        msg.classification_subscribers = self._classification.get_subscription_count() \
            if self._classification else 0


def main(argv: list[str] | None = None) -> int:
    return run_node(SourceNode, argv if argv is not None else sys.argv)


if __name__ == "__main__":
    sys.exit(main())
