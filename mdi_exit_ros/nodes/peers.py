"""Publishers to other workers' topics (tasks, acks, exits): validated, bounded, locked.

A worker talks to peers it learns of from the wire: the sender of a task, the source of a
frame. Three rules follow.
- A peer's name becomes a topic name, so it must pass the worker-id rule first (rclpy raises
  on an invalid topic name); a refused name is counted and logged at a bounded rate.
- The publishers are a bounded cache shared by the executor, inference and link threads:
  one lock, at most `max_peers` topics (the least recently used one is destroyed beyond that).
- A publisher created just now has matched no reader yet, and a reliable, volatile writer
  never delivers what it published before a reader matched: the first task, ack or exit to a
  new peer would be lost, and its frame would wait for its deadline. So each topic has an
  outbox: messages wait there, in order, until the publisher has matched a reader, and
  `flush()` (the worker's tick) sends them. An outbox is bounded in count and age; what it
  drops (a peer that never appears) is counted and logged, and the ledgers recover it (ack
  timeout and lease for tasks, the source's deadline for frames).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from mdi_exit_ros.core import is_worker_id
from mdi_exit_ros.topics import ACKS, DEFAULT_FLEET, EXITS, TASKS, peer_topic

__all__ = ["ACKS", "EXITS", "TASKS", "PeerPublishers", "peer_topic"]

MAX_PEERS = 256  # distinct peer topics with a publisher at once
MAX_PENDING = 1000  # messages waiting for one topic's reader
MAX_PENDING_TOTAL = 4096  # messages waiting over all topics (tasks carry tensors)
PENDING_EXPIRY = 30.0  # s a message may wait for a reader
LOG_PERIOD = 5.0  # s between two log lines about the same kind of refusal

@dataclass
class _Peer:
    publisher: Any
    pending: deque = field(default_factory=deque)  # (queued_at, msg)


class PeerPublishers:
    """`send(peer, kind, msg_type, msg)` to `<fleet>/<peer>/<kind>`; see the module docstring."""

    def __init__(self, node: Any, qos: Any, max_peers: int = MAX_PEERS,
                 max_pending: int = MAX_PENDING, expiry: float = PENDING_EXPIRY,
                 max_pending_total: int = MAX_PENDING_TOTAL,
                 fleet: str = DEFAULT_FLEET) -> None:
        self._node = node
        self._fleet = fleet
        self._qos = qos
        self._max_peers = max_peers
        self._max_pending = max_pending
        self._max_total = max_pending_total
        self._total = 0  # messages waiting over all topics
        self._expiry = expiry
        self._lock = threading.Lock()
        self._peers: OrderedDict[str, _Peer] = OrderedDict()
        self._closed = False
        self.refused_names = 0  # peer names that fail the worker-id rule
        self.dropped = 0  # messages dropped unsent (outbox full or expired, evicted, closed)

    def send(self, peer: str, kind: str, msg_type: type, msg: Any) -> bool:
        """Publish now if the topic has a reader, else queue it; False if refused or dropped."""
        if not is_worker_id(peer):
            with self._lock:
                self.refused_names += 1
            self._node.get_logger().warning(
                f"not sending to {peer[:80]!r}: not a valid worker id",
                throttle_duration_sec=LOG_PERIOD)
            return False
        topic = peer_topic(peer, kind, self._fleet)
        with self._lock:
            if self._closed:
                return False
            entry = self._entry(topic, msg_type)
            if not entry.pending and entry.publisher.get_subscription_count() > 0:
                entry.publisher.publish(msg)
                return True
            if len(entry.pending) >= self._max_pending or self._total >= self._max_total:
                if not entry.pending:  # the other topics hold the total: refuse this one
                    self.dropped += 1
                    return False
                entry.pending.popleft()
                self._total -= 1
                self.dropped += 1
                self._node.get_logger().warning(
                    f"{topic}: no reader and too many messages waiting; dropped the oldest "
                    f"({self.dropped} dropped so far)", throttle_duration_sec=LOG_PERIOD)
            entry.pending.append((time.monotonic(), msg))
            self._total += 1
            return True

    def _entry(self, topic: str, msg_type: type) -> _Peer:
        """The topic's publisher (created on first use; LRU-bounded); the lock is held."""
        entry = self._peers.get(topic)
        if entry is not None:
            self._peers.move_to_end(topic)
            return entry
        while len(self._peers) >= self._max_peers:
            old_topic, old = self._peers.popitem(last=False)
            self.dropped += len(old.pending)
            self._total -= len(old.pending)
            self._node.destroy_publisher(old.publisher)
            self._node.get_logger().warning(
                f"more than {self._max_peers} peer topics: closed {old_topic}",
                throttle_duration_sec=LOG_PERIOD)
        entry = self._peers[topic] = _Peer(self._node.create_publisher(msg_type, topic,
                                                                       self._qos))
        return entry

    def flush(self) -> None:
        """Send what waits for topics that have a reader now; expire what waited too long."""
        now = time.monotonic()
        with self._lock:
            for topic, entry in self._peers.items():
                if not entry.pending:
                    continue
                if entry.publisher.get_subscription_count() > 0:
                    self._total -= len(entry.pending)
                    while entry.pending:
                        entry.publisher.publish(entry.pending.popleft()[1])
                    continue
                expired = 0
                while entry.pending and now - entry.pending[0][0] > self._expiry:
                    entry.pending.popleft()
                    expired += 1
                if expired:
                    self._total -= expired
                    self.dropped += expired
                    self._node.get_logger().warning(
                        f"{topic}: no reader for {self._expiry:g} s; dropped {expired} "
                        f"message(s)", throttle_duration_sec=LOG_PERIOD)

    def pending(self) -> int:
        with self._lock:
            return self._total

    def close(self) -> None:
        """Destroy every publisher; later sends are refused."""
        with self._lock:
            self._closed = True
            for entry in self._peers.values():
                self.dropped += len(entry.pending)
                self._node.destroy_publisher(entry.publisher)
            self._peers.clear()
            self._total = 0
