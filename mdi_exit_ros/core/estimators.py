"""Online estimates of Gamma_n (compute seconds per task) and D_nm (link delay), Alg. 2 inputs.

Everything is an exponentially weighted moving average (EWMA): O(1) memory, tracks slow
drift (thermal throttling, WiFi rate changes), and is easy to reason about. Each estimate
has a prior so that Alg. 2 has numbers to compare before the first measurement.
"""

from __future__ import annotations

import math

DEFAULT_WEIGHT = 0.2  # weight of a new sample: ~5-sample memory, like TCP's srtt (1/8..1/4)
DEFAULT_COMPUTE_PRIOR = 0.05  # s per task: order of a Jetson Nano MobileNetV2 segment
DEFAULT_LINK_LATENCY = 0.005  # s one way: typical WiFi hop
DEFAULT_LINK_BANDWIDTH = 1.25e6  # bytes/s = 10 Mbit/s: conservative WiFi goodput
DEFAULT_STALE_AFTER = 10.0  # s without samples before the estimate decays to the prior
DEFAULT_HALF_LIFE = 10.0  # s for the stale estimate to move halfway to the prior


def _check_weight(weight: float) -> float:
    weight = float(weight)
    if not 0.0 < weight <= 1.0:
        raise ValueError(f"weight must be in (0, 1], got {weight}")
    return weight


class Ewma:
    """``v <- v + w (x - v)``; the first sample initialises v (no bias toward 0)."""

    def __init__(self, weight: float = DEFAULT_WEIGHT, initial: float | None = None) -> None:
        self._w = _check_weight(weight)
        self._v = None if initial is None else float(initial)
        self._count = 0

    @property
    def weight(self) -> float:
        """Weight of a new sample."""
        return self._w

    @property
    def value(self) -> float | None:
        """Current average, or None before the first sample (and without ``initial``)."""
        return self._v

    @property
    def count(self) -> int:
        """Samples seen."""
        return self._count

    def update(self, x: float) -> float:
        """Fold in one sample and return the new average."""
        x = float(x)
        if not math.isfinite(x):
            raise ValueError(f"sample must be finite, got {x}")
        self._v = x if self._v is None else self._v + self._w * (x - self._v)
        self._count += 1
        return self._v

    def value_or(self, default: float) -> float:
        """The average, or ``default`` before any sample."""
        return default if self._v is None else self._v


class ComputeDelayEstimator:
    """Gamma_n: EWMA of measured compute seconds per task, overall and per task index.

    The paper's footnote 1 assumes exits are placed so tasks cost about the same, hence one
    Gamma_n. Alg. 2 uses the overall value (that is what neighbours report); per-index
    averages are kept because real exit placements are not that even, for logs and
    simulators. ``gamma(k)`` falls back to the overall value, then to the prior.
    """

    def __init__(
        self, prior: float = DEFAULT_COMPUTE_PRIOR, weight: float = DEFAULT_WEIGHT
    ) -> None:
        if not (math.isfinite(prior) and prior >= 0):
            raise ValueError(f"prior must be finite and >= 0, got {prior}")
        self._prior = float(prior)
        self._weight = _check_weight(weight)
        self._overall = Ewma(self._weight)
        self._per_task: dict[int, Ewma] = {}

    def observe(self, seconds: float, task_index: int | None = None) -> None:
        """Record the measured compute time of one task (optionally of task ``task_index``)."""
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"compute seconds must be finite and >= 0, got {seconds}")
        self._overall.update(seconds)
        if task_index is not None:
            ewma = self._per_task.get(task_index)
            if ewma is None:
                ewma = self._per_task[task_index] = Ewma(self._weight)
            ewma.update(seconds)

    def gamma(self, task_index: int | None = None) -> float:
        """Gamma_n overall, or for one task index when given (with fallbacks)."""
        overall = self._overall.value_or(self._prior)
        if task_index is None:
            return overall
        ewma = self._per_task.get(task_index)
        return overall if ewma is None else ewma.value_or(overall)

    @property
    def samples(self) -> int:
        """Number of observations so far."""
        return self._overall.count


class LinkDelayEstimator:
    """D_nm(size) = latency + size / bandwidth, learnt from send->ack round trips.

    Model: a task of ``size`` bytes goes n->m and a small ack comes back, so
    ``rtt = 2 latency + size / bandwidth``. Exponentially weighted least squares of rtt on
    size (EWMAs of x, y, x^2, xy) gives intercept ``a = 2 latency`` and slope
    ``b = 1 / bandwidth``; then ``D(size) = a / 2 + b size``. Feature vectors of one exit all
    have the same size, so the sizes often do not vary enough to separate the two terms:
    then the slope comes from the prior bandwidth and only the intercept is fitted. At the
    size actually sent the estimate is then ``rtt/2 + size/(2 prior_bandwidth)``, always
    within ``[rtt/2, rtt]`` where the true D_nm must lie, and off by
    ``(1/prior_bw - 1/true_bw) size / 2``. A non-positive fitted slope (noise) falls back
    the same way.

    Staleness: n stops measuring a link it stops using, so a pessimistic estimate would keep
    the neighbour unused for ever. After ``stale_after`` seconds without samples the
    estimate is blended toward the prior with weight ``0.5 ** ((age - stale_after) /
    half_life)`` on the measurement, which lets Alg. 2 try the neighbour again.
    """

    def __init__(
        self,
        prior_latency: float = DEFAULT_LINK_LATENCY,
        prior_bandwidth: float = DEFAULT_LINK_BANDWIDTH,
        *,
        weight: float = DEFAULT_WEIGHT,
        stale_after: float = DEFAULT_STALE_AFTER,
        half_life: float = DEFAULT_HALF_LIFE,
        min_size_spread: float = 0.1,
    ) -> None:
        if not (math.isfinite(prior_latency) and prior_latency >= 0):
            raise ValueError(f"prior_latency must be finite and >= 0, got {prior_latency}")
        if not (math.isfinite(prior_bandwidth) and prior_bandwidth > 0):
            raise ValueError(f"prior_bandwidth must be finite and > 0, got {prior_bandwidth}")
        if stale_after < 0:
            raise ValueError(f"stale_after must be >= 0, got {stale_after}")
        if half_life <= 0:
            raise ValueError(f"half_life must be > 0, got {half_life}")
        if min_size_spread < 0:
            raise ValueError(f"min_size_spread must be >= 0, got {min_size_spread}")
        self.prior_latency = float(prior_latency)
        self.prior_bandwidth = float(prior_bandwidth)
        self.stale_after = float(stale_after)
        self.half_life = float(half_life)
        self.min_size_spread = float(min_size_spread)
        w = _check_weight(weight)
        self._x, self._y, self._xx, self._xy = Ewma(w), Ewma(w), Ewma(w), Ewma(w)
        self._last_at: float | None = None
        # fit() of the samples so far: Alg. 2 asks D_nm for every neighbour on every
        # decision, while samples arrive once per ack; observe() clears it
        self._fitted: tuple[float, float] | None = None

    def observe(self, rtt: float, size_bytes: int, now: float) -> None:
        """One measured round trip: ``rtt`` seconds from sending ``size_bytes`` to its ack."""
        if not (math.isfinite(rtt) and rtt >= 0):
            raise ValueError(f"rtt must be finite and >= 0, got {rtt}")
        if size_bytes < 0:
            raise ValueError(f"size_bytes must be >= 0, got {size_bytes}")
        x = float(size_bytes)
        self._x.update(x)
        self._y.update(rtt)
        self._xx.update(x * x)
        self._xy.update(x * rtt)
        self._last_at = now
        self._fitted = None

    @property
    def samples(self) -> int:
        """Round trips observed."""
        return self._x.count

    def prior_delay(self, size_bytes: int) -> float:
        """D_nm from the priors alone."""
        return self.prior_latency + size_bytes / self.prior_bandwidth

    def fit(self) -> tuple[float, float] | None:
        """``(latency, seconds_per_byte)`` from the samples, or None before any sample.

        Computed once per sample (cached until the next ``observe``)."""
        if self._fitted is not None:
            return self._fitted
        if self._x.value is None:
            return None
        mx, my = self._x.value_or(0.0), self._y.value_or(0.0)
        var = self._xx.value_or(0.0) - mx * mx
        cov = self._xy.value_or(0.0) - mx * my
        slope = 1.0 / self.prior_bandwidth
        if var > (self.min_size_spread * mx) ** 2 and var > 0 and cov > 0:
            slope = cov / var
        elif mx > 0:
            slope = min(slope, my / mx)  # latency >= 0: size/bandwidth cannot exceed the rtt
        intercept = max(0.0, my - slope * mx)
        self._fitted = (intercept / 2.0, slope)
        return self._fitted

    def is_stale(self, now: float) -> bool:
        """No round trip measured within ``stale_after`` seconds (or none at all)."""
        return self._last_at is None or now - self._last_at > self.stale_after

    def delay(self, size_bytes: int, now: float) -> float:
        """D_nm for a payload of ``size_bytes`` as estimated at time ``now``."""
        fitted = self._fitted if self._fitted is not None else self.fit()
        if fitted is None or self._last_at is None:
            return self.prior_delay(size_bytes)
        latency, per_byte = fitted
        measured = latency + per_byte * size_bytes
        age = now - self._last_at
        if age <= self.stale_after:
            return measured
        trust = 0.5 ** ((age - self.stale_after) / self.half_life)
        return trust * measured + (1.0 - trust) * self.prior_delay(size_bytes)
