"""Per-peer publishers (nodes/peers.py) over real rclpy and Fast DDS, in this process.

A message sent to a peer whose reader has not matched yet waits in the outbox and arrives, in
order, once it has; names that are not worker ids are refused before any topic is built; the
cache and the outboxes are bounded.
"""

from __future__ import annotations

import time

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import String

from mdi_exit_ros.nodes.peers import PeerPublishers, peer_topic
from mdi_exit_ros.wire import qos

pytestmark = pytest.mark.ros


@pytest.fixture()
def nodes():
    context = rclpy.Context()
    rclpy.init(context=context)
    sender = Node("peers_sender", context=context)
    receiver = Node("peers_receiver", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(sender)
    executor.add_node(receiver)
    yield sender, receiver, executor
    executor.shutdown()
    sender.destroy_node()
    receiver.destroy_node()
    rclpy.try_shutdown(context=context)


def spin_until(executor, predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        executor.spin_once(timeout_sec=0.02)
    return predicate()


def test_messages_wait_for_the_reader_and_arrive_in_order(nodes) -> None:
    sender, receiver, executor = nodes
    peers = PeerPublishers(sender, qos.data_qos())
    for i in range(5):  # no reader exists yet: a plain publisher would lose all five
        assert peers.send("robotx", "exits", String, String(data=str(i)))
    assert peers.pending() == 5
    got: list[str] = []
    sub = receiver.create_subscription(String, peer_topic("robotx", "exits"),
                                       lambda m: got.append(m.data), qos.data_qos())

    def delivered() -> bool:
        peers.flush()  # the worker's tick
        return len(got) >= 6

    assert spin_until(executor, lambda: sub.get_publisher_count() > 0)
    assert peers.send("robotx", "exits", String, String(data="5"))  # behind the waiting ones
    assert spin_until(executor, delivered), got
    assert got == [str(i) for i in range(6)]
    assert peers.pending() == 0 and peers.dropped == 0


@pytest.mark.parametrize("name", ["", "1robot", "robot/1", "a b", "robot1\n", "r" * 65,
                                  "~robot", "robot-1"])
def test_a_name_that_is_not_a_worker_id_is_refused_and_counted(nodes, name: str) -> None:
    sender, _, _ = nodes
    peers = PeerPublishers(sender, qos.data_qos())
    assert not peers.send(name, "tasks", String, String(data="x"))
    assert peers.refused_names == 1
    assert peers.pending() == 0 and peers.dropped == 0  # nothing queued, no topic built


def test_outboxes_and_the_cache_are_bounded(nodes) -> None:
    sender, _, _ = nodes
    peers = PeerPublishers(sender, qos.data_qos(), max_peers=3, max_pending=4, expiry=0.2)
    for i in range(6):
        peers.send("lonely", "tasks", String, String(data=str(i)))
    assert peers.pending() == 4 and peers.dropped == 2  # the oldest two made room
    time.sleep(0.3)  # let them expire (a time bound, not a check of absence)
    peers.flush()
    assert peers.pending() == 0 and peers.dropped == 6
    for i in range(5):  # five distinct peers through a cache of three
        peers.send(f"robot{i}", "acks", String, String(data="a"))
    assert peers.pending() == 3 and peers.dropped == 8  # two evicted with their message
    peers.close()
    assert not peers.send("robot9", "acks", String, String(data="late"))
    assert peers.dropped == 11


def test_all_outboxes_together_are_bounded(nodes) -> None:
    """Tasks carry tensors: the messages waiting over all topics have a cap of their own."""
    sender, _, _ = nodes
    peers = PeerPublishers(sender, qos.data_qos(), max_pending=10, max_pending_total=5)
    for i in range(4):
        assert peers.send("robota", "tasks", String, String(data=str(i)))
    assert peers.send("robotb", "tasks", String, String(data="b0"))
    assert peers.pending() == 5
    assert not peers.send("robotc", "tasks", String, String(data="c0"))  # nothing to make room
    assert peers.send("robota", "tasks", String, String(data="4"))  # its own oldest goes
    assert peers.pending() == 5 and peers.dropped == 2
