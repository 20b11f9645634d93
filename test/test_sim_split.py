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
# two components: a ring of four with one source, a line of three with two
TWO = {"name": "two", "workers": ["w1", "w2", "w3", "w4", "w5", "w6", "w7"],
       "sources": ["w1", "w5", "w7"],
       "links": [["w1", "w2"], ["w2", "w3"], ["w3", "w4"], ["w4", "w1"], ["w5", "w6"],
                 ["w6", "w7"]]}


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
    assert parts(data) == 2
    assert topologies.component_lists(validate(data).topology) == \
        [["w1", "w2", "w3", "w4"], ["w5", "w6", "w7"]]
    for i, (workers, sources, links) in enumerate([
            (TWO["workers"][:4], ["w1"], TWO["links"][:4]),
            (TWO["workers"][4:], ["w5", "w7"], TWO["links"][4:])]):
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


def test_the_parts_add_up_and_nothing_is_lost() -> None:
    data = scenario()
    tallies, facts = [], None
    for i in range(2):
        sim, facts = build(data, part=i)
        sim.run(facts["duration"], facts["drain"])
        for src in sim.sources.values():
            c = src.frames.counters()
            assert c["pending"] == 0 and c["completed"] == c["admitted"] > 0, c
        tallies.append(tally(sim, facts))
    m = metrics_of(tallies, facts)
    assert m["admitted"] == m["answered"] == sum(t["admitted"] for t in tallies)
    assert m["events"] == sum(t["events"] for t in tallies)
    assert m["results"] == sum(len(t["latencies"]) for t in tallies)
    # the facts describe the whole fleet, not a part
    assert facts["workers"] == 7 and facts["sources"] == 3 and facts["components"] == 2
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
    assert all(float(r["components"]) == 2 for r in one)


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
