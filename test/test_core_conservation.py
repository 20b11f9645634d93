"""Tasks are conserved across several WorkerCores joined by a simulated, unreliable network.

The in-test network delivers messages in any order, may drop task messages, acks and
reports (and, in crash mode, results), workers run, offload, time out, re-send, toggle
between active/inactive, and (crash mode) crash and restart.

* Strict mode (no crashes, leases never lapse): at every step each admitted frame has at
  most one executable copy (in some input/output queue or running); a frame with no
  executable copy has exited or is in some sender's offload ledger; a frame exits at most
  once. After the network heals, every admitted frame has exited exactly once.
* Crash mode (leases, crashes, restarts, lost results; the source re-admits overdue frames):
  copies may be lost with a crashed worker and duplicated after a lease wrongly declared a
  receiver dead, but end to end every admitted frame gets exactly one first result at the
  source's FrameLedger and the extra results are counted as duplicates.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mdi_exit_ros.core import (
    ExitThresholds,
    FrameLedger,
    LinkDelayEstimator,
    OffloadLedger,
    ResultStatus,
    Task,
    TaskKey,
    WorkerCore,
)

NAMES = ("s", "a", "b")  # "s" is the source
K = 3
DEADLINE = 20.0


@dataclass
class Msg:
    kind: str  # "task" | "ack" | "report" | "result"
    frm: str
    to: str
    body: Any


def int_stats(w: WorkerCore) -> dict[str, int]:
    items = dataclasses.asdict(w.stats()).items()
    return {k: v for k, v in items if isinstance(v, int)}


class Sim:
    LEASE = 3.0  # s: lease of non-strict runs (crash mode)

    def __init__(self, strict: bool, seed: int = 0) -> None:
        self.strict = strict
        self.seed = seed
        self.now = 0.0
        self.workers = {n: self.new_worker(n) for n in NAMES}
        self.crashed: set[str] = set()
        self.net: list[Msg] = []
        self.frames = FrameLedger()
        self.next_id = 0
        self.admitted: list[int] = []  # original frame ids
        self.exits: Counter[int] = Counter()
        self.totals: Counter[str] = Counter()  # stats of replaced (restarted) workers
        for w in self.workers.values():  # bootstrap: everyone has heard from everyone once
            for other in self.workers.values():
                if other is not w:
                    other.on_neighbor_state(w.report(self.now), self.now)

    def new_worker(self, name: str) -> WorkerCore:
        self.seed += 1
        return WorkerCore(
            name,
            "m",
            ExitThresholds.uniform(K, 0.7),
            rng=random.Random(self.seed),
            t_o=10,
            lease=1e9 if self.strict else self.LEASE,
            max_resends=10**9 if self.strict else 2,
            ledger=OffloadLedger(min_timeout=0.5, timeout_factor=4.0, max_timeout=4.0),
            link_factory=lambda: LinkDelayEstimator(0.01, 1e6),
        )

    def live(self) -> list[WorkerCore]:
        return [w for n, w in self.workers.items() if n not in self.crashed]

    def pick(self, x: int) -> WorkerCore | None:
        live = self.live()
        return live[x % len(live)] if live else None

    def send(self, kind: str, frm: str, to: str, body: Any) -> None:
        self.net.append(Msg(kind, frm, to, body))

    def ship(self, frm: str, sends: list[tuple[str, Task]]) -> None:
        for to, task in sends:
            self.send("task", frm, to, dataclasses.replace(task))  # the receiver's own copy

    # -- operations -------------------------------------------------------------------------

    def op_admit(self, x: int) -> None:
        src = self.workers["s"]
        d = self.next_id
        self.next_id += 1
        self.admitted.append(d)
        self.frames.admit(d, self.now, deadline=self.now + DEADLINE)
        task = Task(TaskKey("s", d, 1), admitted_at=self.now, size_bytes=1000 + 500 * (x % 4))
        assert src.submit(task, self.now).queued

    def op_start(self, x: int) -> None:
        w = self.pick(x)
        if w is not None:
            w.next_task()

    def op_finish(self, x: int) -> None:
        w = self.pick(x)
        if w is None or not w.running:
            return
        tasks = list(w.running.values())
        task = tasks[(x // 3) % len(tasks)]
        confidence = (x % 101) / 100.0
        out = w.complete(task, confidence, 0.02 + (x % 7) * 0.01, self.now, next_size_bytes=2000)
        if out.exited:
            frame = self.frames.frame_of(task.data_id)
            self.exits[frame] += 1
            if self.strict:
                assert self.exits[frame] == 1, f"frame {frame} exited twice"
            if w.worker_id == "s":
                self.frames.result(task.data_id, self.now)
            else:
                self.send("result", w.worker_id, "s", task.data_id)

    def op_offload(self, x: int) -> None:
        w = self.pick(x)
        if w is not None:
            self.ship(w.worker_id, w.offload_pass(self.now))

    def op_tick(self, x: int) -> None:
        w = self.pick(x)
        if w is not None:
            self.ship(w.worker_id, w.tick(self.now))

    def op_report(self, x: int) -> None:
        w = self.pick(x)
        if w is None:
            return
        report = w.report(self.now)
        for other in NAMES:
            if other != w.worker_id:
                self.send("report", w.worker_id, other, report)

    def op_deliver(self, x: int) -> None:
        if self.net:
            self.deliver(self.net.pop(x % len(self.net)))

    def op_drop(self, x: int) -> None:
        if not self.net:
            return
        i = x % len(self.net)
        if self.strict and self.net[i].kind == "result":
            return  # strict mode: results reach the source (the ledger's job is per hop)
        self.net.pop(i)

    def op_advance(self, x: int) -> None:
        self.now += (0.05, 0.2, 0.6, 1.5)[x % 4]

    def op_toggle(self, x: int) -> None:
        w = self.workers[("a", "b")[x % 2]]
        w.lifecycle_state = "inactive" if w.lifecycle_state == "active" else "active"

    def op_crash(self, x: int) -> None:
        if not self.strict:
            self.crashed.add(("a", "b")[x % 2])

    def op_restart(self, x: int) -> None:
        name = ("a", "b")[x % 2]
        if name in self.crashed:
            self.crashed.discard(name)
            self.totals.update(int_stats(self.workers[name]))
            self.workers[name] = self.new_worker(name)

    def stat_totals(self) -> Counter[str]:
        totals = Counter(self.totals)
        for w in self.workers.values():
            totals.update(int_stats(w))
        return totals

    def op_evacuate(self, x: int) -> None:
        """A worker deactivates and hands its queue to neighbours (crash mode only: a
        receiver that already handed a task on refuses its sender's re-send, so with lost
        acks this can duplicate, which only the frame ledger then absorbs)."""
        if self.strict:
            return
        name = ("a", "b")[x % 2]
        if name not in self.crashed:
            w = self.workers[name]
            w.lifecycle_state = "inactive"
            self.ship(name, w.evacuate(self.now))

    def op_readmit(self, x: int) -> None:
        if self.strict:
            return
        for d in self.frames.overdue(self.now):
            alias = self.next_id
            self.next_id += 1
            self.frames.readmit(d, alias, self.now, deadline=self.now + DEADLINE)
            task = Task(TaskKey("s", alias, 1), admitted_at=self.now, size_bytes=1000)
            assert self.workers["s"].submit(task, self.now).queued

    def deliver(self, msg: Msg) -> None:
        if msg.to in self.crashed:
            return
        w = self.workers[msg.to]
        if msg.kind == "task":
            r = w.submit(msg.body, self.now)
            key, attempt = msg.body.key, msg.body.attempt
            self.send("ack", msg.to, msg.frm, (key, attempt, r.accepted, r.accepted_count))
        elif msg.kind == "ack":
            key, attempt, accepted, count = msg.body
            w.on_ack(key, attempt, msg.frm, accepted, self.now, accepted_count=count)
        elif msg.kind == "report":
            w.on_neighbor_state(msg.body, self.now)
        else:
            status = self.frames.result(msg.body, self.now)
            if self.strict:
                assert status is ResultStatus.FIRST

    # -- invariants -------------------------------------------------------------------------

    def check_strict(self) -> None:
        copies: Counter[int] = Counter()
        in_ledger: Counter[int] = Counter()
        for w in self.live():
            for place, task in w.held():
                (in_ledger if place == "in_flight" else copies)[task.data_id] += 1
        for d in self.admitted:
            assert copies[d] <= 1, f"frame {d} duplicated: {copies[d]} executable copies"
            if self.exits[d]:
                assert copies[d] == 0, f"frame {d} exited but still has a copy"
            else:
                assert copies[d] == 1 or in_ledger[d] >= 1, f"frame {d} lost"

    def settle(self, max_rounds: int = 2000) -> None:
        """Heal the network and run everything to completion."""
        for w in self.live():
            w.lifecycle_state = "active"
        for _ in range(max_rounds):
            if not self.strict:
                self.op_readmit(0)
            while self.net:
                self.deliver(self.net.pop(0))
            if self.strict:
                self.check_strict()
            for w in self.live():
                report = w.report(self.now)
                for other in NAMES:
                    if other != w.worker_id:
                        self.send("report", w.worker_id, other, report)
                self.ship(w.worker_id, w.tick(self.now))
                self.ship(w.worker_id, w.offload_pass(self.now))
                for _ in range(3):  # a few tasks per round, so queues and offloads persist
                    w.next_task()
                for i, task in enumerate(list(w.running.values())):
                    self.op_finish_task(w, task, 0.3 + 0.3 * (i % 3))
            self.now += 0.5
            done = not self.frames.pending() and all(m.kind == "report" for m in self.net)
            if done and all(w.idle() for w in self.live()):
                return
        raise AssertionError(f"did not settle: pending={self.frames.pending()[:10]}")

    def op_finish_task(self, w: WorkerCore, task: Task, confidence: float) -> None:
        out = w.complete(task, confidence, 0.05, self.now, next_size_bytes=2000)
        if out.exited:
            self.exits[self.frames.frame_of(task.data_id)] += 1
            if w.worker_id == "s":
                self.frames.result(task.data_id, self.now)
            else:
                self.send("result", w.worker_id, "s", task.data_id)


WEIGHTS = {
    "admit": 4,
    "start": 2,
    "finish": 3,
    "offload": 4,
    "tick": 2,
    "report": 2,
    "deliver": 7,
    "drop": 2,
    "advance": 2,
    "toggle": 1,
    "crash": 1,
    "restart": 1,
    "readmit": 1,
    "evacuate": 1,
}
OPS = tuple(name for name, weight in WEIGHTS.items() for _ in range(weight))

ops_st = st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 10_000)), max_size=200)


def run(strict: bool, ops: list[tuple[str, int]]) -> Sim:
    sim = Sim(strict)
    for name, x in ops:
        getattr(sim, f"op_{name}")(x)
        if strict:
            sim.check_strict()
    sim.settle()
    return sim


def check_end_to_end(sim: Sim, strict: bool) -> None:
    c = sim.frames.counters()
    assert c["pending"] == 0 and c["completed"] == c["admitted"] == len(sim.admitted)
    for d in sim.admitted:
        assert sim.exits[d] >= 1
        if strict:
            assert sim.exits[d] == 1
    if strict:
        assert c["duplicates"] == 0 and c["readmitted"] == 0


@settings(max_examples=150, deadline=None)
@given(ops_st)
def test_strict_conservation_under_unreliable_network(ops: list[tuple[str, int]]) -> None:
    sim = run(True, ops)
    check_end_to_end(sim, strict=True)


@settings(max_examples=100, deadline=None)
@given(ops_st)
def test_every_frame_answered_once_with_crashes_and_leases(ops: list[tuple[str, int]]) -> None:
    sim = run(False, ops)
    check_end_to_end(sim, strict=False)


def random_ops(seed: int, n: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    return [(rng.choice(OPS), rng.randrange(10_000)) for _ in range(n)]


def test_long_random_runs_strict() -> None:
    totals: Counter[str] = Counter()
    for seed in range(8):
        sim = run(True, random_ops(seed, 800))
        check_end_to_end(sim, strict=True)
        totals.update(sim.stat_totals())
    # the runs exercised every path the invariant is about
    for key in ("handed_off", "resends", "rejected", "taken_back", "duplicates", "idle_moves"):
        assert totals[key] > 0, key


def test_long_random_runs_with_crashes() -> None:
    totals: Counter[str] = Counter()
    readmitted = duplicates = 0
    for seed in range(8):
        sim = run(False, random_ops(1000 + seed, 800))
        check_end_to_end(sim, strict=False)
        totals.update(sim.stat_totals())
        readmitted += sim.frames.readmitted
        duplicates += sim.frames.duplicates
    for key in ("handed_off", "neighbors_lost", "taken_back", "resends", "evacuated"):
        assert totals[key] > 0, key
    assert readmitted > 0 and duplicates > 0  # end-to-end recovery was needed and counted


class LapseSim(Sim):
    """Leases lapse and receivers are declared dead, but nobody crashes and nothing is
    re-admitted, so a task a worker drops is gone for good and fails the run.

    In crash mode the source re-admits overdue frames, which hides any loss inside the
    workers (a dropped task just becomes a re-admission). Here every way a task comes back
    to its sender runs (refusals, ack timeouts after re-sends, declared deaths of live but
    silent receivers, evacuation); a task may then run twice, never zero times.
    """

    LEASE = 1.0  # leases lapse often: every lapse must take its tasks back

    def __init__(self, seed: int = 0) -> None:
        super().__init__(strict=False, seed=seed)

    def op_crash(self, x: int) -> None:
        """No crashes: they lose tasks legitimately."""

    def op_restart(self, x: int) -> None:
        """Nothing crashed, so nothing restarts."""

    def op_readmit(self, x: int) -> None:
        """No re-admission: it would hide a lost task."""

    def op_drop(self, x: int) -> None:
        if self.net and self.net[x % len(self.net)].kind != "result":
            self.net.pop(x % len(self.net))  # results reach the source; tasks/acks may not

    def check_no_loss(self) -> None:
        """Every frame that has not exited has a copy somewhere or a ledger entry."""
        held: Counter[int] = Counter()
        for w in self.workers.values():
            for _, task in w.held():
                held[task.data_id] += 1
        for d in self.admitted:
            assert self.exits[d] or held[d] >= 1, f"frame {d} lost"


def run_lapse(ops: list[tuple[str, int]], seed: int = 0) -> LapseSim:
    sim = LapseSim(seed)
    for name, x in ops:
        getattr(sim, f"op_{name}")(x)
        sim.check_no_loss()
    sim.settle()  # raises "did not settle" if a frame never exits
    c = sim.frames.counters()
    assert c["readmitted"] == 0
    assert c["pending"] == 0 and c["completed"] == c["admitted"] == len(sim.admitted)
    assert all(sim.exits[d] >= 1 for d in sim.admitted)
    return sim


@settings(max_examples=100, deadline=None)
@given(ops_st)
def test_no_task_lost_when_leases_lapse_without_readmission(ops: list[tuple[str, int]]) -> None:
    run_lapse(ops)


def test_long_random_runs_with_lapsing_leases_lose_nothing() -> None:
    totals: Counter[str] = Counter()
    for seed in range(8):
        sim = run_lapse(random_ops(2000 + seed, 800), seed)
        totals.update(sim.stat_totals())
    # deaths were declared while tasks were unacked, and evacuations and re-sends ran
    for key in ("neighbors_lost", "taken_back", "resends", "evacuated", "rejected"):
        assert totals[key] > 0, key
