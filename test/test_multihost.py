"""mesh5 on five separate hosts: a robot's link capped, the robot killed and restarted, its
link cut and restored; every admitted frame is answered exactly once.

Each robot is a host of its own (a Linux network namespace, `netns.py`) that starts only its
own robot with the per-robot command, `mdi-exit fleet mesh5 --only robotN`, as on a real
computer. The hosts talk over UDPv4 only (`FASTDDS_BUILTIN_TRANSPORTS=UDPv4`: shared memory
would bypass the links, since namespaces share /dev/shm) through veths on one bridge; the test
process sits on the bridge and feeds robot1's camera topic. Faults are injected on robot3's
veth: a `tbf` bandwidth cap (first, while the fleet is still symmetric), SIGKILL of its
worker (restarted by its host's `--respawn`), and `ip link set down` (it leaves Wi-Fi
range). The tests share one fleet (module fixture) and run in this file's order. Everything
is judged by counters the nodes publish (WorkerStats: neighbours alive, tasks re-issued,
offloads per neighbour, frames admitted and classified) and by the results that reach the
test, never by silence.

Needs root (CI's `make test` runs as root); skips otherwise. `-s` prints the measurements
that docs/RELIABILITY.md reports.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import netns
import pytest
import rclpy
import rclpy.time

from mdi_exit_ros.core.estimators import DEFAULT_STALE_AFTER
from mdi_exit_ros.msg import WorkerStats
from mdi_exit_ros.wire import qos

REASON = netns.unavailable()
pytestmark = [pytest.mark.ros, pytest.mark.slow,
              pytest.mark.skipif(REASON is not None, reason=f"multi-host tests: {REASON}")]

ROBOTS = [f"robot{i}" for i in range(1, 6)]
SOURCE, VICTIM = "robot1", "robot3"
HELPERS = [r for r in ROBOTS if r != SOURCE]
NEIGHBOURS = [r for r in ROBOTS if r != VICTIM]  # mesh5 is full: all of them see robot3
RATE = 10.0  # frames per second fed to robot1
# Every host's DDS goes over its veth, discovery by multicast on the bridge's subnet.
NET_ENV = {"FASTDDS_BUILTIN_TRANSPORTS": "UDPv4", "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}
# Every robot's task times are fixed (`service_times`, padding with sleep, no CPU), so the load
# is the same on any machine. robot1 runs each frame to the last exit (T_e = 1), SOURCE_TASK s a
# task: 0.8 of its time goes to first tasks alone at RATE, so it always has later tasks to
# offload (7-8 a second, each a task and usually its successor). A helper runs its tasks in
# HELPER_TASK s. (Until 2026-12-01, robot1 was 20x its measured compute, ~0.11 s a frame,
# about what 10/s needs, and the helpers 30x theirs: whether robot1 offloaded at all swung with
# the machine's load; a restarted robot3 waited 5-6 s for its first task in two of three runs,
# and 30 offloads took 79 s. Helpers slow enough to be busy all the time, 0.25 s a task, made
# them offload among themselves and back to robot1, and the capped link carried nothing.)
# Before a fault robot3's tasks are padded to HOLDING seconds each and the fault waits for a
# task robot3 accepted after that (`Mesh.hold`), so it hits while robot3 holds it. (Before,
# robot3 was made 200x slower, ~0.2 s a task, and the fault came when a report showed any task
# held: twice that task was done by then, nothing was re-issued and the test waited in vain.)
# Deadlines far beyond any task time: a frame can only go overdue if a task is lost, so
# recovery must come from the senders' custody (re-issue), not from re-admission.
SOURCE_TASK, HELPER_TASK, HOLDING = 0.08, 0.12, 8.0  # s per task (the checkpoint has 3 tasks)
SETTINGS = ["*.stats_period=0.2", "*.torch_threads=1",
            f"robot1.service_times=[{SOURCE_TASK},{SOURCE_TASK},{SOURCE_TASK}]",
            "robot1.exit_thresholds=[1.0,1.0,1.0]", "robot1.frame_deadline=120.0",
            "robot1.initial_interval=0.005", "robot1.slow_start=false",
            "robot1.latency_budget=3600.0", "robot1.qos=reliable",
            *(f"{r}.service_times=[{HELPER_TASK},{HELPER_TASK},{HELPER_TASK}]" for r in HELPERS)]
# tbf on robot3's link, both directions: a task (12-25 kB) takes 0.25-0.5 s on the wire. The
# bucket holds a whole task: Fast DDS sends one as a single UDP datagram, and with a smaller
# bucket (16 kB at 100 kbit) a lost fragment lost all of it, again on every re-send, so that
# nothing got through for 120 s in one run. Before the cap, the other helpers' links are the
# slow ones (SLOWER: tasks wait 30-80 ms for tokens) so that robot3 is the helper Alg. 2
# prefers: with idle helpers it ranks them by link delay alone, and on equal links a few ms
# of noise decided (robot3 got 1 of 30 offloads in one run, nothing left to shift away).
CAP, CAP_BURST = "400kbit", "32kb"
SLOWER, SLOWER_BURST = "2mbit", "4kb"
CAPPED_WINDOW = 30  # robot1's offloads counted while robot3 is capped
OUTAGE = 2.0  # s: frames fed after robot3 was dropped, before it is brought back
DETECT_WITHIN = 2.0  # s: issue #9, a departed robot is detected by its neighbours within 2 s
ARRIVAL_WITHIN = 3.0  # s: issue #9, a robot that (re)joins mid-stream receives work within 3 s
WAIT = 120.0  # s: bound of every wait on counters (generous: the CI machine may be loaded)


@dataclass
class Mesh:
    driver: object  # fleet_harness.Driver
    hosts: netns.Hosts
    logs: Path

    def stats(self, robot: str) -> WorkerStats | None:
        return self.driver.stats.get(robot)

    def stamp(self, robot: str) -> float:
        s = self.stats(robot)
        return -1.0 if s is None else rclpy.time.Time.from_msg(s.header.stamp).nanoseconds / 1e9

    def now(self) -> float:
        return self.driver.now_ns() / 1e9

    def fail(self, what: str) -> str:
        """A failure message: what, every robot's counters, the hosts' logs' tails."""
        tails = []
        for log in sorted(self.logs.glob("**/*.log")):
            tails.append(f"--- {log.name}\n" + "".join(log.read_text(errors="replace")
                                                       .splitlines(True)[-25:]))
        return f"{what}\n{self.driver.describe()}\n" + "\n".join(tails)

    def feed_until(self, predicate, timeout: float = WAIT) -> bool:
        """Publish frames to robot1 at RATE until predicate() holds (bounded)."""
        from fleet_harness import frames

        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            seed = self.driver.sent[SOURCE]
            self.driver.publish_frames(SOURCE, frames(1, seed=seed), None, RATE)
        return True

    def feed_for(self, seconds: float) -> None:
        """Publish frames to robot1 at RATE for `seconds` (pacing only, nothing checked)."""
        deadline = time.monotonic() + seconds
        self.feed_until(lambda: time.monotonic() >= deadline, seconds + WAIT)

    def hold(self, robot: str) -> None:
        """Make `robot` hold the next task it accepts for HOLDING seconds; returns once a
        report (at most 1 s old) shows it accepted one since. Such a task is unfinished
        until HOLDING s after it started, so a fault right now finds it held. (A report of
        queued or running tasks alone is not enough: it may show a short task from before
        the change, finished by the time the fault hits, and then nothing is re-issued.)"""
        self.driver.set_params(robot, service_times=[HOLDING] * 3)
        # A report stamped after the change was in force: any task counted after it was
        # accepted, hence started, under HOLDING.
        base = int(self.driver.stats_after(robot, self.driver.now_ns(), WAIT).tasks_received)

        def accepted_one() -> bool:
            s = self.stats(robot)
            return self.stamp(robot) > self.now() - 1.0 and s.tasks_received > base

        assert self.feed_until(accepted_one), self.fail(f"{robot} accepted no task")

    def reissued(self) -> int:
        """Tasks robot3's neighbours run again: re-issued from custody (its ack had reached
        them) or taken back as unacknowledged (it died before its ack got out: seen once)."""
        return sum(int(self.stats(r).tasks_reissued) + int(self.stats(r).tasks_taken_back)
                   for r in NEIGHBOURS)

    def exactly_once(self) -> WorkerStats:
        """Wait until robot1 settled; assert one result per admitted frame, none overdue."""
        stats = self.driver.wait_settled(SOURCE, WAIT)
        ids = [r.data_id for r in self.driver.results[SOURCE]]
        assert len(ids) == len(set(ids)) == stats.frames_admitted, self.fail("not one result "
                                                                             "per frame")
        assert stats.frames_overdue == 0 and stats.frames_expired == 0, \
            self.fail("a frame went overdue: a task was lost")
        return stats


class Watch:
    """When each neighbour first reported `robot` gone (or back) after a moment `since`."""

    def __init__(self, mesh: Mesh, robot: str, alive: bool, since: float) -> None:
        self.mesh, self.robot, self.alive, self.since = mesh, robot, alive, since
        self.seen: dict[str, float] = {}  # neighbour -> stamp of its first such report
        self._sub = mesh.driver.node.create_subscription(
            WorkerStats, "/mdi/worker_stats", self._on, qos.state_qos())

    def _on(self, msg: WorkerStats) -> None:
        stamp = rclpy.time.Time.from_msg(msg.header.stamp).nanoseconds / 1e9
        if msg.worker in NEIGHBOURS and msg.worker not in self.seen and stamp > self.since \
                and (self.robot in msg.neighbors_alive) == self.alive:
            self.seen[msg.worker] = stamp

    def done(self) -> bool:
        return len(self.seen) == len(NEIGHBOURS)

    def after(self) -> float:
        """Seconds from `since` until the last neighbour reported it."""
        return max(self.seen.values()) - self.since

    def close(self) -> None:
        self.mesh.driver.node.destroy_subscription(self._sub)


def _robot_command(robot: str, logs: Path) -> list[str]:
    """The per-robot command, as run on robot's own computer."""
    return [sys.executable, "-P", "-m", "mdi_exit_ros.tools.fleet", "mesh5", "--only", robot,
            "--no-player", "--respawn", "1", "--startup-timeout", "240",
            "--shutdown-timeout", "5",
            "--log-dir", str(logs / robot), *(a for s in SETTINGS for a in ("--set", s))]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    from fleet_harness import Driver

    logs = tmp_path_factory.mktemp("multihost")
    hosts = netns.Hosts(ROBOTS)
    if hosts.stale:
        print(f"\nremoved what an earlier, killed run left: {', '.join(hosts.stale)}")
    driver = None
    context = None
    try:
        env = {**os.environ, **NET_ENV}
        for robot in ROBOTS:
            hosts[robot].popen(_robot_command(robot, logs), env, logs / f"{robot}.log")
        # The test's own participant, on the bridge: a context of its own, so other tests'
        # localhost-only settings (conftest.py) do not apply to it.
        saved = {k: os.environ.get(k) for k in NET_ENV}
        os.environ.update(NET_ENV)
        try:
            context = rclpy.Context()
            rclpy.init(context=context)
            driver = Driver(context=context)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        m = Mesh(driver, hosts, logs)
        started = time.monotonic()
        assert driver.spin_until(lambda: all(
            m.stats(r) is not None and m.stats(r).lifecycle_state == "active"
            and set(m.stats(r).neighbors_alive) == set(ROBOTS) - {r} for r in ROBOTS), 240), \
            m.fail("the five hosts did not come up and see each other")
        driver.connect(SOURCE, WAIT)
        print(f"\nmesh5 on five hosts up in {time.monotonic() - started:.1f} s")
        yield m
    finally:
        ending = time.monotonic()
        hosts.close()  # first: the hosts' processes end while we still serve discovery
        if driver is not None:
            driver.close()
        if context is not None:
            rclpy.try_shutdown(context=context)
        print(f"\nmesh5 hosts torn down in {time.monotonic() - ending:.1f} s")
        deadline = time.monotonic() + 10.0  # the kernel's own clean-up is asynchronous
        while (left := netns.leftovers(os.getpid())) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left, f"left behind after the tear-down: {left}"


def _cut_or_kill(mesh: Mesh, fault, restore, what: str, restarted: bool) -> None:
    """Shared course of scenarios (a) and (b): robot3 holds tasks, `fault()` hits it; its
    neighbours must drop it within 2 s and re-issue what it held; `restore()` brings it back
    and it must get work again (a `restarted` one within 3 s of being seen back); then every
    admitted frame is answered exactly once."""
    mesh.hold(VICTIM)
    reissued = mesh.reissued()
    received_before = int(mesh.stats(VICTIM).tasks_received)
    admitted_before = int(mesh.stats(SOURCE).frames_admitted)
    hit = mesh.now()
    gone = Watch(mesh, VICTIM, False, hit)
    back = None
    fault()
    try:
        assert mesh.feed_until(lambda: gone.done() and mesh.reissued() > reissued, WAIT), \
            mesh.fail(f"{what}: not detected or its tasks not re-issued; saw {gone.seen}")
        detected = gone.after()
        reissue = mesh.now() - hit
        mesh.feed_for(OUTAGE)  # the fleet runs on without robot3 for a while
        restored = mesh.now()
        back = Watch(mesh, VICTIM, True, restored)
        restore()
        # The stream goes on while robot3 comes back (a restart takes tens of seconds here):
        # it rejoins mid-stream, and must get work within 3 s (issue #9). (With the feed
        # paused meanwhile, robot1's queues first had to fill again: 3.3 s once.)
        assert mesh.feed_until(back.done, WAIT), mesh.fail(f"{what}: robot3 not seen again")
        rejoined = back.after()

        def working() -> bool:  # robot3 reported after it was back, with more tasks received
            s = mesh.stats(VICTIM)
            return mesh.stamp(VICTIM) > restored and (
                s.tasks_received > received_before or s.tasks_received > 0
                and s.tasks_received < received_before)  # a restarted robot counts from 0

        assert mesh.feed_until(working, WAIT), mesh.fail(f"{what}: robot3 got no work again")
        work = mesh.now() - restored
        if not restarted:  # (a restarted robot3 has SETTINGS' times again); set only now:
            # the call blocks the feed, and its first request may get no answer after a cut
            mesh.driver.set_params(VICTIM, service_times=[HELPER_TASK] * 3)
        arrival = work - rejoined  # from "seen by all its neighbours" to its first task
    finally:
        gone.close()
        if back is not None:
            back.close()
    stats = mesh.exactly_once()
    admitted = int(stats.frames_admitted) - admitted_before
    print(f"\n{what}: neighbours dropped robot3 {detected:.2f} s after (last of 4, stats every "
          f"0.2 s), {mesh.reissued() - reissued} held task(s) re-issued (first {reissue:.2f} "
          f"s after); back: seen by all 4 neighbours {rejoined:.2f} s after restore, first "
          f"task {work:.2f} s after restore ({arrival:.2f} s after it was seen back); frames "
          f"admitted {admitted}, answered {admitted}, lost 0, duplicated 0 (all "
          f"{stats.frames_admitted} so far; overdue 0)")
    assert detected <= DETECT_WITHIN + 0.2, mesh.fail(f"detected after {detected:.2f} s")
    if restarted:  # a new robot3; a cut one may still work off its queue (Alg. 2 waits)
        assert arrival <= ARRIVAL_WITHIN, mesh.fail(f"first task {arrival:.2f} s after back")


def _offloads(mesh: Mesh) -> dict[str, int]:
    s = mesh.stats(SOURCE)
    return dict(zip(s.offload_targets, (int(n) for n in s.offloads_sent), strict=True))


def _window(mesh: Mesh, tasks: int) -> dict[str, int]:
    """robot1's offloads per helper while it offloads `tasks` more tasks."""
    before = _offloads(mesh)
    assert mesh.feed_until(lambda: sum(_offloads(mesh).values()) - sum(before.values())
                           >= tasks, WAIT), mesh.fail("robot1 stopped offloading")
    after = _offloads(mesh)
    return {r: after.get(r, 0) - before.get(r, 0) for r in HELPERS}


def test_a_capped_link_shifts_offloading_away(mesh: Mesh) -> None:
    """(c) robot3's link capped with tbf (both directions): robot1's link-delay estimate for
    robot3 grows with the acks' round trips and Alg. 2 sends it a smaller share. First in the
    module, so that no fault has touched robot3 yet."""
    host = mesh.hosts[VICTIM]
    resent = int(mesh.stats(SOURCE).tasks_resent)
    for r in HELPERS:
        if r != VICTIM:
            mesh.hosts[r].cap(SLOWER, SLOWER_BURST)
    try:
        _window(mesh, 15)  # robot1 measures the slower links
        free = _window(mesh, 30)
    finally:
        for r in HELPERS:
            if r != VICTIM:
                mesh.hosts[r].uncap()
    # robot3's WorkerStats go to six subscribers (the test, five fleet processes) by unicast:
    # at every 0.2 s they alone would take ~18 kB/s of the capped link.
    mesh.driver.set_params(VICTIM, stats_period=2.0)
    try:
        host.cap(CAP, CAP_BURST)
        # robot1 learns the link's delay from its first round trips: robot3 reports (over
        # the capped link, as its acks go) a task received after the cap, then 8 more
        # offloads. The count to beat is from a report made after the cap (robot3's last one
        # may be older and miss tasks that came in just before it).
        received = int(mesh.driver.stats_after(VICTIM, mesh.driver.now_ns(), WAIT)
                       .tasks_received)
        assert mesh.feed_until(lambda: mesh.stats(VICTIM).tasks_received > received), \
            mesh.fail("robot3 received no task over the capped link")
        _window(mesh, 8)
        started = time.monotonic()
        capped = _window(mesh, CAPPED_WINDOW)
        seconds = time.monotonic() - started
    finally:
        host.uncap()
        mesh.driver.set_params(VICTIM, stats_period=0.2)
    stats = mesh.exactly_once()
    share = {k: v / max(1, sum(d.values())) for k, d in (("free", free), ("capped", capped))
             for v in [d[VICTIM]]}
    print(f"\ncapped link (tbf {CAP} both ways): robot1's offloads per helper, robot3's link "
          f"the fastest (the others' at {SLOWER}) {free}, robot3's capped (the others' free) "
          f"{capped}; robot3's share {share['free']:.0%} -> "
          f"{share['capped']:.0%}; robot1 re-sent {mesh.stats(SOURCE).tasks_resent - resent} "
          f"task(s) after ack timeouts, capped window {seconds:.0f} s; frames so far admitted "
          f"{stats.frames_admitted}, "
          f"answered {stats.frames_classified}, lost 0, duplicated 0")
    # With the fastest link robot3 got at least an equal share (so there was one to lose).
    # Capped, against the free links of the same window: robot1 probes a link unmeasured for
    # stale_after seconds with one task (docs/ALGORITHMS.md): those probes are not Alg. 2
    # preferring robot3, so they are allowed on top; and robot3 gets less than half of the
    # others' mean and less than an equal share.
    assert free[VICTIM] * len(HELPERS) >= sum(free.values()), \
        mesh.fail(f"robot3's link the fastest, yet {free}")
    others = [capped[r] for r in HELPERS if r != VICTIM]
    probes = int(seconds / DEFAULT_STALE_AFTER) + 1  # at most one per stale_after
    sent = capped[VICTIM] - probes  # what Alg. 2 chose to send robot3, at most
    assert sent * 2 < sum(others) / len(others), mesh.fail(f"capped {capped}, uncapped {free}")
    assert sent * len(HELPERS) < sum(capped.values()) - probes, \
        mesh.fail(f"capped {capped}, uncapped {free}")


def test_a_killed_robot_is_detected_and_its_restart_gets_work(mesh: Mesh) -> None:
    """(b) robot3's worker is killed with SIGKILL on its host; the host's `mdi-exit fleet
    --only robot3 --respawn 1` restarts it and brings it to active."""
    log = mesh.logs / f"{VICTIM}.log"  # its host's `mdi-exit fleet` output
    out = log.read_text()
    pids = re.findall(r"/robot3/worker \((?:worker, )?pid (\d+)\)", out) \
        + re.findall(r"/robot3/worker is back \(active\) at [\d.]+ s, pid (\d+)", out)
    assert pids, mesh.fail(f"no pid of robot3's worker in {log}")
    pid = int(pids[-1])
    _cut_or_kill(mesh, lambda: os.kill(pid, signal.SIGKILL), lambda: None,
                 "robot3 killed (SIGKILL), restarted by --respawn", restarted=True)


def test_a_cut_link_is_detected_its_tasks_reissued_and_the_robot_rejoins(mesh: Mesh) -> None:
    """(a) robot3's cable is pulled mid-stream and plugged back in. robot3 itself runs on,
    so after the link returns its late results and acks for re-issued tasks arrive too: the
    source must still publish one result per frame (the classic duplicate)."""
    host = mesh.hosts[VICTIM]
    try:
        _cut_or_kill(mesh, lambda: host.link(False), lambda: host.link(True),
                     "link of robot3 cut", restarted=False)
    finally:
        host.link(True)
