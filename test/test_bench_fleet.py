"""`mdi-exit bench <scenario>` as plain functions: scenario files, the point's fleet
overrides, steady-state windows measured from a fleet record, and the compute and network
bounds (numbers worked out by hand in each test)."""

from __future__ import annotations

import math

import pytest

from mdi_exit_ros.tools import bench_fleet as bf
from mdi_exit_ros.tools.bench_fleet import (
    CHECKPOINT,
    NO_EE,
    DeviceProfile,
    Point,
    ScenarioError,
    compute_bound,
    expected_compute,
    network_bound,
    parse_policy,
    parse_scenario,
    window_metrics,
)
from mdi_exit_ros.tools.fleet_summary import RESULT_FIELDS, STATS_FIELDS

PROFILE = {"name": "dev", "mflops_per_s": 100.0, "link_delay": 0.01, "link_bandwidth": 1e6}


def scenario(**extra):
    return {"name": "t", "profile": dict(PROFILE), **extra}


# --------------------------------------------------------------------------------------------
# Scenarios


@pytest.mark.parametrize("name", ["quick", "full"])
def test_shipped_scenarios_load(name: str) -> None:
    sc = bf.load_scenario(name)
    assert sc.name == name and sc.points
    assert sc.model == "mobilenet_v2_ee_cifar10" and sc.dataset == "cifar10"
    names = {p.policy.name for p in sc.points}
    assert {"local-noee", "mesh5", "mesh5-first", "mesh5-data", "mesh5-first-noee",
            "chain5-pipeline"} <= names  # the goals' baseline, MDI-Exit and both baselines
    assert name == "quick" or {"local", "mesh5-data-noee"} <= names
    # the No-EE policies run at threshold 1.0 only, whatever the scenario's thresholds
    assert {p.threshold for p in sc.points if not p.policy.early_exit} == {NO_EE}


def test_the_links_scenario_runs_the_baselines_on_slow_links() -> None:
    sc = bf.load_scenario("links")
    assert sc.profile.link_bandwidth == 50_000.0
    assert {p.policy.distribution for p in sc.points} == {"mdi", "data", "pipeline"}


def test_points_are_the_policies_times_thresholds_and_rates() -> None:
    sc = parse_scenario(scenario(
        fixed={"offered_rate": 20, "thresholds": [0.7, CHECKPOINT],
               "policies": ["local-noee", "mesh3"]},
        poisson={"rates": [2, 4.5], "policies": ["local"]}))
    got = [(p.experiment, p.policy.name, p.threshold, p.rate) for p in sc.points]
    assert got == [("fixed", "local-noee", 1.0, 20.0), ("fixed", "mesh3", 0.7, 20.0),
                   ("fixed", "mesh3", CHECKPOINT, 20.0), ("poisson", "local", CHECKPOINT, 2.0),
                   ("poisson", "local", CHECKPOINT, 4.5)]
    assert sc.profile == DeviceProfile("dev", 100.0, 0.01, 1e6)


@pytest.mark.parametrize("data,message", [
    ({"name": "t"}, "profile must be a mapping"),
    (scenario(), "needs a 'fixed' or a 'poisson'"),
    (scenario(fixed={"policies": ["mesh9"]}), "mesh9"),
    (scenario(fixed={"policies": ["mesh3-fast"]}), "mode must be"),
    (scenario(fixed={"policies": ["local-first"]}), "nobody to offload to"),
    (scenario(fixed={"policies": ["mesh3"], "thresholds": [1.5]}), "must lie in"),
    (scenario(poisson={"policies": ["mesh3"], "rates": [0]}), "positive number"),
    (scenario(poisson={"policies": ["mesh3"]}), "rates must be"),
    (scenario(warmup=-1, fixed={"policies": ["mesh3"]}), "warmup"),
    (scenario(colour="red", fixed={"policies": ["mesh3"]}), "unknown keys"),
    (scenario(parameters={"queue_thresholds": [1, 2]}, fixed={"policies": ["mesh3"]}),
     "<worker>.<parameter>"),
    ({"name": "t", "profile": {"mflops_per_s": "fast"}, "fixed": {"policies": ["local"]}},
     "mflops_per_s"),
])
def test_malformed_scenarios_are_refused(data, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(data, "s.yaml")


def test_missing_scenario_names_the_shipped_ones() -> None:
    with pytest.raises(ScenarioError, match="quick"):
        bf.load_scenario("no_such_scenario")


def test_policies_are_modes_of_the_same_nodes() -> None:
    assert parse_policy("local-noee") == bf.Policy("local-noee", "local", early_exit=False)
    first = parse_policy("mesh5-first")
    assert first.topology == "mesh5" and first.first_task_offload and not first.pins_first_task
    assert parse_policy("mesh3").pins_first_task
    data = parse_policy("mesh5-data")
    assert (data.distribution, data.early_exit, data.pins_first_task) == ("data", True, False)
    assert not parse_policy("mesh5-data-noee").early_exit
    assert parse_policy("mesh5-data-noee").distribution == "data"
    pipe = parse_policy("chain5-pipeline")
    assert (pipe.topology, pipe.distribution, pipe.early_exit) == ("chain5", "pipeline", False)
    both = parse_policy("mesh5-first-noee")
    assert both.first_task_offload and not both.early_exit and both.distribution == "mdi"
    for bad in ("mesh5-pipeline-noee", "mesh5-data-first", "local-data", "local-first"):
        with pytest.raises(bf.ScenarioError):
            parse_policy(bad)


def test_baseline_policies_set_the_distribution_on_every_robot() -> None:
    sc = parse_scenario(scenario(fixed={"policies": ["mesh5-data", "chain5-pipeline"]}))
    data, pipe = sc.points
    assert pipe.threshold == 1.0  # the pipeline runs without early exit
    sets = bf.fleet_overrides(data, sc, [0.1, 0.2], robots=5)
    assert "*.distribution=data" in sets and "robot1.offload_first_task=false" in sets
    assert not any("pipeline_chain" in s for s in sets)
    assert "robot1.initial_interval=0.06" in sets  # 5 robots / 0.3 s, nothing pinned
    workers = ("robot1", "robot2")
    sets = bf.fleet_overrides(pipe, sc, [0.1, 0.2], robots=2, workers=workers)
    assert "*.distribution=pipeline" in sets and "*.exit_threshold=1.0" in sets
    assert '*.pipeline_chain=["robot1", "robot2"]' in sets
    assert "robot1.initial_interval=0.2" in sets  # the slowest stage


def test_device_profile_gives_fixed_service_times() -> None:
    assert DeviceProfile("d", 250.0).service_times([42.0, 25.0]) == [0.168, 0.1]


def test_overrides_make_the_mode_and_the_profile() -> None:
    sc = parse_scenario(scenario(fixed={"policies": ["mesh5-first"]},
                                 poisson={"policies": ["mesh3-noee"], "rates": [3]},
                                 parameters={"robot1.queue_thresholds": [2, 6]}))
    fixed, poisson = sc.points
    sets = bf.fleet_overrides(fixed, sc, [0.1, 0.2])
    assert "*.service_times=[0.1, 0.2]" in sets
    assert "*.link_delay=0.01" in sets and "*.link_bandwidth=1000000.0" in sets
    assert "*.torch_threads=1" in sets
    assert sets[-1] == "robot1.queue_thresholds=[2, 6]"  # the scenario's own parameters
    assert "robot1.admission_mode=rate" in sets and "robot1.offload_first_task=true" in sets
    assert not any("exit_threshold" in s for s in sets)  # the checkpoint's thresholds
    sets = bf.fleet_overrides(poisson, sc, [0.1, 0.2])
    assert "robot1.admission_mode=threshold" in sets and "*.exit_threshold=1.0" in sets
    # the node's default is first-task offloading: the paper's policy turns it off
    assert "robot1.offload_first_task=false" in sets and "*.distribution=mdi" in sets


def test_initial_interval_auto_starts_at_the_no_early_exit_bound() -> None:
    s = [0.3, 0.2, 0.1]  # 0.6 s per frame through every task
    assert bf.start_interval(s, 1, True) == pytest.approx(0.6)
    assert bf.start_interval(s, 3, False) == pytest.approx(0.2)
    assert bf.start_interval(s, 3, True) == pytest.approx(0.3)  # the source runs task 1
    sc = parse_scenario(scenario(fixed={"policies": ["mesh3"]}))
    assert sc.initial_interval is None
    assert "robot1.initial_interval=0.3" in bf.fleet_overrides(sc.points[0], sc, s, robots=3)
    sc = parse_scenario(scenario(initial_interval=0.05, fixed={"policies": ["mesh3"]}))
    assert "robot1.initial_interval=0.05" in bf.fleet_overrides(sc.points[0], sc, s, robots=3)


def test_topology_file_sets_the_player_and_keeps_the_links() -> None:
    sc = parse_scenario(scenario(poisson={"policies": ["circular3"], "rates": [3]}))
    data = bf.topology_file(sc.points[0], "cifar10", 7)
    assert data["player"]["arrival"] == "poisson" and data["player"]["rate"] == 3.0
    assert data["player"]["dataset"] == "cifar10" and data["player"]["seed"] == 7
    assert data["arcs"] == [["robot1", "robot2"], ["robot2", "robot3"], ["robot3", "robot1"]]
    local = bf.topology_file(Point("fixed", parse_policy("local"), CHECKPOINT, 30.0), "x", 1)
    assert local["workers"] == ["robot1"] and local["arcs"] == []
    assert local["player"]["arrival"] == "fixed"


# --------------------------------------------------------------------------------------------
# Windows


def stats_row(t: float, worker: str, **values) -> list:
    base = {"t": t, "worker": worker, "is_source": worker == "robot1", "tasks_run": 0,
            "tasks_overrun": 0, "frames_received": 0, "frames_admitted": 0,
            "frames_dropped": 0, "frames_classified": 0, "frames_overdue": 0,
            "frames_expired": 0, "frames_shed": 0, "frames_lost": 0,
            "frames_lost_in_transport": 0, "admission_interval": 0.1, "input_queue": 0,
            "output_queue": 0, "exit_thresholds": [0.9, 0.0], "exits": [0, 0],
            "latency_p50": 0.0, "latency_p95": 0.0, **values}
    return [base[f] for f in STATS_FIELDS]


def record(overrun_at_20: int = 0) -> dict:
    """A run whose first frame came at 5 s; reports every second to 40 s. In the window
    [10, 30] s the source admits 4 frames/s and answers 3.5/s; robot2 runs 2 tasks/s."""
    stats = []
    for t in range(41):  # robot2 reports first: the source is listed first all the same
        stats.append(stats_row(t, "robot2", tasks_run=2 * t,
                               tasks_overrun=overrun_at_20 if t >= 20 else 0))
        stats.append(stats_row(t, "robot1", tasks_run=3 * t, frames_admitted=4 * t,
                               frames_classified=int(3.5 * t), frames_dropped=t))
    results = []
    for i in range(100):  # one result every 0.4 s from 0 s; latency i ms; exit 1 or 2
        results.append([0.4 * i, i / 1000, 1 + (i % 4 == 0), i % 5 != 0, i % 10])
    # and two frames answered as expired (class_id -1) in the window, one before it
    results += [[12.0, 11.0, 1, False, -1], [13.0, 11.0, 1, None, -1], [1.0, 11.0, 1, None, -1]]
    return {"first_frame": 5.0, "stopped": 40.0, "result_fields": list(RESULT_FIELDS),
            "results": results, "stats_fields": list(STATS_FIELDS), "stats": stats}


def test_window_metrics_from_a_record() -> None:
    m = window_metrics(record(), warmup=5.0, measure=20.0, num_exits=2)
    assert m["valid"], m["invalid_reason"]
    assert m["window_s"] == 20.0
    assert m["admitted_rate"] == pytest.approx(4.0)
    inside = [i for i in range(100) if 10 <= 0.4 * i <= 30]  # i = 25..75
    assert m["results"] == len(inside) == 51  # the expired ones are not results
    assert m["answered_rate"] == pytest.approx(51 / 20)
    assert m["expired"] == 2
    assert m["latency_p50"] == pytest.approx(0.050)  # the 26th of 0.025..0.075
    assert m["accuracy"] == pytest.approx(sum(i % 5 != 0 for i in inside) / 51)
    assert m["exit_distribution"] == pytest.approx(
        [sum(i % 4 != 0 for i in inside) / 51, sum(i % 4 == 0 for i in inside) / 51])
    assert list(m["tasks_per_robot"].items()) == [("robot1", 60), ("robot2", 40)]
    assert m["tasks_share_source"] == pytest.approx(0.6)
    assert m["dropped"] == 20 and m["overruns"] == 0
    assert m["backlog_growth"] == 80 - 53  # admitted - answered (expired too) in the window


def test_an_overrun_in_the_window_makes_the_point_invalid() -> None:
    m = window_metrics(record(overrun_at_20=3), warmup=5.0, measure=20.0, num_exits=2)
    assert not m["valid"] and m["overruns"] == 3
    assert "longer than their service time" in m["invalid_reason"]


def test_too_short_or_frameless_runs_are_invalid() -> None:
    assert "run too short" in window_metrics(record(), 30.0, 20.0, 2)["invalid_reason"]
    r = record()
    r["first_frame"] = None
    assert not window_metrics(r, 5.0, 20.0, 2)["valid"]
    r = record()
    r["results"] = r["results"][:30]  # none after 12 s: 6 in the window (< 10)
    assert "results in the window" in window_metrics(r, 5.0, 20.0, 2)["invalid_reason"]


# --------------------------------------------------------------------------------------------
# Bounds


def test_expected_compute_counts_each_task_for_the_frames_that_reach_it() -> None:
    # half exit at 1, a quarter at 2, a quarter at 3: 1*0.1 + 0.5*0.2 + 0.25*0.4
    assert expected_compute([0.1, 0.2, 0.4], [0.5, 0.25, 0.25]) == pytest.approx(0.3)
    assert expected_compute([0.1, 0.2], [0.0, 1.0]) == pytest.approx(0.3)  # no early exit
    with pytest.raises(ValueError):
        expected_compute([0.1], [0.5, 0.5])


def test_compute_bound_with_and_without_pinning() -> None:
    s, dist = [0.1, 0.2, 0.4], [0.5, 0.25, 0.25]  # E[C] = 0.3 s
    assert compute_bound(s, dist, [1.0], pin_first=True) == pytest.approx(1 / 0.3)
    # five robots: 5 / 0.3 = 16.7 frames/s, but the source runs every task 1: 1 / 0.1 = 10
    assert compute_bound(s, dist, [1.0] * 5, pin_first=True) == pytest.approx(10.0)
    assert compute_bound(s, dist, [1.0] * 5, pin_first=False) == pytest.approx(5 / 0.3)
    assert compute_bound(s, dist, [1.0] * 2, pin_first=True) == pytest.approx(2 / 0.3)
    # the figures for the shipped model: tau_1 = 42 of 84 MFLOPs on average
    # -> 5 robots pinned: min(5/84, 1/42) x 181/181 = 1/42 vs local no-EE 1/181: 4.3x
    mflops = [42.05, 40.54, 39.52, 31.06, 28.15]
    local_noee = compute_bound(mflops, [0, 0, 0, 0, 1], [1.0], True)
    assert compute_bound(mflops, [0.5, 0.45, 0.05, 0, 0], [1.0] * 5, True) / local_noee \
        == pytest.approx(181.32 / 42.05, rel=1e-3)


def test_network_bound() -> None:
    # 2 links of 1 MB/s; 60 % of frames pass exit 1 with 10 kB of features: 2e6 / 6e3
    assert network_bound([0.4, 0.6], [10_000], 3_000, 2, 1e6, True) == pytest.approx(2e6 / 6e3)
    # task 1 offloadable: the 3 kB input frame is cheaper than 6 kB of features per frame
    assert network_bound([0.4, 0.6], [10_000], 3_000, 2, 1e6, False) == pytest.approx(2e6 / 3e3)
    assert network_bound([0.4, 0.6], [10_000], 3_000, 0, 1e6, True) == math.inf
    assert network_bound([1.0, 0.0], [10_000], 3_000, 2, 1e6, True) == math.inf


def test_pipeline_bound_is_its_slowest_stage() -> None:
    s = [0.1, 0.2, 0.4]
    assert bf.pipeline_bound(s, [0, 0, 1], 3) == pytest.approx(1 / 0.4)
    assert bf.pipeline_stages(3, 2) == [[0, 1], [2]]
    assert bf.pipeline_bound(s, [0, 0, 1], 2) == pytest.approx(1 / 0.4)  # tasks 1+2, then 3
    assert bf.pipeline_bound([0.4, 0.2, 0.1], [0, 0, 1], 2) == pytest.approx(1 / 0.6)
    assert bf.pipeline_bound(s, [0, 0, 1], 1) == pytest.approx(1 / 0.7)
    # early exit: half the frames leave after task 1, so stage 3 runs 0.4 s for half of them
    assert bf.pipeline_bound(s, [0.5, 0, 0.5], 3) == pytest.approx(1 / 0.2)
    # links: one per hop, carrying the features after each stage of every frame going on
    assert bf.pipeline_network_bound([0, 0, 1], [1000, 4000, 10], 3, 1e6) == \
        pytest.approx(1e6 / 4000)
    assert bf.pipeline_network_bound([0, 0, 1], [1000, 4000, 10], 1, 1e6) == math.inf
    assert bf.data_network_bound(3000, 5, 4, 1e6) == pytest.approx(4e6 / 2400)
    assert bf.data_network_bound(3000, 1, 0, 1e6) == math.inf


def test_bounds_of_the_baselines() -> None:
    metrics = {"exit_distribution": [0.5, 0.25, 0.25], "answered_rate": 2.0}
    data = bf.bounds(Point("fixed", parse_policy("mesh5-data"), CHECKPOINT, 30.0), metrics,
                     [0.1, 0.2, 0.4], [10_000, 5_000, 10], 3_000, robots=5, source_links=4,
                     link_bandwidth=1e6)
    assert data["compute_bound"] == pytest.approx(5 / 0.3)  # nothing pinned at the source
    assert data["network_bound"] == pytest.approx(4e6 / 2400)
    pipe = bf.bounds(Point("fixed", parse_policy("mesh3-pipeline"), 1.0, 30.0),
                     {"exit_distribution": [0, 0, 1], "answered_rate": 2.0}, [0.1, 0.2, 0.4],
                     [10_000, 5_000, 10], 3_000, robots=3, source_links=2, link_bandwidth=1e6)
    assert pipe["compute_bound"] == pytest.approx(2.5)
    assert pipe["achieved_over_bound"] == pytest.approx(0.8)


def test_bounds_of_a_point_and_the_ratio() -> None:
    point = Point("fixed", parse_policy("mesh5"), CHECKPOINT, 30.0)
    b = bf.bounds(point, {"exit_distribution": [0.5, 0.25, 0.25], "answered_rate": 8.0},
                  [0.1, 0.2, 0.4], [10_000, 5_000], 3_000, robots=5, source_links=4,
                  link_bandwidth=1e6)
    assert b["compute_bound"] == pytest.approx(10.0) and b["bound"] == pytest.approx(10.0)
    assert b["network_bound"] == pytest.approx(4e6 / 5e3)
    assert b["achieved_over_bound"] == pytest.approx(0.8)
    assert bf.bounds(point, {"exit_distribution": []}, [0.1], [1], 1, 5, 4, 1e6)["bound"] \
        is None
    slow = Point("poisson", parse_policy("mesh5"), CHECKPOINT, 2.0)  # a camera below capacity
    b = bf.bounds(slow, {"exit_distribution": [0.5, 0.25, 0.25], "answered_rate": 1.9},
                  [0.1, 0.2, 0.4], [10_000, 5_000], 3_000, robots=5, source_links=4,
                  link_bandwidth=1e6)
    assert b["compute_bound"] == pytest.approx(10.0) and b["bound"] == pytest.approx(2.0)
    assert b["achieved_over_bound"] == pytest.approx(0.95)


def test_rows_become_tables() -> None:
    sc = parse_scenario(scenario(fixed={"policies": ["mesh5"]}))
    m = window_metrics(record(), 5.0, 20.0, 2)
    b = bf.bounds(sc.points[0], m, [0.1, 0.2], [1000], 500, 5, 4, 1e6)
    row = bf.csv_row(sc.points[0], sc, m, b, "model", "data", "/tmp/x")
    assert set(row) == set(bf.CSV_FIELDS)
    table = bf.markdown_tables([row])
    assert "| mesh5 | checkpoint | 50 | 4.00 | 2.55 (n=51) | 2 |" in table
    assert "yes |" in table
    invalid = bf.csv_row(sc.points[0], sc, window_metrics(record(3), 5.0, 20.0, 2), b,
                         "model", "data", "/tmp/x")
    assert "NO: 3 task(s) took longer" in bf.markdown_tables([invalid])


def test_progress_bar() -> None:
    assert bf.progress(1, 4, "p", 30.0, 60.0, width=8).startswith("\r[###.....] 1/4 p")


def test_goals_compare_with_local_no_ee_of_the_same_run() -> None:
    def row(policy: str, rate: float, acc: float, ab: float) -> dict:
        p = parse_policy(policy)
        return {"experiment": "fixed", "valid": True, "policy": policy, "threshold": 1.0,
                "topology": p.topology, "early_exit": p.early_exit,
                "first_task_offload": p.first_task_offload, "answered_rate": rate,
                "accuracy": acc, "achieved_over_bound": ab}
    text = bf.goals([row("local-noee", 2.0, 0.90, 0.95), row("mesh5", 7.0, 0.895, 0.9),
                     row("mesh5-first", 10.0, 0.90, 0.7), row("mesh5-noee", 5.0, 0.9, 0.99)])
    lines = text.splitlines()
    assert lines[2] == "| mesh5 | 1.0 | 3.50x | >= 3x: met | -0.5 | 90% | met |"
    assert lines[3] == "| mesh5-first | 1.0 | 5.00x | >= 6x: missed | +0.0 | 70% | missed |"
    assert lines[4] == "| mesh5-noee | 1.0 | 2.50x | - | +0.0 | 99% | met |"
    assert len(lines) == 5  # local rows are the baseline, not goals
    alone = bf.goals([row("mesh5", 7.0, 0.895, 0.9)]).splitlines()  # no baseline measured
    assert alone[2] == "| mesh5 | 1.0 | - | >= 3x: no Local no-EE point | - | 90% | met |"
    idle = bf.goals([row("local-noee", 0.0, 0.9, 0.0), {**row("mesh5", 7.0, 0.9, 0.9),
                                                        "achieved_over_bound": None}])
    assert idle.splitlines()[2] == ("| mesh5 | 1.0 | - | >= 3x: Local no-EE answered nothing | "
                                    "- | - | - |")  # no bound measured: no verdict either


def test_baselines_are_compared_with_mdi_exit_at_the_same_thresholds() -> None:
    def row(policy: str, threshold: float | str, rate: float, p50: float) -> dict:
        p = parse_policy(policy)
        return {"experiment": "fixed", "valid": "True", "policy": policy,
                "threshold": threshold, "topology": p.topology,
                "early_exit": str(p.early_exit), "distribution": p.distribution,
                "first_task_offload": str(p.first_task_offload), "achieved_over_bound": "0.9",
                "answered_rate": str(rate), "accuracy": "0.9", "latency_p50": str(p50)}
    rows = [row("mesh5-first", CHECKPOINT, 12.0, 2.0), row("mesh5-noee", 1.0, 3.0, 4.0),
            row("mesh5-data", CHECKPOINT, 10.0, 3.0), row("chain5-pipeline", 1.0, 2.0, 5.0),
            row("mesh5-data-noee", 1.0, 4.0, 3.5)]
    lines = bf.baselines(rows).splitlines()
    assert lines[2] == ("| mesh5-first | mesh5-data | checkpoint | 12.00, 10.00 | 1.20x | "
                        "90.0%, 90.0% | 2.00, 3.00 |")
    assert lines[3].startswith("| mesh5-noee | chain5-pipeline | 1.0 | 3.00, 2.00 | 1.50x |")
    assert lines[4].startswith("| mesh5-noee | mesh5-data-noee | 1.0 | 3.00, 4.00 | 0.75x |")
    assert len(lines) == 5
    assert "mesh5-data" not in bf.goals(rows)  # a baseline is no goal of MDI-Exit
    assert bf.baselines(rows[:2]) == ""


def test_resume_measures_the_points_that_ended_and_runs_the_others(tmp_path,
                                                                   monkeypatch) -> None:
    """`--resume` after a stopped run: a point whose fleet ended (exit_code.txt) is measured
    from what it left, the others are run; a stop request ends the loop before the next
    point."""
    scen = bf.load_scenario("quick")
    points = scen.points[:3]
    for i in (0, 2):
        run_dir = bf.point_dir(tmp_path, points[i], i)
        run_dir.mkdir(parents=True)
        (run_dir / "exit_code.txt").write_text("0\n")
    calls: list[tuple[str, int]] = []

    def row(i: int) -> dict:
        return {**{f: "" for f in bf.CSV_FIELDS}, "valid": True, "index": i}

    def run(point, _s, _f, _o, i, _t, _timeout, _stopping):
        calls.append(("run", i))
        return row(i)

    def measure(point, _s, _f, run_dir):
        i = int(run_dir.name.split("_")[0]) - 1
        calls.append(("measure", i))
        return row(i)

    monkeypatch.setattr(bf, "run_point", run)
    monkeypatch.setattr(bf, "measure_point", measure)
    monkeypatch.setattr(bf, "CSV_FIELDS", [*bf.CSV_FIELDS, "index"])
    args = bf.build_parser().parse_args(["quick", "--resume"])
    rows = bf._run_points(args, points, scen, None, tmp_path, tmp_path / "runs.csv",
                          lambda: False)
    assert calls == [("measure", 0), ("run", 1), ("measure", 2)]
    assert [r["index"] for r in rows] == [0, 1, 2]
    calls.clear()
    args = bf.build_parser().parse_args(["quick"])  # without --resume every point runs
    bf._run_points(args, points, scen, None, tmp_path, tmp_path / "runs.csv",
                   lambda: len(calls) >= 2)
    assert calls == [("run", 0), ("run", 1)]  # stopped before the third
