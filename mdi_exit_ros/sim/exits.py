"""What a simulated frame does at each exit: the model's measured per-image confidences.

`mdi-exit eval --per-image FILE` writes, for every image of a split, the max-softmax
confidence and the predicted class at every exit, with the label (format:
`mdi_exit_ros.model.evaluate.write_per_image`). The simulator draws an image for each
admitted frame; at task k the worker's `WorkerCore.complete` gets that image's confidence at
exit k, so Alg. 1 decides the exit with the thresholds in force (Alg. 4 included), and the
answer is correct exactly when the model's prediction at that exit was. The file also holds
what the simulator needs from the checkpoint (task MFLOPs, cut and input bytes, thresholds),
so no torch is needed here.

Without a file, `ExitTable.synthetic` gives a pure-Python stand-in for tests: every image's
confidence is drawn uniformly per exit (seeded), and "correct" with that probability.
"""

from __future__ import annotations

import csv
import gzip
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mdi_exit_ros.core.exit_policy import should_exit

FORMAT = "mdi-exit-per-image/1"  # the first-line tag of `mdi-exit eval --per-image`


@dataclass
class ExitTable:
    """Per image: confidence and correctness at each of the K exits, plus model facts."""

    confidence: list[tuple[float, ...]]
    correct: list[tuple[bool, ...]] | None  # None: no labels (accuracy not simulated)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_exits(self) -> int:
        return len(self.confidence[0])

    def __len__(self) -> int:
        return len(self.confidence)

    @classmethod
    def load(cls, path: str | Path) -> ExitTable:
        """Read a per-image table written by `mdi-exit eval --per-image`."""
        path = Path(path)
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8", newline="") as f:  # type: ignore[operator]
            first = f.readline()
            if not first.startswith("# "):
                raise ValueError(f"{path}: not a per-image table (no '# {{json}}' first line)")
            meta = json.loads(first[2:])
            if meta.get("format") != FORMAT:
                raise ValueError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
            reader = csv.reader(f)
            header = next(reader)
            k = (len(header) - 1) // 2
            conf: list[tuple[float, ...]] = []
            correct: list[tuple[bool, ...]] = []
            for row in reader:
                label = int(row[0])
                conf.append(tuple(float(c) for c in row[1:1 + k]))
                correct.append(tuple(int(p) == label for p in row[1 + k:1 + 2 * k]))
        if not conf:
            raise ValueError(f"{path}: no images")
        return cls(conf, correct, meta)

    @classmethod
    def synthetic(cls, num_exits: int, images: int = 1000, seed: int = 0,
                  never_exit: bool = False) -> ExitTable:
        """Uniform confidences (or 0 everywhere: no frame ever exits early)."""
        rng = random.Random(seed)
        conf = [tuple(0.0 if never_exit else rng.random() for _ in range(num_exits))
                for _ in range(images)]
        correct = [tuple(rng.random() < max(c, 0.5) for c in row) for row in conf]
        return cls(conf, correct, {"format": FORMAT, "model": "synthetic",
                                   "num_exits": num_exits})

    def exit_fraction(self, thresholds: tuple[float, ...]) -> list[float]:
        """Share of images that leave at each exit under Alg. 1 line 5 (`core.should_exit`)."""
        k = self.num_exits
        counts = [0] * k
        for row in self.confidence:
            for j in range(k):
                if should_exit(row[j], thresholds[j], is_last=j == k - 1):
                    counts[j] += 1
                    break
        return [c / len(self.confidence) for c in counts]
