"""NeighborTable: lease, eligibility, seq ordering, in-flight accounting."""

import pytest

from mdi_exit_ros.core import NeighborReport, NeighborTable


def rep(worker: str, seq: int, i_m: int = 0, **kw: object) -> NeighborReport:
    base: dict[str, object] = {"output_queue": 0, "compute_delay": 0.1, "model_id": "mnv2"}
    base.update(kw)
    return NeighborReport(worker, i_m, seq=seq, **base)  # type: ignore[arg-type]


def table(**kw: object) -> NeighborTable:
    return NeighborTable("n", "mnv2", lease=2.0, **kw)  # type: ignore[arg-type]


def test_lease_expiry_and_removal() -> None:
    t = table()
    t.update(rep("a", 1), 0.0)
    t.update(rep("b", 1), 1.0)
    assert t.alive(2.0) == ["a", "b"]
    assert t.alive(2.5) == ["b"] and not t.is_alive("a", 2.5)
    assert [s.worker for s in t.eligible(2.5)] == ["b"]
    assert t.expire(2.5) == ["a"]
    assert "a" not in t and len(t) == 1
    assert t.expire(2.5) == []


def test_old_or_repeated_seq_ignored_and_does_not_renew_lease() -> None:
    t = table()
    assert t.update(rep("a", 5, i_m=3), 0.0)
    assert not t.update(rep("a", 5, i_m=9), 1.0)
    assert not t.update(rep("a", 4, i_m=9), 1.5)
    assert t.effective_input_queue("a") == 3
    assert t.expire(2.1) == ["a"]  # ignored reports did not renew the lease
    assert t.update(rep("a", 0), 3.0)  # restarted neighbour accepted as new


def test_own_report_ignored() -> None:
    t = table()
    assert not t.update(rep("n", 1), 0.0)
    assert len(t) == 0


def test_eligibility_filters() -> None:
    t = table(allowed={"a", "b", "c"})
    t.update(rep("a", 1), 0.0)
    t.update(rep("b", 1, model_id="resnet"), 0.0)
    t.update(rep("c", 1, lifecycle_state="inactive"), 0.0)
    t.update(rep("z", 1), 0.0)  # not a one-hop neighbour in the topology
    assert t.alive(0.0) == ["a", "b", "c", "z"]
    assert [s.worker for s in t.eligible(0.0)] == ["a"]
    t.set_allowed(None)
    assert [s.worker for s in t.eligible(0.0)] == ["a", "z"]
    assert t.allowed is None


def test_in_flight_counts_sent_until_reflected_by_a_later_report() -> None:
    t = table()
    t.update(rep("a", 1, i_m=2), 0.0)
    for _ in range(3):
        t.note_sent("a", 0.1)
    assert t.in_flight("a") == 3 and t.effective_input_queue("a") == 5
    t.note_acked("a", 0.2)
    t.note_acked("a", 0.2)
    t.note_returned("a")  # third one refused
    assert t.in_flight("a") == 2  # acked but no report since
    t.update(rep("a", 2, i_m=4), 0.3)  # report received after both acks: reflected
    assert t.in_flight("a") == 0 and t.effective_input_queue("a") == 4


def test_stale_report_does_not_flood() -> None:
    """An old 'empty' report must not make every task look free to send."""
    t = table()
    t.update(rep("a", 1, i_m=0), 0.0)
    for i in range(10):
        t.note_sent("a", 0.01 * i)
    assert t.effective_input_queue("a") == 10
    t.update(rep("a", 2, i_m=0), 0.2)  # report generated before any task arrived
    assert t.effective_input_queue("a") == 10  # unacked tasks still count


def test_ack_after_report_stays_pending_until_next_report() -> None:
    t = table()
    t.update(rep("a", 1), 0.0)
    t.note_sent("a", 0.0)
    t.update(rep("a", 2), 0.5)
    t.note_acked("a", 0.6)
    assert t.in_flight("a") == 1
    t.update(rep("a", 3, i_m=1), 0.7)
    assert t.in_flight("a") == 0


def test_report_settle_margin() -> None:
    t = table(report_settle=0.5)
    t.update(rep("a", 1), 0.0)
    t.note_sent("a", 0.0)
    t.note_acked("a", 1.0)
    t.update(rep("a", 2), 1.2)  # within the settle margin: may predate the task
    assert t.in_flight("a") == 1
    t.update(rep("a", 3), 1.5)
    assert t.in_flight("a") == 0


def test_exact_rule_with_accepted_counter() -> None:
    t = table()
    t.update(rep("a", 1, tasks_accepted=10), 0.0)
    t.note_sent("a", 0.0)
    t.note_acked("a", 0.1, accepted_count=11)
    t.update(rep("a", 2, tasks_accepted=10), 0.2)  # generated before our task arrived
    assert t.in_flight("a") == 1
    t.update(rep("a", 3, tasks_accepted=12), 0.3)
    assert t.in_flight("a") == 0


def test_notes_for_unknown_neighbour_are_noops() -> None:
    t = table()
    t.note_sent("x", 0.0)
    t.note_acked("x", 0.0)
    t.note_returned("x")
    assert t.in_flight("x") == 0
    with pytest.raises(KeyError):
        t.effective_input_queue("x")


def test_validation() -> None:
    with pytest.raises(ValueError):
        NeighborTable("n", "m", lease=0.0)
    with pytest.raises(ValueError):
        NeighborTable("n", "m", report_settle=-1.0)


def test_eligible_with_a_one_hop_set_among_many_reports() -> None:
    """A fleet-wide state topic brings every robot's report; only the one-hop set (sorted)
    is eligible, and a member that has not reported is simply absent."""
    t = NeighborTable("w0", "mnv2", allowed={"w7", "w3", "w9"})
    for i in range(1, 9):
        t.update(rep(f"w{i}", 1), now=0.0)
    assert [s.worker for s in t.eligible(1.0)] == ["w3", "w7"]
    assert [s.worker for s in NeighborTable("w0", "mnv2").eligible(1.0)] == []
