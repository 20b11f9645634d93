"""Print a model's tasks as a Markdown table: FLOPs, feature shapes and bytes per cut.

    python -m mdi_exit_ros.model.describe --model mobilenet_v2_ee \
        --model-kwargs '{"input_size": 32}'
    python -m mdi_exit_ros.model.describe --model fmnist_cnn_ee --timing

``--model`` also accepts a shipped name or checkpoint path.  ``--timing``
measures milliseconds per task for one image on one thread (median of runs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from .builders import MODEL_BUILDERS, build_model
from .checkpoint import NOT_SHIPPED, SHIPPED, CheckpointError, load_model


def _load(name: str, kwargs: str):
    if name in MODEL_BUILDERS:
        return build_model(name, **json.loads(kwargs)).eval()
    if name in SHIPPED or name in NOT_SHIPPED or Path(name).exists():
        try:
            return load_model(name)[0]
        except CheckpointError as e:
            raise SystemExit(str(e)) from e
    raise SystemExit(f"unknown model {name!r}")


@torch.inference_mode()
def task_times_ms(model, repeats: int = 50) -> list[float]:
    """Median ms per task for one image (after warm-up)."""
    spec = model.input_spec
    x = torch.randn(1, spec.channels, spec.size, spec.size)
    out = []
    for k in range(1, model.num_exits + 1):
        for _ in range(5):
            model.run_task(k, x)
        ts = []
        for _ in range(repeats):
            t = time.perf_counter()
            feats, _ = model.run_task(k, x)
            ts.append(1000 * (time.perf_counter() - t))
        out.append(statistics.median(ts))
        if k < model.num_exits:
            x = model.decode(k, model.encode(k, feats))
    return out


def describe(model, timing: bool = False) -> str:
    p = model.profile()
    ef = p.exit_flops()
    times = task_times_ms(model) if timing else None
    lines = [
        f"`{model.arch}` {json.dumps(model.info.arch_kwargs, sort_keys=True)}",
        "",
        f"Input {p.input_shape}; plain backbone {p.backbone_flops() / 1e6:.2f} MFLOPs; "
        f"all tasks with all exit heads {ef[-1] / 1e6:.2f} MFLOPs.",
        "",
        "| task | blocks | stage MFLOPs | head MFLOPs | task MFLOPs | share | cumulative MFLOPs"
        + (" | ms (1 thread) |" if timing else " |"),
        "| --- | --- | --- | --- | --- | --- | ---" + (" | --- |" if timing else " |"),
    ]
    start = 0
    total = sum(p.task_flops)
    for k in range(model.num_exits):
        n = len(model.stages[k]) if hasattr(model.stages[k], "__len__") else 1
        row = (f"| {k + 1} | {start}..{start + n - 1} | {p.stage_flops[k] / 1e6:.2f} "
               f"| {p.head_flops[k] / 1e6:.2f} | {p.task_flops[k] / 1e6:.2f} "
               f"| {100 * p.task_flops[k] / total:.0f}% | {ef[k] / 1e6:.2f} |")
        if times:
            row += f" {times[k]:.2f} |"
        lines.append(row)
        start += n
    lines += ["", "| cut | features (C, H, W) | fp32 bytes | codec | wire shape | wire bytes "
              "| codec MFLOPs |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for k in range(model.num_exits - 1):
        lines.append(
            f"| {k + 1} | {tuple(p.cut_shapes[k])} | {p.cut_raw_bytes[k]:,} "
            f"| {model.codecs[k].name} | {tuple(p.wire_shapes[k])} {p.wire_dtypes[k]} "
            f"| {p.cut_wire_bytes[k]:,} | {p.codec_flops[k] / 1e6:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mdi_exit_ros.model.describe")
    ap.add_argument("--model", required=True)
    ap.add_argument("--model-kwargs", default="{}")
    ap.add_argument("--timing", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(describe(_load(args.model, args.model_kwargs), args.timing))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
