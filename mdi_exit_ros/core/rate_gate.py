"""A source's admission decisions around Alg. 3's interval mu: which frame gets in, and the
mu a configuration starts from.

Alg. 3 admits at most one frame every mu seconds. The gate keeps a schedule rather than the
time of the last admission: the next slot is mu after the previous slot, or now if that has
passed, so a camera a little slower than 1/mu is not throttled to half its rate by jitter.
"""

from __future__ import annotations

import math


def start_interval(initial: float, frame_seconds: float, slow_start: bool,
                   mu_min: float, mu_max: float) -> float:
    """mu when a source is configured: `initial`, with slow start never shorter than this
    robot's own compute per frame (`frame_seconds`: from its service times, or measured x
    compute_slowdown; docs/ALGORITHMS.md, 25), and within [mu_min, mu_max]."""
    mu = initial
    if slow_start:
        mu = max(mu, frame_seconds)
    return min(max(mu, mu_min), mu_max)


class RateGate:
    """Alg. 3's gate: at most one frame per mu seconds, on a fixed schedule."""

    def __init__(self, now: float = -math.inf) -> None:
        self.next_admit = now  # the first frame at or after this time gets in

    def restart(self, now: float) -> None:
        """Open the gate at `now` (activation): the next frame gets in."""
        self.next_admit = now

    def admit(self, now: float, mu: float) -> bool:
        """Whether a frame arriving at `now` is admitted; if it is, the next slot is mu later
        (or now, if the schedule fell behind)."""
        if now < self.next_admit:
            return False
        self.next_admit = max(self.next_admit + mu, now)
        return True
