"""Test support: robots on separate hosts, emulated with Linux network namespaces.

One namespace per robot ("host"), each with one veth whose other end is a port of a bridge in
the root namespace; the test process sits on the bridge (it has an address there). A robot's
DDS traffic therefore crosses its veth, where a test can cut it (`ip link set ... down`) or
cap it (`tc qdisc ... tbf`). Names carry the test process's pid so concurrent runs do not
collide; `Hosts.close` removes everything it made, whatever happened before.

Needs root, `ip` (iproute2) and `tc`; `unavailable()` says why not, for a skip.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


def unavailable() -> str | None:
    """Why network namespaces cannot be used here (None when they can)."""
    if os.geteuid() != 0:
        return "needs root (creates network namespaces, veths and a bridge)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"needs `{tool}` (iproute2)"
    probe = f"mdi-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


# Names this module gives (with the creating test process's pid), for the stale clean-up.
_NETNS = re.compile(r"^mdi-(?:probe-)?(\d+)(?:-robot\d+)?$")
_LINK = re.compile(r"^mdi(?:b|v)(\d+)(?:r\d+)?$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def leftovers(pid: int | None = None) -> list[str]:
    """Namespaces and links this module made that still exist: of test process `pid`, or
    (None) of test processes that are gone (a run killed before its clean-up)."""
    def ours(match: re.Match | None) -> bool:
        if match is None:
            return False
        owner = int(match.group(1))
        return owner == pid if pid is not None else not _pid_alive(owner)

    names = [f"netns {line.split()[0]}" for line in
             sh("ip", "netns", "list", check=False).stdout.splitlines()
             if line.split() and ours(_NETNS.match(line.split()[0]))]
    for line in sh("ip", "-o", "link", "show", check=False).stdout.splitlines():
        parts = line.split(":", 2)  # "7: mdiv123r1@if2: <...>"
        if len(parts) > 1:
            name = parts[1].strip().split("@")[0]
            if ours(_LINK.match(name)):
                names.append(f"link {name}")
    return names


def clean_stale() -> list[str]:
    """Remove what earlier, killed test processes left (their processes in the namespaces
    killed by PID, then namespaces, bridges and veths); returns what was removed. Only
    names whose creating process is gone are touched, so a concurrent run keeps its own."""
    removed = leftovers()
    for item in removed:
        kind, name = item.split(" ", 1)
        if kind == "netns":
            pids = sh("ip", "netns", "pids", name, check=False).stdout.split()
            for p in pids:
                try:
                    os.kill(int(p), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            sh("ip", "netns", "del", name, check=False)  # its veth end goes with it
        else:
            sh("ip", "link", "del", name, check=False)  # a bridge or a root-side veth
    return removed


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run one `ip`/`tc` command; raises with its stderr when `check` and it fails."""
    done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")
    return done


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.213.0.0/16 that no interface of the root namespace uses."""
    used = sh("ip", "-4", "-o", "addr", "show").stdout
    start = os.getpid() % 250
    for i in range(250):
        net = ipaddress.IPv4Network(f"10.213.{(start + i) % 250}.0/24")
        if f" 10.213.{(start + i) % 250}." not in used:
            return net
    raise RuntimeError("no free /24 in 10.213.0.0/16")


@dataclass
class Host:
    """One robot's namespace: its name, its address and the bridge-side end of its veth."""

    robot: str
    netns: str
    address: str
    port: str  # veth end in the root namespace (a bridge port)
    procs: list[subprocess.Popen] = field(default_factory=list)

    def popen(self, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        """Start `argv` inside this host's namespace, in a session of its own."""
        out = open(log, "a")  # noqa: SIM115 - the child holds it; closed with our copy below
        try:
            proc = subprocess.Popen(["ip", "netns", "exec", self.netns, *argv], env=env,
                                    stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        finally:
            out.close()
        self.procs.append(proc)
        return proc

    def pids(self) -> list[int]:
        """Every process running in this namespace now."""
        done = sh("ip", "netns", "pids", self.netns, check=False)
        return [int(p) for p in done.stdout.split()] if done.returncode == 0 else []

    def link(self, up: bool) -> None:
        """Plug or unplug this host's cable (the bridge-side veth end)."""
        sh("ip", "link", "set", self.port, "up" if up else "down")

    def cap(self, rate: str, burst: str = "16kb", latency: str = "1s") -> None:
        """Cap both directions of this host's link with a token bucket (`tbf`).

        The burst must exceed the MTU (1500 B) or no full-size packet ever passes.
        """
        for cmd in (("tc",), ("ip", "netns", "exec", self.netns, "tc")):
            dev = self.port if len(cmd) == 1 else "eth0"
            sh(*cmd, "qdisc", "replace", "dev", dev, "root", "tbf", "rate", rate, "burst",
               burst, "latency", latency)

    def uncap(self) -> None:
        sh("tc", "qdisc", "del", "dev", self.port, "root", check=False)
        sh("ip", "netns", "exec", self.netns, "tc", "qdisc", "del", "dev", "eth0", "root",
           check=False)


class Hosts:
    """A bridge in the root namespace and one namespace (host) per robot on it."""

    def __init__(self, robots: list[str]) -> None:
        pid = os.getpid()
        self.stale = clean_stale()  # an earlier run killed before its clean-up
        self.bridge = f"mdib{pid}"
        self.net = _free_subnet()
        addrs = list(self.net.hosts())
        self.address = str(addrs[-1])  # the test process's address on the bridge
        self.hosts: dict[str, Host] = {}
        self._made_bridge = False
        try:
            sh("ip", "link", "add", self.bridge, "type", "bridge")
            self._made_bridge = True
            sh("ip", "addr", "add", f"{self.address}/{self.net.prefixlen}", "dev", self.bridge)
            sh("ip", "link", "set", self.bridge, "up")
            for i, robot in enumerate(robots, start=1):
                host = Host(robot, f"mdi-{pid}-{robot}", str(addrs[i - 1]), f"mdiv{pid}r{i}")
                sh("ip", "netns", "add", host.netns)
                self.hosts[robot] = host
                sh("ip", "link", "add", host.port, "type", "veth", "peer", "name", "eth0",
                   "netns", host.netns)
                sh("ip", "link", "set", host.port, "master", self.bridge)
                sh("ip", "link", "set", host.port, "up")
                ns = ("ip", "-n", host.netns)
                sh(*ns, "addr", "add", f"{host.address}/{self.net.prefixlen}", "dev", "eth0")
                sh(*ns, "link", "set", "eth0", "up")
                sh(*ns, "link", "set", "lo", "up")
                # DDS discovery is multicast: without a route for it, sends fail
                sh(*ns, "route", "add", "224.0.0.0/4", "dev", "eth0")
        except BaseException:
            self.close()
            raise

    def __getitem__(self, robot: str) -> Host:
        return self.hosts[robot]

    def close(self) -> None:
        """End every process started in the hosts (by PID), then remove namespaces, bridge."""
        procs = [proc for host in self.hosts.values() for proc in host.procs]
        for proc in procs:  # the per-robot commands: SIGINT, bounded, then SIGKILL
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGINT)
        deadline = time.monotonic() + 15
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        for host in self.hosts.values():
            for pid in host.pids():  # anything the commands left behind in our namespaces
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            while host.pids() and time.monotonic() < deadline:
                time.sleep(0.1)
            sh("ip", "netns", "del", host.netns, check=False)
            # The kernel removes a deleted namespace's veth pair asynchronously (seen: the
            # root-side ends still listed right after): remove ours now.
            sh("ip", "link", "del", host.port, check=False)
        if self._made_bridge:
            sh("ip", "link", "del", self.bridge, check=False)


def _signal_group(pid: int, sig: int) -> None:
    """Signal the process group a command leads (it was started in a session of its own)."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
