"""Random and mutated ROS messages of any type, from the types' own introspection.

Used by the fuzz test (test_nodes_fuzz.py) and `make fuzz`. Values cover each field type's
edges (0, the maximum, NaN, infinities, empty and oversized strings and arrays, names that are
not worker ids); a mutated message is a valid one with one to three fields replaced.
"""

from __future__ import annotations

import array
import copy
import importlib
import math
import random
from typing import Any

INT_RANGES = {"int8": (-2**7, 2**7 - 1), "uint8": (0, 2**8 - 1), "octet": (0, 255),
              "int16": (-2**15, 2**15 - 1), "uint16": (0, 2**16 - 1),
              "int32": (-2**31, 2**31 - 1), "uint32": (0, 2**32 - 1),
              "int64": (-2**63, 2**63 - 1), "uint64": (0, 2**64 - 1)}
FLOAT32_MAX = 3.4028234663852886e38
STRINGS = ["", "robot", "ghost1", "ghost_2", "1robot", "robot/1", "a b", "~x", "robot1\n",
           "é" * 7, "x" * 300, "raw", "fp16", "ae:x1", "mono8", "rgb8", "bgr16", "16UC1",
           "active", "inactive", "max_softmax"]


class MessageFuzzer:
    """Seeded generator of random (`random_msg`) and mutated (`mutate`) messages."""

    def __init__(self, seed: int, avoid: set[str]) -> None:
        self.rng = random.Random(seed)
        self.avoid = avoid  # live robots' names: a forged report in their name is spoofing,
        #                     which the security section documents, not what a fuzz test is for

    def _int(self, kind: str) -> int:
        lo, hi = INT_RANGES[kind]
        return self.rng.choice([lo, hi, 0, 1, min(hi, 3), self.rng.randint(lo, hi)])

    def _float(self, kind: str) -> float:
        big = FLOAT32_MAX if kind == "float" else 1e300
        return self.rng.choice([0.0, -1.0, 0.5, 1.0, 1.5, math.nan, math.inf, -math.inf, big,
                                -big, self.rng.uniform(-1e6, 1e6), 1e-3])

    def _string(self) -> str:
        s = self.rng.choice(STRINGS)
        return "ghost" if s in self.avoid else s

    def value(self, kind: str, depth: int = 0) -> Any:
        if kind.startswith("sequence<"):
            inner = kind[len("sequence<"):-1].split(",")[0]
            if inner in ("uint8", "octet"):
                n = self.rng.choice([0, 1, 7, 64, 3136, self.rng.randint(0, 20000)])
                return array.array("B", self.rng.randbytes(n))
            n = self.rng.choice([0, 1, 2, 3, 5, 9])
            return [self.value(inner, depth + 1) for _ in range(n)]
        if kind in INT_RANGES:
            return self._int(kind)
        if kind in ("float", "double"):
            return self._float(kind)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind.startswith("string"):
            return self._string()
        return self.random_msg(message_class(kind), depth + 1)

    def random_msg(self, cls: type, depth: int = 0) -> Any:
        msg = cls()
        for name, kind in cls.get_fields_and_field_types().items():
            if depth > 3:
                break
            setattr(msg, name, self.value(kind, depth))
        return msg

    def mutate(self, template: Any) -> Any:
        msg = copy.deepcopy(template)
        fields = list(type(msg).get_fields_and_field_types().items())
        for name, kind in self.rng.sample(fields, k=min(len(fields), self.rng.randint(1, 3))):
            setattr(msg, name, self.value(kind))
        return msg


def message_class(kind: str) -> type:
    """'mdi_exit_ros/Tensor' -> the class mdi_exit_ros.msg.Tensor."""
    package, name = kind.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)
