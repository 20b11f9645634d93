"""Topology YAML: the shipped fleets load with the neighbours of the paper's set-ups, and
malformed files are refused with a message naming the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdi_exit_ros.topology import (
    SHIPPED,
    TopologyError,
    load_topology,
    parse_topology,
    resolve_topology,
)

SOURCE_CONFIG = Path(__file__).resolve().parent.parent / "config" / "topologies"


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_topology_loads_from_the_installed_package(name: str) -> None:
    path = resolve_topology(name)
    topo = load_topology(path)
    assert topo.name == name
    assert path.name == f"{name}.yaml"
    assert topo.sources == ("robot1",)
    assert topo.player.get("dataset") == "fashion-mnist"
    # the installed copy is the source tree's
    assert path.read_text() == (SOURCE_CONFIG / f"{name}.yaml").read_text()


@pytest.mark.parametrize("name,size", [("mesh2", 2), ("mesh3", 3), ("mesh5", 5)])
def test_meshes_are_fully_connected(name: str, size: int) -> None:
    topo = load_topology(resolve_topology(name))
    assert len(topo.workers) == size
    for w in topo.workers:
        assert topo.neighbors(w) == [m for m in topo.workers if m != w]
        assert topo.node_parameters(w)["neighbors"] == (topo.neighbors(w) or ["-"])


def test_circular3_is_a_directed_ring() -> None:
    topo = load_topology(resolve_topology("circular3"))
    assert topo.neighbors("robot1") == ["robot2"]
    assert topo.neighbors("robot2") == ["robot3"]
    assert topo.neighbors("robot3") == ["robot1"]


def test_pairs_are_undirected_and_arcs_directed() -> None:
    topo = parse_topology({"workers": ["a", "b", "c"], "links": [["a", "b"]],
                           "arcs": [["b", "c"]]})
    assert topo.neighbors("a") == ["b"]
    assert topo.neighbors("b") == ["a", "c"]
    assert topo.neighbors("c") == []
    assert topo.node_parameters("c")["neighbors"] == ["-"]  # the worker's "none"
    assert topo.sources == ("a",)  # default: the first worker


def test_per_worker_parameters_override_neighbours_only_where_given() -> None:
    topo = parse_topology({"workers": ["a", "b"], "parameters": {"b": {"compute_slowdown": 2}}})
    assert topo.node_parameters("a") == {"neighbors": ["b"]}
    assert topo.node_parameters("b") == {"neighbors": ["a"], "compute_slowdown": 2}


@pytest.mark.parametrize("data,message", [
    ({"workers": ["a", "b"], "links": [["a", "z"]]}, "'z', which is not a worker"),
    ({"workers": ["a", "b"], "arcs": [["q", "b"]]}, "'q', which is not a worker"),
    ({"workers": ["a", "a"]}, "unique"),
    ({"workers": []}, "non-empty"),
    ({"workers": ["a", "b"], "sources": ["c"]}, "source 'c' is not a worker"),
    ({"workers": ["a", "b"], "links": [["a", "a"]]}, "itself"),
    ({"workers": ["a", "b"], "links": [["a"]]}, "not a pair"),
    ({"workers": ["a", "b"], "parameters": {"c": {}}}, "'c', which is not a worker"),
    ({"workers": ["1abc"]}, "not a valid ROS name"),
    ({"workers": ["a"], "colour": "red"}, "unknown keys"),
    (["a", "b"], "mapping at the top level"),
])
def test_malformed_topologies_are_refused(data: object, message: str) -> None:
    with pytest.raises(TopologyError, match=message):
        parse_topology(data, "bad.yaml")


def test_bad_yaml_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("workers: [robot1, robot2\nlinks: full\n")
    with pytest.raises(TopologyError, match="broken.yaml: not valid YAML"):
        load_topology(bad)


def test_missing_file_and_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="cannot read"):
        load_topology(tmp_path / "nothing.yaml")
    with pytest.raises(TopologyError, match="no topology 'mesh99'"):
        resolve_topology("mesh99")


def test_a_yaml_path_is_used_as_is(tmp_path: Path) -> None:
    f = tmp_path / "duo.yaml"
    f.write_text("workers: [left, right]\nsources: [right]\n")
    topo = load_topology(resolve_topology(str(f)))
    assert topo.name == "duo"  # from the file name when the file has none
    assert topo.sources == ("right",)
    assert topo.neighbors("left") == ["right"]
