"""Alg. 2: each branch, the probability, neighbour order, round-robin fairness."""

import random

import pytest

from mdi_exit_ros.core import (
    NeighborView,
    OffloadBranch,
    OffloadSelector,
    offload_probability,
    offload_rule,
)


class FixedRng:
    """RNG stub returning preset values, recording how often it was drawn."""

    def __init__(self, *values: float) -> None:
        self.values = list(values)
        self.draws = 0

    def random(self) -> float:
        self.draws += 1
        return self.values.pop(0)


def test_deterministic_branch() -> None:
    rng = FixedRng()
    # O_n=5 > I_m=2 and I_n*G_n = 10*0.1 = 1.0 > D + I_m*G_m = 0.1 + 2*0.1 = 0.3
    d = offload_rule(5, 10, 0.1, 2, 0.1, 0.1, rng, neighbor="m")
    assert d.branch is OffloadBranch.DETERMINISTIC and d.offload and d.probability == 1.0
    assert d.local_delay == pytest.approx(1.0) and d.remote_delay == pytest.approx(0.3)
    assert rng.draws == 0


def test_probabilistic_branch_exact_with_stub() -> None:
    # O_n=5 > I_m=2; local = 2*0.1 = 0.2 <= remote = 0.2 + 2*0.1 = 0.4 -> p = 0.5
    d = offload_rule(5, 2, 0.1, 2, 0.1, 0.2, FixedRng(0.49))
    assert d.branch is OffloadBranch.PROBABILISTIC and d.probability == pytest.approx(0.5)
    assert d.offload
    d = offload_rule(5, 2, 0.1, 2, 0.1, 0.2, FixedRng(0.5))
    assert d.branch is OffloadBranch.PROBABILISTIC and not d.offload


def test_probabilistic_branch_empirical() -> None:
    rng = random.Random(1234)
    trials = 20_000
    # local = 3*0.1 = 0.3, remote = 0.5 + 1*0.5 = 1.0 -> p = 0.3
    hits = sum(offload_rule(4, 3, 0.1, 1, 0.5, 0.5, rng).offload for _ in range(trials))
    assert hits / trials == pytest.approx(0.3, abs=0.015)


def test_keep_branch_when_neighbour_queue_not_shorter() -> None:
    rng = FixedRng()
    d = offload_rule(3, 100, 1.0, 3, 0.0, 0.0, rng)  # O_n == I_m: line 2/4 both false
    assert d.branch is OffloadBranch.KEEP and not d.offload and d.probability == 0.0
    assert rng.draws == 0


def test_equal_delays_fall_to_probabilistic_with_p_one() -> None:
    d = offload_rule(2, 1, 1.0, 0, 1.0, 1.0, FixedRng(0.999))  # local == remote == 1
    assert d.branch is OffloadBranch.PROBABILISTIC and d.probability == 1.0 and d.offload


def test_zero_denominator_gives_probability_one() -> None:
    assert offload_probability(0.0, 0.0) == 1.0
    # I_n = 0 (local 0), D = 0, I_m = 0: 0 > 0 false -> line 4; 0/0 guarded -> p = 1
    d = offload_rule(1, 0, 0.1, 0, 0.1, 0.0, FixedRng(0.999))
    assert d.branch is OffloadBranch.PROBABILISTIC and d.probability == 1.0 and d.offload


def test_idle_local_worker_keeps_with_probability_zero() -> None:
    d = offload_rule(1, 0, 0.1, 0, 0.1, 0.05, FixedRng(0.0))
    assert d.probability == 0.0 and not d.offload


def view(name: str, i_m: float, gamma: float = 0.1, d: float = 0.01) -> NeighborView:
    return NeighborView(name, i_m, gamma, d)


def test_selector_tries_lowest_expected_delay_first() -> None:
    sel = OffloadSelector(FixedRng())
    neighbors = [view("a", 3), view("b", 0), view("c", 1)]
    assert [v.worker for v in sel.order(neighbors)] == ["b", "c", "a"]
    s = sel.choose(5, 10, 0.1, neighbors)  # all deterministic; b is cheapest
    assert s.target == "b" and len(s.decisions) == 1


def test_selector_tries_probes_first_then_by_expected_delay() -> None:
    sel = OffloadSelector(FixedRng())
    neighbors = [view("a", 0, d=0.001), NeighborView("b", 2, 0.1, 0.5, probe=True),
                 view("c", 1), NeighborView("d", 0, 0.1, 0.2, probe=True)]
    assert [v.worker for v in sel.order(neighbors)] == ["d", "b", "a", "c"]
    s = sel.choose(5, 10, 0.1, neighbors)
    assert s.target == "d" and len(s.decisions) == 1


def test_selector_falls_through_to_next_neighbour() -> None:
    sel = OffloadSelector(FixedRng(0.99))
    # b: I_m = 4 -> O_n=4 not > 4 -> keep; a: I_m = 1, probabilistic, draw 0.99 < p? p=...
    neighbors = [view("a", 1, gamma=1.0, d=0.0), view("b", 4, gamma=0.0, d=0.0)]
    s = sel.choose(4, 1, 1.0, neighbors)  # b first (remote 0), keeps; a: local 1, remote 1
    assert [d.neighbor for d in s.decisions] == ["b", "a"]
    assert s.decisions[0].branch is OffloadBranch.KEEP
    assert s.decisions[1].branch is OffloadBranch.PROBABILISTIC
    assert s.target == "a"  # p = 1 -> accepted


def test_selector_none_when_no_neighbour_accepts() -> None:
    sel = OffloadSelector(FixedRng())
    s = sel.choose(1, 5, 0.1, [view("a", 1), view("b", 2)])
    assert s.target is None and {d.branch for d in s.decisions} == {OffloadBranch.KEEP}
    assert sel.choose(3, 3, 0.1, []).target is None


def test_round_robin_among_equal_neighbours() -> None:
    sel = OffloadSelector(FixedRng())
    neighbors = [view("c", 0), view("a", 0), view("b", 0)]
    picks = [sel.choose(10, 10, 1.0, neighbors).target for _ in range(6)]
    assert picks == ["a", "b", "c", "a", "b", "c"]


def test_round_robin_does_not_override_cheaper_neighbour() -> None:
    sel = OffloadSelector(FixedRng())
    neighbors = [view("a", 2), view("b", 0)]
    assert [sel.choose(10, 10, 1.0, neighbors).target for _ in range(3)] == ["b"] * 3
