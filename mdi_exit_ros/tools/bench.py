"""`mdi-exit bench <name>`: speed measurements, reported as medians over repeats.

`mdi-exit bench <scenario>` (quick, full, a YAML) runs real fleets: tools/bench_fleet.py.

Benchmarks are where speed goals live (tests only assert behaviour with generous bounds).
Results print as a Markdown table so they can go into docs/PERFORMANCE.md as they are.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial

import numpy as np

MB = 1 << 20


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def bench_codec(sizes: list[int], repeats: int) -> list[dict]:
    """Encode + decode cost of float32 tensors of each size, in ms per MB."""
    from mdi_exit_ros.wire import from_msg, to_msg

    rows = []
    for size in sizes:
        data = np.random.default_rng(0).standard_normal(size // 4).astype(np.float32)
        msg = to_msg(data)
        encode = _median_time(partial(to_msg, data), repeats * 20)
        decode = _median_time(partial(from_msg, msg), repeats * 20)
        rows.append({"bytes": size, "encode_ms": encode * 1e3, "decode_ms": decode * 1e3,
                     "encode_decode_ms_per_mb": (encode + decode) * 1e3 * MB / size})
    return rows


def _one_throughput_run(size: int, count: int, transport: str, timeout: float) -> dict:
    from mdi_exit_ros.tools.wire_echo import spawn, wait_ready

    env = {"FASTDDS_BUILTIN_TRANSPORTS": transport}
    receiver = spawn("receive", "Tensor", count, size, timeout, env=env, quiet=True)
    sender = None
    try:
        wait_ready(receiver, timeout)
        sender = spawn("send", "Tensor", count, size, timeout, env=env)
        sender.wait(timeout=timeout + 10)
        out, _ = receiver.communicate(timeout=timeout + 10)
    finally:
        for proc in (receiver, sender):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    summary = next(json.loads(line)["summary"] for line in out.splitlines()
                   if line.startswith('{"summary"'))
    received, span = summary["received"], summary["span_s"]
    rate = (received - 1) / span if span > 0 else float("nan")
    return {"received": received, "msgs_per_s": rate, "mb_per_s": rate * size / MB}


def bench_throughput(sizes: list[int], transports: list[str], repeats: int,
                     timeout: float) -> list[dict]:
    """Two-process publish -> subscribe throughput, reliable QoS, medians over repeats."""
    rows = []
    for transport in transports:
        for size in sizes:
            count = max(20, min(2000, (256 * MB) // size))
            runs = [_one_throughput_run(size, count, transport, timeout) for _ in range(repeats)]
            rows.append({
                "transport": transport, "bytes": size, "count": count,
                "lost": sum(count - r["received"] for r in runs),
                "msgs_per_s": statistics.median(r["msgs_per_s"] for r in runs),
                "mb_per_s": statistics.median(r["mb_per_s"] for r in runs),
            })
    return rows


def _size_label(size: int) -> str:
    return f"{size // MB} MB" if size >= MB else f"{size // 1024} KB"


def wire_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="mdi-exit bench wire",
        description="Tensor codec cost and two-process Fast DDS throughput.")
    parser.add_argument("--sizes", default="65536,1048576", help="tensor bytes, comma-separated")
    parser.add_argument("--transports", default="DEFAULT,LARGE_DATA",
                        help="FASTDDS_BUILTIN_TRANSPORTS values to compare")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    sizes = [int(s) for s in args.sizes.split(",")]
    transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

    codec = bench_codec(sizes, args.repeats)
    print("## Tensor codec (float32, median of", args.repeats * 20, "runs)\n")
    print("| size | encode ms | decode ms | encode+decode ms per MB |")
    print("|---|---|---|---|")
    for r in codec:
        print(f"| {_size_label(r['bytes'])} | {r['encode_ms']:.3f} | {r['decode_ms']:.4f} "
              f"| {r['encode_decode_ms_per_mb']:.3f} |")
    throughput = bench_throughput(sizes, transports, args.repeats, args.timeout)
    print(f"\n## Two-process throughput (reliable, median of {args.repeats} runs)\n")
    print("| transport | size | messages per run | lost | messages/s | MB/s |")
    print("|---|---|---|---|---|---|")
    for r in throughput:
        print(f"| {r['transport']} | {_size_label(r['bytes'])} | {r['count']} | {r['lost']} "
              f"| {r['msgs_per_s']:.0f} | {r['mb_per_s']:.0f} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"codec": codec, "throughput": throughput}, f, indent=2)
    return 0


def _cut_models(model_ref: str, kwargs: dict, cut: int, codecs: list[str]) -> list[tuple]:
    """(codec label, model) per codec at `cut`: a checkpoint (name/path) or an untrained
    registered architecture; the other cuts keep their codecs."""
    from mdi_exit_ros.model.builders import MODEL_BUILDERS, build_model, with_codecs
    from mdi_exit_ros.model.checkpoint import load_model

    base = build_model(model_ref, **kwargs) if model_ref in MODEL_BUILDERS else \
        load_model(model_ref)[0]
    out = []
    for label in codecs:
        specs = base.codec_configs()
        if label != "model":
            specs[cut - 1] = json.loads(label) if label.startswith("{") else label
        m = with_codecs(base, specs).eval()
        out.append((m.codec_configs()[cut - 1]["name"] if label == "model" else label, m))
    return out


def _decode_msg(model, cut: int, msg) -> object:
    """What a receiving worker does with a Task (Engine.run): tensor message -> torch ->
    the next task's input features."""
    from mdi_exit_ros.wire.tensor_codec import msg_to_torch

    return model.decode(cut, msg_to_torch(msg.tensor))


def bench_cut(model_ref: str, kwargs: dict, cut: int, codecs: list[str], count: int,
              transports: list[str], timeout: float) -> tuple[list[dict], dict]:
    """Bytes, encode/decode ms and the one-way time (round trip / 2, to an echo process) of
    the tensor that crosses `cut`, for each codec there."""
    import rclpy
    import torch

    from mdi_exit_ros.msg import Task
    from mdi_exit_ros.tools.procs import stop_all
    from mdi_exit_ros.tools.wire_echo import ping, spawn, wait_ready
    from mdi_exit_ros.wire import to_msg

    torch.set_num_threads(1)
    rows, info, measured = [], {}, []
    for label, model in _cut_models(model_ref, kwargs, cut, codecs):
        spec = model.input_spec
        images = torch.randint(0, 256, (1, spec.channels, spec.size, spec.size),
                               dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            x = spec.normalize(images)
            for k in range(1, cut):
                x = model.decode(k, model.encode(k, model.run_task(k, x)[0]))
            feats = model.run_task(cut, x)[0]
            wire = model.encode(cut, feats)
            encode_s = _median_time(partial(model.encode, cut, feats), 20)
            msg = Task(source="robot1", data_id=1, task_index=cut + 1, model_id="bench",
                       sender="robot1", attempt=1, hops=1,
                       tensor=to_msg(wire.numpy(), name=f"cut{cut}"))
            decode_s = _median_time(partial(_decode_msg, model, cut, msg), 20)
        info = {"input": [spec.channels, spec.size, spec.size],
                "features": list(feats.shape[1:]), "feature_bytes": feats.numel() * 4}
        measured.append((label, wire, msg, encode_s, decode_s))
    for transport in transports:
        echo = spawn("echo", "Task", 0, 0, timeout, env={"FASTDDS_BUILTIN_TRANSPORTS": transport})
        try:
            wait_ready(echo, timeout)
            os.environ["FASTDDS_BUILTIN_TRANSPORTS"] = transport  # this process's side
            rclpy.init()
            try:
                rtts = ping([m[2] for m in measured], count, timeout)
            finally:
                rclpy.try_shutdown()
        finally:
            stop_all([echo], timeout=10)
        for (label, wire, msg, encode_s, decode_s), times in zip(measured, rtts, strict=True):
            one_way = sorted(r / 2 for r in times)
            rows.append({
                "codec": label, "transport": transport, "wire_shape": list(wire.shape[1:]),
                "wire_dtype": str(wire.dtype).replace("torch.", ""),
                "wire_bytes": len(msg.tensor.data), "encode_ms": encode_s * 1e3,
                "decode_ms": decode_s * 1e3, "one_way_ms": statistics.median(one_way) * 1e3,
                "one_way_p90_ms": one_way[int(0.9 * (len(one_way) - 1))] * 1e3,
                "count": len(times)})
    return rows, info


def cut_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="mdi-exit bench cut",
        description="What crossing one cut costs per image with each codec: bytes, encode and "
                    "decode time, and the one-way time of the Task between two processes "
                    "(round trip to an echo process / 2; one message in flight; the codecs' "
                    "messages alternate, so they are timed under the same load).")
    parser.add_argument("--model", default="resnet50_ee",
                        help="registered architecture (untrained; weights do not change bytes "
                             "or times) or a checkpoint name/path")
    parser.add_argument("--model-kwargs", default="{}", help="JSON, for an architecture")
    parser.add_argument("--cut", type=int, default=1)
    parser.add_argument("--codecs", default="model,identity",
                        help="comma list: model (the model's own codec there), identity, fp16, "
                             "autoencoder")
    parser.add_argument("--count", type=int, default=50, help="round trips per row")
    parser.add_argument("--transports", default="DEFAULT,UDPv4",
                        help="FASTDDS_BUILTIN_TRANSPORTS values (UDPv4: no shared memory, "
                             "as between two computers)")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    rows, info = bench_cut(args.model, json.loads(args.model_kwargs), args.cut,
                           [c.strip() for c in args.codecs.split(",") if c.strip()], args.count,
                           [t.strip() for t in args.transports.split(",") if t.strip()],
                           args.timeout)
    print(f"## Cut {args.cut} of {args.model} {args.model_kwargs}: input {info['input']}, "
          f"features {info['features']} = {info['feature_bytes']:,} bytes fp32 "
          f"(medians; one-way over {args.count} round trips)\n")
    print("| codec | transport | wire shape, dtype | wire bytes | compression | encode ms | "
          "one-way ms (p90) | decode ms | encode + one-way + decode ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        total = r["encode_ms"] + r["one_way_ms"] + r["decode_ms"]
        print(f"| {r['codec']} | {r['transport']} | {r['wire_shape']} {r['wire_dtype']} "
              f"| {r['wire_bytes']:,} | {info['feature_bytes'] / r['wire_bytes']:.0f}x "
              f"| {r['encode_ms']:.3f} | {r['one_way_ms']:.3f} ({r['one_way_p90_ms']:.3f}) "
              f"| {r['decode_ms']:.3f} | {total:.3f} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"info": info, "rows": rows}, f, indent=2)
    return 0


BENCHES: dict[str, Callable[[list[str]], int]] = {"wire": wire_main, "cut": cut_main}


def main(argv: list[str] | None = None) -> int:
    """`mdi-exit bench wire ...`, or `mdi-exit bench <scenario>` (config/bench/, a YAML):
    real fleets for the paper's Figs. 3-6 (tools/bench_fleet.py)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(f"usage: mdi-exit bench {{{','.join(BENCHES)}}} [options]\n"
              "       mdi-exit bench <scenario> [options]   (quick, full or a scenario YAML; "
              "--help for its options)", file=sys.stderr)
        return 0 if args else 2
    if args[0] in BENCHES:
        return BENCHES[args[0]](args[1:])
    from mdi_exit_ros.tools import bench_fleet

    return bench_fleet.main(args)


if __name__ == "__main__":
    sys.exit(main())
