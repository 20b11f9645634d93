"""The simulator's scenarios and command (mdi_exit_ros/sim: scenario.py, bench.py, cli.py):
pure Python, no ROS.

A bad scenario value is refused before anything runs, with one line that names the key; a
bench point is simulated with the node parameters the bench itself gives its fleet (the
baselines as baselines); a worker that joins gets the scenario's parameters; runs do not
depend on the process (hash seed); `mdi-exit sim --bench --seeds N --compare` writes its
rows and the side-by-side table.
"""

from __future__ import annotations

import ast
import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mdi_exit_ros import core
from mdi_exit_ros.sim import cli, engine
from mdi_exit_ros.sim.bench import point_scenario
from mdi_exit_ros.sim.exits import ExitTable
from mdi_exit_ros.sim.scenario import SimScenarioError, build, expand_sweep, metrics, validate
from mdi_exit_ros.tools import bench_fleet

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "docs" / "sim" / "mobilenet_v2_ee_cifar10_test.csv.gz"

BASE = {"duration": 4.0, "warmup": 1.0, "measure": 2.0, "drain": 5.0,
        "exits": {"num_exits": 2, "images": 50}, "profile": {"service_times": [0.01, 0.01]},
        "topology": {"kind": "mesh", "n": 3}, "arrivals": {"rate": 5.0}}


def _run(data):
    sim, facts = build(data)
    sim.run(facts["duration"], facts["drain"])
    return sim, metrics(sim, facts)


# -- bad scenarios --------------------------------------------------------------------------

# (what, scenario changes, a piece of the one-line message)
BAD = [
    # hung for ever: a timer of period 0, a camera with a negative rate
    ("state_period 0", {"parameters": {"state_period": 0}}, "state_period must lie in [0.01"),
    ("control_period 0", {"parameters": {"*.control_period": 0}}, "control_period must lie"),
    ("tick_period 0", {"sim": {"tick_period": 0}}, "sim.tick_period: a number > 0"),
    ("rate -5", {"arrivals": {"rate": -5}}, "arrivals.rate: a number > 0"),
    # tracebacks
    ("rate 0", {"arrivals": {"rate": 0}}, "arrivals.rate: a number > 0"),
    ("measure 0", {"measure": 0}, "measure: a number > 0"),
    ("images 0", {"exits": {"num_exits": 2, "images": 0}}, "exits.images: an integer >= 1"),
    ("unknown sim key", {"sim": {"tickperiod": 0.1}}, "sim: unknown keys ['tickperiod']"),
    ("sweep scalar", {"sweep": {"seed": 3}}, "sweep.seed: a non-empty list"),
    ("sweep string", {"sweep": {"topology": "mesh3"}}, "sweep.topology: a non-empty list"),
    # silently accepted
    ("report_latency -1", {"sim": {"report_latency": -1}}, "sim.report_latency: a number >= 0"),
    ("source_reports typo", {"sim": {"source_reports": "al"}}, "one of all, neighbors"),
    ("leave unknown", {"churn": [{"at": 1, "leave": "w9"}]}, "churn[0].leave: 'w9'"),
    ("lease below the table", {"parameters": {"w2.neighbor_lease": 0.01}},
     "neighbor_lease must lie in [0.05, 3600]"),
    ("alpha <= beta", {"parameters": {"*.beta": 0.3}}, "alpha must be greater than beta"),
    ("min > max interval", {"parameters": {"min_interval": 2.0, "max_interval": 1.0}},
     "must not exceed max_interval"),
    ("bad choice", {"parameters": {"admission_mode": "fast"}}, "admission_mode must be one of"),
    ("bool as string", {"parameters": {"offload_first_task": "no"}}, "must be true or false"),
    ("pipeline without chain", {"parameters": {"distribution": "pipeline"}},
     "needs pipeline_chain"),
    ("thresholds out of range", {"thresholds": 1.5}, "thresholds: 'checkpoint', a number in"),
    ("compute_slowdown", {"parameters": {"compute_slowdown": 2.0}}, "service_times"),
    ("not a parameter", {"parameters": {"torch_threads": 2}}, "'torch_threads' is not simul"),
    ("unknown worker", {"parameters": {"w7.alpha": 0.3}}, "'w7' is not a worker"),
    # late errors (when the event fired)
    ("join without neighbors", {"churn": [{"at": 1, "join": "w9"}]},
     "churn[0].neighbors: new worker w9 needs"),
    ("link_down one name", {"churn": [{"at": 1, "link_down": ["w1"]}]},
     "churn[0].link_down: two different workers"),
]


def _hang_guard(seconds: int) -> None:
    def fail(*_):
        raise AssertionError(f"still running after {seconds} s: a hang")
    signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)


@pytest.mark.parametrize(("what", "change", "message"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_scenario_is_refused_before_anything_runs(tmp_path, capsys, what, change,
                                                        message) -> None:
    data = {**BASE, **change}
    _hang_guard(30)
    try:
        with pytest.raises(SimScenarioError) as err:
            expand_sweep(data)
        assert message in str(err.value), str(err.value)
        if "sweep" not in data:
            with pytest.raises(SimScenarioError):
                build(data)
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(data))
        out = tmp_path / "out"
        assert cli.main([str(path), "--out", str(out), "--progress", "off"]) == 2
    finally:
        signal.alarm(0)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not out.exists()  # nothing ran, nothing written


@pytest.mark.parametrize(("sets", "message"), [
    (["topology.n=5"], "topology is 'mesh3', not a mapping"),
    (["seed=[1"], "the value is not YAML"),
    (["seed"], "KEY=VALUE"),
    (["arrivals.rate=0"], "arrivals.rate: a number > 0"),
])
def test_a_bad_set_exits_2_with_one_line(tmp_path, capsys, sets, message) -> None:
    path = tmp_path / "sc.yaml"
    path.write_text(yaml.safe_dump({**BASE, "topology": "mesh3"}))
    argv = [str(path), "--out", str(tmp_path / "out"), "--progress", "off"]
    assert cli.main(argv + [a for s in sets for a in ("--set", s)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


def test_a_zero_period_timer_is_refused_by_the_engine_too() -> None:
    """`_every` defends itself: a zero period would reschedule at the same time for ever."""
    cfg = engine.WorkerConfig(service_times=[0.01], state_period=0.0)
    with pytest.raises(ValueError, match="period"):
        engine.Simulator({"w1": cfg}, {"w1": []}, {"w1": engine.Arrivals(1.0)},
                         ExitTable.synthetic(1, 10), (1.0,), cut_bytes=[0], input_bytes=0)


def test_good_scenarios_pass_validation() -> None:
    checked = validate({**BASE, "parameters": {"*.alpha": 0.3, "w2.state_period": 0.5},
                        "churn": [{"at": 1, "join": "w4", "neighbors": ["w1"]},
                                  {"at": 2, "leave": "w4"}, {"at": 3, "join": "w4"},
                                  {"at": 2, "link_down": ["w1", "w4"], "for": 0.5}]})
    assert checked.parameters["w4"] == {"alpha": 0.3}
    assert checked.parameters["w2"] == {"alpha": 0.3, "state_period": 0.5}


# -- parameters -----------------------------------------------------------------------------


def test_a_joining_worker_gets_the_scenarios_parameters() -> None:
    """'*.name' and bare names for every worker, 'w9.name' for w9 alone (it was
    `WorkerConfig(service_times, link)` whatever the scenario said)."""
    sim, _ = _run({**BASE, "parameters": {"*.neighbor_lease": 1.0, "offload_first_task": False,
                                          "*.state_period": 0.5, "w9.state_period": 0.25},
                   "churn": [{"at": 1, "join": "w9", "neighbors": ["w1"]}]})
    w9, w1 = sim.configs["w9"], sim.configs["w1"]
    assert (w9.neighbor_lease, w9.offload_first_task, w9.state_period) == (1.0, False, 0.25)
    assert (w1.neighbor_lease, w1.offload_first_task, w1.state_period) == (1.0, False, 0.5)
    assert sim.workers["w9"].core.table.lease == 1.0


def test_per_robot_service_times_make_a_slow_robot() -> None:
    """`service_times` mean the node parameter (what each task is padded to); a robot's own
    value replaces the profile's. One robot fed beyond its speed answers 1 / its time."""
    rates = []
    for own in ([0.1], [0.25]):
        data = {**BASE, "duration": 40.0, "warmup": 5.0, "measure": 30.0, "drain": 0.0,
                "exits": {"num_exits": 1, "never_exit": True}, "thresholds": 1.0,
                "profile": {"service_times": [0.1]}, "topology": {"kind": "local"},
                "arrivals": {"rate": 50.0},
                "parameters": {"admission_mode": "threshold", "w1.service_times": own}}
        rates.append(_run(data)[1]["answered_rate"])
    assert rates[0] == pytest.approx(10.0, rel=0.03)
    assert rates[1] == pytest.approx(4.0, rel=0.03)


def test_the_overdue_timer_is_the_cores() -> None:
    """The source's overdue timer (nodes/source.py, read as text: no rclpy here) and the
    simulator's both use core.OVERDUE_PERIOD, no literal of their own."""
    tree = ast.parse((ROOT / "mdi_exit_ros" / "nodes" / "source.py").read_text())
    timers = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
              and getattr(n.func, "attr", "") == "create_timer"
              and getattr(n.args[1], "attr", "") == "_on_overdue"]
    assert len(timers) == 1 and ast.unparse(timers[0].args[0]) == "core.OVERDUE_PERIOD"
    text = (ROOT / "mdi_exit_ros" / "sim" / "engine.py").read_text()
    assert "core.OVERDUE_PERIOD" in text and "OVERDUE_PERIOD =" not in text
    assert core.OVERDUE_PERIOD == 1.0


# -- bench points ---------------------------------------------------------------------------


def _bench_point(policy: str):
    bench = bench_fleet.load_scenario("quick")
    (point,) = [p for p in bench.points if p.policy.name == policy]
    return point, bench


def _bench_run(policy: str):
    point, bench = _bench_point(policy)
    data = point_scenario(point, bench, {"num_exits": 5, "images": 500},
                          [42.0, 40.5, 39.5, 31.0, 28.2])
    sim, m = _run(data)
    return data, sim, m


def test_a_bench_point_has_the_fleets_parameters() -> None:
    """point_scenario reads the bench's own fleet_overrides: the same distribution, chain,
    first mu (with the distribution) and profile."""
    point, bench = _bench_point("chain5-pipeline")
    service = bench.profile.service_times([42.0, 40.5, 39.5, 31.0, 28.2])
    data = point_scenario(point, bench, {"num_exits": 5}, [42.0, 40.5, 39.5, 31.0, 28.2])
    p = data["parameters"]
    assert p["*.distribution"] == "pipeline"
    assert p["*.pipeline_chain"] == ["robot1", "robot2", "robot3", "robot4", "robot5"]
    assert p["robot1.initial_interval"] == bench_fleet.start_interval(service, 5, False,
                                                                      "pipeline")
    assert data["profile"]["service_times"] == service and data["thresholds"] == 1.0
    assert p["robot1.latency_budget"] == 4.0  # the scenario's own parameters
    assert not any(k.endswith((".seed", ".torch_threads")) for k in p)
    # slow start as on the node: mu from at least the service times under the exit mix (no
    # early exit here: every task), not from initial_interval alone
    sim, _ = build(data)
    assert sim.sources["robot1"].controller.mu == pytest.approx(
        max(p["robot1.initial_interval"], core.frame_seconds(service, None)))
    assert sim.sources["robot1"].controller.mu > 3 * p["robot1.initial_interval"]


def test_the_data_baseline_sends_whole_frames() -> None:
    """mesh5-data: the source keeps a frame or sends it whole to the shortest queue, where
    all its 5 tasks run (no early exit here: thresholds 1.0 of the synthetic table), so each
    robot runs 5 tasks per frame it answers and nobody but the source sends tasks. MDI-Exit
    (task 1 pinned) splits frames: the source runs a task 1 per frame and answers none."""
    def per_robot(sim):
        answered = {w: 0 for w in sim.workers}
        for e in sim.ends:
            answered[e.worker] += 1
        return {w: (x.tasks_run, answered[w], x.core.stats().offloads_sent)
                for w, x in sim.workers.items()}

    data, sim, m = _bench_run("mesh5-data")
    assert data["parameters"]["*.distribution"] == "data"
    robots = per_robot(sim)
    assert all(answered > 10 for _, answered, _ in robots.values()), robots
    # 5 tasks per answered frame, up to two frames still in flight at the end
    assert all(0 <= tasks - 5 * answered <= 10 for tasks, answered, _ in robots.values()), robots
    assert all(sent == 0 for w, (_, _, sent) in robots.items() if w != "robot1"), robots
    _, mdi_sim, mdi = _bench_run("mesh5")
    mdi_robots = per_robot(mdi_sim)
    tasks, answered, _ = mdi_robots["robot1"]
    assert tasks > 5 * answered + 50, mdi_robots  # a task 1 for every frame, few answered
    assert sum(sent for w, (_, _, sent) in mdi_robots.items() if w != "robot1") > 0


def test_the_pipeline_baseline_runs_the_chain_stages() -> None:
    """chain5-pipeline: 5 tasks on 5 robots, task k on robot k; no early exit, so every
    frame exits at task 5 on robot5."""
    _, sim, m = _bench_run("chain5-pipeline")
    chain = ["robot1", "robot2", "robot3", "robot4", "robot5"]
    runs = [sim.workers[w].tasks_run for w in chain]
    assert min(runs) > 50 and max(runs) - min(runs) <= 10, runs  # one task each per frame
    exits = {w: sim.workers[w].core.stats().exits for w in chain}
    assert {w for w, e in exits.items() if e} == {"robot5"} and set(exits["robot5"]) == {5}
    assert {e.worker for e in sim.ends if e.exit_index} == {"robot5"}
    assert m["admitted"] > 50


# -- multi-seed rows ------------------------------------------------------------------------


def test_seed_rows_are_averaged_element_wise_with_their_counts() -> None:
    rows = [{"admitted_rate": 2.0, "latency_p50": None, "accuracy": 0.5,
             "exit_distribution": [0.5, 0.5], "topology": "mesh3", "offload_first_task": True},
            {"admitted_rate": 4.0, "latency_p50": 1.0, "accuracy": 0.7,
             "exit_distribution": [0.3, 0.7], "topology": "mesh3", "offload_first_task": True},
            {"admitted_rate": 6.0, "latency_p50": 3.0, "accuracy": None,
             "exit_distribution": [], "topology": "mesh3", "offload_first_task": True}]
    row = cli.combine(rows)
    assert row["seeds"] == 3
    assert row["admitted_rate"] == 4.0 and row["admitted_rate_sd"] == 2.0
    assert row["latency_p50"] == 2.0 and row["accuracy"] == pytest.approx(0.6)
    assert row["exit_distribution"] == [0.4, 0.6]
    assert row["means_over"] == {"latency_p50": 2, "accuracy": 2, "exit_distribution": 2}
    assert row["topology"] == "mesh3" and row["offload_first_task"] is True


# -- the command: --bench, --seeds, --compare -----------------------------------------------


@pytest.mark.skipif(not TABLE.is_file(), reason="per-image table not generated")
def test_sim_bench_with_seeds_and_compare(tmp_path, capsys) -> None:
    bench = {"name": "tiny", "profile": {"name": "dev", "mflops_per_s": 150.0,
                                         "link_delay": 0.005, "link_bandwidth": 2.5e6},
             "model": "mobilenet_v2_ee_cifar10", "dataset": "cifar10", "warmup": 2.0,
             "measure": 6.0, "initial_interval": "auto", "seed": 1,
             "parameters": {"robot1.queue_thresholds": [2, 6]},
             "fixed": {"offered_rate": 20.0, "thresholds": ["checkpoint"],
                       "policies": ["mesh3-first", "mesh3-data", "mesh3"]}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(bench))
    argv = [str(path), "--bench", "--exits", str(TABLE), "--seeds", "2", "--progress", "off"]
    assert cli.main(argv + ["--out", str(tmp_path / "plain")]) == 0
    with open(tmp_path / "plain" / "runs.csv", newline="") as f:
        sim = list(csv.DictReader(f))
    assert [json.loads(r["overrides"])["point"] for r in sim] == [
        "fixed mesh3-first T=checkpoint", "fixed mesh3-data T=checkpoint",
        "fixed mesh3 T=checkpoint"]
    assert all(r["seeds"] == "2" and r["admitted_rate_sd"] != "" for r in sim)
    # a hand-written bench runs.csv: the first point measured as simulated, the second 50 %
    # off, the third not measured
    first, second = (float(sim[i]["admitted_rate"]) for i in (0, 1))
    fields = ["experiment", "policy", "threshold", "offered_rate", "admitted_rate",
              "answered_rate", "accuracy", "latency_p50", "valid"]
    measured = tmp_path / "runs.csv"
    with open(measured, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(fields)
        w.writerow(["fixed", "mesh3-first", "checkpoint", 20.0, first,
                    sim[0]["answered_rate"], sim[0]["accuracy"], sim[0]["latency_p50"], True])
        w.writerow(["fixed", "mesh3-data", "checkpoint", 20.0, second * 1.5,
                    sim[1]["answered_rate"], sim[1]["accuracy"], sim[1]["latency_p50"], True])
    out = tmp_path / "cmp"
    assert cli.main(argv + ["--out", str(out), "--compare", str(measured)]) == 0
    table = (out / "compare.md").read_text().splitlines()
    rows = {line.split("|")[1].strip(): line for line in table if line.startswith("| fixed")}
    assert rows["fixed mesh3-first T=checkpoint"].endswith("| yes |")
    assert "(+0%)" in rows["fixed mesh3-first T=checkpoint"]
    assert rows["fixed mesh3-data T=checkpoint"].endswith("| no |")
    assert "(-33%)" in rows["fixed mesh3-data T=checkpoint"]
    assert rows["fixed mesh3 T=checkpoint"].endswith("| not measured |")
    with open(out / "runs.csv", newline="") as f:
        assert [r["admitted_rate"] for r in csv.DictReader(f)] == \
            [r["admitted_rate"] for r in sim]  # the same runs again


# -- determinism across processes -----------------------------------------------------------


def test_the_same_run_in_two_processes_with_other_hash_seeds(tmp_path) -> None:
    """Nothing depends on str hashing (salted per process) or on set order."""
    data = {"seed": 3, "duration": 6.0, "warmup": 1.0, "measure": 4.0, "drain": 5.0,
            "exits": {"num_exits": 3, "images": 200},
            "profile": {"service_times": [0.05, 0.05, 0.05], "link_delay": 0.005,
                        "link_bandwidth": 2e6},
            "model": {"cut_bytes": [20000, 10000], "input_bytes": 3000},
            "topology": {"kind": "geometric", "n": 12, "degree": 4, "sources": 3},
            "arrivals": {"rate": 30.0, "poisson": True},
            "parameters": {"*.offload_first_task": True}, "sim": {"report_loss": 0.1},
            "churn": [{"at": 2, "leave": "w5"}, {"at": 3.5, "join": "w5"},
                      {"at": 2.5, "link_down": ["w1", "w2"], "for": 1},
                      {"at": 3.0, "join": "w13", "neighbors": ["w5", "w6"]}]}
    path = tmp_path / "churn.yaml"
    path.write_text(yaml.safe_dump(data))
    rows = []
    for hash_seed in ("1", "4242"):
        out = tmp_path / f"out{hash_seed}"
        subprocess.run([sys.executable, "-m", "mdi_exit_ros.sim.cli", str(path), "--out",
                        str(out), "--progress", "off"], check=True, timeout=120, cwd=tmp_path,
                       env={**os.environ, "PYTHONHASHSEED": hash_seed},
                       stdout=subprocess.DEVNULL)
        with open(out / "runs.csv", newline="") as f:
            (row,) = list(csv.DictReader(f))
        for timing in ("wall_s", "cpu_s", "events_per_s", "events_per_cpu_s"):
            row.pop(timing)
        rows.append(row)
    assert rows[0] == rows[1]
    assert float(rows[0]["admitted"]) > 100 and float(rows[0]["events"]) > 1000
