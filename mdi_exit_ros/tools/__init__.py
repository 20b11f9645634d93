"""Tools on top of the nodes: fleet runner, monitor, benchmarks, wire checks."""
