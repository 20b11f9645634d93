"""Confidence of an exit classifier: eq. (1) softmax and eq. (2) max-softmax (Alg. 1 line 4).

Pure Python on plain sequences of floats, so that the decision logic can be tested and
simulated without torch. The ROS layer computes logits with torch and passes
``logits.tolist()`` (ten floats for CIFAR-10: cheap).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

ConfidenceFn = Callable[[Sequence[float]], float]
"""Maps the logits ``x_1..x_v`` of one exit to a confidence in [0, 1]; higher = surer."""


def _checked(logits: Sequence[float]) -> list[float]:
    """Reject empty or non-finite logits: a NaN confidence would silently never exit."""
    values = [float(x) for x in logits]
    if not values:
        raise ValueError("logits must not be empty")
    if not all(math.isfinite(x) for x in values):
        raise ValueError("logits must be finite")
    return values


def softmax(logits: Sequence[float]) -> list[float]:
    """Eq. (1): ``c_i = e^{x_i} / sum_v e^{x_v}``, shifted by max(x) so exp never overflows."""
    values = _checked(logits)
    top = max(values)
    exps = [math.exp(x - top) for x in values]
    total = math.fsum(exps)
    return [e / total for e in exps]


def max_softmax(logits: Sequence[float]) -> float:
    """Eq. (2): ``C = max_i c_i``.

    With the max-shift the largest term is ``e^0 = 1``, so ``C = 1 / sum_v e^{x_v - max}``:
    exact and stable without building the whole softmax vector.
    """
    values = _checked(logits)
    top = max(values)
    return 1.0 / math.fsum(math.exp(x - top) for x in values)


def entropy_confidence(logits: Sequence[float]) -> float:
    """BranchyNet-style confidence: ``1 - H(c) / log(v)`` in [0, 1], higher = surer.

    BranchyNet exits when the entropy is *low*; flipping and normalising it lets the same
    ``C > T_e`` rule of Alg. 1 line 5 and the same thresholds range [0, 1] apply.
    """
    probs = softmax(logits)
    if len(probs) == 1:
        return 1.0  # a single class carries no uncertainty
    h = -math.fsum(p * math.log(p) for p in probs if p > 0.0)
    return min(1.0, max(0.0, 1.0 - h / math.log(len(probs))))


CONFIDENCE_FNS: Mapping[str, ConfidenceFn] = MappingProxyType(
    {"max_softmax": max_softmax, "entropy": entropy_confidence}
)
"""Registry of confidence functions by the name used in ROS parameters/configs."""


def get_confidence_fn(name: str) -> ConfidenceFn:
    """Look up a confidence function by name; a typo in a config fails loudly."""
    try:
        return CONFIDENCE_FNS[name]
    except KeyError:
        known = ", ".join(sorted(CONFIDENCE_FNS))
        raise ValueError(f"unknown confidence function {name!r}; known: {known}") from None
