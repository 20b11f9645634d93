"""The MDI-Exit worker: one lifecycle node per robot (executable `worker`).

A thin adapter between ROS 2 and `mdi_exit_ros.core.WorkerCore` (Alg. 1 and 2, neighbour
table, task ledger), which it drives unchanged. It runs in namespace `<fleet>/<id>`
(mdi_exit_ros/topics.py names every topic): tasks arrive on its relative `tasks` and are
acked on the sender's `<fleet>/<sender>/task_acks`; inference runs on a thread of its own;
exits go to the owning source's `<fleet>/<source>/exits`; NeighborState goes out on
`<fleet>/mdi/neighbor_state` every `state_period` and neighbours' reports come back in.
Lifecycle (ros2/demos lifecycle_py): configure loads the model and starts the inference and
sender threads, activate starts work, deactivate stops taking tasks and hands the queued ones
to neighbours, cleanup/shutdown release everything, and an error in any transition is
answered by on_error, which releases everything too (back to unconfigured). SIGINT and
SIGTERM run the shutdown transition. No callback of the executor waits on a thread or copies
a tensor: inference and task encoding run on threads of their own (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import inspect
import queue
import random
import signal
import sys
import threading
import time
from collections import Counter
from typing import Any

import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import ParameterUninitializedException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.publisher import Publisher
from rclpy.signals import SignalHandlerOptions

from mdi_exit_ros import core, exit_watchdog, params
from mdi_exit_ros.core import health as core_health
from mdi_exit_ros.model.checkpoint import CheckpointError
from mdi_exit_ros.msg import ExitResult, NeighborState, Task, TaskAck, WorkerStats
from mdi_exit_ros.nodes.engine import Engine, Payload
from mdi_exit_ros.nodes.lifecycle_guard import refuse_invalid_transitions
from mdi_exit_ros.nodes.links import LinkEmulator
from mdi_exit_ros.nodes.peers import PeerPublishers
from mdi_exit_ros.nodes.ros_params import declare as declare_parameters
from mdi_exit_ros.topics import (
    ACKS,
    EXITS,
    NODE_NAME,
    TASKS,
    fleet_namespace,
    peer_topic,
    robot_namespace,
    split_namespace,
    state_topic,
    stats_topic,
)
from mdi_exit_ros.wire import TensorLimits, qos

TICK_PERIOD = 0.05  # s: ack timeouts, leases, deferred offloads
ACK_BYTES = 64  # a TaskAck's size on an emulated link (ids, flags, a short reason)
THRESHOLD_PARAMS = ("threshold_source", "exit_threshold", "exit_thresholds")
THREAD_JOIN = 30.0  # s to wait for the inference / sender thread on cleanup and shutdown
SIGNAL_POLL = 0.1  # s: how often the main loop looks for SIGINT / SIGTERM


def to_seconds(stamp: Any) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class WorkerNode(LifecycleNode):
    """A robot's MDI-Exit worker (see the module docstring)."""

    is_source = False

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        # before super(), which may create timers and subscriptions: counters bumped from the
        # executor and the inference thread share one lock, so no update is lost
        self._count_lock = threading.Lock()
        self.internal_errors = 0
        super().__init__(node_name, **kwargs)
        declare_parameters(self, self.is_source)
        # The worker id is the last part of the namespace (<fleet>/<id>): one home for it.
        self.worker_id: str = split_namespace(self.get_namespace())[1]
        self.fleet = "/"  # the fleet namespace in force (checked on configure)
        self.lock = threading.RLock()  # guards core, engine use of payloads, counters
        self.core: core.WorkerCore | None = None
        self.engine: Engine | None = None
        self.active = False
        self._wake = threading.Event()
        self._stop = threading.Event()  # ends the inference thread (cleanup, shutdown)
        self._interrupt = threading.Event()  # cuts a running task's emulated slowdown short
        self._thread: threading.Thread | None = None
        self._outbox: queue.SimpleQueue[tuple[str, core.Task, int] | None] = queue.SimpleQueue()
        self._sender: threading.Thread | None = None
        self._timers: list[Any] = []
        self._state_timer = None
        self._stats_timer = None
        self._pubs: dict[str, Publisher] = {}  # own topics: state, stats
        self._peers: PeerPublishers | None = None  # peers' tasks, acks, exits
        self._subs: list[Any] = []
        self._links: LinkEmulator | None = None
        self._offloads_to: Counter[str] = Counter()
        self._refused_bad_tensor = 0
        self._failures = core.TaskFailures()  # retries of tasks whose inference raised
        self.internal_errors = 0  # errors caught in callbacks and the inference loop
        self.messages_refused = 0  # messages from the wire refused before any use
        self.tasks_failed = 0  # tasks given up (core.TaskFailures; answered as failed)
        self.tasks_overrun = 0  # tasks whose real compute exceeded their service time
        self._failed_reported = 0
        self._progress_at = time.monotonic()  # a task last finished (or activation)
        self._warned_no_neighbor = False
        self.add_on_set_parameters_callback(self._on_set_parameters)
        refuse_invalid_transitions(self, self.refuse)  # Jazzy's rclpy would raise instead

    # -- callbacks that never raise -----------------------------------------------------

    def create_subscription(self, msg_type: Any, topic: str, callback: Any, qos_profile: Any,
                            **kwargs: Any) -> Any:
        """Every subscription of this node: an error in its callback is counted and logged
        (rate-limited), never raised into the executor, which would end the process."""
        def guard(*args: Any) -> None:
            try:
                callback(*args)
            except Exception as exc:  # noqa: BLE001 - one bad message must not stop a robot
                self._internal_error(f"{topic}: {exc!r}")

        def guarded(msg: Any) -> None:
            guard(msg)

        def guarded_with_info(msg: Any, info: Any) -> None:  # rclpy passes MessageInfo
            guard(msg, info)

        try:  # rclpy's own test: a callback that cannot take one argument wants two
            inspect.signature(callback).bind(object())
            wrapper = guarded
        except TypeError:
            wrapper = guarded_with_info
        return super().create_subscription(msg_type, topic, wrapper, qos_profile, **kwargs)

    def create_timer(self, timer_period_sec: float, callback: Any, **kwargs: Any) -> Any:
        """Every timer of this node, guarded like its subscriptions."""
        def guarded() -> None:
            try:
                callback()
            except Exception as exc:  # noqa: BLE001
                self._internal_error(f"timer {getattr(callback, '__name__', '?')}: {exc!r}")
        return super().create_timer(timer_period_sec, guarded, **kwargs)

    def refuse(self, what: str) -> None:
        """Count and log (rate-limited) a message refused before any use."""
        with self._count_lock:
            self.messages_refused += 1
            refused = self.messages_refused
        self.get_logger().warning(f"refused ({refused} so far): {what}",
                                  throttle_duration_sec=5.0)

    def _internal_error(self, what: str) -> None:
        with self._count_lock:
            self.internal_errors += 1
            errors = self.internal_errors
        self.get_logger().error(f"error #{errors}, carrying on: {what}",
                                throttle_duration_sec=5.0)

    # -- parameters ---------------------------------------------------------------------

    def param(self, name: str) -> Any:
        """A parameter's value; None for one declared without a default and never set."""
        try:
            return self.get_parameter(name).value
        except ParameterUninitializedException:
            return None

    def param_values(self) -> dict[str, Any]:
        return {name: self.param(name) for name in params.SPECS if self.has_parameter(name)}

    def _on_set_parameters(self, changes: list[Parameter]) -> SetParametersResult:
        """Validate every change first; apply only if all are valid (nothing half-done)."""
        current = self.param_values()
        for p in changes:
            reason = params.check(p.name, p.value, current)
            spec = params.SPECS.get(p.name)
            if reason is None and spec is not None and spec.configure_only \
                    and self.engine is not None and current.get(p.name) != p.value:
                reason = (f"{p.name} takes effect on configure: deactivate and clean up "
                          f"this worker, set it, then configure again")
            if reason is None:
                reason = self.check_parameter(p.name, p.value, current)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            current[p.name] = p.value
        with self.lock:
            for p in changes:
                self.apply_parameter(p.name, p.value, current)
        return SetParametersResult(successful=True)

    def check_parameter(self, name: str, value: Any, current: dict[str, Any]) -> str | None:
        """Checks that need the loaded model (subclasses add their own)."""
        if name in ("exit_thresholds", "service_times") and self.engine is not None \
                and value is not None and len(value) not in (0, self.engine.num_exits):
            what = "one per exit" if name == "exit_thresholds" else "one per task"
            return (f"{name} needs {self.engine.num_exits} values ({what} of "
                    f"{self.engine.model_id}); got {len(value)}")
        return None

    def apply_parameter(self, name: str, value: Any, current: dict[str, Any]) -> None:
        """Put a validated change into force (the lock is held)."""
        if self.core is None:
            return
        if name in THRESHOLD_PARAMS:
            self.core.set_thresholds(self.thresholds_from(current))
        elif name == "output_queue_threshold":
            self.core.t_o = int(value)
        elif name == "neighbors":
            self.core.table.set_allowed(params.allowed_neighbors(value))
        elif name == "distribution":
            self.core.distribution = core.Distribution(value)  # from the next placement on
        elif name == "pipeline_chain":
            self.core.pipeline = tuple(value)
        elif name == "neighbor_lease":
            self.core.table.lease = float(value)
        elif name == "state_period" and self._state_timer is not None:
            self._restart_state_timer(float(value))
        elif name == "stats_period":
            self._restart_stats_timer(float(value))
        elif name == "max_tensor_bytes":
            self.limits = TensorLimits(max_bytes=int(value))
        elif name in ("link_delay", "link_bandwidth") and self._links is not None:
            self._links.configure(current["link_delay"], current["link_bandwidth"])

    def thresholds_from(self, values: dict[str, Any]) -> core.ExitThresholds:
        """T_e^k in force: those `threshold_source` names (checked to be set)."""
        assert self.engine is not None
        return core.select_thresholds(values["threshold_source"], self.engine.num_exits,
                                      self.engine.suggested_thresholds(),
                                      values.get("exit_threshold"),
                                      values.get("exit_thresholds"))

    # -- lifecycle ----------------------------------------------------------------------

    def namespace_problem(self, fleet: str) -> str | None:
        """Why this node cannot take part in fleet `fleet` from its namespace (None if it
        can): peers send to <fleet>/<id>/tasks, which its relative `tasks` must be."""
        try:
            ns = fleet_namespace(fleet)
        except ValueError as exc:
            return str(exc)
        parent, worker = split_namespace(self.get_namespace())
        if not core.is_worker_id(worker):
            return (f"namespace {self.get_namespace()!r} does not end in a worker id: run the "
                    f"node in <fleet>/<robot> (e.g. -r __ns:={robot_namespace(ns, 'robot1')})")
        if parent != ns:
            return (f"this node runs in {self.get_namespace()} but its fleet is {ns}: peers "
                    f"would send to {peer_topic(worker, TASKS, ns)}; set fleet:={parent} "
                    f"(or run it in {robot_namespace(ns, worker)})")
        return None

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the model and create the queues, topics and estimators."""
        values = self.param_values()
        problem = self.namespace_problem(values["fleet"])
        if problem:
            self.get_logger().error(problem)
            return TransitionCallbackReturn.FAILURE
        self.fleet = fleet_namespace(values["fleet"])
        try:
            self.engine = Engine(values["model"], int(values["torch_threads"]), values["device"])
        except (CheckpointError, OSError, ValueError) as exc:
            self.get_logger().error(f"cannot load model {values['model']!r}: {exc}")
            return TransitionCallbackReturn.FAILURE
        reason = (params.check("threshold_source", values["threshold_source"], values)
                  or self.check_parameter("exit_thresholds", values.get("exit_thresholds"),
                                          values)
                  or self.check_parameter("service_times", values.get("service_times"), values)
                  or params.check("distribution", values["distribution"], values)
                  or (values.get("pipeline_chain") is not None and params.check(
                      "pipeline_chain", values["pipeline_chain"], values)))
        if reason:
            self.get_logger().error(reason)
            self.engine = None
            return TransitionCallbackReturn.FAILURE
        for unused in {"exit_threshold", "exit_thresholds"} - {values["threshold_source"]}:
            if values.get(unused) not in (None, []):
                self.get_logger().warning(f"{unused} is set but not in force: threshold_source "
                                          f"is {values['threshold_source']}")
        self.core = core.WorkerCore(
            self.worker_id, self.engine.model_id, self.thresholds_from(values),
            rng=random.Random(values["seed"]),  # unset (None): a seed from the OS
            t_o=int(values["output_queue_threshold"]),
            lease=float(values["neighbor_lease"]),
            allowed=params.allowed_neighbors(values["neighbors"]),
            lifecycle_state="inactive",
            distribution=core.Distribution(values["distribution"]),
            pipeline=values.get("pipeline_chain") or ())
        self.limits = TensorLimits(max_bytes=int(values["max_tensor_bytes"]))
        self._pubs = {
            "state": self.create_publisher(NeighborState, state_topic(self.fleet),
                                           qos.state_qos()),
            "stats": self.create_publisher(WorkerStats, stats_topic(self.fleet),
                                           qos.state_qos()),
        }
        self._peers = PeerPublishers(self, qos.data_qos(), fleet=self.fleet)
        self._subs = [  # own inbound topics: relative, in <fleet>/<id>
            self.create_subscription(Task, TASKS, self._on_task, qos.data_qos()),
            self.create_subscription(TaskAck, ACKS, self._on_ack, qos.data_qos()),
            self.create_subscription(NeighborState, state_topic(self.fleet),
                                     self._on_neighbor_state, qos.state_qos()),
        ]
        self._links = LinkEmulator(self._publish_now)
        self._links.configure(values["link_delay"], values["link_bandwidth"])
        self._timers = [self.create_timer(TICK_PERIOD, self._on_tick)]
        self._restart_stats_timer(float(values["stats_period"]))
        self._start_threads()
        self.get_logger().info(
            f"configured {self.worker_id}: model {self.engine.model_id} with "
            f"{self.engine.num_exits} exits, thresholds {self.core.thresholds.values}, "
            f"neighbours {values['neighbors']}, distribution {values['distribution']}"
            + (f" along {values['pipeline_chain']}" if values["distribution"] == "pipeline"
               else ""))
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Let the inference thread take tasks; start the NeighborState reports."""
        self._interrupt.clear()
        self._progress_at = time.monotonic()
        with self.lock:
            self.core.lifecycle_state = core.ACTIVE
            self.active = True
        self._wake.set()
        self._restart_state_timer(float(self.param("state_period")))
        self.publish_state()
        self.get_logger().info(f"{self.worker_id} active")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop taking tasks; hand the queued ones to live neighbours (or their sources).

        Nothing waits here for the task the inference thread may be running: it finishes on
        that thread (its emulated slowdown cut short), and what it leaves queued is handed
        off by the next tick (`_on_tick`), like anything else queued while inactive.
        """
        with self.lock:
            self.active = False
            self.core.lifecycle_state = "inactive"
        self._interrupt.set()
        self.publish_state()
        self._hand_off_queued()
        self.get_logger().info(f"{self.worker_id} inactive")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release topics, timers and the model."""
        self._stop_inference()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything whatever the state (also what SIGINT / SIGTERM run)."""
        self._stop_inference()  # first: a subclass releases its own topics before ours
        self._release()
        self.get_logger().info(f"{self.worker_id} shut down from {state.label}: threads "
                               f"stopped, topics, timers and model released")
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """A transition raised or returned ERROR: release everything, back to unconfigured
        (FAILURE, i.e. finalized, only if even that fails)."""
        self.get_logger().error(f"{self.worker_id}: error in a transition from "
                                f"{state.label}; releasing everything")
        try:
            self._stop_inference()
            self._release()
        except Exception as exc:  # noqa: BLE001 - report it; the state machine finalizes
            self.get_logger().error(f"{self.worker_id}: release after the error failed: "
                                    f"{exc!r}")
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(f"{self.worker_id} released after the error: unconfigured")
        return TransitionCallbackReturn.SUCCESS

    def shut_down(self) -> None:
        """SIGINT / SIGTERM: the shutdown transition from whatever primary state the node is
        in (on_shutdown releases everything); if the state machine cannot take it (already
        finalized, or a transition in progress), release directly."""
        try:
            if self.trigger_shutdown() == TransitionCallbackReturn.SUCCESS:
                return
        except Exception as exc:  # noqa: BLE001 - RCLError: no shutdown from this state
            self.get_logger().info(f"no shutdown transition ({exc}); releasing directly")
        self._stop_inference()
        self._release()

    def _release(self) -> None:
        """Release in a safe order: the inference thread, timers (no new callbacks), the
        sender thread, the link thread, then the publishers they use, subscriptions, the
        model."""
        self._stop_inference()
        if self.core is not None and not self.core.idle():
            held = len(self.core.held())
            self.get_logger().warning(
                f"{self.worker_id} releases {held} task(s) that no neighbour took; their "
                f"sources will admit those frames again when they go overdue")
        for timer in self._timers + [t for t in (self._state_timer, self._stats_timer)
                                     if t is not None]:
            self.destroy_timer(timer)
        self._timers, self._state_timer, self._stats_timer = [], None, None
        # The sender thread sends through the link emulator, and the link thread publishes
        # through the peers' publishers: stop them in that order, before the publishers.
        self._stop_sender()
        if self._links is not None:
            self._links.close()
        self._links = None
        if self._peers is not None:
            self._peers.close()
        for sub in self._subs:
            self.destroy_subscription(sub)
        for pub in self._pubs.values():
            self.destroy_publisher(pub)
        self._subs, self._pubs = [], {}
        self.core = None
        self.engine = None

    def _restart_state_timer(self, period: float) -> None:
        if self._state_timer is not None:
            self.destroy_timer(self._state_timer)
        self._state_timer = self.create_timer(period, self.publish_state)

    def _restart_stats_timer(self, period: float) -> None:
        if self._stats_timer is not None:
            self.destroy_timer(self._stats_timer)
        self._stats_timer = self.create_timer(period, self.publish_stats)

    def _start_threads(self) -> None:
        """The inference thread (it takes tasks only while active) and the sender thread,
        for the configured lifetime of the node."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._inference_loop, name="inference",
                                        daemon=True)
        self._thread.start()
        self._outbox = queue.SimpleQueue()
        self._sender = threading.Thread(target=self._sender_loop, args=(self._outbox,),
                                        name="sender", daemon=True)
        self._sender.start()

    def _stop_inference(self) -> None:
        """End the inference thread after its running task (cleanup, shutdown, error)."""
        self.active = False
        self._stop.set()
        self._interrupt.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=THREAD_JOIN)
        self._thread = None

    def _stop_sender(self) -> None:
        """End the sender thread; tasks it had not sent stay held by the ledger until released
        (their sources admit those frames again when they go overdue)."""
        if self._sender is not None:
            self._outbox.put(None)
            self._sender.join(timeout=THREAD_JOIN)
        self._sender = None

    def _sender_loop(self, outbox: queue.SimpleQueue) -> None:
        """Encode tasks for the wire and hand them to the link emulator, off the executor.

        The copy of a task's tensor into its message (`task_message`) is the one tensor copy
        a worker makes per offload; here it never holds up a callback or the lock.
        """
        while True:
            item = outbox.get()
            if item is None:
                return
            receiver, task, attempt = item
            try:
                links = self._links
                if links is None:
                    continue
                self._encode(task)  # the copy, outside the lock
                with self.lock:
                    # Still this send? A re-send (ack timeout) or a take-back (receiver
                    # dead) while it waited here made a new attempt, which replaces it: the
                    # stale copy must not reach the receiver, or the task would run twice.
                    entry = self.core.ledger.get(task.key)
                    if entry is None or entry.receiver != receiver or entry.attempt != attempt:
                        continue
                    msg = self.task_message(task)
                links.send(receiver, msg, task.size_bytes)
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any error
                self._internal_error(f"sending a task to {receiver}: {exc!r}")

    # -- inference (own thread) ---------------------------------------------------------

    def _inference_loop(self) -> None:
        """Alg. 1 on the input queue, one task at a time, off the executor thread.

        Nothing ends this loop but `_stop`: an error around a task (delivering its exit,
        sending its successor) is logged, rate-limited, and the loop goes on.
        """
        while not self._stop.is_set():
            try:
                with self.lock:
                    task = self.core.next_task() if self.active else None
                if task is None:
                    self._wake.wait(0.05)
                    self._wake.clear()
                    continue
                self.run_task(task)
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any error
                self._internal_error(f"inference loop: {exc!r}")

    def run_task(self, task: core.Task) -> None:
        payload: Payload = task.payload
        try:
            service = self.param("service_times")
            run = self.engine.run(task.task_index, payload, self.param("compute_slowdown"),
                                  self.param("confidence"), self._interrupt,
                                  service[task.task_index - 1] if service else None)
        except Exception as exc:  # noqa: BLE001 - a bad task must not kill the worker
            self._task_failed(task, exc)
            return
        if run.overrun:
            self.tasks_overrun += 1
            self.get_logger().warning(
                f"task {task.task_index} took {run.compute_seconds * 1e3:.1f} ms, longer than "
                f"its service time ({self.tasks_overrun} overruns so far): this machine is "
                f"too loaded for the device profile", throttle_duration_sec=5.0)
        now = time.monotonic()
        nxt = Payload(payload.header, run.next_data) if run.next_data is not None else None
        with self.lock:
            outcome = self.core.complete(  # Alg. 1, lines 4-12
                task, run.confidence, run.compute_seconds, now,
                next_payload=nxt, next_size_bytes=nxt.nbytes() if nxt else 0)
            sends = self.core.offload_pass(now)
        self._progress_at = now
        if outcome.exited:
            self.deliver_exit(self.exit_result(task, payload, run.logits, run.confidence))
        self.send_tasks(sends)
        self._send_done()  # after the exit went out: the sender may forget its copy now

    def _task_failed(self, task: core.Task, exc: Exception) -> None:
        count, give_up = self._failures.failed((task.key, task.attempt))
        self.get_logger().error(f"task {task} failed ({count}x): {exc!r}")
        with self.lock:
            if not give_up:
                self.core.requeue(task)
                return
            # Give up: exit here (threshold 0) so the source still gets exactly one answer.
            self.tasks_failed += 1
            task.exit_thresholds = core.ExitThresholds.uniform(self.engine.num_exits, 0.0)
            self.core.complete(task, 1.0, 0.0, time.monotonic())
        result = self.exit_result(task, task.payload, None, 0.0)
        result.class_name = f"error: {exc}"[:core.MAX_CLASS_NAME]
        self.deliver_exit(result)

    def exit_result(self, task: core.Task, payload: Payload, logits: Any,
                    confidence: float) -> ExitResult:
        """The ExitResult for a task that exited here (Alg. 1 line 6)."""
        msg = ExitResult(source=task.source, data_id=task.data_id,
                         exit_index=task.task_index, worker=self.worker_id,
                         confidence=float(confidence), hops=task.hops)
        msg.header = payload.header
        if logits is None:
            msg.class_id = -1
        else:
            msg.class_id = int(logits.argmax())
            msg.class_name = self.engine.class_names[msg.class_id]
            msg.logits = logits.astype("float32").tolist()
        return msg

    def deliver_exit(self, result: ExitResult) -> None:
        """Send an exit to the frame's source (a source overrides this for its own frames)."""
        if self._peers is not None:
            self._peers.send(result.source, EXITS, ExitResult, result)

    # -- tasks out ----------------------------------------------------------------------

    def send_tasks(self, sends: list[tuple[str, core.Task]], offload: bool = True) -> None:
        """Queue tasks for the sender thread, which encodes and sends them in order.

        Alg. 2's offloads count per neighbour (``offload``); re-sends after an ack timeout
        do not (on a slow link they would make the neighbour look like a favourite), nor do
        deactivation hand-offs, which ``tasks_evacuated`` counts."""
        for receiver, task in sends:
            if offload:
                self._offloads_to[receiver] += 1
            self._outbox.put((receiver, task, task.attempt))

    def _encode(self, task: core.Task) -> None:
        """Encode a task's tensor for the wire once; kept for re-sends."""
        payload: Payload = task.payload
        payload.data = self.engine.to_wire(task.task_index, payload.data)

    def task_message(self, task: core.Task) -> Task:
        """The wire form of a task (its tensor encoded by `_encode` if not yet)."""
        self._encode(task)
        payload: Payload = task.payload
        msg = Task(source=task.source, data_id=task.data_id, task_index=task.task_index,
                   model_id=self.engine.model_id, sender=self.worker_id,
                   attempt=task.attempt, hops=task.hops, tensor=payload.data,
                   exit_thresholds=list(task.exit_thresholds.values)
                   if task.exit_thresholds is not None else [])
        msg.header = payload.header
        admitted = self.get_clock().now().nanoseconds - int(
            (time.monotonic() - task.admitted_at) * 1e9)
        msg.admitted.sec, msg.admitted.nanosec = divmod(max(admitted, 0), 1_000_000_000)
        return msg

    def _publish_now(self, receiver: str, msg: Task | TaskAck) -> None:
        """Put a task or ack on the wire (after the emulated link, when there is one)."""
        peers = self._peers
        if peers is not None:
            peers.send(receiver, ACKS if isinstance(msg, TaskAck) else TASKS, type(msg), msg)

    def _hand_off_queued(self) -> None:
        """Deactivation: queued tasks go to live neighbours, held until they ack."""
        with self.lock:
            sends = self.core.evacuate(time.monotonic())
            left = len(self.core.input) + len(self.core.output)
        self.send_tasks(sends, offload=False)
        if left and not self._warned_no_neighbor:
            self._warned_no_neighbor = True
            self.get_logger().warning(
                f"{self.worker_id}: no live neighbour for {left} queued task(s); they wait "
                f"here until one appears or this worker is activated again")

    # -- callbacks ----------------------------------------------------------------------

    def _on_task(self, msg: Task) -> None:
        now = time.monotonic()
        with self.lock:
            if self.core is None:
                return
            reason = self._check_task_message(msg)
            receipt = None
            if not reason:
                thresholds = (core.ExitThresholds.of(msg.exit_thresholds)
                              if len(msg.exit_thresholds) else None)
                task = core.Task(core.TaskKey(msg.source, msg.data_id, msg.task_index),
                                 attempt=msg.attempt, payload=Payload(msg.header, msg.tensor),
                                 size_bytes=len(msg.tensor.data),
                                 admitted_at=now - self._age_of(msg.admitted),
                                 hops=msg.hops, exit_thresholds=thresholds)
                receipt = self.core.submit(task, now, model_id=msg.model_id, sender=msg.sender)
                reason = receipt.reason
            else:
                self._refused_bad_tensor += 1
            sends = self.core.offload_pass(now) if self.active and receipt else []
        ack = TaskAck(receiver=self.worker_id, source=msg.source, data_id=msg.data_id,
                      task_index=msg.task_index, attempt=msg.attempt,
                      accepted=bool(receipt and receipt.accepted), reason=reason,
                      tasks_accepted=receipt.accepted_count if receipt else 0)
        # The ack crosses the emulated link back to the sender, as a real one would: the
        # sender's round trip is then 2 x link_delay, what its D_nm estimator assumes.
        self._links.send(msg.sender, ack, ACK_BYTES)
        self.send_tasks(sends)
        self._wake.set()

    def _age_of(self, stamp: Any) -> float:
        """Seconds since a ROS time stamp (the source's admission of a frame), on our clock,
        clamped by core.task_age."""
        ns = self.get_clock().now().nanoseconds - (stamp.sec * 1_000_000_000 + stamp.nanosec)
        return core.task_age(ns * 1e-9)

    def _check_task_message(self, msg: Task) -> str:
        """Why a received task cannot run here ('' if it can): core.task_problem, then its
        tensor (the core refuses a wrong model or task index with its own reasons)."""
        k = self.engine.num_exits
        problem = core.task_problem(msg.source, msg.sender, msg.exit_thresholds, k)
        if problem or msg.model_id != self.engine.model_id or not 1 <= msg.task_index <= k:
            return problem
        return self.engine.check_wire(msg.task_index, msg.tensor, self.limits)

    def _on_ack(self, msg: TaskAck) -> None:
        now = time.monotonic()
        with self.lock:
            if self.core is None:
                return
            key = core.TaskKey(msg.source, msg.data_id, msg.task_index)
            if msg.done:
                self.core.on_done(key, msg.receiver)
                return
            self.core.on_ack(key, msg.attempt, msg.receiver, msg.accepted, now,
                             msg.tasks_accepted)
            sends = self.core.offload_pass(now) if self.active else []
        self.send_tasks(sends)
        self._send_done()
        self._wake.set()

    def _send_done(self) -> None:
        """Tell senders which of their tasks this worker is done with (custody, see core)."""
        with self.lock:
            done = self.core.take_done() if self.core is not None else []
        for sender, key, attempt in done:
            ack = TaskAck(receiver=self.worker_id, source=key.source, data_id=key.data_id,
                          task_index=key.task_index, attempt=attempt, accepted=True, done=True)
            self._links.send(sender, ack, ACK_BYTES)

    def _on_neighbor_state(self, msg: NeighborState) -> None:
        if msg.worker == self.worker_id:
            return
        now = time.monotonic()
        report = core.NeighborReport(
            worker=msg.worker, input_queue=msg.input_queue, output_queue=msg.output_queue,
            compute_delay=msg.compute_delay, model_id=msg.model_id,
            lifecycle_state=msg.lifecycle_state, exit_thresholds=tuple(msg.exit_thresholds),
            seq=msg.seq, stamp=to_seconds(msg.header.stamp),
            tasks_accepted=msg.tasks_accepted, tasks_run=msg.tasks_run,
            admission_interval=msg.admission_interval)
        problem = core.report_problem(report)
        if problem:
            self.refuse(f"NeighborState from {msg.worker[:64]!r}: {problem}")
            return
        with self.lock:
            if self.core is None:
                return
            self.core.on_neighbor_state(report, now)
            sends = self.core.offload_pass(now) if self.active else []
        self.send_tasks(sends)

    def _on_tick(self) -> None:
        now = time.monotonic()
        with self.lock:
            resends = self.core.tick(now)
            sends = self.core.offload_pass(now) if self.active else []
            handoff = not self.active and bool(self.core.input or self.core.output)
        self.send_tasks(resends, offload=False)
        self.send_tasks(sends)
        self._send_done()
        self._peers.flush()
        if handoff:
            self._hand_off_queued()
        self._wake.set()

    # -- reports ------------------------------------------------------------------------

    def admission_interval(self) -> float:
        return 0.0

    def publish_state(self) -> None:
        if self.core is None:
            return
        with self.lock:
            r = self.core.report(time.monotonic())
        msg = NeighborState(worker=r.worker, lifecycle_state=r.lifecycle_state,
                            input_queue=r.input_queue, output_queue=r.output_queue,
                            compute_delay=float(r.compute_delay), model_id=r.model_id,
                            tasks_run=r.tasks_run, exit_thresholds=list(r.exit_thresholds),
                            admission_interval=self.admission_interval(),
                            tasks_accepted=r.tasks_accepted or 0, seq=r.seq)
        msg.header.stamp = self.get_clock().now().to_msg()
        self._pubs["state"].publish(msg)

    def publish_stats(self) -> None:
        if self.core is None:
            return
        with self.lock:
            s = self.core.stats()
            thresholds = list(self.core.thresholds.values)
            alive = self.core.table.alive(time.monotonic())
        msg = WorkerStats(
            worker=self.worker_id, lifecycle_state=self.core.lifecycle_state,
            model_id=self.engine.model_id, is_source=self.is_source,
            input_queue=s.input_queue, output_queue=s.output_queue, running=s.running,
            compute_delay=float(s.gamma), tasks_run=s.tasks_run,
            tasks_received=s.offloads_received,
            tasks_refused=s.refused + self._refused_bad_tensor,
            messages_refused=self.messages_refused + self._peers.refused_names,
            peer_messages_dropped=self._peers.dropped,
            internal_errors=self.internal_errors,
            tasks_failed=self.tasks_failed,
            tasks_overrun=self.tasks_overrun,
            health=self.health(s.input_queue, s.gamma),
            tasks_taken_back=s.taken_back, duplicates=s.duplicates,
            tasks_evacuated=s.evacuated, tasks_discarded=s.discarded,
            neighbors_alive=alive, neighbors_lost=s.neighbors_lost,
            tasks_reissued=s.reissued, tasks_resent=s.resends,
            offload_targets=list(self._offloads_to),
            offloads_sent=list(self._offloads_to.values()),
            exits=[s.exits.get(k, 0) for k in range(1, self.engine.num_exits + 1)],
            exit_thresholds=thresholds)
        msg.header.stamp = self.get_clock().now().to_msg()
        self.fill_source_stats(msg)
        self._pubs["stats"].publish(msg)

    def health(self, queued: int, gamma: float) -> str:
        """Why this worker cannot run tasks now ('' if it can); see core/health.py."""
        failed, self._failed_reported = self.tasks_failed - self._failed_reported, \
            self.tasks_failed
        thread = self._thread
        return core_health.worker_health(
            active=self.active, inference_running=thread is not None and thread.is_alive(),
            queued=queued, since_progress=time.monotonic() - self._progress_at,
            gamma=float(gamma), failed_recently=failed)

    def fill_source_stats(self, msg: WorkerStats) -> None:
        """Sources add their frame counters."""


def run_node(node_class: type[WorkerNode], argv: list[str] | None = None) -> int:
    """Spin a lifecycle node until SIGINT or SIGTERM, then run its shutdown transition.

    rclpy's own signal handler would shut the context down at once, and a node without a
    context cannot publish its transition or release in order; so the signals only set a
    flag here, which the spin loop looks at every SIGNAL_POLL seconds. A second signal
    (`ros2 launch` forwards a terminal Ctrl-C that the process group also got) changes
    nothing.
    """
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    node = node_class()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while not stop.is_set():
            executor.spin_once(timeout_sec=SIGNAL_POLL)
        node.get_logger().info("signal received: shutting down")
        node.shut_down()
        exit_watchdog.arm()  # released: only the DDS teardown and the exit are left
    except ExternalShutdownException:  # the context was shut down from elsewhere
        node.active = False
        node._stop_inference()
        node._stop_sender()
    finally:
        executor.remove_node(node)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_node(WorkerNode, argv if argv is not None else sys.argv)


if __name__ == "__main__":
    sys.exit(main())
