"""The simulator (mdi_exit_ros/sim): pure Python, fast, no ROS.

It must be deterministic with a seed, answer every admitted frame exactly once (also when
workers crash and come back and links go down), and agree with queueing theory where theory
has an answer: one worker, a fixed task time, no early exit, Poisson arrivals is an M/D/1
queue, whose mean time in system is D + rho D / (2 (1 - rho)) (Pollaczek-Khinchine).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mdi_exit_ros.sim import engine, topologies
from mdi_exit_ros.sim.exits import ExitTable
from mdi_exit_ros.sim.scenario import SimScenarioError, build, expand_sweep, metrics

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "docs" / "sim" / "mobilenet_v2_ee_cifar10_test.csv.gz"


def scenario(**over):
    base = {
        "name": "t", "seed": 3, "duration": 40.0, "warmup": 5.0, "measure": 30.0,
        "drain": 120.0, "exits": {"num_exits": 3, "images": 500}, "thresholds": 0.7,
        "profile": {"service_times": [0.05, 0.04, 0.03], "link_delay": 0.005,
                    "link_bandwidth": 2.5e6},
        "model": {"cut_bytes": [4096, 2048], "input_bytes": 3072},
        "topology": {"kind": "mesh", "n": 4}, "arrivals": {"rate": 40.0, "poisson": True},
        "parameters": {"*.queue_thresholds": [2, 6]},
    }
    base.update(over)
    return base


def run(data):
    sim, facts = build(data)
    sim.run(facts["duration"], facts["drain"])
    return sim, metrics(sim, facts)


def test_same_seed_same_run_and_another_seed_another() -> None:
    a, ma = run(scenario())
    b, mb = run(scenario())
    assert ma == mb
    assert [(e.source, e.admitted_at, e.answered_at, e.exit_index, e.worker) for e in a.ends] \
        == [(e.source, e.admitted_at, e.answered_at, e.exit_index, e.worker) for e in b.ends]
    assert ma["admitted"] > 100  # the run did something
    _, mc = run(scenario(seed=4))
    assert mc != ma


def _exactly_once(sim) -> None:
    for src in sim.sources.values():
        c = src.frames.counters()
        assert c["pending"] == 0, c
        assert c["completed"] == c["admitted"] > 0, c
        ends = [e for e in sim.ends if e.source == src.wid]
        assert len(ends) == c["admitted"]  # one first result per admitted frame


@pytest.mark.parametrize("reports", ["all", "neighbors"])
def test_every_admitted_frame_is_answered_exactly_once(reports: str) -> None:
    sim, m = run(scenario(topology={"kind": "grid", "rows": 3, "cols": 3, "sources": 3},
                          parameters={"*.queue_thresholds": [2, 6],
                                      "w2.admission_mode": "threshold"},
                          sim={"source_reports": reports}))
    _exactly_once(sim)
    assert m["expired"] == 0 and m["tasks_share_source"] < 1.0


def test_exactly_once_under_churn() -> None:
    """Workers crash holding tasks (custody and the sources' deadlines recover them), come
    back as fresh processes, a new worker joins, a link drops everything for a while."""
    churn = [{"at": 8.0, "leave": "w2"}, {"at": 9.0, "leave": "w4"},
             {"at": 14.0, "link_down": ["w1", "w3"], "for": 4.0},
             {"at": 20.0, "join": "w2"}, {"at": 22.0, "join": "w9", "neighbors": ["w1", "w3"]},
             {"at": 25.0, "leave": "w3"}, {"at": 30.0, "join": "w4"}]
    sim, m = run(scenario(churn=churn, topology={"kind": "mesh", "n": 5, "sources": 1},
                          arrivals={"rate": 30.0, "poisson": True}))
    _exactly_once(sim)
    held = {w: sim.workers[w].tasks_run for w in ("w2", "w9", "w4")}
    assert all(n > 0 for n in held.values()), held  # the joined workers got work
    stats = [w.core.stats() for w in sim.workers.values()]
    assert sum(s.taken_back for s in stats) > 0  # crashes forced take-backs...
    # ...which recovered every frame within its deadline (10 s): none expired
    assert m["expired"] == 0
    # nothing left behind: every live core ends with empty queues, nothing running or unacked
    assert all(w.core.idle() for w in sim.workers.values() if w.alive)
    assert m["admitted"] > 300


def test_a_crashed_robot_loses_what_it_had_not_finished_sending() -> None:
    """A message is on the wire once its last byte is out: what the crashed process still
    held (queued behind others on the link, or half sent) never arrives; what was out
    does; its restarted process sends again."""
    sim, _ = build(scenario(topology={"kind": "mesh", "n": 2},
                            profile={"service_times": [0.05, 0.04, 0.03], "link_delay": 0.01,
                                     "link_bandwidth": 1000.0},
                            arrivals={"rate": 1.0, "start": 100.0}, duration=5.0,
                            warmup=1.0, measure=3.0))
    got = []

    def send(label: str) -> None:  # 400 bytes: 0.4 s on the wire at 1,000 B/s
        sim._over_link("w2", "w1", 400, got.append, label)

    sim.at(0.5, send, "out at 0.9")
    sim.at(0.5, send, "out at 1.3")  # queued behind the first, cut by the crash at 1.0
    sim.at(0.95, send, "out at 1.7")
    sim.leave("w2", 1.0)
    sim.join("w2", 2.0)
    sim.at(2.5, send, "restarted")
    sim.run(5.0)
    assert got == ["out at 0.9", "restarted"]
    assert sim.lost_with_sender == 2


def test_messages_lost_with_their_sender_lose_no_frame() -> None:
    """A helper crashes 15 times on slow links (an ack is 0.13 s on the wire): some of its
    acks and tasks die with it, and every admitted frame is still answered exactly once
    (leases, ack timeouts and custody recover them), none late."""
    churn = [e for i in range(15) for e in ({"at": 5.0 + i, "leave": "w2"},
                                            {"at": 5.5 + i, "join": "w2"})]
    lost = 0
    for seed in (3, 4, 5):
        sim, m = run(scenario(seed=seed, churn=churn,
                              topology={"kind": "mesh", "n": 3, "sources": 1},
                              profile={"service_times": [0.05, 0.04, 0.03],
                                       "link_delay": 0.005, "link_bandwidth": 500.0},
                              model={"cut_bytes": [300, 200], "input_bytes": 300},
                              parameters={"*.queue_thresholds": [2, 6],
                                          "*.offload_first_task": True},
                              arrivals={"rate": 30.0, "poisson": True}, duration=25.0))
        _exactly_once(sim)
        assert m["expired"] == 0 and m["admitted"] > 250
        lost += sim.lost_with_sender
    assert lost > 0


def _trace(sim) -> tuple:
    ends = [(e.source, e.admitted_at, e.answered_at, e.exit_index, e.worker) for e in sim.ends]
    workers = [(w, x.tasks_run, x.busy_seconds, x.core.stats()) for w, x in sim.workers.items()]
    return ends, workers


@pytest.mark.parametrize("first", [False, True])
def test_skipping_idle_ticks_changes_nothing_but_the_event_count(first: bool) -> None:
    """Only the ticks that act run (WorkerCore.next_deadline): every frame, every decision
    and every counter as with all ticks, under churn, report loss, Alg. 3 and Alg. 4, with
    a tick period that coincides with the task times."""
    churn = [{"at": 4.0, "leave": "w5"}, {"at": 6.0, "link_down": ["w1", "w4"], "for": 3.0},
             {"at": 9.0, "join": "w5"}, {"at": 10.0, "join": "w10", "neighbors": ["w1", "w2"]},
             {"at": 12.0, "leave": "w8"}]
    data = scenario(duration=20.0, warmup=2.0, measure=15.0, churn=churn,
                    topology={"kind": "grid", "rows": 3, "cols": 3, "sources": 2},
                    profile={"service_times": [0.05, 0.1, 0.025], "link_delay": 0.005,
                             "link_bandwidth": 2.5e6},
                    parameters={"*.queue_thresholds": [2, 6], "w2.admission_mode": "threshold",
                                "*.neighbor_lease": 1.0, "*.offload_first_task": first})
    runs = {}
    for skip in (False, True):
        sim, m = run({**data, "sim": {"report_loss": 0.1, "skip_idle_ticks": skip}})
        runs[skip] = (sim, m)
    (every, m_every), (skipped, m_skipped) = runs[False], runs[True]
    assert _trace(every) == _trace(skipped)
    assert {**m_every, "events": 0} == {**m_skipped, "events": 0}
    assert m_every["admitted"] > 300 and sum(s.core.stats().taken_back
                                              for s in every.workers.values()) > 0
    assert m_skipped["events"] < 0.9 * m_every["events"]  # the idle ticks did not run


def test_a_run_in_two_calls_is_the_same_run() -> None:
    """Sim.run may be called again with a later end: ticks queued past the first end wait."""
    data = scenario(duration=20.0, warmup=2.0, measure=15.0,
                    topology={"kind": "grid", "rows": 2, "cols": 3, "sources": 2})
    once, m_once = run(data)
    twice, facts = build(data)
    twice.run(7.0)
    twice.run(facts["duration"], facts["drain"])
    assert _trace(once) == _trace(twice) and m_once == metrics(twice, facts)


def test_a_source_cannot_leave() -> None:
    with pytest.raises(SimScenarioError, match="source"):
        build(scenario(churn=[{"at": 1.0, "leave": "w1"}]))


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_one_worker_no_exit_poisson_is_an_md1_queue(rho: float) -> None:
    """Mean time in system within 5 % of Pollaczek-Khinchine; throughput = lambda.

    Every frame admitted (Alg. 4 mode; K = 1, so T_e changes nothing), the overload guard
    out of reach (max_queue and frame_deadline large), 40,000 frames."""
    d = 0.1
    lam = rho / d
    frames = 40_000
    data = scenario(
        seed=11, duration=frames / lam, warmup=100.0, measure=frames / lam - 200.0,
        exits={"num_exits": 1, "never_exit": True}, thresholds=1.0,
        profile={"service_times": [d]}, model={"input_bytes": 0},
        topology={"kind": "local"}, arrivals={"rate": lam, "poisson": True},
        parameters={"admission_mode": "threshold", "max_queue": 100_000,
                    "frame_deadline": 86400.0}, sim={"tick_period": 1.0})
    sim, m = run(data)
    _exactly_once(sim)
    t0, t1 = 100.0, frames / lam - 100.0
    inside = [e.answered_at - e.admitted_at for e in sim.ends if t0 <= e.admitted_at <= t1]
    mean = sum(inside) / len(inside)
    theory = d + rho * d / (2 * (1 - rho))
    assert mean == pytest.approx(theory, rel=0.05), (mean, theory)
    assert m["answered_rate"] == pytest.approx(lam, rel=0.03)
    assert min(inside) >= d - 1e-9  # never faster than the service time


def test_node_constants_agree() -> None:
    """ACK_BYTES and TICK_PERIOD are the nodes' (read from their source: no rclpy here)."""
    tree = ast.parse((ROOT / "mdi_exit_ros" / "nodes" / "worker.py").read_text())
    values = {t.id: ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
              for t in n.targets if isinstance(t, ast.Name)}
    assert values["ACK_BYTES"] == engine.ACK_BYTES
    assert values["TICK_PERIOD"] == engine.TICK_PERIOD


def test_topologies() -> None:
    g = topologies.generate({"kind": "grid", "rows": 3, "cols": 4})
    assert len(g.workers) == 12 and len(g.neighbors("w1")) == 2 and len(g.neighbors("w6")) == 4
    r = topologies.generate({"kind": "ring", "n": 6})
    assert all(len(r.neighbors(w)) == 2 for w in r.workers)
    d = topologies.generate({"kind": "ring", "n": 3, "directed": True})
    assert d.neighbors("w1") == ["w2"]
    geo = topologies.generate({"kind": "geometric", "n": 200, "radius": 0.08, "seed": 2})
    assert all(geo.neighbors(w) for w in geo.workers)  # nobody alone
    assert topologies.components(topologies.generate({"kind": "mesh", "n": 5})) == 1
    shipped = topologies.resolve("circular3")
    assert shipped.neighbors("robot1") == ["robot2"]
    with pytest.raises(ValueError):
        topologies.generate({"kind": "torus", "n": 3})


def test_sweep_expands_every_combination() -> None:
    runs = expand_sweep({"topology": {"kind": "mesh", "n": 2},
                         "sweep": {"topology.n": [2, 3],
                                   "parameters.*.offload_first_task": [False, True]}})
    assert [(o["topology.n"], s["topology"]["n"], s["parameters"]["*.offload_first_task"])
            for o, s in runs] == [(2, 2, False), (2, 2, True), (3, 3, False), (3, 3, True)]


def test_first_task_offloading_spreads_the_first_tasks() -> None:
    """The same core decision as on real fleets (docs/ALGORITHMS.md, 24)."""
    pinned = run(scenario(parameters={"*.offload_first_task": False,
                                      "*.queue_thresholds": [2, 6]}))[1]
    spread = run(scenario(parameters={"*.offload_first_task": True,
                                      "*.queue_thresholds": [2, 6]}))[1]
    assert spread["tasks_share_source"] < pinned["tasks_share_source"]


@pytest.mark.skipif(not TABLE.is_file(), reason="per-image table not generated")
def test_the_per_image_table_reproduces_the_checkpoint() -> None:
    """A lightly loaded robot of the simulator, whose WorkerCore.complete decides each exit
    (Alg. 1) on the committed table at the checkpoint's thresholds, gives the exit mix and
    accuracy `mdi-exit eval` measured (stored in the checkpoint's metadata)."""
    table = ExitTable.load(TABLE)
    assert len(table) == 10_000 and table.num_exits == 5
    checkpoint_mix = [0.5107, 0.4836, 0.0057, 0.0, 0.0]
    assert table.exit_fraction(tuple(table.meta["thresholds"])) == pytest.approx(
        checkpoint_mix, abs=2e-3)
    # 8,000 frames, 1 ms per task: no queue, so Alg. 3 keeps mu at the camera's interval
    sim, m = run(scenario(
        seed=5, duration=160.0, warmup=0.0, measure=160.0, drain=10.0, exits=str(TABLE),
        thresholds="checkpoint", profile={"service_times": [0.001] * 5}, model={},
        topology={"kind": "local"}, arrivals={"rate": 50.0},
        parameters={"admission_mode": "rate", "slow_start": False, "initial_interval": 0.01}))
    _exactly_once(sim)
    assert m["results"] == m["admitted"] >= 7_900
    # sampling 8,000 of the 10,000 images with replacement: sd ~0.006 per share
    assert m["exit_distribution"] == pytest.approx(checkpoint_mix, abs=0.025)
    assert m["accuracy"] == pytest.approx(0.8725, abs=0.02)  # eval's accuracy there
    exits = {}
    for s in (w.core.stats() for w in sim.workers.values()):
        for k, n in s.exits.items():
            exits[k] = exits.get(k, 0) + n
    assert sum(exits.values()) == m["results"]  # every answer was a WorkerCore exit


def test_task_overhead_lowers_a_saturated_robots_rate() -> None:
    """One robot fed far beyond its speed answers 1 / (service + overhead) frames/s."""
    rates = []
    for overhead in (0.0, 0.05):
        data = scenario(
            duration=60.0, warmup=10.0, measure=50.0, drain=0.0,
            exits={"num_exits": 1, "never_exit": True}, thresholds=1.0,
            profile={"service_times": [0.2]}, model={"input_bytes": 0},
            topology={"kind": "local"}, arrivals={"rate": 50.0},
            parameters={"admission_mode": "threshold"}, sim={"task_overhead": overhead})
        rates.append(run(data)[1]["answered_rate"])
    assert rates[0] == pytest.approx(1 / 0.2, rel=0.03)
    assert rates[1] == pytest.approx(1 / 0.25, rel=0.03)
