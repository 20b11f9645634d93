"""`mdi-exit sim`: a discrete-event simulator of MDI-Exit fleets on the unchanged core.

`engine.Simulator` drives `mdi_exit_ros.core` (WorkerCore, Alg. 1-4, estimators, neighbour
table, ledgers) on a simulated clock; `scenario` reads a scenario YAML; `exits` holds a
model's measured per-image confidences; `topologies` makes mesh, ring, grid and random
geometric fleets; `cli` is the command. docs/SIMULATION.md: how, validation and scaling.
"""

from .engine import Arrivals, FrameEnd, SimParams, Simulator, WorkerConfig
from .exits import ExitTable

__all__ = ["Arrivals", "ExitTable", "FrameEnd", "SimParams", "Simulator", "WorkerConfig"]
