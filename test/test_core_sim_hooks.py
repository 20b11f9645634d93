"""What the simulator needs from the core to run 500 robots fast, without changing a decision.

* `LinkDelayEstimator.fit` is cached until the next sample;
* `on_neighbor_state` skips the restamp walk when a report repeats the thresholds the
  source's held tasks already carry, and walks again once a task arrives with others;
* `WorkerCore.may_offload` / `offload_pass` returning at once: no neighbour with I_m < O_n
  means Alg. 2 keeps the head and draws nothing;
* `WorkerCore.next_deadline`: before it, `tick` and `offload_pass` change nothing (so the
  simulator may skip those ticks); `NeighborTable.next_expiry`, `OffloadLedger.next_deadline`,
  `NeighborTable.min_effective_input_queue`, `FrameLedger.pending_count`.
"""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdi_exit_ros.core import (
    ComputeDelayEstimator,
    ExitThresholds,
    FrameLedger,
    LinkDelayEstimator,
    NeighborReport,
    NeighborTable,
    NeighborView,
    OffloadBranch,
    OffloadLedger,
    OffloadSelector,
    Selection,
    Task,
    TaskKey,
    WorkerCore,
)

K = 3


class CountingRandom(random.Random):
    """A seeded RNG that counts draws (Alg. 2's coin)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self.draws = 0

    def random(self) -> float:
        self.draws += 1
        return super().random()


def make(worker_id: str = "n", **kw: object) -> WorkerCore:
    defaults: dict[str, object] = {
        "rng": CountingRandom(0),
        "lease": 2.0,
        "compute": ComputeDelayEstimator(prior=0.1),
        "link_factory": lambda: LinkDelayEstimator(prior_latency=0.001, prior_bandwidth=1e6),
        "ledger": OffloadLedger(min_timeout=1.0, timeout_factor=4.0),
    }
    defaults.update(kw)
    return WorkerCore(worker_id, "m", ExitThresholds.uniform(K, 0.8), **defaults)  # type: ignore[arg-type]


def task(data_id: int, k: int = 1, source: str = "n", te: float | None = None) -> Task:
    return Task(TaskKey(source, data_id, k), size_bytes=1000,
                exit_thresholds=None if te is None else ExitThresholds.uniform(K, te))


def report(name: str, seq: int, i_m: int = 0, te: float = 0.8, **kw: object) -> NeighborReport:
    return NeighborReport(name, i_m, 0, 0.1, "m", seq=seq,  # type: ignore[arg-type]
                          exit_thresholds=(te,) * K, **kw)


# -- LinkDelayEstimator.fit cache ----------------------------------------------------------------


def test_link_fit_is_cached_until_a_new_sample_and_equals_a_fresh_fit() -> None:
    samples = [(0.012, 1000), (0.030, 20000), (0.021, 9000)]
    est = LinkDelayEstimator()
    assert est.fit() is None
    fits = []
    for i, (rtt, size) in enumerate(samples):
        est.observe(rtt, size, float(i))
        first = est.fit()
        assert est.fit() is first  # cached: the same tuple until the next sample
        fresh = LinkDelayEstimator()
        for r, s in samples[: i + 1]:
            fresh.observe(r, s, 0.0)
        assert first == fresh.fit()  # the cache holds what a fresh fit computes
        fits.append(first)
    assert len(set(fits)) == 3  # every new sample moved the fit
    assert est.delay(5000, 2.0) == fits[-1][0] + fits[-1][1] * 5000


def test_link_delay_still_decays_toward_the_prior_with_a_cached_fit() -> None:
    est = LinkDelayEstimator(prior_latency=0.005, prior_bandwidth=1e6, stale_after=1.0,
                             half_life=1.0)
    est.observe(0.5, 1000, 0.0)
    fresh = est.delay(1000, 0.5)
    half = est.delay(1000, 2.0)  # one half-life past stale_after
    assert half == pytest.approx(0.5 * fresh + 0.5 * est.prior_delay(1000))
    assert est.delay(1000, 0.5) == fresh  # the cache does not depend on `now`


# -- restamp skipped when nothing would change ---------------------------------------------------


def test_a_repeated_report_changes_nothing_and_a_new_one_restamps() -> None:
    w = make()
    for d in range(3):
        w.submit(task(d, source="s", te=0.9), 0.0)
    assert w.on_neighbor_state(report("s", 1, te=0.5), 0.0)
    assert {t.exit_thresholds.values for t in w.input} == {(0.5,) * K}  # type: ignore[union-attr]
    assert w.on_neighbor_state(report("s", 2, te=0.5), 0.1)
    assert {t.exit_thresholds.values for t in w.input} == {(0.5,) * K}  # type: ignore[union-attr]
    w.on_neighbor_state(report("s", 3, te=0.3), 0.2)
    assert {t.exit_thresholds.values for t in w.input} == {(0.3,) * K}  # type: ignore[union-attr]


def test_a_task_arriving_with_old_thresholds_is_restamped_by_the_next_same_report() -> None:
    """The skip must not outlive a task that came in stamped otherwise (sent before the
    source lowered T_e): the next report, with unchanged thresholds, restamps it."""
    w = make()
    w.submit(task(1, source="s", te=0.9), 0.0)
    w.on_neighbor_state(report("s", 1, te=0.5), 0.0)
    late = task(2, source="s", te=0.9)  # admitted before the change, arrives after it
    w.submit(late, 0.1)
    assert late.exit_thresholds == ExitThresholds.uniform(K, 0.9)
    w.on_neighbor_state(report("s", 2, te=0.5), 0.2)
    assert late.exit_thresholds == ExitThresholds.uniform(K, 0.5)
    unstamped = task(3, source="s")  # no thresholds: the worker's own would apply
    w.submit(unstamped, 0.3)
    w.on_neighbor_state(report("s", 3, te=0.5), 0.4)
    assert unstamped.exit_thresholds == ExitThresholds.uniform(K, 0.5)


def test_a_custody_copy_taken_back_is_restamped_by_the_next_same_report() -> None:
    """A task handed off before the source changed T_e comes back from custody (its receiver
    died) with the old thresholds: the skip must not keep them."""
    w = make()  # lease 2 s
    w.on_neighbor_state(report("a", 1), 0.0)
    w.output.append(task(1, k=2, source="s", te=0.9))
    w.input.append(task(2, source="n"))  # I_n busy: Alg. 2 may send the head
    ((receiver, sent),) = w.offload_pass(0.0)
    assert receiver == "a"
    w.on_ack(sent.key, sent.attempt, "a", True, 0.01)  # accepted: kept in custody
    w.on_neighbor_state(report("s", 1, te=0.5), 0.1)  # custody copies are not walked
    assert sent.exit_thresholds == ExitThresholds.uniform(K, 0.9)
    w.on_neighbor_state(report("s", 2, te=0.5), 3.0)
    w.tick(3.0)  # a's lease ran out: its task comes back to I_n
    assert sent in w.input and w.stats().reissued == 1
    w.on_neighbor_state(report("s", 3, te=0.5), 3.1)  # the same thresholds again
    assert sent.exit_thresholds == ExitThresholds.uniform(K, 0.5)


def test_the_restamp_shortcut_forgets_a_source_that_is_gone() -> None:
    """One entry per source that ever reported would grow with every made-up worker id on
    the domain; a neighbour declared dead takes its entry along."""
    w = make()  # lease 2 s
    for i in range(50):
        w.on_neighbor_state(report(f"s{i}", 1), 0.0)
    assert len(w._stamped) == 50
    w.tick(5.0)  # every lease ran out
    assert len(w._stamped) == 0 and len(w.table) == 0


def test_a_direct_restamp_is_undone_by_the_sources_next_report() -> None:
    w = make()
    t = task(1, source="s", te=0.9)
    w.submit(t, 0.0)
    w.on_neighbor_state(report("s", 1, te=0.5), 0.0)
    assert w.restamp("s", ExitThresholds.uniform(K, 0.7)) == 1
    w.on_neighbor_state(report("s", 2, te=0.5), 0.1)  # the source still says 0.5
    assert t.exit_thresholds == ExitThresholds.uniform(K, 0.5)


# -- offload_pass returns at once; may_offload -------------------------------------------------


def loaded(w: WorkerCore, n_input: int, n_output: int) -> None:
    for i in range(n_input):
        w.input.append(task(100 + i))
    for i in range(n_output):
        w.output.append(task(200 + i, k=2))


def test_no_neighbour_below_o_n_means_no_pass_work_and_no_draw() -> None:
    w = make()
    rng = w._selector._rng  # type: ignore[attr-defined]
    loaded(w, 2, 2)
    w.on_neighbor_state(report("a", 1, i_m=2), 0.0)  # O_n = 2 is not above I_m = 2
    w.on_neighbor_state(report("b", 1, i_m=5), 0.0)
    assert w.table.min_effective_input_queue(0.0) == 2
    assert not w.may_offload(0.0)
    assert w.offload_pass(0.0) == [] and w.last_decisions == ()
    assert rng.draws == 0 and len(w.output) == 2 and len(w.input) == 2
    w.on_neighbor_state(report("a", 2, i_m=1), 0.1)  # now O_n = 2 > 1: Alg. 2 may send
    assert w.may_offload(0.1)
    w.offload_pass(0.1)
    assert len(w.last_decisions) >= 1  # evaluated (and the probabilistic coin drawn)


def test_may_offload_counts_in_flight_tasks_and_leases() -> None:
    w = make()
    loaded(w, 1, 2)
    w.on_neighbor_state(report("a", 1, i_m=0), 0.0)
    assert w.may_offload(0.0)
    w.table.note_sent("a", 0.0)
    w.table.note_sent("a", 0.0)  # two in flight: effective I_m = 2 = O_n
    assert w.table.min_effective_input_queue(0.0) == 2 and not w.may_offload(0.0)
    assert w.table.min_effective_input_queue(2.5) == math.inf  # lease (2 s) ran out


def test_may_offload_when_i_n_is_empty_the_pass_moves_a_task() -> None:
    w = make()
    loaded(w, 0, 1)
    assert w.may_offload(0.0)  # no neighbour at all, but the idle move applies
    assert w.offload_pass(0.0) == [] and len(w.input) == 1 and not w.output
    assert not w.may_offload(0.0)


def test_min_effective_input_queue_is_the_minimum_over_eligible() -> None:
    table = NeighborTable("n", "m", lease=1.0, allowed=["a", "b", "c"])
    table.update(NeighborReport("a", 4, 0, 0.1, "m", seq=1), 0.0)
    table.update(NeighborReport("b", 1, 0, 0.1, "other-model", seq=1), 0.0)
    table.update(NeighborReport("c", 3, 0, 0.1, "m", seq=1, lifecycle_state="inactive"), 0.0)
    table.update(NeighborReport("d", 0, 0, 0.1, "m", seq=1), 0.0)  # not one hop
    assert table.min_effective_input_queue(0.5) == 4
    assert table.min_effective_input_queue(0.5) == min(
        s.effective_input_queue for s in table.eligible(0.5))
    open_table = NeighborTable("n", "m", lease=1.0)
    open_table.update(NeighborReport("d", 0, 0, 0.1, "m", seq=1), 0.0)
    assert open_table.min_effective_input_queue(0.5) == 0


# -- next_deadline: nothing happens before it ----------------------------------------------------


def snapshot(w: WorkerCore) -> tuple:
    return (w.stats(), [t.key for t in w.input], [t.key for t in w.output],
            sorted(e.key for e in w.ledger.entries()), [m for m in "abc" if m in w.table],
            w._selector._rng.draws)  # type: ignore[attr-defined]


def test_next_deadline_is_inf_for_an_idle_worker_alone() -> None:
    w = make()
    assert w.next_deadline(0.0) == math.inf


def test_next_deadline_is_the_first_lease_end() -> None:
    w = make()
    w.on_neighbor_state(report("a", 1), 1.0)
    w.on_neighbor_state(report("b", 1), 1.5)
    assert w.table.next_expiry() == 3.0  # a's report at 1.0 + lease 2.0
    assert w.next_deadline(1.5) == 3.0
    before = snapshot(w)
    assert w.tick(2.99) == [] and w.offload_pass(2.99) == []
    assert snapshot(w) == before  # nothing before the deadline
    w.tick(3.01)
    assert "a" not in w.table and "b" in w.table


def test_next_deadline_is_the_first_ack_deadline_then_the_resend_acts() -> None:
    w = make()
    w.on_neighbor_state(report("a", 1), 0.0)
    loaded(w, 1, 2)
    sends = w.offload_pass(0.0)
    assert sends and w.ledger.next_deadline() == min(e.deadline for e in w.ledger.entries())
    w.on_neighbor_state(report("a", 2, i_m=5), 0.5)  # keeps a alive, takes no more
    deadline = w.next_deadline(0.5)
    assert deadline == w.ledger.next_deadline() < w.table.next_expiry()
    before = snapshot(w)
    w.tick(deadline - 1e-6)
    w.offload_pass(deadline - 1e-6)
    assert snapshot(w) == before
    assert w.tick(deadline) != []  # re-sent to a, still alive


def test_next_deadline_is_now_when_the_pass_can_act_or_done_notices_wait() -> None:
    w = make()
    w.on_neighbor_state(report("a", 1, i_m=0), 0.0)
    loaded(w, 1, 1)
    assert w.next_deadline(0.1) == 0.1  # O_n 1 > I_m 0
    w2 = make("m")
    w2.submit(task(5, source="s"), 0.0, sender="s")
    t = w2.next_task()
    assert t is not None
    w2.complete(t, 0.99, 0.1, 0.2)  # exits: its sender may forget it
    assert w2.next_deadline(0.3) == 0.3  # a done notice waits
    assert w2.take_done() and w2.next_deadline(0.3) == math.inf


def test_next_deadline_includes_custody() -> None:
    w = make()
    w.custody_timeout = 10.0
    w.on_neighbor_state(report("a", 1), 0.0)
    loaded(w, 1, 1)
    ((m, t),) = w.offload_pass(0.0)  # O_n 1 > I_m 0 and I_n Gamma_n > D_nm: sent
    w.on_ack(t.key, t.attempt, m, True, 0.1)
    w.table.remove("a")  # no lease to wait for: custody is the only deadline left
    assert len(w.ledger) == 0 and w.stats().in_custody == 1
    assert w.next_deadline(0.2) == pytest.approx(10.1)
    w.tick(10.05)
    assert w.stats().in_custody == 1
    w.tick(10.15)
    assert w.stats().in_custody == 0 and w.stats().custody_expired == 1


def test_ticks_before_next_deadline_never_act_in_a_random_workload() -> None:
    """A worker driven by random events: at every step, ticking at any time before
    next_deadline (with no other call in between) changes nothing."""
    rng = random.Random(7)
    w = make()
    now = 0.0
    data_id = 0
    for _ in range(400):
        now += rng.uniform(0.0, 0.4)
        what = rng.random()
        if what < 0.3:
            name = rng.choice("abc")
            w.on_neighbor_state(report(name, int(now * 1000), i_m=rng.randrange(4)), now)
        elif what < 0.55:
            data_id += 1
            w.output.append(task(data_id, k=2))
        elif what < 0.7 and w.input:
            t = w.next_task()
            assert t is not None
            w.complete(t, rng.random(), 0.1, now)
        elif what < 0.85 and len(w.ledger):
            e = rng.choice(w.ledger.entries())
            w.on_ack(e.key, e.attempt, e.receiver, rng.random() < 0.8, now)
        else:
            data_id += 1
            w.input.append(task(data_id))
        w.offload_pass(now)
        w.take_done()
        deadline = w.next_deadline(now)
        if deadline > now:
            probe = now + min(deadline - now, 5.0) * rng.random() * 0.999
            before = snapshot(w)
            assert w.tick(probe) == [] and w.offload_pass(probe) == []
            assert snapshot(w) == before
        w.tick(now)


# -- small counters -----------------------------------------------------------------------------


def test_offload_ledger_next_deadline_and_frame_ledger_pending_count() -> None:
    ledger = OffloadLedger(min_timeout=1.0)
    assert ledger.next_deadline() == math.inf
    ledger.record(TaskKey("s", 1, 1), 0, "a", None, 0.0)
    ledger.record(TaskKey("s", 2, 1), 0, "a", None, 0.5)
    assert ledger.next_deadline() == 1.0
    frames = FrameLedger()
    assert frames.pending_count() == 0
    frames.admit(1, 0.0)
    frames.admit(2, 0.0)
    frames.result(1, 1.0)
    assert frames.pending_count() == 1 == len(frames.pending())


def test_min_effective_input_queue_follows_every_change_and_lease() -> None:
    """Kept between calls, yet equal to a fresh computation after any change or lease end."""
    table = NeighborTable("n", "m", lease=1.0, allowed=["a", "b"])
    table.update(NeighborReport("a", 3, 0, 0.1, "m", seq=1), 0.0)
    table.update(NeighborReport("b", 5, 0, 0.1, "m", seq=1), 0.5)
    assert table.min_effective_input_queue(0.6) == 3
    table.note_sent("a", 0.6)
    table.note_sent("a", 0.6)
    table.note_sent("a", 0.6)  # a: 3 + 3 in flight = 6 > b's 5
    assert table.min_effective_input_queue(0.7) == 5
    table.note_returned("a")
    table.note_returned("a")  # a: 3 + 1 = 4
    assert table.min_effective_input_queue(0.7) == 4
    table.note_acked("a", 0.8, None)  # still in flight until a report reflects it
    assert table.min_effective_input_queue(0.8) == 4
    table.update(NeighborReport("a", 7, 0, 0.1, "m", seq=2), 0.9)  # reflects the ack
    assert table.min_effective_input_queue(0.9) == 5  # b
    assert table.min_effective_input_queue(1.5) == 5  # b (heard at 0.5) alive for 1 s
    assert table.min_effective_input_queue(1.51) == 7  # b's lease ended: only a
    assert table.min_effective_input_queue(1.91) == math.inf  # a's too
    table.update(NeighborReport("b", 2, 0, 0.1, "m", seq=2), 3.0)
    assert table.min_effective_input_queue(3.0) == 2
    table.remove("b")
    assert table.min_effective_input_queue(3.0) == math.inf
    table.set_allowed(["a", "c"])
    table.update(NeighborReport("c", 1, 0, 0.1, "m", seq=1), 3.1)
    assert table.min_effective_input_queue(3.1) == 1
    table.set_allowed(["a"])
    assert table.min_effective_input_queue(3.1) == math.inf  # c is not one hop now


def test_min_effective_input_queue_follows_a_lease_changed_at_run_time() -> None:
    """`neighbor_lease` is set at run time: a longer lease brings back a neighbour the cached
    minimum had left out, a shorter one drops it."""
    table = NeighborTable("n", "m", lease=1.0)
    table.update(NeighborReport("a", 3, 0, 0.1, "m", seq=1), 0.0)
    table.update(NeighborReport("b", 5, 0, 0.1, "m", seq=1), 1.5)
    assert table.min_effective_input_queue(2.0) == 5  # a's lease (1 s) ended at 1.0
    table.lease = 5.0
    assert table.min_effective_input_queue(2.0) == 3
    table.lease = 1.0
    assert table.min_effective_input_queue(2.0) == 5


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["report", "sent", "acked", "returned", "remove",
                                           "expire", "allowed", "lease", "wait", "ask"]),
                          st.sampled_from(["a", "b", "c"]), st.integers(0, 6)),
                max_size=30))
def test_min_effective_input_queue_equals_a_fresh_minimum_after_any_sequence(ops) -> None:
    """Whatever happens in whatever order, the cached value is the minimum of the effective
    I_m over `eligible(now)`, computed afresh."""
    table = NeighborTable("n", "m", lease=1.0, report_settle=0.2)
    now, seq = 0.0, {"a": 0, "b": 0, "c": 0}
    for op, who, k in ops:
        if op == "report":
            seq[who] += 1
            state = "active" if k else "inactive"
            table.update(NeighborReport(who, k, 0, 0.1, "m", seq=seq[who],  # type: ignore[arg-type]
                                        lifecycle_state=state, tasks_accepted=k), now)
        elif op == "sent":
            table.note_sent(who, now)
        elif op == "acked":
            table.note_acked(who, now, k)
        elif op == "returned":
            table.note_returned(who)
        elif op == "remove":
            table.remove(who)
        elif op == "expire":
            table.expire(now)
        elif op == "allowed":
            table.set_allowed(None if k == 0 else ["a", "b", "c"][: k % 3 + 1])
        elif op == "lease":
            table.lease = 0.5 + k / 2
        elif op == "wait":
            now += k * 0.25
        fresh = min((s.effective_input_queue for s in table.eligible(now)), default=math.inf)
        assert table.min_effective_input_queue(now) == fresh


# -- Alg. 2's selector and inputs, made cheaper (same decisions) ---------------------------------


def test_order_of_one_or_no_neighbour_needs_no_ranking() -> None:
    """The shortcut for fewer than two views (the rest of the order: test_core_offload.py)."""
    sel = OffloadSelector(random.Random(0))
    one = [NeighborView("a", 3, 0.1, 0.5, probe=True)]
    assert sel.order(one) == one and sel.order(one) is not one  # a list of its own
    assert sel.order([]) == []


def test_selection_is_a_named_tuple_with_target_and_decisions() -> None:
    sel = OffloadSelector(random.Random(0))
    views = [NeighborView("a", 0, 0.1, 0.01), NeighborView("b", 5, 0.1, 0.01)]
    s = sel.choose(3, 10, 0.1, views)
    assert (s.target, [d.neighbor for d in s.decisions]) == ("a", ["a"])
    assert s == Selection("a", s.decisions)
    none = sel.choose(0, 0, 0.1, views)
    assert none.target is None and [d.branch for d in none.decisions] == [OffloadBranch.KEEP] * 2


def test_neighbor_views_probe_follows_the_link_and_the_last_send() -> None:
    """An unmeasured link is a probe; a measurement or a send within stale_after is not."""
    w = make(allowed=["a", "b"], lease=100.0)
    w.table.update(report("a", 1), 0.0)
    w.table.update(report("b", 1), 0.0)
    assert [v.probe for v in w.neighbor_views(1000, 0.0)] == [True, True]  # never measured
    w.link("a").observe(0.02, 1000, 20.0)
    w._last_sent["b"] = 19.0
    assert [v.probe for v in w.neighbor_views(1000, 20.0)] == [False, False]  # b: sent at 19
    assert [v.probe for v in w.neighbor_views(1000, 31.0)] == [True, True]  # a: stale again
    assert [v.probe for v in w.neighbor_views(1000, 29.5)] == [False, True]  # b: 10.5 s ago


def test_link_delay_reads_the_cached_fit_and_follows_new_samples() -> None:
    est, fresh = LinkDelayEstimator(), LinkDelayEstimator()
    assert est.delay(1000, 0.0) == est.prior_delay(1000)
    for i, (rtt, size) in enumerate([(0.012, 1000), (0.030, 20000), (0.021, 9000)]):
        est.observe(rtt, size, float(i))
        fresh.observe(rtt, size, float(i))
        fresh._fitted = None  # no cache: computed from the samples
        for now in (float(i), i + 15.0):
            assert est.delay(5000, now) == fresh.delay(5000, now)
            fresh._fitted = None


def test_alone_follows_every_set_allowed() -> None:
    """`alone` (no one-hop neighbour at all) is set wherever the allowed set is."""
    table = NeighborTable("n", "m")
    assert not table.alone  # None: any discovered neighbour
    for allowed, alone in (([], True), (["a"], False), ([], True), (None, False)):
        table.set_allowed(allowed)
        assert table.alone is alone
    w = make(allowed=[])
    w.submit(task(1), 0.0)
    assert list(w.input) and not w.output  # alone: tau_1 stays in I_n
    w.table.set_allowed(["a"])
    w.offload_first_task = True
    w.submit(task(2), 0.0)
    assert len(w.output) == 1  # with a neighbour, first-task offloading parks it in O_n
