"""`mdi-exit sim <scenario.yaml>`: run a simulation scenario (or its sweep), write CSV + PNG.

Every run of the scenario's `sweep` (or the one run) becomes a row of `<out>/runs.csv`; with a
numeric sweep key the runs are also plotted (`<out>/sweep.png`: admitted rate and latency p50
versus that key, one curve per combination of the other keys). A progress bar (tqdm, as
`mdi-exit train`) follows the simulated time.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from . import topologies
from .scenario import (
    SimScenarioError,
    build,
    expand_sweep,
    metrics,
    metrics_of,
    parts,
    set_dotted,
    tally,
    validate,
)

REPO = Path(__file__).resolve().parents[2]

FIELDS = ("run", "overrides", "topology", "workers", "sources", "links", "components",
          "offload_first_task", "offered_rate", "admitted_rate", "answered_rate", "accuracy",
          "latency_p50", "latency_p95", "results", "expired_in_window", "exit_distribution",
          "admitted", "answered", "pending", "expired", "dropped", "readmitted", "duplicates",
          "tasks", "tasks_share_source", "utilisation", "sim_time", "events", "wall_s",
          "cpu_s", "events_per_s", "events_per_cpu_s", "seeds", "means_over", "admitted_rate_sd",
          "answered_rate_sd", "accuracy_sd", "latency_p50_sd")
SPREAD = ("admitted_rate", "answered_rate", "accuracy", "latency_p50")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mdi-exit sim", description=__doc__.split("\n")[0])
    p.add_argument("scenario", help="scenario YAML (docs/SIMULATION.md; examples: config/sim/), "
                   "or with --bench a `mdi-exit bench` scenario (quick, validate, a YAML)")
    p.add_argument("--bench", action="store_true",
                   help="simulate the points of a bench scenario (sim/bench.py)")
    p.add_argument("--exits", metavar="FILE",
                   help="--bench: the model's per-image table (default: "
                        "docs/sim/<model>_test.csv.gz of this checkout)")
    p.add_argument("--compare", metavar="RUNS_CSV",
                   help="--bench: a bench run's runs.csv; writes compare.md beside runs.csv")
    p.add_argument("--only", metavar="POLICY[,POLICY...]", help="--bench: only these policies")
    p.add_argument("--out", help="output folder (default: sim-results/<scenario name>)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a scenario key (dotted, YAML value), e.g. topology.n=50")
    p.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="run each scenario with N seeds (seed, seed + 1, ...): the row holds "
                        "the means, and the standard deviations of the compared numbers")
    p.add_argument("--progress", choices=("auto", "on", "off"), default="auto")
    p.add_argument("--profile", metavar="FILE", help="write a cProfile of the runs here")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="processes for the components of a `split: components` scenario "
                        "(the rows do not depend on it)")
    p.add_argument("--compiled", action="store_true",
                   help="run on the core and event loop compiled with mypyc (sim/compiled.py: "
                        "the same results, about twice as fast), building them first if "
                        "needed (~1 min; mypy and a C compiler)")
    return p


def _use_compiled(wanted: bool, argv: list[str]) -> str | None:
    """With --compiled, re-run this command on the compiled copy (does not return then);
    returns why it cannot, or None to go on (plainly, or already compiled)."""
    from . import compiled

    if not wanted:
        return None
    if compiled.active():  # the re-run on the copy
        try:
            compiled.check_active()
        except compiled.CompiledError as exc:
            return str(exc)
        print(f"mdi-exit sim: compiled (mypyc) core and event loop from "
              f"{os.environ[compiled.ACTIVE_ENV]}", file=sys.stderr)
        return None
    folder = compiled.find()
    if folder is None:
        print(f"mdi-exit sim: compiling the core and the event loop with mypyc into "
              f"{compiled.cache_root()} (once for these sources, ~1 min)", file=sys.stderr)
        try:
            folder = compiled.build()
        except (compiled.CompiledError, OSError) as exc:
            return f"--compiled: {exc}"
    compiled.run_compiled(folder, argv)
    return None  # not reached


def _run_part(data: dict[str, Any], base: Path, part: int
              ) -> tuple[dict[str, Any], dict[str, Any], float]:
    """One component of a split scenario (in a process of its own with --jobs): the
    scenario's facts, the part's tally and the CPU seconds of its run."""
    sim, facts = build(data, base, part)
    cpu = time.process_time()
    sim.run(facts["duration"], facts["drain"])
    return facts, tally(sim, facts), time.process_time() - cpu


def run_split(data: dict[str, Any], base: Path, label: str, show: bool, jobs: int,
              n: int) -> dict[str, Any]:
    """A `split: components` scenario: its ``n`` components run apart (``jobs`` processes,
    the largest first) and add up to one row, the same whatever ``jobs`` is. `cpu_s` is the
    parts' CPU seconds added up; `wall_s` the whole."""
    sizes = [len(c) for c in topologies.component_lists(validate(data, base).topology)]
    order = sorted(range(n), key=lambda i: (-sizes[i], i))
    started = time.perf_counter()
    done: dict[int, tuple[dict[str, Any], dict[str, Any], float]] = {}
    bar = tqdm(total=n, unit="part", desc=label, disable=not show, leave=False)
    try:
        if jobs > 1:
            ctx = multiprocessing.get_context("fork")  # the children reuse the loaded modules
            with ProcessPoolExecutor(max_workers=min(jobs, n), mp_context=ctx) as pool:
                futures = {pool.submit(_run_part, data, base, i): i for i in order}
                try:
                    for future in as_completed(futures):
                        done[futures[future]] = future.result()
                        bar.update(1)
                except BaseException:  # a part failed: do not wait for the others
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
        else:
            for i in order:
                done[i] = _run_part(data, base, i)
                bar.update(1)
    finally:
        bar.close()
    wall = time.perf_counter() - started
    facts = done[0][0]
    m = metrics_of([done[i][1] for i in range(n)], facts)
    cpu = sum(done[i][2] for i in range(n))
    return {**facts, **m, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "events_per_s": round(m["events"] / wall) if wall > 0 else None,
            "events_per_cpu_s": round(m["events"] / cpu) if cpu > 0 else None}


def run_one(data: dict[str, Any], base: Path, label: str, show: bool,
            jobs: int = 1) -> dict[str, Any]:
    """Build, run and measure one scenario (no sweep)."""
    n = parts(data, base)
    if n > 1:
        return run_split(data, base, label, show, jobs, n)
    sim, facts = build(data, base)
    total = facts["duration"] + facts["drain"]
    bar = tqdm(total=round(total), unit="sim s", desc=label, disable=not show, leave=False)

    def progress(now: float) -> None:
        bar.update(max(0, round(now) - bar.n))

    started, cpu = time.perf_counter(), time.process_time()
    sim.run(facts["duration"], facts["drain"], progress)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    bar.close()
    row = {**facts, **metrics(sim, facts), "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
           "events_per_s": round(sim.events / wall) if wall > 0 else None,
           "events_per_cpu_s": round(sim.events / cpu) if cpu > 0 else None}
    return row


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def run_seeds(data: dict[str, Any], base: Path, label: str, show: bool,
              seeds: int, jobs: int = 1) -> dict[str, Any]:
    """`run_one` with `seeds` seeds: means of the numbers (lists such as the exit mix element
    by element), spread of the compared ones. A seed without a value (no answer in its
    window: no p50, no accuracy) is left out of that mean, and `means_over` says over how
    many seeds such a mean is ({key: n} for those under `seeds`)."""
    first = int(data.get("seed", 1))
    return combine([run_one({**data, "seed": first + i}, base, f"{label} seed {first + i}",
                            show, jobs) for i in range(seeds)])


def combine(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One row of several seeds' rows (see `run_seeds`)."""
    seeds = len(rows)
    row = dict(rows[0])
    row["seeds"] = seeds
    over: dict[str, int] = {}
    for key in rows[0]:
        values = [r.get(key) for r in rows]
        nums = [v for v in values if _is_num(v)]
        lists = [v for v in values if isinstance(v, list) and v and all(map(_is_num, v))]
        if nums and len(nums) + values.count(None) == len(values):
            row[key] = statistics.fmean(nums)
            if key in SPREAD and len(nums) > 1:
                row[f"{key}_sd"] = statistics.stdev(nums)
            counted = len(nums)
        elif lists and len({len(v) for v in lists}) == 1 and \
                len(lists) + sum(1 for v in values if v in (None, [])) == len(values):
            row[key] = [round(statistics.fmean(col), 6) for col in zip(*lists, strict=True)]
            counted = len(lists)
        elif all(v is None for v in values) and key in SPREAD:
            counted = 0
        else:
            continue
        if counted < seeds:
            over[key] = counted
    row["means_over"] = over
    return row


def _fail(message: str) -> int:
    """One line on stderr (a scenario's error may quote multi-line YAML); exit status 2."""
    print("mdi-exit sim: " + " ".join(message.split()), file=sys.stderr)
    return 2


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 6)
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return "" if v is None else v


def plot(rows: list[dict[str, Any]], keys: list[str], out: Path, title: str) -> Path | None:
    """Admitted rate and latency p50 versus the first numeric sweep key."""
    xkey = next((k for k in keys if all(isinstance(r["overrides"][k], (int, float))
                                        and not isinstance(r["overrides"][k], bool)
                                        for r in rows)), None)
    if xkey is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    others = [k for k in keys if k != xkey]
    fig, (ad, lat) = plt.subplots(1, 2, figsize=(11, 4.2))
    series: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        label = ", ".join(f"{k.split('.')[-1]}={r['overrides'][k]}" for k in others) or "run"
        series.setdefault(label, []).append(r)
    for label, rs in series.items():
        rs = sorted(rs, key=lambda r: r["overrides"][xkey])
        xs = [r["overrides"][xkey] for r in rs]
        line, = ad.plot(xs, [r["admitted_rate"] for r in rs], "o-", label=label)
        lat.plot(xs, [r["latency_p50"] if r["latency_p50"] is not None else float("nan")
                      for r in rs], "o-", color=line.get_color(), label=label)
    for ax, yl in ((ad, "admitted frames/s (window)"), (lat, "latency p50 (s)")):
        ax.set_xlabel(xkey)
        ax.set_ylabel(yl)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ticks = sorted({r["overrides"][xkey] for r in rows})
    for ax in (ad, lat):
        ax.set_xscale("log")
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
    ad.set_yscale("log")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = out / "sweep.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _set_all(scenario: dict[str, Any], items: list[str]) -> None:
    """`--set key=value` (dotted key, YAML value) into a scenario."""
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SimScenarioError(f"--set {item!r}: KEY=VALUE, e.g. topology.n=50")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            problem = str(exc).splitlines()[0]
            raise SimScenarioError(f"--set {item!r}: the value is not YAML ({problem})") \
                from exc
        set_dotted(scenario, key.strip(), parsed)


def _bench_runs(a: argparse.Namespace) -> tuple[str, list, list]:
    """(name, [(overrides, scenario)], points) of a bench scenario's points, validated."""
    from mdi_exit_ros.tools.bench_fleet import load_scenario

    from .bench import point_scenario
    from .exits import ExitTable

    bench = load_scenario(a.scenario)
    exits = a.exits
    if exits is None:
        for base in (Path.cwd(), REPO):
            cand = base / "docs" / "sim" / f"{bench.model}_test.csv.gz"
            if cand.is_file():
                exits = str(cand)
                break
        else:
            raise ValueError(f"no per-image table for {bench.model}: make one with `mdi-exit "
                             f"eval --model {bench.model} --per-image FILE` and pass --exits")
    mflops = ExitTable.load(exits).meta["task_mflops"]
    points = [p for p in bench.points
              if not a.only or p.policy.name in {n.strip() for n in a.only.split(",")}]
    runs = [({"point": p.label}, point_scenario(p, bench, exits, mflops)) for p in points]
    for over, sc in runs:  # --set applies to every point's scenario
        _set_all(sc, a.set)
        try:
            validate(sc)
        except SimScenarioError as exc:
            raise SimScenarioError(f"{over['point']}: {exc}") from exc
    return f"bench-{bench.name}", runs, points


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    a = build_parser().parse_args(args)
    if a.jobs < 1:
        return _fail(f"--jobs: at least 1; got {a.jobs}")
    if a.jobs > 1 and "fork" not in multiprocessing.get_all_start_methods():
        return _fail("--jobs above 1 needs the fork start method (Linux)")
    path = Path(a.scenario)
    data: dict[str, Any] = {}
    if not a.bench:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            return _fail(f"{path}: {exc}")
        if not isinstance(data, dict):
            return _fail(f"{path}: expected a mapping")
        try:
            _set_all(data, a.set)
        except SimScenarioError as exc:
            return _fail(f"{path}: {exc}")
    show = a.progress == "on" or (a.progress == "auto" and sys.stderr.isatty())
    points = []
    if a.bench:
        try:
            name, runs, points = _bench_runs(a)
        except (ValueError, OSError) as exc:
            return _fail(f"{exc}")
        keys: list[str] = []
    else:
        name = str(data.get("name") or path.stem)
        try:
            runs = expand_sweep(data, path.parent)
        except SimScenarioError as exc:
            return _fail(f"{path}: {exc}")
        keys = list((data.get("sweep") or {}).keys())
    # everything is checked: only now compile (or re-run on the compiled copy)
    problem = _use_compiled(a.compiled, args)
    if problem is not None:
        print(f"mdi-exit sim: {problem}", file=sys.stderr)  # verbatim: a build log's tail
        return 2
    if a.jobs > 1 and not any(parts(sc, path.parent) > 1 for _, sc in runs):
        print(f"mdi-exit sim: --jobs {a.jobs} has nothing to run in parallel: no run is "
              "split (`split: components` on a fleet of several components); one process",
              file=sys.stderr)
    out = Path(a.out or Path("sim-results") / name)
    out.mkdir(parents=True, exist_ok=True)
    profiler = None
    if a.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    rows = []
    with open(out / "runs.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        writer.writeheader()
        for i, (over, sc) in enumerate(tqdm(runs, desc=name, disable=not show or len(runs) < 2)):
            label = ", ".join(f"{k}={v}" for k, v in over.items()) or name
            try:
                row = run_seeds(sc, path.parent, label, show, max(1, a.seeds), a.jobs)
            except (SimScenarioError, ValueError, KeyError) as exc:
                return _fail(f"{path}: {label}: {exc}")
            row.update(run=i + 1, overrides=over)
            rows.append(row)
            writer.writerow({k: _fmt(row.get(k)) for k in FIELDS})
            f.flush()
            p50 = row["latency_p50"]
            acc = row["accuracy"]
            print(f"{label}: admitted {row['admitted_rate']:.2f}/s, answered "
                  f"{row['answered_rate']:.2f}/s, accuracy "
                  f"{'-' if acc is None else f'{100 * acc:.1f}%'}, p50 "
                  f"{'-' if p50 is None else f'{p50:.2f} s'}; {row['admitted']:.0f} admitted, "
                  f"{row['answered']:.0f} answered, {row['pending']:.0f} pending; "
                  f"{row['events']:.0f} events in {row['wall_s']:.1f} s "
                  f"({row['events_per_s']:.0f}/s; CPU {row['cpu_s']:.1f} s, "
                  f"{row['events_per_cpu_s']:.0f}/CPU s)", flush=True)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(a.profile)
    written = [out / "runs.csv"]
    if a.bench and a.compare:
        from .bench import compare_table, point_key, read_measured

        measured = read_measured(Path(a.compare))
        table = compare_table([(p, r, measured.get(point_key(p)))
                               for p, r in zip(points, rows, strict=True)])
        (out / "compare.md").write_text(f"Simulated (`mdi-exit sim --bench {a.scenario}`) vs "
                                        f"measured ({a.compare}):\n\n{table}")
        print(table)
        written.append(out / "compare.md")
    if len(rows) > 1:
        png = plot(rows, keys, out, name)
        if png is not None:
            written.append(png)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
