"""The `mdi-exit` command: one entry point for users without a ROS 2 install.

Each subcommand lives in its own module and is imported only when used, so that
`mdi-exit bench wire` does not pay for importing torch and `mdi-exit train` does not
need a DDS middleware.
"""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module with `main(argv) -> int`, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "fleet": ("mdi_exit_ros.tools.fleet", "start a fleet from a topology YAML (no ros2 launch)"),
    "monitor": ("mdi_exit_ros.tools.monitor", "live terminal view of a running fleet"),
    "train": ("mdi_exit_ros.model.train", "train an early-exit model"),
    "eval": ("mdi_exit_ros.model.evaluate", "per-exit accuracy, threshold sweep, calibration"),
    "soak": ("mdi_exit_ros.tools.soak", "overload soak: Poisson arrivals at 3x capacity, "
             "bounds checked"),
    "bench": ("mdi_exit_ros.tools.bench", "benchmarks: wire, or a fleet scenario (quick, full)"),
    "sim": ("mdi_exit_ros.sim.cli", "discrete-event simulation of a fleet on the unchanged "
            "core (scenario YAML)"),
    "wire-echo": ("mdi_exit_ros.tools.wire_echo", "two-process Task exchange over ROS 2"),
}


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: mdi-exit <command> [args...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'mdi-exit <command> --help' for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the subcommand's module."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"mdi-exit: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
