"""Ledgers that make "nothing is lost" checkable.

* :class:`OffloadLedger` (sender side, per hop): a task sent to a neighbour is held until
  that neighbour acknowledges it. A refusal, a missing ack or the neighbour's death hands
  it back to the sender, so a task is never left in the void between two workers.
* :class:`SeenSet` (receiver side): a re-sent task the receiver already holds is acked
  again but not run twice.
* :class:`FrameLedger` (source side, end to end): every admitted frame is tracked until its
  first result; later results are counted as duplicates, late frames are reported, frames
  refused at admission are counted. Nothing disappears silently.
"""

from __future__ import annotations

import enum
import math
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .task import TaskKey

DEFAULT_MIN_TIMEOUT = 0.5  # s: above ROS/DDS jitter on a loaded WiFi network
DEFAULT_TIMEOUT_FACTOR = 4.0  # an ack needs ~2 D_nm (rtt); 2x margin on top
DEFAULT_MAX_TIMEOUT = 30.0  # s: cap for the exponential back-off of re-sends
DEFAULT_SEEN_CAPACITY = 4096  # remembered task ids: far more than can be in flight at once

__all__ = [
    "AckResult",
    "AckStatus",
    "FrameLedger",
    "FrameRecord",
    "InFlight",
    "OffloadLedger",
    "ResultStatus",
    "SeenSet",
    "TaskKey",
]


@dataclass
class InFlight:
    """A task sent to ``receiver`` and not yet acknowledged."""

    key: TaskKey
    attempt: int
    receiver: str
    sent_at: float
    deadline: float  # no ack by then -> timeout
    payload: Any  # the Task object (with its tensor) kept for re-sending or taking back
    retries: int = 0  # re-sends of this task to the same receiver so far
    # (attempt, sent_at) of the earlier sends of this task to the same receiver, oldest
    # first: a late ack names its attempt, so its round trip is known exactly (see ``ack``)
    earlier_sends: tuple[tuple[int, float], ...] = ()

    @property
    def next_attempt(self) -> int:
        """Attempt number to use when the task is taken back or re-sent."""
        return self.attempt + 1


class AckStatus(enum.Enum):
    """What an incoming ack did to the ledger."""

    ACCEPTED = "accepted"  # the receiver owns the task now
    REJECTED = "rejected"  # the receiver refused it: the sender must take it back
    IGNORED = "ignored"  # no matching entry: late, duplicated or from the wrong receiver


@dataclass(frozen=True)
class AckResult:
    """Outcome of :meth:`OffloadLedger.ack`."""

    status: AckStatus
    entry: InFlight | None = None  # the settled entry (ACCEPTED / REJECTED)
    rtt: float | None = None  # send->ack seconds when the ack matches the attempt exactly


class OffloadLedger:
    """Tasks offloaded and not yet acknowledged, one entry per task key.

    Timeout = ``min(max_timeout, max(min_timeout, factor * D_nm) * 2**retries)``: an ack
    comes after about one round trip (~2 D_nm), the floor absorbs scheduling jitter when
    D_nm is tiny, and repeated re-sends back off exponentially as in TCP.
    """

    def __init__(
        self,
        *,
        min_timeout: float = DEFAULT_MIN_TIMEOUT,
        timeout_factor: float = DEFAULT_TIMEOUT_FACTOR,
        max_timeout: float = DEFAULT_MAX_TIMEOUT,
    ) -> None:
        if not (math.isfinite(min_timeout) and min_timeout > 0):
            raise ValueError(f"min_timeout must be finite and > 0, got {min_timeout}")
        if not (math.isfinite(timeout_factor) and timeout_factor > 0):
            raise ValueError(f"timeout_factor must be finite and > 0, got {timeout_factor}")
        if not max_timeout >= min_timeout:
            raise ValueError(f"max_timeout must be >= min_timeout ({max_timeout} < {min_timeout})")
        self.min_timeout = float(min_timeout)
        self.timeout_factor = float(timeout_factor)
        self.max_timeout = float(max_timeout)
        self._entries: dict[TaskKey, InFlight] = {}

    def timeout_for(self, link_delay: float, retries: int = 0) -> float:
        """Seconds to wait for an ack of a task whose one-way delay is ``link_delay``."""
        base = max(self.min_timeout, self.timeout_factor * link_delay)
        return min(self.max_timeout, base * 2.0 ** min(retries, 16))

    def record(
        self,
        key: TaskKey,
        attempt: int,
        receiver: str,
        payload: Any,
        now: float,
        link_delay: float = 0.0,
        retries: int = 0,
        earlier_sends: tuple[tuple[int, float], ...] = (),
    ) -> InFlight:
        """Hold a task just sent to ``receiver``; a key can be in flight only once.

        ``earlier_sends``: (attempt, sent_at) of the copies sent to the same receiver before
        this re-send, so a late ack of one of them still yields its round trip.
        """
        if key in self._entries:
            raise ValueError(f"task {key} is already in flight to {self._entries[key].receiver}")
        entry = InFlight(
            key=key,
            attempt=attempt,
            receiver=receiver,
            sent_at=now,
            deadline=now + self.timeout_for(link_delay, retries),
            payload=payload,
            retries=retries,
            earlier_sends=tuple(earlier_sends),
        )
        self._entries[key] = entry
        return entry

    def ack(
        self, key: TaskKey, attempt: int, receiver: str, accepted: bool, now: float
    ) -> AckResult:
        """Settle an entry with the receiver's ack.

        * Ack for the attempt in flight, from its receiver: settles it either way.
        * Accepting ack for an *older* attempt to the same receiver (the older ack was slow,
          the task was re-sent): the receiver holds the task, so it is settled as accepted;
          the re-sent copy will be recognised there as a duplicate. Its round trip is
          measured from that older copy's send (acks name their attempt, so unlike TCP's
          retransmissions, Karn's ambiguity does not arise). Without that sample a slow link
          would only ever be measured by the acks that beat the timeout, look fast, and keep
          receiving tasks that time out (a capped link in test_multihost.py did).
        * Anything else (entry already taken back, other receiver, refusal of an older
          attempt) is ignored: acting on it could lose or duplicate the task.
        """
        entry = self._entries.get(key)
        if entry is None or entry.receiver != receiver or attempt > entry.attempt:
            return AckResult(AckStatus.IGNORED)
        if attempt == entry.attempt:
            del self._entries[key]
            status = AckStatus.ACCEPTED if accepted else AckStatus.REJECTED
            return AckResult(status, entry, max(0.0, now - entry.sent_at))
        if accepted:
            del self._entries[key]
            sent_at = dict(entry.earlier_sends).get(attempt)
            rtt = None if sent_at is None else max(0.0, now - sent_at)
            return AckResult(AckStatus.ACCEPTED, entry, rtt)
        return AckResult(AckStatus.IGNORED)

    def expired(self, now: float) -> list[InFlight]:
        """Remove and return entries whose ack deadline has passed (oldest first)."""
        late = [e for e in self._entries.values() if now >= e.deadline]
        for entry in late:
            del self._entries[entry.key]
        return sorted(late, key=lambda e: (e.sent_at, e.key))

    def next_deadline(self) -> float:
        """The earliest ack deadline (inf when nothing is in flight): :meth:`expired`
        returns nothing before then."""
        if not self._entries:
            return math.inf
        return min(e.deadline for e in self._entries.values())

    def receiver_dead(self, receiver: str) -> list[InFlight]:
        """Remove and return every entry sent to a neighbour that was declared dead."""
        gone = [e for e in self._entries.values() if e.receiver == receiver]
        for entry in gone:
            del self._entries[entry.key]
        return sorted(gone, key=lambda e: (e.sent_at, e.key))

    def cancel(self, key: TaskKey) -> InFlight | None:
        """Remove an entry without an ack (the task came back by another way)."""
        return self._entries.pop(key, None)

    def get(self, key: TaskKey) -> InFlight | None:
        """The entry for a key, if in flight."""
        return self._entries.get(key)

    def count_to(self, receiver: str) -> int:
        """Entries in flight to one receiver."""
        return sum(1 for e in self._entries.values() if e.receiver == receiver)

    def entries(self) -> list[InFlight]:
        """All entries (a copy), oldest first."""
        return sorted(self._entries.values(), key=lambda e: (e.sent_at, e.key))

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[InFlight]:
        return iter(self.entries())


class SeenSet:
    """Bounded LRU set of task ids a receiver accepted, for duplicate recognition.

    A duplicate can only arrive while its sender still waits for an ack, i.e. within a few
    timeouts; ``capacity`` just has to exceed the tasks accepted in that window.
    """

    def __init__(self, capacity: int = DEFAULT_SEEN_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._keys: OrderedDict[Hashable, None] = OrderedDict()

    def add(self, key: Hashable) -> bool:
        """Remember ``key``; True if it was new, False if already seen (then refreshed)."""
        if key in self._keys:
            self._keys.move_to_end(key)
            return False
        self._keys[key] = None
        if len(self._keys) > self.capacity:
            self._keys.popitem(last=False)
        return True

    def discard(self, key: Hashable) -> None:
        """Forget ``key``: the task left this worker, so it may legitimately come back."""
        self._keys.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)


class ResultStatus(enum.Enum):
    """What a result did at the source's frame ledger."""

    FIRST = "first"  # the frame's answer
    DUPLICATE = "duplicate"  # the frame already had its answer
    LATE = "late"  # the caller had abandoned the frame
    UNKNOWN = "unknown"  # never admitted here (or forgotten long ago)


@dataclass
class FrameRecord:
    """An admitted frame awaiting (or holding) its result."""

    data_id: int
    admitted_at: float
    deadline: float | None
    aliases: list[int] = field(default_factory=list)  # data ids of re-admitted copies
    completed_at: float | None = None
    result: Any = None
    reported_overdue: bool = False


class FrameLedger:
    """End-to-end accounting of frames at their source.

    Per-hop ledgers cannot cover a worker that crashes after accepting a task; this one
    notices (``overdue``) and lets the caller decide: wait, re-admit (``readmit``) or give
    up (``abandon``). A re-admitted frame travels under a *new* data id (an alias of the
    original), so receivers that saw the lost copy do not suppress it as a duplicate and
    no wire field is needed. The first result of any alias answers the frame; later ones are
    counted as duplicates.
    """

    def __init__(self, completed_capacity: int = 100_000) -> None:
        if completed_capacity < 1:
            raise ValueError(f"completed_capacity must be >= 1, got {completed_capacity}")
        self._pending: dict[int, FrameRecord] = {}
        self._closed: OrderedDict[int, FrameRecord] = OrderedDict()
        self._closed_capacity = completed_capacity
        self._alias: dict[int, int] = {}  # alias data id -> original data id
        self.admitted = 0
        self.completed = 0
        self.duplicates = 0
        self.overdue_count = 0
        self.dropped_at_admission = 0
        self.readmitted = 0
        self.abandoned = 0
        self.late = 0
        self.unknown = 0

    def _known(self, data_id: int) -> bool:
        return data_id in self._pending or data_id in self._closed or data_id in self._alias

    def admit(self, data_id: int, now: float, deadline: float | None = None) -> FrameRecord:
        """Register a frame admitted at ``now``; ``deadline`` is absolute (None = no deadline)."""
        if self._known(data_id):
            raise ValueError(f"data_id {data_id} was already admitted")
        record = FrameRecord(data_id, now, deadline)
        self._pending[data_id] = record
        self.admitted += 1
        return record

    def refuse(self) -> None:
        """Count a frame the admission controller did not admit (never silent)."""
        self.dropped_at_admission += 1

    def readmit(
        self, data_id: int, new_data_id: int, now: float, deadline: float | None = None
    ) -> None:
        """Send a pending frame again as ``new_data_id`` (an alias), with a new deadline."""
        record = self._pending.get(self.frame_of(data_id))
        if record is None:
            raise KeyError(f"data_id {data_id} is not pending")
        if self._known(new_data_id):
            raise ValueError(f"data_id {new_data_id} is already in use")
        record.aliases.append(new_data_id)
        self._alias[new_data_id] = record.data_id
        record.deadline = deadline
        record.reported_overdue = False
        self.readmitted += 1

    def frame_of(self, data_id: int) -> int:
        """The original data id of a frame, given any of its aliases."""
        return self._alias.get(data_id, data_id)

    def result(self, data_id: int, now: float, result: Any = None) -> ResultStatus:
        """Record a result (for a frame or any alias); only the first one per frame counts."""
        data_id = self.frame_of(data_id)
        record = self._pending.pop(data_id, None)
        if record is not None:
            record.completed_at, record.result = now, result
            self._close(record)
            self.completed += 1
            return ResultStatus.FIRST
        closed = self._closed.get(data_id)
        if closed is None:
            self.unknown += 1
            return ResultStatus.UNKNOWN
        if closed.completed_at is None:
            self.late += 1
            return ResultStatus.LATE
        self.duplicates += 1
        return ResultStatus.DUPLICATE

    def overdue(self, now: float) -> list[int]:
        """Pending frames past their deadline (still pending: the caller decides)."""
        late = []
        for data_id, record in self._pending.items():
            if record.deadline is not None and now > record.deadline:
                late.append(data_id)
                if not record.reported_overdue:
                    record.reported_overdue = True
                    self.overdue_count += 1
        return sorted(late)

    def should_expire(self, data_id: int, max_readmissions: int) -> bool:
        """An overdue frame already admitted again `max_readmissions` times: answer it as
        expired instead of adding one more copy to the queues that made it late."""
        record = self._pending.get(self.frame_of(data_id))
        return record is not None and len(record.aliases) >= max_readmissions

    def abandon(self, data_id: int) -> bool:
        """Give up on a pending frame; a result arriving later is counted as late."""
        record = self._pending.pop(self.frame_of(data_id), None)
        if record is None:
            return False
        self._close(record)
        self.abandoned += 1
        return True

    def _close(self, record: FrameRecord) -> None:
        self._closed[record.data_id] = record
        if len(self._closed) > self._closed_capacity:
            _, old = self._closed.popitem(last=False)
            for alias in old.aliases:
                self._alias.pop(alias, None)

    def get(self, data_id: int) -> FrameRecord | None:
        """The record of a pending or recently closed frame (by id or alias)."""
        data_id = self.frame_of(data_id)
        return self._pending.get(data_id) or self._closed.get(data_id)

    def is_pending(self, data_id: int) -> bool:
        """Admitted (by id or alias) and not answered or abandoned yet."""
        return self.frame_of(data_id) in self._pending

    def pending_count(self) -> int:
        """How many frames are admitted and not answered or abandoned (``pending()`` without
        building the list: the simulator asks after every event of its drain)."""
        return len(self._pending)

    def pending(self) -> list[int]:
        """Original ids of frames admitted and without a result yet."""
        return sorted(self._pending)

    def counters(self) -> dict[str, int]:
        """All counters, for logs and diagnostics."""
        return {
            "admitted": self.admitted,
            "completed": self.completed,
            "pending": len(self._pending),
            "duplicates": self.duplicates,
            "overdue": self.overdue_count,
            "dropped_at_admission": self.dropped_at_admission,
            "readmitted": self.readmitted,
            "abandoned": self.abandoned,
            "late": self.late,
            "unknown": self.unknown,
        }
