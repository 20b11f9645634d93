"""config/sros2/mesh3_policy.xml, the example SROS2 policy (docs/RELIABILITY.md): it cannot be
enforced here (the Fast DDS wheels have no security plugins), so these tests check what can be
checked without them: the file is well-formed SROS2 policy XML, and each node may use exactly
the topics its code and the mesh3 topology give it, so a change of a topic name or of the
topology's links fails here instead of silently locking robots out."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mdi_exit_ros.topics import ACKS, EXITS, TASKS, peer_topic, state_topic, stats_topic
from mdi_exit_ros.topology import config_dir, load_topology, resolve_topology

REPO = Path(__file__).resolve().parent.parent
POLICY = REPO / "config" / "sros2" / "mesh3_policy.xml"
TOPOLOGY = load_topology(resolve_topology("mesh3"))
STATE_TOPIC, STATS_TOPIC = state_topic(), stats_topic()  # the default fleet, /
LIFECYCLE = {"~change_state", "~get_state", "~get_available_states",
             "~get_available_transitions", "~get_transition_graph"}


def tasks_topic(worker: str) -> str:
    return peer_topic(worker, TASKS)


def acks_topic(worker: str) -> str:
    return peer_topic(worker, ACKS)


def exits_topic(worker: str) -> str:
    return peer_topic(worker, EXITS)


def _profiles() -> dict[tuple[str, str, str], ET.Element]:
    root = ET.parse(POLICY).getroot()
    assert root.tag == "policy" and root.get("version") == "0.2.0"
    return {(e.get("path"), p.get("ns"), p.get("node")): p
            for e in root.iter("enclave") for p in e.iter("profile")}


def _names(profile: ET.Element, tag: str, kind: str) -> set[str]:
    """Topics (tag 'topics') or services ('services') allowed for `kind` (publish, request...),
    relative names resolved in the profile's namespace, ~ kept."""
    ns = profile.get("ns").rstrip("/")
    out = set()
    for group in profile.findall(tag):
        if group.get(kind) == "ALLOW":
            for item in group:
                name = item.text.strip()
                out.add(name if name.startswith(("/", "~")) else f"{ns}/{name}")
    return out


def test_policy_is_installed_with_the_package() -> None:
    installed = config_dir() / "sros2" / POLICY.name
    assert installed.is_file(), f"{installed} missing: reinstall the package"
    assert installed.read_text() == POLICY.read_text()


def test_one_enclave_per_robot_and_one_for_the_operator() -> None:
    keys = set(_profiles())
    robots = {(f"/mdi_exit/{w}", f"/{w}", "worker") for w in TOPOLOGY.workers}
    players = {(f"/mdi_exit/{s}", f"/{s}", "image_player") for s in TOPOLOGY.sources}
    tools = {("/mdi_exit/operator", "/", "mdi_fleet"), ("/mdi_exit/operator", "/", "mdi_monitor")}
    assert keys == robots | players | tools


@pytest.mark.parametrize("robot", TOPOLOGY.workers)
def test_a_robot_may_use_exactly_its_topology_links(robot: str) -> None:
    p = _profiles()[(f"/mdi_exit/{robot}", f"/{robot}", "worker")]
    senders = [w for w in TOPOLOGY.workers if robot in TOPOLOGY.neighbors(w)]
    publish = _names(p, "topics", "publish")
    assert {t for t in publish if t.endswith("/tasks")} == \
        {tasks_topic(n) for n in TOPOLOGY.neighbors(robot)}
    assert {t for t in publish if t.endswith("/task_acks")} == {acks_topic(s) for s in senders}
    assert {t for t in publish if t.endswith("/exits")} == \
        {exits_topic(s) for s in TOPOLOGY.sources}
    assert {STATE_TOPIC, STATS_TOPIC, "~transition_event"} <= publish
    subscribe = _names(p, "topics", "subscribe")
    assert {STATE_TOPIC, tasks_topic(robot), acks_topic(robot)} <= subscribe
    source = TOPOLOGY.is_source(robot)
    assert (exits_topic(robot) in subscribe) == source
    assert ({f"/{robot}/image", f"/{robot}/image_label"} <= subscribe) == source
    assert (f"/{robot}/classification" in publish) == source
    assert LIFECYCLE <= _names(p, "services", "reply")
    assert not _names(p, "services", "request")  # robots reconfigure nobody


def test_only_the_operator_may_drive_the_lifecycles() -> None:
    profiles = _profiles()
    fleet = profiles[("/mdi_exit/operator", "/", "mdi_fleet")]
    assert _names(fleet, "services", "request") == {
        f"/{w}/worker/{s}" for w in TOPOLOGY.workers for s in ("change_state", "get_state")}
    assert not _names(fleet, "topics", "publish") - {"/rosout", "/parameter_events"}
    monitor = profiles[("/mdi_exit/operator", "/", "mdi_monitor")]
    assert _names(monitor, "topics", "subscribe") == {STATE_TOPIC, STATS_TOPIC}
    requesters = [k for k, p in profiles.items() if _names(p, "services", "request")]
    assert requesters == [("/mdi_exit/operator", "/", "mdi_fleet")]
