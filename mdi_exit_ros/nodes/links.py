"""Emulated links for experiments on one machine: delay and bandwidth per neighbour.

With `link_delay` / `link_bandwidth` set, a task sent to neighbour m, and the ack for a task
m sent here, leave after the transmissions queued before them on that link (size / bandwidth
each) plus the delay, as on a real link of that speed; with no delay and an unlimited
(infinite) bandwidth, sends go straight out. Acks cross the link too, so a sender measures a
round trip of twice the delay (plus the transmission), which is what its D_nm estimator
(core.LinkDelayEstimator) models: D_nm then comes out as the emulated one-way delay, not
half of it. Exit results are not delayed. A thread of its own does the waiting, so neither
inference nor the executor ever sleeps for the network.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from collections.abc import Callable
from typing import Any


class LinkEmulator:
    """Delays `publish(receiver, msg)` calls as an emulated link would."""

    def __init__(self, publish: Callable[[str, Any], None]) -> None:
        self._publish = publish
        self._delay = 0.0
        self._bandwidth = math.inf
        self._free_at: dict[str, float] = {}
        self._heap: list[tuple[float, int, str, Any]] = []
        self._order = itertools.count()
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def configure(self, delay: float, bandwidth: float) -> None:
        """Seconds added per send; bytes/s per link (math.inf: no limit)."""
        with self._cv:
            self._delay, self._bandwidth = float(delay), float(bandwidth)

    def send(self, receiver: str, msg: Any, size_bytes: int) -> None:
        with self._cv:
            if self._delay <= 0.0 and math.isinf(self._bandwidth):
                direct = True
            else:
                direct = False
                now = time.monotonic()
                start = max(now, self._free_at.get(receiver, now))
                done = start + size_bytes / self._bandwidth  # 0 s on an unlimited link
                self._free_at[receiver] = done
                heapq.heappush(self._heap, (done + self._delay, next(self._order), receiver,
                                            msg))
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="links",
                                                    daemon=True)
                    self._thread.start()
                self._cv.notify()
        if direct:
            self._publish(receiver, msg)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._closed and (not self._heap
                                            or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cv.wait(timeout)
                if self._closed:
                    return
                _, _, receiver, msg = heapq.heappop(self._heap)
            self._publish(receiver, msg)

    def close(self) -> None:
        """Stop; sends still waiting are dropped (their ack timeouts take them back)."""
        with self._cv:
            self._closed = True
            self._cv.notify()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
