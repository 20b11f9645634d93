"""Topologies for the simulator: generated ones (mesh, ring, grid, random geometric) or any
topology YAML (config/topologies, or a file), all as the fleet's own `Topology` object.

Generated topologies name their workers ``w1..wN`` (``w1`` first; sources are the first
``sources`` workers unless named) and are undirected except ``ring`` with ``directed: true``
(the paper's 3-Node-Circular).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

from mdi_exit_ros.topology import Topology, load_topology, parse_topology, resolve_topology

KINDS = ("mesh", "ring", "grid", "geometric", "local")


class SimTopologyError(ValueError):
    """A topology section of a simulation scenario is malformed."""


def _names(n: int) -> list[str]:
    return [f"w{i + 1}" for i in range(n)]


def generate(spec: Mapping[str, Any], seed: int = 0) -> Topology:
    """A topology from ``{kind, n, ...}``: mesh, ring, grid (rows x cols), geometric.

    geometric: ``n`` points uniform in the unit square (seeded), a link between two points
    closer than ``radius`` (or the radius of a mean ``degree``: sqrt(degree / (pi n))); each
    point without a link gets one to its nearest point, so no worker is alone (the graph may
    still have several components: ``components`` says).
    """
    kind = spec.get("kind")
    if kind not in KINDS:
        raise SimTopologyError(f"topology kind {kind!r}: one of {', '.join(KINDS)}")
    if kind == "grid":
        rows, cols = int(spec.get("rows", 0)), int(spec.get("cols", 0))
        if rows < 1 or cols < 1:
            raise SimTopologyError("grid needs rows >= 1 and cols >= 1")
        n = rows * cols
    else:
        n = 1 if kind == "local" else int(spec.get("n", 0))
    if n < 1:
        raise SimTopologyError(f"{kind}: n must be >= 1")
    workers = _names(n)
    pairs: list[list[str]] = []
    arcs: list[list[str]] = []
    if kind == "mesh":
        links: Any = "full"
    elif kind == "ring":
        if spec.get("directed", False):
            links = "ring"
        else:
            links = [[workers[i], workers[(i + 1) % n]] for i in range(n) if n > 2 or i == 0]
            links = links if n > 1 else []
    elif kind == "grid":
        for r in range(rows):
            for c in range(cols):
                i = r * cols + c
                if c + 1 < cols:
                    pairs.append([workers[i], workers[i + 1]])
                if r + 1 < rows:
                    pairs.append([workers[i], workers[i + cols]])
        links = pairs
    elif kind == "geometric":
        if "degree" in spec:  # the radius that gives this mean degree (edges aside)
            radius = math.sqrt(float(spec["degree"]) / (math.pi * n))
        else:
            radius = float(spec.get("radius", 0.0))
        if not 0 < radius:
            raise SimTopologyError("geometric needs radius > 0 (unit square) or degree > 0")
        rng = random.Random(int(spec.get("seed", seed)))
        pts = [(rng.random(), rng.random()) for _ in range(n)]
        linked: set[tuple[int, int]] = set()
        cell: dict[tuple[int, int], list[int]] = {}
        for i, (x, y) in enumerate(pts):
            cell.setdefault((int(x / radius), int(y / radius)), []).append(i)
        for i, (x, y) in enumerate(pts):
            cx, cy = int(x / radius), int(y / radius)
            for dx in (-1, 0, 1):
                for dy in (-1, 0, 1):
                    for j in cell.get((cx + dx, cy + dy), []):
                        if j > i and math.dist(pts[i], pts[j]) < radius:
                            linked.add((i, j))
        has = {i for p in linked for i in p}
        for i in range(n):
            if i not in has and n > 1:
                j = min((k for k in range(n) if k != i), key=lambda k: math.dist(pts[i], pts[k]))
                linked.add((min(i, j), max(i, j)))
        links = [[workers[i], workers[j]] for i, j in sorted(linked)]
    else:  # local
        links = []
    sources = spec.get("sources", 1)
    if isinstance(sources, int):
        if not 1 <= sources <= n:
            raise SimTopologyError(f"sources: between 1 and {n}")
        sources = workers[:sources]
    data = {"name": spec.get("name") or f"{kind}{n}", "workers": workers, "sources": sources,
            "links": links, "arcs": arcs}
    return parse_topology(data, f"<{kind} topology>")


def resolve(spec: Any, seed: int = 0) -> Topology:
    """A scenario's `topology`: a shipped name, a YAML path, or a generator mapping."""
    if isinstance(spec, str):
        return load_topology(resolve_topology(spec))
    if isinstance(spec, Mapping):
        if "kind" in spec:
            return generate(spec, seed)
        return parse_topology(dict(spec), "<inline topology>")
    raise SimTopologyError("topology must be a name, a path or a mapping with 'kind'")


def component_lists(topo: Topology) -> list[list[str]]:
    """Connected components of the undirected view of the topology: each its workers in
    the topology's order, the components in the order of their first worker."""
    undirected: dict[str, set[str]] = {w: set() for w in topo.workers}
    for w in topo.workers:
        for m in topo.neighbors(w):
            undirected[w].add(m)
            undirected[m].add(w)
    label: dict[str, int] = {}
    out: list[list[str]] = []
    for w in topo.workers:
        if w in label:
            continue
        c = len(out)
        out.append([])
        label[w] = c
        stack = [w]
        while stack:
            for m in undirected[stack.pop()]:
                if m not in label:
                    label[m] = c
                    stack.append(m)
    for w in topo.workers:
        out[label[w]].append(w)
    return out


def components(topo: Topology) -> int:
    """How many connected components (`component_lists`)."""
    return len(component_lists(topo))
