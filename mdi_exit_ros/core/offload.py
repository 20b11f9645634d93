"""Alg. 2: offloading the head-of-line task of the output queue to a one-hop neighbour.

:func:`offload_rule` is Alg. 2 lines 2-6 for one neighbour m. :class:`OffloadSelector`
decides what the paper leaves open when several neighbours qualify: it tries them from the
lowest expected completion delay ``D_nm + I_m Gamma_m`` up (ties rotate round-robin so equal
neighbours share the load) and offloads to the first one whose Alg. 2 test says yes.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import NamedTuple, Protocol


class RandomSource(Protocol):
    """What the probabilistic branch needs from an RNG (``random.Random`` or a test stub)."""

    def random(self) -> float:
        """Uniform float in [0, 1)."""
        ...


class OffloadBranch(enum.Enum):
    """Which branch of Alg. 2 fired (for tests and logs)."""

    DETERMINISTIC = "deterministic"  # line 2-3
    PROBABILISTIC = "probabilistic"  # line 4-5 (the draw may still say no)
    KEEP = "keep"  # neither: O_n <= I_m


class OffloadDecision(NamedTuple):
    """Outcome of Alg. 2 for one neighbour, with the numbers it was based on (immutable; a
    NamedTuple because Alg. 2 builds one per neighbour tried on every decision)."""

    neighbor: str
    branch: OffloadBranch
    offload: bool
    probability: float  # 1.0 (line 3), min(ratio, 1) (line 5) or 0.0 (keep)
    local_delay: float  # I_n * Gamma_n
    remote_delay: float  # D_nm + I_m * Gamma_m


def offload_probability(local_delay: float, remote_delay: float) -> float:
    """Alg. 2 line 5: ``min(I_n Gamma_n / (D_nm + I_m Gamma_m), 1)``.

    A zero denominator means offloading costs nothing (no link delay, idle neighbour), so
    the probability is 1 rather than a division error.
    """
    if remote_delay <= 0.0:
        return 1.0
    return min(local_delay / remote_delay, 1.0)


def offload_rule(
    o_n: int,
    i_n: int,
    gamma_n: float,
    i_m: float,
    gamma_m: float,
    d_nm: float,
    rng: RandomSource,
    neighbor: str = "",
) -> OffloadDecision:
    """Alg. 2 lines 2-6 for one neighbour m: should the head-of-line task go to m?

    ``i_m`` should be the *effective* input queue of m (last report plus tasks in flight to
    m, see :meth:`NeighborTable.effective_input_queue`). The RNG is drawn only in the
    probabilistic branch, so seeded runs stay reproducible when branches change.
    """
    local = i_n * gamma_n  # I_n Gamma_n
    remote = d_nm + i_m * gamma_m  # D_nm + I_m Gamma_m
    if o_n > i_m and local > remote:  # Alg. 2, line 2
        return OffloadDecision(neighbor, OffloadBranch.DETERMINISTIC, True, 1.0, local, remote)
    if o_n > i_m:  # Alg. 2, line 4
        p = offload_probability(local, remote)  # Alg. 2, line 5
        go = rng.random() < p  # random() is in [0, 1): p = 1 always, p = 0 never
        return OffloadDecision(neighbor, OffloadBranch.PROBABILISTIC, go, p, local, remote)
    return OffloadDecision(neighbor, OffloadBranch.KEEP, False, 0.0, local, remote)


class NeighborView(NamedTuple):
    """What Alg. 2 needs to know about one eligible neighbour m right now (immutable; a
    NamedTuple: one per eligible neighbour on every decision)."""

    worker: str
    input_queue: float  # effective I_m: reported + in flight
    compute_delay: float  # Gamma_m, as m reported it
    link_delay: float  # D_nm for the head-of-line task's size
    probe: bool = False  # D_nm unmeasured lately: try m first (see OffloadSelector)

    @property
    def expected_delay(self) -> float:
        """``D_nm + I_m Gamma_m``: when the task would finish waiting at m."""
        return self.link_delay + self.input_queue * self.compute_delay


class Selection(NamedTuple):
    """Result of one selection: the chosen neighbour (or None) and every rule evaluated
    (immutable; a NamedTuple: one per Alg. 2 evaluation)."""

    target: str | None
    decisions: tuple[OffloadDecision, ...]


class OffloadSelector:
    """Applies Alg. 2 over several neighbours for one head-of-line task.

    The paper runs Alg. 2 "for each of its one-hop neighbors" without saying which one gets
    a task several would accept. Trying the lowest expected delay first sends the task where
    it should finish soonest; the rotating tie-break keeps equal neighbours (e.g. a fresh
    start, all reporting empty queues) from all landing on the alphabetically first one.

    Neighbours marked ``probe`` (their link delay has not been measured lately, e.g. they
    just joined or rejoined) come first, still subject to Alg. 2's test. A link estimate
    improves only by sending over it: ranked by its prior or an old measurement behind
    neighbours whose links were measured fast, such a neighbour could wait for ever while
    they take every task (seen on five hosts: a restarted robot, idle, got no task for 84 s).
    """

    def __init__(self, rng: RandomSource) -> None:
        self._rng = rng
        self._rr = 0  # round-robin offset, advanced after every offload

    def order(self, neighbors: Sequence[NeighborView]) -> list[NeighborView]:
        """Probes first, then by expected delay; ties broken by the rotating round-robin
        offset (over the neighbours' names, one view per neighbour)."""
        n = len(neighbors)
        if n < 2:
            return list(neighbors)
        rank = {name: i for i, name in enumerate(sorted([v.worker for v in neighbors]))}
        rr = self._rr
        # (probe last, D_nm + I_m Gamma_m as expected_delay, rotated rank, position): the
        # position keeps equal keys in their order, as a stable sort by the first three does
        keys = sorted([(not v.probe, v.link_delay + v.input_queue * v.compute_delay,
                        (rank[v.worker] - rr) % n, i) for i, v in enumerate(neighbors)])
        return [neighbors[k[3]] for k in keys]

    def best(self, neighbors: Sequence[NeighborView]) -> NeighborView | None:
        """The first neighbour in :meth:`order` without applying Alg. 2 (for evacuation)."""
        ordered = self.order(neighbors)
        if not ordered:
            return None
        self._rr += 1
        return ordered[0]

    def choose(
        self, o_n: int, i_n: int, gamma_n: float, neighbors: Sequence[NeighborView]
    ) -> Selection:
        """Run Alg. 2 on each neighbour in :meth:`order`; the first that accepts wins."""
        decisions: list[OffloadDecision] = []
        rng = self._rng
        for view in self.order(neighbors):
            decision = offload_rule(
                o_n, i_n, gamma_n, view.input_queue, view.compute_delay, view.link_delay, rng,
                view.worker,
            )
            decisions.append(decision)
            if decision.offload:
                self._rr += 1
                return Selection(view.worker, tuple(decisions))
        return Selection(None, tuple(decisions))
