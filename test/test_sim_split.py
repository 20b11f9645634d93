"""`split: components` (sim/scenario.py, sim/cli.py): a fleet of several connected components
runs as one run per component, in parallel with --jobs, and adds up to one row."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from mdi_exit_ros.sim import cli, topologies
from mdi_exit_ros.sim.scenario import (
    SimScenarioError,
    build,
    metrics,
    metrics_of,
    part_seed,
    parts,
    tally,
    validate,
)

# a measured table: a synthetic one would be drawn from the scenario's seed
TABLE = str(Path(__file__).resolve().parents[1] / "docs" / "sim" /
            "mobilenet_v2_ee_cifar10_test.csv.gz")
# three components: a ring of four with one source, a line of three with two, a pair
# without a camera (it idles, and stops before the others)
TWO = {"name": "two", "workers": ["w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "w9"],
       "sources": ["w1", "w5", "w7"],
       "links": [["w1", "w2"], ["w2", "w3"], ["w3", "w4"], ["w4", "w1"], ["w5", "w6"],
                 ["w6", "w7"], ["w8", "w9"]]}


def scenario(**over):
    base = {
        "name": "split", "seed": 3, "duration": 20.0, "warmup": 4.0, "measure": 14.0,
        "drain": 60.0, "exits": TABLE, "thresholds": "checkpoint",
        "profile": {"service_times": [0.05, 0.04, 0.03, 0.03, 0.02], "link_delay": 0.005,
                    "link_bandwidth": 2.5e6},
        "topology": TWO, "arrivals": {"rate": 30.0, "poisson": True},
        "parameters": {"*.queue_thresholds": [2, 6], "w5.admission_mode": "threshold",
                       "*.offload_first_task": True},
        "sim": {"source_reports": "neighbors", "report_loss": 0.05},
        "split": "components",
    }
    base.update(over)
    return base


def _trace(sim) -> tuple:
    ends = [(e.source, e.admitted_at, e.answered_at, e.exit_index, e.worker, e.correct)
            for e in sim.ends]
    workers = [(w, x.tasks_run, x.busy_seconds, x.core.stats()) for w, x in sim.workers.items()]
    return ends, workers, sim.events


def test_a_part_is_its_component_run_alone_on_its_seed() -> None:
    data = scenario()
    assert parts(data) == 3
    assert topologies.component_lists(validate(data).topology) == \
        [["w1", "w2", "w3", "w4"], ["w5", "w6", "w7"], ["w8", "w9"]]
    for i, (workers, sources, links) in enumerate([
            (TWO["workers"][:4], ["w1"], TWO["links"][:4]),
            (TWO["workers"][4:7], ["w5", "w7"], TWO["links"][4:6])]):
        sim, _ = build(data, part=i)
        sim.run(data["duration"], data["drain"])
        alone = scenario(seed=part_seed(3, i), split="none",
                         topology={"name": f"part{i}", "workers": workers, "sources": sources,
                                   "links": links},
                         parameters={k: v for k, v in data["parameters"].items()
                                     if k.split(".")[0] in ("*", *workers)})
        ref, _ = build(alone)
        ref.run(data["duration"], data["drain"])
        assert _trace(sim) == _trace(ref), i
        assert sim.events > 1000 and sim.ends  # each part did something


def test_the_parts_add_up_as_one_fleet_and_nothing_is_lost() -> None:
    """The row of a split run, computed here from the parts' raw records: answers pooled
    (accuracy, exit mix, percentiles), utilisation over every robot until the last part
    ends (the camera-less pair stops at `duration`, the others later)."""
    data = scenario()
    sims, facts = [], None
    for i in range(3):
        sim, facts = build(data, part=i)
        sim.run(facts["duration"], facts["drain"])
        for src in sim.sources.values():
            c = src.frames.counters()
            assert c["pending"] == 0 and c["completed"] == c["admitted"] > 0, c
        sims.append(sim)
    m = metrics_of([tally(s, facts) for s in sims], facts)
    t0, t1 = facts["warmup"], facts["warmup"] + facts["measure"]
    ends = [e for s in sims for e in s.ends if t0 <= e.answered_at <= t1 and e.exit_index > 0]
    lat = sorted(e.answered_at - e.admitted_at for e in ends)
    assert len(ends) > 300 and {e.source for e in ends} == {"w1", "w5", "w7"}
    assert m["results"] == len(ends)
    assert m["accuracy"] == sum(e.correct for e in ends) / len(ends)
    assert m["latency_p50"] == lat[(len(lat) + 1) // 2 - 1]
    assert m["exit_distribution"] == [
        round(sum(e.exit_index == k for e in ends) / len(ends), 4) for k in range(1, 6)]
    assert sims[2].now == facts["duration"] < max(s.now for s in sims)  # the idle pair
    end = max(s.now for s in sims)
    busy = sum(w.busy_seconds for s in sims for w in s.workers.values())
    assert m["utilisation"] == pytest.approx(busy / (9 * end), rel=1e-12)
    assert m["sim_time"] == end
    admitted = sum(src.frames.counters()["admitted"] for s in sims for src in s.sources.values())
    assert m["admitted"] == m["answered"] == admitted > 300
    # the facts describe the whole fleet, not a part
    assert facts["workers"] == 9 and facts["sources"] == 3 and facts["components"] == 3
    assert facts["offered_rate"] == 90.0


def test_a_connected_fleet_runs_alike_split_or_not() -> None:
    mesh = {"kind": "mesh", "n": 7, "sources": 3}
    a, fa = build(scenario(topology=mesh))
    b, fb = build(scenario(topology=mesh, split="none"))
    for sim, facts in ((a, fa), (b, fb)):
        sim.run(facts["duration"], facts["drain"])
    assert parts(scenario(topology=mesh)) == 1
    assert _trace(a) == _trace(b) and metrics(a, fa) == metrics(b, fb)


def _rows(tmp_path, name, *extra):
    import yaml

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(scenario(sweep={"arrivals.rate": [20.0, 30.0]})))
    out = tmp_path / name
    assert cli.main([str(path), "--out", str(out), "--progress", "off", *extra]) == 0
    with open(out / "runs.csv", newline="") as f:
        return [{k: v for k, v in r.items()
                 if k not in ("wall_s", "cpu_s", "events_per_s", "events_per_cpu_s")}
                for r in csv.DictReader(f)]


def test_the_rows_do_not_depend_on_the_jobs(tmp_path) -> None:
    one = _rows(tmp_path, "one")
    two = _rows(tmp_path, "two", "--jobs", "2")
    assert one == two and len(one) == 2
    assert all(r["admitted"] == r["answered"] and float(r["admitted"]) > 100 for r in one)
    assert all(float(r["components"]) == 3 for r in one)


@pytest.mark.parametrize("change, message", [
    ({"split": "robots"}, "split: one of none, components"),
    ({"churn": [{"at": 5, "leave": "w2"}]}, "not for a scenario with churn"),
    ({"sim": {}}, "needs sim.source_reports: neighbors"),
    ({"sim": {"source_reports": "all"}}, "needs sim.source_reports: neighbors"),
])
def test_a_split_it_cannot_model_is_refused(change, message) -> None:
    with pytest.raises(SimScenarioError, match=message):
        validate(scenario(**change))


def test_jobs_below_one_are_refused(tmp_path, capsys) -> None:
    assert cli.main([str(tmp_path / "none.yaml"), "--jobs", "0"]) == 2
    assert "--jobs: at least 1; got 0" in capsys.readouterr().err


def test_jobs_without_a_split_run_says_so(tmp_path, capsys) -> None:
    import yaml

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(scenario(split="none", duration=3.0, warmup=1.0,
                                            measure=2.0)))
    assert cli.main([str(path), "--out", str(tmp_path / "o"), "--progress", "off",
                     "--jobs", "2"]) == 0
    err = capsys.readouterr().err
    assert "--jobs 2 has nothing to run in parallel" in err
