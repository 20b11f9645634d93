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


BENCHES: dict[str, Callable[[list[str]], int]] = {"wire": wire_main}


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
