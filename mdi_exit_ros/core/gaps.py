"""Camera frames that never reached the source: gaps in each publisher's sequence numbers.

A source reads its camera through a keep-last queue (parameter `image_depth`). While the
node is busy, newer frames push older ones out of that queue, and DDS reports nothing: its
SAMPLE_LOST status (rclpy's `message_lost` event) counts samples lost on the way, not the
ones a reader's own history replaced (measured with rmw_fastrtps in the Kilted wheels:
190 of 200 frames replaced, 0 reported). Every sample carries its writer's sequence number
(1, 2, 3, ... per publisher; rmw's `publication_sequence_number`), so the frames lost
between two that arrived are the gap between their numbers, whatever lost them.

Exact per publisher from its first delivered frame on. Not seen: frames a publisher sent
before its first delivered one (published before the source subscribed, or lost at once)
and after its last delivered one (the newest frame stays in a keep-last queue, so only a
camera that vanishes can lose its last frames).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

DEFAULT_PUBLISHERS = 64  # camera publishers remembered at once (a bound: they come and go)
# A jump of more frames than this between two delivered ones (a day at 10 frames/s) is not
# believed: any writer on the image topic picks its own numbers, and two jumps of 2**63
# would otherwise push the count past WorkerStats' uint64. It starts the publisher over.
MAX_GAP = 1_000_000


class SequenceGaps:
    """The last sequence number seen per publisher, and the frames skipped in between."""

    def __init__(self, capacity: int = DEFAULT_PUBLISHERS) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._last: OrderedDict[Hashable, int] = OrderedDict()
        self.lost = 0  # frames skipped so far, over all publishers
        self.implausible = 0  # numbers not believed (jumps over MAX_GAP, out of order)

    def observe(self, publisher: Hashable, seq: int) -> int:
        """Frame number `seq` of `publisher` arrived; returns how many of its frames were
        skipped since the one before (0 for its first frame).

        `publisher` identifies one writer (its GUID: a restarted camera is a new writer), or
        is None where the RMW does not say which writer sent a sample and one camera at a
        time is followed. A number at or below the last one is a duplicate or reordering
        under a writer's key (ignored: the last number stays), and under None a camera that
        started again (it starts over). A jump over MAX_GAP starts the publisher over.
        Neither is counted as lost; both count in `implausible` (but a None restart).
        """
        last = self._last.pop(publisher, None)
        if last is not None and seq <= last and publisher is not None:
            self._last[publisher] = last  # a duplicate or reordered sample of this writer
            self.implausible += 1
            return 0
        self._last[publisher] = seq
        while len(self._last) > self.capacity:  # the longest silent publisher goes
            self._last.popitem(last=False)
        if last is None or seq <= last:
            return 0
        skipped = seq - last - 1
        if skipped > MAX_GAP:
            self.implausible += 1
            return 0
        self.lost += skipped
        return skipped

    def forget(self, publisher: Hashable) -> None:
        """Stop following `publisher` (its next frame starts it over)."""
        self._last.pop(publisher, None)

    def __len__(self) -> int:
        return len(self._last)
