"""``mdi-exit train``: train an early-exit model and write a shipped-style checkpoint.

Two regimes from the early-exit literature:

* ``--mode joint`` (default): backbone and all exits together, loss
  sum_k w_k * L_k (``--exit-weights``), optionally with the final exit
  distilled into the earlier ones (``--distill``), which helps shallow exits.
* ``--mode heads``: backbone frozen (e.g. from ``--init``), only the
  intermediate exit heads learn.
* ``--mode codec --init CKPT --codecs JSON``: put learned codecs (the paper's
  autoencoder) at the cuts of a trained model and train only them, through
  the frozen later tasks' loss; the same weights without them stay the
  "without autoencoder" variant, so the codec's accuracy cost is exact.

Training is resumable: ``--work-dir`` holds ``state.safetensors`` +
``state.json`` (model, optimizer, position; no pickle) written atomically every
``--ckpt-every-min`` minutes and at each epoch end; running the same command
again continues where it stopped.  Randomness (shuffle, augmentation, dropout)
is a pure function of ``--seed`` and the step, so a resumed run follows the
same trajectory as an uninterrupted one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import shlex
import signal
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from ..data import ImageArrays, iterate_batches, load_dataset, random_crop_flip
from ..data.registry import add_data_dir_argument, apply_data_dir
from .builders import build_model, with_codecs
from .checkpoint import load_checkpoint, save_checkpoint
from .device import DEVICE_CHOICES, DeviceError, resolve_device
from .early_exit import EarlyExitModel
from .exits import calibrate, collect_exit_outputs, simulate

log = logging.getLogger("mdi_exit.train")
STATE_VERSION = 1
HOLDOUT_SEED = 12345  # the held-out calibration images of every run (never change it)
EXIT_STOPPED = 75  # stopped early (signal / --stop-after-steps); same command resumes
# Arguments that may differ when resuming (they do not change the trajectory).
RESUME_FREE = {"threads", "progress", "ckpt_every_min", "out", "resume", "work_dir", "log_every",
               "eval_every", "max_drop", "limit_test", "stop_after_steps", "device", "data_dir"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mdi-exit train", description=__doc__.split("\n")[0])
    p.add_argument("--model", default="fmnist_cnn_ee", help="registered architecture")
    p.add_argument("--model-kwargs", default="{}",
                   help='builder kwargs as JSON, e.g. \'{"input_size": 32}\'')
    p.add_argument("--dataset", default="fmnist", help="fmnist | cifar10 | folder:<path>")
    add_data_dir_argument(p)
    p.add_argument("--init", default=None, help="start from this .safetensors model checkpoint")
    p.add_argument("--mode", choices=("joint", "heads", "codec"), default="joint")
    p.add_argument("--codecs", default=None,
                   help="with --init: JSON list, one codec per cut, replacing the model's "
                        '(e.g. \'[{"name": "autoencoder"}, "identity"]\')')
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd")
    p.add_argument("--lr", type=float, default=0.05, help="peak learning rate")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--schedule", choices=("onecycle", "cosine", "constant"), default="onecycle")
    p.add_argument("--warmup", type=float, default=0.15, help="warm-up fraction (onecycle)")
    p.add_argument("--exit-weights", default=None, help="comma list, one per exit (default 1s)")
    p.add_argument("--distill", type=float, default=0.0,
                   help="weight of distilling the final exit into earlier ones (0..1)")
    p.add_argument("--distill-temp", type=float, default=3.0)
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--augment", choices=("auto", "none", "crop-flip", "crop"), default="auto",
                   help="auto: crop+flip for cifar10, crop(2px) for fmnist, none for folders")
    p.add_argument("--val-size", type=int, default=5000,
                   help="training images held out to calibrate thresholds (0: use test)")
    p.add_argument("--max-drop", type=float, default=1.0,
                   help="calibrate thresholds to lose at most this many accuracy points")
    p.add_argument("--limit-train", type=int, default=0, help="use only N training images")
    p.add_argument("--limit-test", type=int, default=0, help="use only N test images")
    p.add_argument("--eval-every", type=int, default=1, help="test every N epochs (0: only at end)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="auto",
                   help=f"{DEVICE_CHOICES}; auto = CUDA if torch sees it, else CPU (fp32 "
                        "either way; a resumed run is bit-identical on the same device)")
    p.add_argument("--channels-last", type=int, default=1, help="1: NHWC memory (faster on CPU)")
    p.add_argument("--work-dir", default=None, help="resumable state + log (default runs/<model>)")
    p.add_argument("--resume", choices=("auto", "never"), default="auto")
    p.add_argument("--ckpt-every-min", type=float, default=10.0)
    p.add_argument("--log-every", type=int, default=50, help="log a line every N batches")
    p.add_argument("--out", default=None,
                   help="final checkpoint (default <work-dir>/model.safetensors)")
    p.add_argument("--progress", choices=("auto", "on", "off"), default="auto")
    p.add_argument("--stop-after-steps", type=int, default=0,
                   help="save state and stop after this many steps in total (chunked runs)")
    return p


# ------------------------------------------------------------------------------ helpers
def lr_at(step: int, total: int, args) -> float:
    """Learning rate as a pure function of the step (no scheduler state to save)."""
    if args.schedule == "constant" or total <= 0:
        return args.lr
    t = min(step / total, 1.0)
    if args.schedule == "onecycle":
        w = max(args.warmup, 1e-6)
        if t < w:
            return args.lr * (0.04 + 0.96 * t / w)
        t = (t - w) / (1 - w)
    return args.lr * 0.5 * (1 + math.cos(math.pi * t)) + args.lr * 1e-4


def exit_weights(args, k: int) -> list[float]:
    if args.exit_weights:
        w = [float(v) for v in args.exit_weights.split(",")]
        if len(w) != k:
            raise SystemExit(f"--exit-weights needs {k} values, got {len(w)}")
        return w
    return [1.0] * k


def early_exit_loss(outs: list[torch.Tensor], y: torch.Tensor, weights: list[float],
                    distill: float = 0.0, temp: float = 3.0,
                    label_smoothing: float = 0.0) -> tuple[torch.Tensor, list[float]]:
    """sum_k w_k * L_k; L_k mixes cross-entropy with distillation from the last exit."""
    total = outs[0].new_zeros(())
    parts = []
    teacher = (outs[-1].detach() / temp).softmax(dim=1) if distill > 0 else None
    for k, (o, w) in enumerate(zip(outs, weights, strict=True)):
        ce = nn.functional.cross_entropy(o, y, label_smoothing=label_smoothing)
        loss = ce
        if teacher is not None and k < len(outs) - 1:
            kd = nn.functional.kl_div((o / temp).log_softmax(dim=1), teacher,
                                      reduction="batchmean") * temp * temp
            loss = (1 - distill) * ce + distill * kd
        parts.append(float(ce.detach()))
        if w:
            total = total + w * loss
    return total, parts


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases and normalisation parameters (1-d tensors)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, args) -> torch.optim.Optimizer:
    groups = param_groups(model, args.weight_decay)
    if args.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=args.lr, momentum=args.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=args.lr)


def learned_cuts(model: EarlyExitModel) -> list[int]:
    """Cuts (1-based) whose codec has weights."""
    return [k for k, c in enumerate(model.codecs, 1) if any(True for _ in c.parameters())]


def set_trainable(model: EarlyExitModel, mode: str) -> None:
    """heads mode: only intermediate heads learn; codec mode: only learned codecs; the
    frozen parts keep their BN statistics (train_mode)."""
    for p in model.parameters():
        p.requires_grad_(mode == "joint")
    learning = list(model.heads)[:-1] if mode == "heads" else \
        [model.codecs[k - 1] for k in learned_cuts(model)] if mode == "codec" else []
    for m in learning:
        for p in m.parameters():
            p.requires_grad_(True)


def train_mode(model: EarlyExitModel, mode: str) -> None:
    model.train()
    if mode == "heads":
        for m in (*model.stages, *model.codecs, model.heads[-1]):
            m.eval()
    elif mode == "codec":
        for m in (*model.stages, *model.heads):
            m.eval()


def _args_fingerprint(args) -> dict:
    return {k: v for k, v in sorted(vars(args).items())
            if k not in RESUME_FREE and not k.startswith("_")}


def save_state(work: Path, model: nn.Module, opt: torch.optim.Optimizer, pos: dict,
               args, history: list) -> None:
    """Resumable state: tensors in safetensors, everything else in JSON (no pickle)."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous().clone()
               for k, v in model.state_dict().items()}
    osd = opt.state_dict()
    for idx, st in osd["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"opt.{idx}.{key}"] = val.detach().cpu().contiguous().clone()
    scalars = {str(i): {k: v for k, v in st.items() if not torch.is_tensor(v)}
               for i, st in osd["state"].items()}
    groups = [{k: v for k, v in g.items() if k != "params"} for g in osd["param_groups"]]
    h = hashlib.sha256()
    for k in sorted(tensors):
        h.update(k.encode() + tensors[k].reshape(-1).view(torch.uint8).numpy().tobytes())
    tmp_t = work / "state.safetensors.tmp"
    save_file(tensors, str(tmp_t))
    info = {"version": STATE_VERSION, "position": pos, "args": _args_fingerprint(args),
            "opt_scalars": scalars, "opt_groups": groups, "history": history,
            "tensors_sha256": h.hexdigest(), "saved_at": time.time()}
    tmp_j = work / "state.json.tmp"
    tmp_j.write_text(json.dumps(info, indent=1))
    os.replace(tmp_t, work / "state.safetensors")
    os.replace(tmp_j, work / "state.json")


def load_state(work: Path, model: nn.Module, opt: torch.optim.Optimizer, args):
    info = json.loads((work / "state.json").read_text())
    if info.get("version") != STATE_VERSION:
        raise SystemExit(f"{work}/state.json: unsupported state version")
    fp = _args_fingerprint(args)
    defaults = _args_fingerprint(build_parser().parse_args([]))
    saved = info["args"]
    # options added after the state was written must still be at their defaults
    diff = {k: (saved.get(k, defaults.get(k)), fp[k]) for k in fp
            if saved.get(k, defaults.get(k)) != fp[k]}
    if diff:
        raise SystemExit(f"{work}: saved run used different arguments {diff}; "
                         "use another --work-dir or --resume never")
    tensors = load_file(str(work / "state.safetensors"))
    h = hashlib.sha256()
    for k in sorted(tensors):
        h.update(k.encode() + tensors[k].reshape(-1).view(torch.uint8).numpy().tobytes())
    if h.hexdigest() != info["tensors_sha256"]:
        raise SystemExit(f"{work}: state.safetensors does not match state.json (corrupt)")
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    osd = opt.state_dict()
    state = {}
    for idx_s, sc in info["opt_scalars"].items():
        idx = int(idx_s)
        st = dict(sc)
        for k, v in tensors.items():
            if k.startswith(f"opt.{idx}."):
                st[k[len(f'opt.{idx}.'):]] = v
        state[idx] = st
    groups = [dict(g, params=og["params"]) for g, og in zip(info["opt_groups"],
                                                          osd["param_groups"], strict=True)]
    opt.load_state_dict({"state": state, "param_groups": groups})
    return info["position"], info["history"]


def setup_logging(work: Path) -> None:
    log.setLevel(logging.INFO)
    for h in log.handlers:
        h.close()
    log.handlers.clear()
    fmt = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")
    for h in (logging.StreamHandler(sys.stdout), logging.FileHandler(work / "train.log")):
        h.setFormatter(fmt)
        log.addHandler(h)
    log.propagate = False


def split_heldout(train: ImageArrays, val_size: int) -> tuple[ImageArrays, ImageArrays]:
    """(rest, held-out) of a training split: at most ``val_size`` images and a fifth of the
    split, drawn with a fixed seed. ``mdi-exit eval --calibrate-on heldout`` calls this
    too, so it calibrates on exactly the images that training never saw."""
    return train.split(min(val_size, len(train) // 5), seed=HOLDOUT_SEED)


def prepare_data(args, spec) -> tuple[ImageArrays, ImageArrays, ImageArrays]:
    """(train, val, test) arrays; val is held out of train for threshold calibration."""
    size = spec.size if args.dataset.startswith("folder:") else None
    train = load_dataset(args.dataset, "train", size=size, channels=spec.channels)
    test = load_dataset(args.dataset, "test", size=size, channels=spec.channels)
    if args.limit_train:
        train = train.subset(torch.arange(min(args.limit_train, len(train))).numpy())
    if args.limit_test:
        test = test.subset(torch.arange(min(args.limit_test, len(test))).numpy())
    train, val = split_heldout(train, args.val_size)
    if train.channels != spec.channels:
        raise SystemExit(
            f"{args.dataset} has {train.channels} channels, model wants {spec.channels}"
        )
    return train, val, test


def augment_kind(args) -> str:
    if args.augment != "auto":
        return args.augment
    return {"cifar10": "crop-flip", "fmnist": "crop"}.get(args.dataset, "none")


def evaluate_exits(model, data: ImageArrays, batch_size: int = 500):
    return collect_exit_outputs(model, data.tensor_nchw(), torch.from_numpy(data.labels),
                                batch_size=batch_size)


# ------------------------------------------------------------------------------ main
def run(args) -> dict | None:
    torch.set_num_threads(max(1, args.threads))
    work = Path(args.work_dir or Path("runs") / args.model)
    work.mkdir(parents=True, exist_ok=True)
    setup_logging(work)
    lock = work / "train.pid"
    if lock.exists():
        try:
            other = int(lock.read_text().strip() or 0)
            if other and other != os.getpid():
                os.kill(other, 0)
                raise SystemExit(f"{work}: already being trained by pid {other}")
        except (ProcessLookupError, ValueError):
            pass
    lock.write_text(str(os.getpid()))
    try:
        return _run(args, work)
    finally:
        lock.unlink(missing_ok=True)


def _run(args, work: Path) -> dict | None:
    log.info("command: %s", shlex.join(["mdi-exit", "train", *args._argv]))
    torch.manual_seed(args.seed)
    kwargs: dict = {}
    if args.init:
        model, init_meta = load_checkpoint(args.init)
        log.info("initialised from %s (%s)", args.init, init_meta["model_id"])
    else:
        kwargs = json.loads(args.model_kwargs)
        model = build_model(args.model, **kwargs)
    if args.init and model.arch != args.model:
        raise SystemExit(f"--init is a {model.arch}, not {args.model}")
    if args.codecs is not None:
        if not args.init:
            raise SystemExit("--codecs replaces the codecs of an --init model; for a new model "
                             "give codecs in --model-kwargs")
        try:
            model = with_codecs(model, json.loads(args.codecs))
        except (ValueError, TypeError) as e:
            raise SystemExit(f"--codecs: {e}") from e
    if args.mode == "codec" and not (args.init and learned_cuts(model)):
        raise SystemExit("--mode codec trains the learned codecs (e.g. the autoencoder) of an "
                         "--init model: give --init and a learned codec (--codecs)")
    spec = model.input_spec
    train, val, test = prepare_data(args, spec)
    if not args.init and "class_names" not in kwargs and train.classes != model.class_names:
        # name the classes as the data does (folders); rebuild with the same seed
        kwargs.update(num_classes=len(train.classes), class_names=train.classes)
        torch.manual_seed(args.seed)
        model = build_model(args.model, **kwargs)
    if len(train.classes) != model.num_classes:
        raise SystemExit(f"dataset has {len(train.classes)} classes, model {model.num_classes}")
    log.info("data: train %d, val %d, test %d images of %s", len(train), len(val), len(test),
             train.images.shape[1:])
    prof = model.profile()
    log.info("exit MFLOPs (cumulative): %s", [round(f / 1e6, 2) for f in prof.exit_flops()])
    set_trainable(model, args.mode)
    model = model.to(args._device)
    log.info("device: %s", args._device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    weights = exit_weights(args, model.num_exits)
    if args.mode == "heads":
        weights[-1] = 0.0
    if args.mode == "codec":  # exits before the first learned cut do not depend on it
        weights[:learned_cuts(model)[0]] = [0.0] * learned_cuts(model)[0]
    opt = make_optimizer(model, args)
    n_batches = len(train) // args.batch_size
    if n_batches == 0:
        raise SystemExit("fewer training images than one batch")
    total_steps = n_batches * args.epochs
    pos, history = {"epoch": 0, "batch": 0, "step": 0}, []
    if args.resume == "auto" and (work / "state.json").is_file():
        pos, history = load_state(work, model, opt, args)
        log.info("resumed from %s at epoch %d batch %d", work, pos["epoch"] + 1, pos["batch"])
    aug = augment_kind(args)
    stop = {"flag": False}

    def _on_term(signum, _frame) -> None:  # finish the batch, save, exit
        log.info("signal %d: saving state and stopping", signum)
        stop["flag"] = True

    old_term = signal.signal(signal.SIGTERM, _on_term)
    try:
        return _train_loop(args, work, model, opt, train, val, test, pos, history, weights,
                           total_steps, n_batches, aug, stop)
    finally:
        signal.signal(signal.SIGTERM, old_term)


def _train_loop(args, work, model, opt, train, val, test, pos, history, weights,
                total_steps, n_batches, aug, stop) -> dict | None:
    spec = model.input_spec
    x_all = train.tensor_nchw()
    y_all = torch.from_numpy(train.labels)
    show = args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty())
    last_ckpt = time.time()
    while pos["epoch"] < args.epochs:
        epoch = pos["epoch"]
        train_mode(model, args.mode)
        t0, seen, loss_sum, parts_sum = time.time(), 0, 0.0, [0.0] * model.num_exits
        batches = iterate_batches(x_all, y_all, args.batch_size, args.seed * 1000 + epoch,
                                  start_batch=pos["batch"], drop_last=True)
        bar = tqdm(batches, total=n_batches, initial=pos["batch"], disable=not show,
                   desc=f"epoch {epoch + 1}/{args.epochs}", leave=False)
        for b, xb, yb in bar:
            step = pos["step"]
            torch.manual_seed(args.seed * 1_000_003 + step)
            g = torch.Generator().manual_seed(args.seed * 7_919 + step)
            if aug == "crop-flip":
                xb = random_crop_flip(xb, 4, True, g)
            elif aug == "crop":
                xb = random_crop_flip(xb, 2, False, g)
            xb, yb = xb.to(args._device), yb.to(args._device)
            x = spec.normalize(xb)
            if args.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            lr = lr_at(step, total_steps, args)
            for grp in opt.param_groups:
                grp["lr"] = lr
            outs = model(x)
            loss, parts = early_exit_loss(outs, yb, weights, args.distill, args.distill_temp,
                                          args.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if not torch.isfinite(loss):
                raise SystemExit(f"loss became {float(loss)} at step {step}; lower --lr")
            seen += 1
            loss_sum += float(loss.detach())
            parts_sum = [a + p for a, p in zip(parts_sum, parts, strict=True)]
            pos = {"epoch": epoch, "batch": b + 1, "step": step + 1}
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", lr=f"{lr:.4f}")
            if args.log_every and (b + 1) % args.log_every == 0:
                el = time.time() - t0
                log.info("epoch %d batch %d/%d loss %.4f lr %.5f (%.2f s/batch)", epoch + 1,
                         b + 1, n_batches, loss_sum / seen, lr, el / seen)
            if args.stop_after_steps and pos["step"] >= args.stop_after_steps:
                stop["flag"] = True
            if stop["flag"]:
                save_state(work, model, opt, pos, args, history)
                log.info("stopped at epoch %d batch %d (step %d); state in %s - run the same "
                         "command to resume", epoch + 1, pos["batch"], pos["step"], work)
                return None
            if args.ckpt_every_min > 0 and time.time() - last_ckpt > 60 * args.ckpt_every_min:
                save_state(work, model, opt, pos, args, history)
                last_ckpt = time.time()
        bar.close()
        rec = {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1),
               "train_ce": [p / max(seen, 1) for p in parts_sum],
               "seconds": time.time() - t0}
        if args.eval_every and ((epoch + 1) % args.eval_every == 0 or epoch + 1 == args.epochs):
            rec["test_exit_accuracy"] = evaluate_exits(model, test).exit_accuracy()
        history.append(rec)
        log.info("epoch %d done: loss %.4f, %.0f s, test exit acc %s", epoch + 1,
                 rec["train_loss"], rec["seconds"],
                 [round(100 * a, 2) for a in rec.get("test_exit_accuracy", [])])
        pos = {"epoch": epoch + 1, "batch": 0, "step": pos["step"]}
        save_state(work, model, opt, pos, args, history)
        last_ckpt = time.time()
    return finish(args, work, model, val, test, history)


def finish(args, work: Path, model: EarlyExitModel, val: ImageArrays, test: ImageArrays,
           history: list) -> dict:
    """Measure, calibrate thresholds, write the final checkpoint."""
    model = model.to(memory_format=torch.contiguous_format).eval()
    exit_flops = model.profile(refresh=True).exit_flops()
    test_out = evaluate_exits(model, test)
    cal_split, cal_data = ("val", val) if len(val) else ("test", test)
    cal_out = evaluate_exits(model, cal_data) if len(val) else test_out
    cal = calibrate(cal_out, exit_flops, args.max_drop)
    thresholds = [cal.threshold[0]] * (model.num_exits - 1) + [0.0]
    at = simulate(test_out, thresholds, exit_flops)
    meta = {
        "dataset": args.dataset,
        "exit_accuracy": test_out.exit_accuracy(),
        "exit_accuracy_split": f"{args.dataset}:test ({len(test)} images)",
        "thresholds": thresholds,
        "threshold_calibration": {"split": f"{cal_split} ({len(cal_data)} images)",
                                  "max_drop_points": args.max_drop, "rule": "max_softmax > T"},
        "test_at_thresholds": {"accuracy": at.accuracy, "exit_fraction": at.exit_fraction,
                               "avg_flops": at.avg_flops, "full_flops": exit_flops[-1]},
        "training": {"command": shlex.join(["mdi-exit", "train", *args._argv]),
                     "epochs": args.epochs, "seed": args.seed, "mode": args.mode,
                     "final_train_loss": history[-1]["train_loss"] if history else None},
    }
    out = Path(args.out or work / "model.safetensors")
    full = save_checkpoint(model, out, meta)
    log.info("test exit accuracy: %s", [round(100 * a, 2) for a in meta["exit_accuracy"]])
    log.info("thresholds %s (calibrated on %s): test accuracy %.2f%%, exits %s, "
             "avg %.2f MFLOPs of %.2f", thresholds, cal_split, 100 * at.accuracy,
             [round(f, 3) for f in at.exit_fraction], at.avg_flops / 1e6, exit_flops[-1] / 1e6)
    log.info("wrote %s (%s)", out, full["model_id"])
    return full


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    apply_data_dir(args.data_dir)
    args._argv = argv
    try:
        json.loads(args.model_kwargs)
    except json.JSONDecodeError as e:
        print(f"--model-kwargs is not JSON: {e}", file=sys.stderr)
        return 2
    try:
        args._device = resolve_device(args.device)
    except DeviceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result = run(args)
    return 0 if result is not None else EXIT_STOPPED


if __name__ == "__main__":
    raise SystemExit(main())
