"""``mdi-exit eval``: per-exit accuracy and the accuracy/compute trade-off of early exit.

For a checkpoint and a data split it measures each exit's own accuracy, then
simulates the paper's rule (exit at task k if max softmax > T_k; the last exit
always answers) over a sweep of shared thresholds T: accuracy, the fraction of
images leaving at each exit and the average FLOPs per image.  It calibrates
thresholds for a target accuracy drop (``--max-drop`` points below the final
exit) two ways, one shared T and one T_k per exit (least average compute), on the
training images that ``mdi-exit train`` held out (``--calibrate-on heldout``, the
default; never the evaluated split) and reports them on the evaluated split beside
the checkpoint's own thresholds.  Writes ``eval.md``, ``eval.csv``, ``eval.json``
and ``eval.png`` to ``--out-dir``; ``--write-thresholds`` stores a choice in the
checkpoint's metadata, which the worker nodes then use as its thresholds.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import torch

from ..data import DatasetUnavailable, ImageArrays, load_dataset
from ..data.registry import add_data_dir_argument, apply_data_dir
from .checkpoint import SHIPPED, CheckpointError, load_model, shipped_path, update_metadata
from .device import DEVICE_CHOICES, DeviceError, resolve_device, use_fp16
from .exits import (
    DEFAULT_GRID,
    ExitOutputs,
    ExitPolicyResult,
    calibrate,
    calibrate_per_exit,
    collect_exit_outputs,
    simulate,
    sweep,
)
from .train import HOLDOUT_SEED, split_heldout

POLICIES = ("per-exit", "shared")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mdi-exit eval", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="shipped name or .safetensors path")
    p.add_argument("--dataset", default=None, help="default: the checkpoint's dataset")
    add_data_dir_argument(p)
    p.add_argument("--split", default="test", choices=("train", "test"))
    p.add_argument("--limit", type=int, default=0, help="only the first N images")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="auto",
                   help=f"{DEVICE_CHOICES}; auto = CUDA if torch sees it (fp16 there when "
                        "the checkpoint allows), else CPU")
    p.add_argument("--thresholds", default=None,
                   help="T or comma list per exit (default: the checkpoint's)")
    p.add_argument("--max-drop", type=float, default=1.0,
                   help="calibrate: least compute within this many points of the final exit")
    p.add_argument("--calibrate-on", choices=("heldout", "split"), default="heldout",
                   help="heldout: the --val-size training images mdi-exit train held out "
                        "(same seed); split: the evaluated split itself (optimistic)")
    p.add_argument("--val-size", type=int, default=5000,
                   help="held-out training images, as given to mdi-exit train")
    p.add_argument("--out-dir", default=None, help="where to write eval.{md,csv,json,png}")
    p.add_argument("--per-image", default=None, metavar="PATH",
                   help="also write every image's per-exit confidence, prediction and label "
                        "(gzip CSV, see per_image_table) for `mdi-exit sim`")
    p.add_argument("--title", default=None)
    p.add_argument("--write-thresholds", action="store_true",
                   help="store --thresholds, or else the --policy calibrated on held-out "
                        "images, and the results measured here in the checkpoint (a path, "
                        "not a shipped name, unless you mean to change the shipped file)")
    p.add_argument("--policy", choices=POLICIES, default="per-exit",
                   help="which calibration --write-thresholds stores")
    return p


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _mf(x: float) -> str:
    return f"{x / 1e6:.2f}"


def _thresholds_text(r: ExitPolicyResult) -> str:
    return ",".join(f"{t:g}" for t in r.threshold[:-1])


def _policy_table(rows: list[tuple[str, ExitPolicyResult]], final_acc: float, full: float,
                  base: float) -> list[str]:
    lines = ["| policy | T per exit | accuracy % | drop (points) | exit fractions | avg MFLOPs "
             "| vs full | less compute % | vs backbone |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in rows:
        lines.append(
            f"| {name} | {_thresholds_text(r)} | {_pct(r.accuracy)} "
            f"| {100 * (final_acc - r.accuracy):.2f} "
            f"| {' / '.join(f'{f:.3f}' for f in r.exit_fraction)} | {_mf(r.avg_flops)} "
            f"| {r.avg_flops / full:.3f} | {100 * (1 - r.avg_flops / full):.1f} "
            f"| {r.avg_flops / base:.3f} |")
    return lines


def render_markdown(meta: dict, prof: dict, n: int, split: str, exit_acc: list[float],
                    policies: list[tuple[str, ExitPolicyResult]], rows: list[ExitPolicyResult],
                    calibration: dict | None = None) -> str:
    """The report: per-exit accuracy, the policies on the evaluated split, the sweep.

    ``calibration`` (when the thresholds were calibrated on other images) holds
    ``name``, ``images``, ``exit_accuracy`` and ``policies`` measured there.
    """
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
        f"On the {split} split ({n} images):",
        "",
        *_policy_table(policies, exit_acc[-1], full, base),
    ]
    if calibration:
        lines += [
            "",
            f"On the calibration images ({calibration['name']}, {calibration['images']} "
            f"images; final exit {_pct(calibration['exit_accuracy'][-1])} %):",
            "",
            *_policy_table(calibration["policies"], calibration["exit_accuracy"][-1], full,
                           base),
        ]
    lines += ["", "Threshold sweep (one T for every exit):", "",
              "| T | accuracy % | exit fractions | avg MFLOPs | vs full |",
              "| --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r.threshold[0]:g} | {_pct(r.accuracy)} "
                     f"| {' / '.join(f'{f:.3f}' for f in r.exit_fraction)} "
                     f"| {_mf(r.avg_flops)} | {r.avg_flops / full:.3f} |")
    return "\n".join(lines) + "\n"


def plot(path: Path, rows: list[ExitPolicyResult], prof: dict, exit_acc: list[float],
         marks: list[tuple[str, ExitPolicyResult, str]], title: str) -> None:
    """Accuracy vs average compute: the shared-T sweep, single exits, and ``marks``
    (label, policy, matplotlib format) such as the shipped and calibrated thresholds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    xs = [r.avg_flops / 1e6 for r in rows]
    ys = [100 * r.accuracy for r in rows]
    ax.plot(xs, ys, "o-", ms=3, label="early exit, shared-T sweep")
    ax.plot([f / 1e6 for f in prof["exit_flops"]], [100 * a for a in exit_acc], "s--",
            label="single exit k (all images)")
    for i, (label, r, fmt) in enumerate(marks):  # the first on top: marks may coincide
        ax.plot([r.avg_flops / 1e6], [100 * r.accuracy], fmt, ms=11, label=label,
                zorder=10 + len(marks) - i)
    ax.set_xlabel("average MFLOPs per image")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def parse_thresholds(text: str, k: int) -> list[float]:
    """``T`` (every exit) or a comma list (missing exits: 0) -> K values, last = 0."""
    try:
        ts = [float(t) for t in text.split(",")]
    except ValueError as e:
        raise ValueError(f"--thresholds must be numbers separated by commas: {text!r}") from e
    if len(ts) > k or any(not 0.0 <= t <= 1.0 for t in ts):
        raise ValueError(f"--thresholds needs at most {k} values in [0, 1]; got {text!r}")
    return ts * (k - 1) + [0.0] if len(ts) == 1 else ts + [0.0] * (k - len(ts))


PER_IMAGE_FORMAT = "mdi-exit-per-image/1"


def write_per_image(path: Path, out: ExitOutputs, meta: dict, prof: dict, dataset: str,
                    split: str) -> None:
    """Per image: label, max-softmax confidence and predicted class at every exit.

    The simulator (`mdi-exit sim`) draws each simulated frame's exits from these rows, so
    its accuracy and exit mix are the model's measured ones at any threshold. Format: gzip
    text; line 1 is ``# `` + JSON (format, model, dataset, split, images, what the simulator
    needs from the checkpoint: task MFLOPs, cut and input bytes, thresholds), then a CSV
    with the header ``label,c1..cK,p1..pK`` (confidence to 5 decimals, class ids).
    """
    import gzip

    k = out.num_exits
    spec = meta.get("input_spec") or {}
    spec = spec if isinstance(spec, dict) else json.loads(spec)
    head = {"format": PER_IMAGE_FORMAT, "model": meta.get("model_id"), "dataset": dataset,
            "split": split, "images": int(out.labels.shape[0]), "num_exits": k,
            "task_mflops": [f / 1e6 for f in prof["task_flops"]],
            "cut_bytes": [int(b) for b in meta.get("cut_wire_bytes") or []],
            "input_bytes": int(spec.get("channels", 0)) * int(spec.get("size", 0)) ** 2 * 4,
            "thresholds": [float(t) for t in meta.get("thresholds") or []],
            "exit_accuracy": out.exit_accuracy()}
    with gzip.open(path, "wt", encoding="utf-8", newline="") as f:
        f.write("# " + json.dumps(head) + "\n")
        w = csv.writer(f)
        w.writerow(["label"] + [f"c{i + 1}" for i in range(k)] + [f"p{i + 1}" for i in range(k)])
        for label, conf, pred in zip(out.labels, out.confidence, out.prediction, strict=True):
            w.writerow([int(label)] + [f"{c:.5f}" for c in conf] + [int(p) for p in pred])


def _calibration_data(args, dataset: str, spec) -> tuple[str, ImageArrays]:
    """The held-out training images (exactly those ``mdi-exit train`` kept aside)."""
    size = spec.size if dataset.startswith("folder:") else None
    train = load_dataset(dataset, "train", size=size, channels=spec.channels)
    _, held = split_heldout(train, args.val_size)
    if len(held) == 0:
        raise ValueError(f"no held-out images: {dataset} train has {len(train)} images and "
                         f"--val-size is {args.val_size}")
    return (f"{dataset}:train held out by mdi-exit train (--val-size {args.val_size}, "
            f"seed {HOLDOUT_SEED})", held)


def _outputs(model, data: ImageArrays, args, fp16: bool) -> ExitOutputs:
    return collect_exit_outputs(model, data.tensor_nchw(), torch.from_numpy(data.labels),
                                batch_size=args.batch_size, fp16=fp16)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    apply_data_dir(args.data_dir)
    torch.set_num_threads(max(1, args.threads))
    try:
        device = resolve_device(args.device)
        model, meta = load_model(args.model)
    except (CheckpointError, DeviceError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.calibrate_on == "split" and args.write_thresholds and not args.thresholds:
        print("error: --write-thresholds stores thresholds calibrated on held-out images "
              "only; use --calibrate-on heldout (or pass --thresholds)", file=sys.stderr)
        return 2
    dataset = args.dataset or meta.get("dataset")
    if not dataset:
        print("error: the checkpoint names no dataset; pass --dataset", file=sys.stderr)
        return 2
    k = model.num_exits
    try:
        given = parse_thresholds(args.thresholds, k) if args.thresholds else None
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    model = model.to(device)
    fp16 = use_fp16(device, meta)
    print(f"device {device}{' (fp16 autocast)' if fp16 else ''}", file=sys.stderr)
    spec = model.input_spec
    size = spec.size if dataset.startswith("folder:") else None
    try:
        data = load_dataset(dataset, args.split, size=size, channels=spec.channels)
        cal_name, cal_data = ("", data)
        if args.calibrate_on == "heldout":
            cal_name, cal_data = _calibration_data(args, dataset, spec)
    except (DatasetUnavailable, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.limit:
        data = data.subset(torch.arange(min(args.limit, len(data))).numpy())
        if args.calibrate_on == "split":
            cal_data = data
    out = _outputs(model, data, args, fp16)
    if args.per_image:
        write_per_image(Path(args.per_image), out, meta, model.profile().to_dict(), dataset,
                        args.split)
        print(f"wrote {args.per_image}", file=sys.stderr)
    cal_out = _outputs(model, cal_data, args, fp16) if cal_name else out
    prof = model.profile().to_dict()
    exit_flops = prof["exit_flops"]
    exit_acc = out.exit_accuracy()
    thresholds = given or meta.get("thresholds") or [1.0] * k
    shipped = simulate(out, thresholds, exit_flops)
    cal_shared = calibrate(cal_out, exit_flops, args.max_drop)
    cal_per_exit = calibrate_per_exit(cal_out, exit_flops, args.max_drop)
    shared = simulate(out, cal_shared.threshold, exit_flops)
    per_exit = simulate(out, cal_per_exit.threshold, exit_flops)
    where = "held-out" if cal_name else args.split
    policies = [("given thresholds" if given else "checkpoint's thresholds", shipped),
                (f"shared T, calibrated on {where} (max drop {args.max_drop:g})", shared),
                (f"per-exit T, calibrated on {where} (max drop {args.max_drop:g})", per_exit)]
    calibration = None
    if cal_name:
        calibration = {"name": cal_name, "images": len(cal_data),
                       "exit_accuracy": cal_out.exit_accuracy(),
                       "policies": [(policies[1][0], cal_shared), (policies[2][0], cal_per_exit)]}
    rows = sweep(out, exit_flops, DEFAULT_GRID)
    md = render_markdown(meta, prof, len(data), args.split, exit_acc, policies, rows,
                         calibration)
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
                   "images": len(data), "device": str(device), "fp16": fp16,
                   "exit_accuracy": exit_acc, "profile": prof,
                   "shipped": vars(shipped), "calibrated": vars(shared),
                   "calibrated_per_exit": vars(per_exit), "max_drop": args.max_drop,
                   "calibration": {
                       "on": args.calibrate_on, "name": cal_name or f"{dataset}:{args.split}",
                       "images": len(cal_data), "exit_accuracy": cal_out.exit_accuracy(),
                       "shared": vars(cal_shared), "per_exit": vars(cal_per_exit)},
                   "sweep": [vars(r) for r in rows]}
        (od / "eval.json").write_text(json.dumps(summary, indent=1))
        plot(od / "eval.png", rows, prof, exit_acc,
             [("checkpoint's T" if not given else "given T", shipped, "r*"),
              (f"shared T={shared.threshold[0]:g} ({where})", shared, "gD"),
              (f"per-exit T ({where})", per_exit, "mP")],
             args.title or f"{meta['model_id']} on {dataset} {args.split} ({len(data)} images)")
        print(f"wrote {od}/eval.{{md,csv,json,png}}")
    if args.write_thresholds:
        path = shipped_path(args.model) if args.model in SHIPPED else Path(args.model)
        if given:
            stored, how = shipped, {
                "split": f"chosen with mdi-exit eval on {dataset}:{args.split} "
                         f"({len(data)} images)",
                "max_drop_points": args.max_drop, "rule": "max_softmax > T"}
        else:
            cal = cal_per_exit if args.policy == "per-exit" else cal_shared
            stored = per_exit if args.policy == "per-exit" else shared
            how = {"split": f"{cal_name} ({len(cal_data)} images)",
                   "method": ("per-exit: greedy descent + coordinate descent, least average "
                              "FLOPs within the drop" if args.policy == "per-exit" else
                              "shared: lowest T within the drop"),
                   "max_drop_points": args.max_drop, "rule": "max_softmax > T",
                   "calibration_accuracy": cal.accuracy,
                   "calibration_final_exit_accuracy": cal_out.exit_accuracy()[-1],
                   "calibration_exit_fraction": cal.exit_fraction,
                   "calibration_avg_flops": cal.avg_flops}
        update_metadata(path, {
            "thresholds": stored.threshold[:-1] + [0.0],
            "threshold_calibration": how,
            "test_at_thresholds": {"split": f"{dataset}:{args.split} ({len(data)} images)",
                                   "accuracy": stored.accuracy,
                                   "exit_fraction": stored.exit_fraction,
                                   "avg_flops": stored.avg_flops,
                                   "full_flops": exit_flops[-1]},
        })
        print(f"stored thresholds {stored.threshold[:-1] + [0.0]} in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
