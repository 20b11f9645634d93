"""The simulator's hot code compiled with mypyc: the same source, about twice as fast.

A simulated fleet spends its time in the core's policy code (Alg. 1-4, the neighbour table,
the ledgers) and the simulator's event handlers, one short Python call after another.
mypyc (part of mypy) compiles exactly these modules, unchanged, to C extensions; a run with
them gives the same rows as one without (tested). The compiled copy lives in a cache folder
keyed by the sources and the interpreter, so an edited source or another Python never uses a
stale build:

    mdi-exit sim SCENARIO --compiled    # builds it first if needed (~1 min), then runs on it

The build needs mypy (`pip install 'mdi_exit_ros[sim]'`) and a C compiler. Only the
simulator uses the copy, in a process of its own (`exec`), so ROS nodes, tests and mutation
testing always run the plain source.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mdi_exit_ros

PACKAGE = Path(mdi_exit_ros.__file__).resolve().parent
# Compiled: the whole core and the simulator's event loop and exit table (paths in PACKAGE).
COMPILED = tuple(sorted(f"core/{p.name}" for p in (PACKAGE / "core").glob("*.py")
                        if p.name != "clock.py")) + ("sim/engine.py", "sim/exits.py")
# Copied as source: a runtime_checkable Protocol, which mypyc cannot compile.
PLAIN = ("core/clock.py",)
# Package __init__ files whose folders hold compiled modules: copied, with the original
# folder appended to __path__ so every other module (cli, scenario, model, ...) and every
# data file is still found in the package itself.
EXTENDED = ("__init__.py", "sim/__init__.py")
ACTIVE_ENV = "MDI_EXIT_SIM_COMPILED"  # set in the process that runs the compiled copy
MYPYC_ARGS = ("--ignore-missing-imports", "--follow-imports=skip")


class CompiledError(RuntimeError):
    """The compiled simulator cannot be built or used (the message says why)."""


def cache_root() -> Path:
    """Where builds are kept: $MDI_EXIT_SIM_CACHE, else the user's cache folder."""
    env = os.environ.get("MDI_EXIT_SIM_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mdi_exit_ros" / "sim-compiled"


def _mypy_version() -> str:
    try:
        return importlib.metadata.version("mypy")
    except importlib.metadata.PackageNotFoundError:
        return "none"


def build_key() -> str:
    """Hash of everything a build depends on: the sources, this recipe, the interpreter,
    mypyc's version, the compiler settings and where the package is."""
    h = hashlib.sha256()
    for rel in (*COMPILED, *PLAIN, *EXTENDED):
        h.update(rel.encode() + b"\0" + (PACKAGE / rel).read_bytes() + b"\0")
    h.update(Path(__file__).read_bytes())
    env = [os.environ.get(v, "") for v in ("CC", "CFLAGS", "LDFLAGS", "MYPYC_OPT_LEVEL")]
    h.update(f"{sys.version}\0{sys.platform}\0{PACKAGE}\0{MYPYC_ARGS}\0{_mypy_version()}"
             f"\0{env}".encode())
    return h.hexdigest()[:20]


def _extended(rel: str) -> str:
    """The package's ``rel`` __init__ with the package folder appended to ``__path__``
    before its first statement (after the docstring and __future__ imports), so that even
    its own imports find the modules that are not in the copy."""
    original = (PACKAGE / rel).read_text(encoding="utf-8")
    body = ast.parse(original).body
    skip = 0
    while skip < len(body) and (
            (skip == 0 and isinstance(body[0], ast.Expr)
             and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str))
            or (isinstance(body[skip], ast.ImportFrom) and body[skip].module == "__future__")):
        skip += 1
    lines = original.splitlines(keepends=True)
    at = body[skip - 1].end_lineno if skip else 0
    folder = str((PACKAGE / rel).parent)
    insert = (f"# mdi_exit_ros.sim.compiled: the compiled modules are in this folder, "
              f"everything else in the package itself\n__path__.append({folder!r})\n")
    return "".join(lines[:at]) + insert + "".join(lines[at:])


def find(root: Path | None = None) -> Path | None:
    """The folder of a finished build of these sources, or None."""
    folder = (root or cache_root()) / build_key()
    return folder if (folder / "BUILT").is_file() else None


def build(root: Path | None = None, log: Path | None = None) -> Path:
    """Compile the modules into ``root/<key>`` (atomically: a half-built folder is never
    used, and two builds at once both succeed). Raises CompiledError with the reason."""
    root = root or cache_root()
    key = build_key()
    final = root / key
    if (final / "BUILT").is_file():
        return final
    try:
        import mypyc  # noqa: F401
    except ImportError as exc:
        raise CompiledError("building the compiled simulator needs mypy: "
                            "pip install 'mdi_exit_ros[sim]' (or mypy)") from exc
    root.mkdir(parents=True, exist_ok=True)
    work = root / f".build-{key}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    src = work / "src"
    for rel in (*COMPILED, *PLAIN, *EXTENDED):  # the packages' __init__ for mypyc to see
        dest = src / "mdi_exit_ros" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PACKAGE / rel, dest)
    log = log or work / "build.log"
    cmd = [sys.executable, "-m", "mypyc", *MYPYC_ARGS, *(f"mdi_exit_ros/{r}" for r in COMPILED)]
    with open(log, "w", encoding="utf-8") as out:
        done = subprocess.run(cmd, cwd=src, stdout=out, stderr=subprocess.STDOUT, check=False,
                              env={**os.environ, "MYPY_CACHE_DIR": str(work / "mypy-cache")})
    if done.returncode != 0:
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:])
        raise CompiledError(f"mypyc failed (exit {done.returncode}; log {log}):\n{tail}")
    for rel in COMPILED:  # the extension modules stay; their sources would only mislead
        (src / "mdi_exit_ros" / rel).unlink()
    shutil.rmtree(src / "build", ignore_errors=True)
    for rel in EXTENDED:
        (src / "mdi_exit_ros" / rel).write_text(_extended(rel), encoding="utf-8")
    (src / "BUILT").write_text(f"{key}\n{sys.version}\n{PACKAGE}\n", encoding="utf-8")
    try:
        os.rename(src, final)
    except OSError:
        if not (final / "BUILT").is_file():  # a leftover, unfinished folder: replace it
            shutil.rmtree(final, ignore_errors=True)
            os.rename(src, final)
        # else another build finished first: use that one
    shutil.rmtree(work, ignore_errors=True)
    return final


def active() -> bool:
    """This process was started by `run_compiled` (asked with --compiled only)."""
    return bool(os.environ.get(ACTIVE_ENV))


def check_active() -> None:
    """In the compiled process: the compiled modules are the ones imported, or fail."""
    from mdi_exit_ros.core import worker
    from mdi_exit_ros.sim import engine

    for module in (worker, engine):
        if not str(module.__file__).endswith((".so", ".pyd")):
            raise CompiledError(f"{module.__name__} was imported from {module.__file__}, not "
                                f"from the compiled copy {os.environ.get(ACTIVE_ENV)}")


def run_compiled(folder: Path, argv: list[str]) -> None:
    """Replace this process by `mdi-exit sim argv` on the compiled copy in ``folder``.

    `-P` keeps the current folder (a source checkout, say) from shadowing the copy."""
    env = dict(os.environ)
    env[ACTIVE_ENV] = str(folder)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(folder), env.get("PYTHONPATH")) if p)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-P", "-m", "mdi_exit_ros.sim.cli", *argv], env)
