"""Topic names (mdi_exit_ros/topics.py): the default fleet keeps the names of one fleet per
domain; another fleet namespace moves every shared and per-robot topic under it."""

from __future__ import annotations

import pytest

from mdi_exit_ros.tools import fleet_spec
from mdi_exit_ros.topics import (
    fleet_namespace,
    peer_topic,
    robot_namespace,
    split_namespace,
    state_topic,
    stats_topic,
)
from mdi_exit_ros.topology import load_topology, resolve_topology


def test_default_fleet_keeps_the_single_fleet_names() -> None:
    assert peer_topic("robot2", "tasks") == "/robot2/tasks"
    assert state_topic() == "/mdi/neighbor_state" and stats_topic() == "/mdi/worker_stats"
    assert robot_namespace("/", "robot1") == "/robot1"


@pytest.mark.parametrize("given", ["site_a", "/site_a", "/site_a/", " /site_a "])
def test_a_fleet_namespace_holds_its_robots_and_reports(given: str) -> None:
    assert fleet_namespace(given) == "/site_a"
    assert peer_topic("robot2", "task_acks", given) == "/site_a/robot2/task_acks"
    assert state_topic(given) == "/site_a/mdi/neighbor_state"
    assert stats_topic(given) == "/site_a/mdi/worker_stats"
    assert fleet_namespace("/a/b") == "/a/b" and fleet_namespace("") == "/"


@pytest.mark.parametrize("bad", ["/1st", "/a b", "/a//b", "a-b", "/ü"])
def test_a_fleet_that_is_no_namespace_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a namespace"):
        fleet_namespace(bad)


def test_a_node_namespace_splits_into_fleet_and_worker_id() -> None:
    assert split_namespace("/site_a/robot1") == ("/site_a", "robot1")
    assert split_namespace("/robot1") == ("/", "robot1")
    assert split_namespace("/") == ("/", "")


def test_fleet_specs_put_nodes_and_players_under_the_fleet() -> None:
    topology = load_topology(resolve_topology("mesh3"))
    workers = fleet_spec.worker_specs(topology, fleet="site_a")
    assert [w.full_name for w in workers] == [f"/site_a/robot{i}/worker" for i in (1, 2, 3)]
    assert all(w.parameters["fleet"] == "/site_a" for w in workers)
    args = fleet_spec.ros_arguments(workers[0])
    assert "__ns:=/site_a/robot1" in args and "fleet:=/site_a" in args
    players = fleet_spec.player_specs(topology, fleet="/site_a")
    assert [p.namespace for p in players] == ["/site_a/robot1"]
    default = fleet_spec.worker_specs(topology)  # the default fleet: no parameter to pass
    assert default[0].namespace == "/robot1" and "fleet" not in default[0].parameters
    with pytest.raises(ValueError):
        fleet_spec.worker_specs(topology, fleet="/bad name")


def test_mdi_exit_fleet_takes_a_fleet_namespace() -> None:
    from mdi_exit_ros.tools.fleet import parse_options

    opts = parse_options(["mesh3", "--fleet", "site_a"])
    assert opts.fleet == "/site_a"
    assert [w.namespace for w in opts.workers] == [f"/site_a/robot{i}" for i in (1, 2, 3)]
    assert [p.namespace for p in opts.players] == ["/site_a/robot1"]
    assert parse_options(["mesh3"]).fleet == "/"
    with pytest.raises(ValueError, match="is not a namespace"):
        parse_options(["mesh3", "--fleet", "/site a"])
