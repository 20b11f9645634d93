"""OffloadLedger, SeenSet, FrameLedger."""

import pytest

from mdi_exit_ros.core import (
    AckStatus,
    FrameLedger,
    OffloadLedger,
    ResultStatus,
    SeenSet,
    TaskKey,
)

K1 = TaskKey("src", 1, 2)
K2 = TaskKey("src", 2, 2)


def test_timeout_derived_from_link_delay() -> None:
    led = OffloadLedger(min_timeout=0.5, timeout_factor=4.0, max_timeout=10.0)
    assert led.timeout_for(0.01) == 0.5  # floor
    assert led.timeout_for(0.5) == 2.0  # 4 * D_nm
    assert led.timeout_for(0.5, retries=2) == 8.0  # back-off
    assert led.timeout_for(0.5, retries=5) == 10.0  # cap
    with pytest.raises(ValueError):
        OffloadLedger(min_timeout=0.0)
    with pytest.raises(ValueError):
        OffloadLedger(min_timeout=2.0, max_timeout=1.0)


def test_accepting_ack_settles_with_rtt() -> None:
    led = OffloadLedger()
    led.record(K1, 0, "m", "payload", now=1.0, link_delay=0.1)
    assert K1 in led and len(led) == 1 and led.count_to("m") == 1
    res = led.ack(K1, 0, "m", True, now=1.3)
    assert res.status is AckStatus.ACCEPTED and res.rtt == pytest.approx(0.3)
    assert res.entry is not None and res.entry.payload == "payload"
    assert len(led) == 0


def test_rejecting_ack_returns_entry_for_take_back() -> None:
    led = OffloadLedger()
    led.record(K1, 3, "m", "p", now=0.0)
    res = led.ack(K1, 3, "m", False, now=0.1)
    assert res.status is AckStatus.REJECTED and res.entry is not None
    assert res.entry.next_attempt == 4 and K1 not in led


def test_double_record_refused() -> None:
    led = OffloadLedger()
    led.record(K1, 0, "m", "p", now=0.0)
    with pytest.raises(ValueError):
        led.record(K1, 1, "x", "p", now=0.0)


def test_timeout_expiry() -> None:
    led = OffloadLedger(min_timeout=1.0, timeout_factor=1.0)
    led.record(K1, 0, "m", "p1", now=0.0)
    led.record(K2, 0, "m", "p2", now=0.5)
    assert led.expired(0.99) == []
    assert [e.key for e in led.expired(1.0)] == [K1]
    assert [e.key for e in led.expired(10.0)] == [K2]
    assert len(led) == 0


def test_receiver_dead_returns_only_its_entries() -> None:
    led = OffloadLedger()
    led.record(K1, 0, "m", "p1", now=0.0)
    led.record(K2, 0, "x", "p2", now=0.0)
    assert [e.key for e in led.receiver_dead("m")] == [K1]
    assert K2 in led and K1 not in led


def test_late_ack_after_take_back_is_ignored() -> None:
    led = OffloadLedger(min_timeout=1.0)
    led.record(K1, 0, "m", "p", now=0.0)
    assert len(led.expired(5.0)) == 1
    assert led.ack(K1, 0, "m", True, now=6.0).status is AckStatus.IGNORED
    assert led.ack(K1, 0, "m", False, now=6.0).status is AckStatus.IGNORED


def test_ack_from_wrong_receiver_or_future_attempt_ignored() -> None:
    led = OffloadLedger()
    led.record(K1, 1, "m", "p", now=0.0)
    assert led.ack(K1, 1, "x", True, now=0.1).status is AckStatus.IGNORED
    assert led.ack(K1, 2, "m", True, now=0.1).status is AckStatus.IGNORED
    assert K1 in led


def test_older_attempt_accept_settles_resent_task_but_older_reject_does_not() -> None:
    led = OffloadLedger()
    led.record(K1, 2, "m", "p", now=0.0, retries=1)  # re-sent copy
    assert led.ack(K1, 1, "m", False, now=0.1).status is AckStatus.IGNORED
    res = led.ack(K1, 1, "m", True, now=0.2)
    assert res.status is AckStatus.ACCEPTED and res.rtt is None  # Karn: no rtt sample
    assert K1 not in led


def test_older_attempt_accept_measures_its_round_trip_from_its_own_send() -> None:
    """Acks name their attempt, so a late ack of the first copy is an exact round trip: it
    must not be thrown away (a slow link would then only ever be measured by the acks that
    beat the timeout, look fast, and keep receiving tasks that time out)."""
    led = OffloadLedger()
    led.record(K1, 2, "m", "p", now=1.5, retries=2, earlier_sends=((0, 0.0), (1, 0.5)))
    res = led.ack(K1, 0, "m", True, now=1.8)
    assert res.status is AckStatus.ACCEPTED and res.rtt == pytest.approx(1.8)
    led.record(K2, 2, "m", "p", now=1.5, retries=2, earlier_sends=((0, 0.0), (1, 0.5)))
    assert led.ack(K2, 1, "m", True, now=1.8).rtt == pytest.approx(1.3)


def test_seen_set_lru() -> None:
    seen = SeenSet(capacity=2)
    assert seen.add("a") and seen.add("b")
    assert not seen.add("a")  # duplicate, refreshed
    assert seen.add("c")  # evicts b (least recent)
    assert "a" in seen and "c" in seen and "b" not in seen and len(seen) == 2
    seen.discard("a")
    seen.discard("zz")
    assert "a" not in seen
    with pytest.raises(ValueError):
        SeenSet(0)


def test_frame_ledger_first_result_wins() -> None:
    fl = FrameLedger()
    fl.admit(1, 0.0, deadline=5.0)
    fl.admit(2, 0.0)
    with pytest.raises(ValueError):
        fl.admit(1, 0.1)
    assert fl.result(1, 1.0, result="cat") is ResultStatus.FIRST
    assert fl.result(1, 1.5, result="dog") is ResultStatus.DUPLICATE
    record = fl.get(1)
    assert record is not None and record.result == "cat" and record.completed_at == 1.0
    assert fl.result(99, 1.0) is ResultStatus.UNKNOWN
    assert fl.pending() == [2]
    c = fl.counters()
    assert (c["admitted"], c["completed"], c["duplicates"], c["unknown"]) == (2, 1, 1, 1)


def test_frame_ledger_overdue_is_reported_not_forgotten() -> None:
    fl = FrameLedger()
    fl.admit(1, 0.0, deadline=1.0)
    fl.admit(2, 0.0, deadline=3.0)
    fl.admit(3, 0.0)  # no deadline
    assert fl.overdue(1.0) == []
    assert fl.overdue(2.0) == [1]
    assert fl.overdue(4.0) == [1, 2]
    assert fl.overdue_count == 2  # each frame counted once
    assert fl.pending() == [1, 2, 3]
    assert fl.result(1, 4.5) is ResultStatus.FIRST  # a late result still completes it
    assert fl.overdue(5.0) == [2]


def test_frame_ledger_readmit_abandon_refuse() -> None:
    fl = FrameLedger()
    fl.admit(1, 0.0, deadline=1.0)
    assert fl.overdue(2.0) == [1]
    fl.readmit(1, 100, 2.0, deadline=5.0)  # the frame travels again as data id 100
    assert fl.frame_of(100) == 1 and fl.frame_of(1) == 1
    assert fl.overdue(3.0) == [] and fl.pending() == [1]
    with pytest.raises(ValueError):
        fl.readmit(1, 100, 3.0)  # alias already in use
    with pytest.raises(ValueError):
        fl.admit(100, 3.0)
    with pytest.raises(KeyError):
        fl.readmit(7, 101, 3.0)
    assert fl.result(100, 4.0) is ResultStatus.FIRST  # answered via the alias
    assert fl.result(1, 4.5) is ResultStatus.DUPLICATE  # the lost copy turned up after all
    fl.admit(2, 0.0)
    assert fl.abandon(2) and not fl.abandon(2)
    assert fl.result(2, 9.0) is ResultStatus.LATE
    fl.refuse()
    fl.refuse()
    c = fl.counters()
    assert c["dropped_at_admission"] == 2 and c["readmitted"] == 1 and c["abandoned"] == 1
    assert c["late"] == 1 and c["duplicates"] == 1 and c["completed"] == 1


def test_frame_ledger_bounded_memory() -> None:
    fl = FrameLedger(completed_capacity=2)
    for i in range(4):
        fl.admit(i, 0.0)
        fl.result(i, 1.0)
    assert fl.get(0) is None and fl.get(3) is not None
    assert fl.result(0, 2.0) is ResultStatus.UNKNOWN
