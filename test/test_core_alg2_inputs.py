"""What WorkerCore feeds Alg. 2: I_n (not I_n + O_n), Gamma_n and the neighbour's Gamma_m, D_nm.

The offload rule itself is tested in test_core_offload.py; these tests pin its *inputs* as
the worker computes them. Each case picks numbers where the plausible wrong input (our own
Gamma_n for Gamma_m, D_nm = 0, I_n + O_n for I_n, the reported I_m without in-flight tasks)
gives a different delay and a different decision, so swapping one in fails the test.
"""

from __future__ import annotations

import pytest

from mdi_exit_ros.core import (
    ComputeDelayEstimator,
    ExitThresholds,
    LinkDelayEstimator,
    NeighborReport,
    OffloadBranch,
    OffloadLedger,
    Task,
    TaskKey,
    WorkerCore,
)

K = 3
GAMMA_N = 0.1  # our compute seconds per task (estimator prior, no samples yet)
GAMMA_M = 0.5  # the neighbour's, as it reports it
SIZE = 1000  # bytes of every queued task
LATENCY, BANDWIDTH = 0.05, 1e4  # D_nm prior: 0.05 s + 1000 B / 1e4 B/s = 0.15 s


class FixedDraw:
    """RNG stub: every draw returns the same value, so the probabilistic branch is known."""

    def __init__(self, value: float) -> None:
        self.value = value
        self.draws = 0

    def random(self) -> float:
        """The fixed value."""
        self.draws += 1
        return self.value


def make(draw: float = 0.99) -> WorkerCore:
    """A worker whose Gamma_n and D_nm come from known priors."""
    return WorkerCore(
        "n",
        "mnv2",
        ExitThresholds.uniform(K, 0.8),
        rng=FixedDraw(draw),
        lease=10.0,
        compute=ComputeDelayEstimator(prior=GAMMA_N),
        link_factory=lambda: LinkDelayEstimator(prior_latency=LATENCY, prior_bandwidth=BANDWIDTH),
        ledger=OffloadLedger(min_timeout=1.0, timeout_factor=4.0),
    )


def load(w: WorkerCore, n_input: int, n_output: int) -> None:
    """Put tasks straight into I_n and O_n."""
    for i in range(n_input):
        w.input.append(Task(TaskKey("n", 100 + i, 1), size_bytes=SIZE))
    for i in range(n_output):
        w.output.append(Task(TaskKey("n", 200 + i, 2), size_bytes=SIZE))


def report(i_m: int, gamma_m: float = GAMMA_M, seq: int = 1) -> NeighborReport:
    """Neighbour a's state report."""
    return NeighborReport("a", i_m, 0, gamma_m, "mnv2", seq=seq)


def test_preconditions_make_wrong_inputs_distinguishable() -> None:
    """Guard: the numbers below only detect a swapped input if these differ."""
    w = make()
    d_nm = w.link("a").delay(SIZE, 0.0)
    assert d_nm == pytest.approx(LATENCY + SIZE / BANDWIDTH) and d_nm > 0.1
    assert w.gamma() == pytest.approx(GAMMA_N) and GAMMA_N != GAMMA_M


def test_decision_uses_i_n_gamma_n_and_neighbours_gamma_m_and_d_nm() -> None:
    """local = I_n Gamma_n and remote = D_nm + I_m Gamma_m, with exactly these operands."""
    w = make(draw=0.99)
    load(w, n_input=3, n_output=2)
    w.on_neighbor_state(report(i_m=1), 0.0)
    assert w.offload_pass(0.0) == []  # probabilistic branch, draw 0.99 says no
    (decision,) = w.last_decisions
    d_nm = w.link("a").delay(SIZE, 0.0)
    local = 3 * GAMMA_N  # I_n = 3 (not I_n + O_n = 5)
    remote = d_nm + 1 * GAMMA_M  # the neighbour's Gamma_m, plus the link delay
    assert decision.neighbor == "a"
    assert decision.local_delay == pytest.approx(local)
    assert decision.remote_delay == pytest.approx(remote)
    assert decision.branch is OffloadBranch.PROBABILISTIC
    assert decision.probability == pytest.approx(local / remote)
    assert not decision.offload


def test_slow_neighbour_is_not_sent_work_with_our_gamma() -> None:
    """With Gamma_m = 0.5 the neighbour is slower than us: only the coin may offload.

    Feeding Gamma_n (0.1) for Gamma_m would make remote = 0.25 < local = 0.3 and offload
    deterministically, even though the draw refuses.
    """
    w = make(draw=0.99)
    load(w, n_input=3, n_output=2)
    w.on_neighbor_state(report(i_m=1), 0.0)
    assert w.offload_pass(0.0) == []
    assert w.last_decisions[0].branch is OffloadBranch.PROBABILISTIC
    assert [t.key.data_id for t in w.output] == [200, 201]


def test_fast_neighbour_gets_work_and_its_gamma_prices_the_tasks_in_flight() -> None:
    """A neighbour reporting Gamma_m far below ours takes the head deterministically.

    Head 1: O_n = 2 > I_m = 1 and local 0.3 > remote 0.15 + 0.01: sent (the draw, 0.99,
    would refuse a probabilistic offload). Head 2: O_n = 1 is not > I_m = 1 + 1 in flight,
    so Alg. 2 keeps it, and its remote delay prices both queued tasks at Gamma_m = 0.01.
    """
    w = make(draw=0.99)
    load(w, n_input=3, n_output=2)
    w.on_neighbor_state(report(i_m=1, gamma_m=0.01), 0.0)
    sends = w.offload_pass(0.0)
    assert [(m, t.key.data_id) for m, t in sends] == [("a", 200)]
    (last,) = w.last_decisions
    assert last.branch is OffloadBranch.KEEP
    assert last.remote_delay == pytest.approx(w.link("a").delay(SIZE, 0.0) + 2 * 0.01)


def test_link_delay_keeps_an_idle_neighbour_from_winning_outright() -> None:
    """An idle neighbour (I_m = 0) still costs D_nm: local 0.1 < remote 0.15.

    With D_nm = 0 the remote delay would be 0, the deterministic branch would fire and the
    task would leave although the draw refuses.
    """
    w = make(draw=0.99)
    load(w, n_input=1, n_output=2)
    w.on_neighbor_state(report(i_m=0), 0.0)
    assert w.offload_pass(0.0) == []
    (decision,) = w.last_decisions
    assert decision.branch is OffloadBranch.PROBABILISTIC
    assert decision.remote_delay == pytest.approx(LATENCY + SIZE / BANDWIDTH)
    assert decision.probability == pytest.approx(GAMMA_N / (LATENCY + SIZE / BANDWIDTH))


def test_output_queue_is_not_counted_as_local_work() -> None:
    """I_n Gamma_n counts only the input queue: a long O_n must not inflate it.

    I_n = 1, O_n = 6, neighbour idle but 0.15 s away: local 0.1 < remote 0.15, so the
    probabilistic branch refuses (draw 0.99). With I_n + O_n = 7, local would be 0.7 and
    every head would be offloaded deterministically.
    """
    w = make(draw=0.99)
    load(w, n_input=1, n_output=6)
    w.on_neighbor_state(report(i_m=0), 0.0)
    assert w.offload_pass(0.0) == []
    assert w.last_decisions[0].local_delay == pytest.approx(1 * GAMMA_N)
    assert len(w.output) == 6


def test_o_n_is_the_whole_output_queue_and_i_m_counts_in_flight() -> None:
    """Line 2 compares O_n with the effective I_m, which grows with every task sent.

    O_n = 4 against I_m = 0, then 3 against 1: two heads go; then 2 > 2 fails and the
    remote delay seen by that head includes Gamma_m for each of the two tasks in flight.
    """
    w = make(draw=0.99)
    load(w, n_input=20, n_output=4)
    w.on_neighbor_state(report(i_m=0, gamma_m=0.01), 0.0)
    sends = w.offload_pass(0.0)
    assert [t.key.data_id for _, t in sends] == [200, 201]
    (last,) = w.last_decisions
    assert last.branch is OffloadBranch.KEEP
    d_nm = w.link("a").delay(SIZE, 0.0)
    assert last.remote_delay == pytest.approx(d_nm + 2 * 0.01)  # I_m = 0 + 2 in flight
    assert last.local_delay == pytest.approx(20 * GAMMA_N)


def test_probabilistic_branch_draws_against_the_ratio() -> None:
    """A draw just under local / remote offloads the head, one just over keeps it."""
    for draw, sent in ((0.45, [200]), (0.47, [])):  # p = 0.3 / 0.65 = 0.4615...
        w = make(draw=draw)
        load(w, n_input=3, n_output=2)
        w.on_neighbor_state(report(i_m=1), 0.0)
        assert [t.key.data_id for _, t in w.offload_pass(0.0)] == sent, draw
