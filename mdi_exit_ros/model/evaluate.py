"""``mdi-exit eval``: per-exit accuracy and the accuracy/compute trade-off of early exit.

For a checkpoint and a data split it measures each exit's own accuracy, then
simulates the paper's rule (exit at task k if max softmax > T; the last exit
always answers) over a sweep of shared thresholds T: accuracy, the fraction of
images leaving at each exit and the average FLOPs per image.  It also
calibrates T for a target accuracy drop (``--max-drop`` points below the final
exit) and reports the checkpoint's own shipped thresholds.  Writes
``eval.md``, ``eval.csv``, ``eval.json`` and ``eval.png`` to ``--out-dir``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import torch

from ..data import load_dataset
from .checkpoint import SHIPPED, CheckpointError, load_model, shipped_path, update_metadata
from .exits import DEFAULT_GRID, ExitPolicyResult, calibrate, collect_exit_outputs, simulate, sweep


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mdi-exit eval", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="shipped name or .safetensors path")
    p.add_argument("--dataset", default=None, help="default: the checkpoint's dataset")
    p.add_argument("--split", default="test", choices=("train", "test"))
    p.add_argument("--limit", type=int, default=0, help="only the first N images")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--thresholds", default=None,
                   help="T or comma list per exit (default: the checkpoint's)")
    p.add_argument("--max-drop", type=float, default=1.0,
                   help="calibrate: lowest T within this many points of the final exit")
    p.add_argument("--out-dir", default=None, help="where to write eval.{md,csv,json,png}")
    p.add_argument("--title", default=None)
    p.add_argument("--write-thresholds", action="store_true",
                   help="store --thresholds and the results measured here in the checkpoint "
                        "(a path, not a shipped name, unless you mean to change the shipped file)")
    return p


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _mf(x: float) -> str:
    return f"{x / 1e6:.2f}"


def render_markdown(meta: dict, prof: dict, n: int, split: str, exit_acc: list[float],
                    shipped: ExitPolicyResult, cal: ExitPolicyResult, max_drop: float,
                    rows: list[ExitPolicyResult]) -> str:
    k = len(exit_acc)
    full = prof["exit_flops"][-1]
    base = prof["backbone_flops"]
    lines = [
        f"Model `{meta['model_id']}` ({meta['arch']}), {meta.get('dataset', '?')} {split}, "
        f"{n} images.",
        "",
        "| exit | task MFLOPs | cumulative MFLOPs | accuracy % (all images through this exit) |",
        "| --- | --- | --- | --- |",
    ]
    for i in range(k):
        lines.append(f"| {i + 1} | {_mf(prof['task_flops'][i])} | {_mf(prof['exit_flops'][i])} "
                     f"| {_pct(exit_acc[i])} |")
    lines += [
        "",
        f"Full model (all {k} tasks, all exit heads): {_mf(full)} MFLOPs; plain backbone "
        f"without intermediate heads: {_mf(base)} MFLOPs.",
        "",
        "| policy | T | accuracy % | drop (points) | exit fractions | avg MFLOPs "
        "| vs full | vs backbone |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in (("shipped thresholds", shipped), (f"calibrated (max drop {max_drop})", cal)):
        lines.append(
            f"| {name} | {','.join(f'{t:g}' for t in r.threshold[:-1])} | {_pct(r.accuracy)} "
            f"| {100 * (exit_acc[-1] - r.accuracy):.2f} "
            f"| {' / '.join(f'{f:.3f}' for f in r.exit_fraction)} | {_mf(r.avg_flops)} "
            f"| {r.avg_flops / full:.3f} | {r.avg_flops / base:.3f} |"
        )
    lines += ["", "Threshold sweep (one T for every exit):", "",
              "| T | accuracy % | exit fractions | avg MFLOPs | vs full |",
              "| --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r.threshold[0]:g} | {_pct(r.accuracy)} "
                     f"| {' / '.join(f'{f:.3f}' for f in r.exit_fraction)} "
                     f"| {_mf(r.avg_flops)} | {r.avg_flops / full:.3f} |")
    return "\n".join(lines) + "\n"


def plot(path: Path, rows: list[ExitPolicyResult], prof: dict, exit_acc: list[float],
         shipped: ExitPolicyResult, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    xs = [r.avg_flops / 1e6 for r in rows]
    ys = [100 * r.accuracy for r in rows]
    ax.plot(xs, ys, "o-", ms=3, label="early exit, threshold sweep")
    ax.plot([f / 1e6 for f in prof["exit_flops"]], [100 * a for a in exit_acc], "s--",
            label="single exit k (all images)")
    ax.plot([shipped.avg_flops / 1e6], [100 * shipped.accuracy], "r*", ms=12,
            label=f"shipped T={shipped.threshold[0]:g}")
    ax.set_xlabel("average MFLOPs per image")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    try:
        model, meta = load_model(args.model)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    dataset = args.dataset or meta.get("dataset")
    if not dataset:
        print("error: the checkpoint names no dataset; pass --dataset", file=sys.stderr)
        return 2
    spec = model.input_spec
    size = spec.size if dataset.startswith("folder:") else None
    data = load_dataset(dataset, args.split, size=size, channels=spec.channels)
    if args.limit:
        data = data.subset(torch.arange(min(args.limit, len(data))).numpy())
    out = collect_exit_outputs(model, data.tensor_nchw(), torch.from_numpy(data.labels),
                               batch_size=args.batch_size)
    prof = model.profile().to_dict()
    exit_flops = prof["exit_flops"]
    exit_acc = out.exit_accuracy()
    k = model.num_exits
    if args.thresholds:
        ts = [float(t) for t in args.thresholds.split(",")]
        thresholds = ts * (k - 1) + [0.0] if len(ts) == 1 else ts + [0.0] * (k - len(ts))
    else:
        thresholds = meta.get("thresholds") or [1.0] * k
    shipped = simulate(out, thresholds, exit_flops)
    cal = calibrate(out, exit_flops, args.max_drop)
    rows = sweep(out, exit_flops, DEFAULT_GRID)
    md = render_markdown(meta, prof, len(data), f"{args.split}", exit_acc, shipped, cal,
                         args.max_drop, rows)
    print(md)
    if args.out_dir:
        od = Path(args.out_dir)
        od.mkdir(parents=True, exist_ok=True)
        (od / "eval.md").write_text(md)
        with open(od / "eval.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["threshold", "accuracy", "avg_flops"]
                       + [f"exit{i + 1}_fraction" for i in range(k)])
            for r in rows:
                w.writerow([r.threshold[0], f"{r.accuracy:.6f}", f"{r.avg_flops:.0f}"]
                           + [f"{x:.6f}" for x in r.exit_fraction])
        summary = {"model_id": meta["model_id"], "dataset": dataset, "split": args.split,
                   "images": len(data), "exit_accuracy": exit_acc, "profile": prof,
                   "shipped": vars(shipped), "calibrated": vars(cal),
                   "max_drop": args.max_drop, "sweep": [vars(r) for r in rows]}
        (od / "eval.json").write_text(json.dumps(summary, indent=1))
        plot(od / "eval.png", rows, prof, exit_acc, shipped,
             args.title or f"{meta['model_id']} on {dataset} {args.split} ({len(data)} images)")
        print(f"wrote {od}/eval.{{md,csv,json,png}}")
    if args.write_thresholds:
        if not args.thresholds:
            print("error: --write-thresholds needs --thresholds", file=sys.stderr)
            return 2
        path = shipped_path(args.model) if args.model in SHIPPED else Path(args.model)
        update_metadata(path, {
            "thresholds": thresholds,
            "threshold_calibration": {
                "split": f"chosen with mdi-exit eval on {dataset}:{args.split} "
                         f"({len(data)} images)",
                "max_drop_points": args.max_drop, "rule": "max_softmax > T"},
            "test_at_thresholds": {"accuracy": shipped.accuracy,
                                   "exit_fraction": shipped.exit_fraction,
                                   "avg_flops": shipped.avg_flops, "full_flops": exit_flops[-1]},
        })
        print(f"stored thresholds {thresholds} in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
