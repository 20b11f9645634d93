"""`mdi-exit sim --compiled` (mdi_exit_ros/sim/compiled.py): the core and the event loop
compiled with mypyc give the very rows of the plain source, and a build is never reused for
other sources."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mdi_exit_ros.sim import compiled

TIMING = ("wall_s", "cpu_s", "events_per_s", "events_per_cpu_s")

# Churn (crashes, a restart, a new robot, a link down), report loss, both admission modes,
# first-task offloading on and off, and the data-distributed baseline: every handler runs.
SCENARIO = {
    "name": "compiled", "seed": 3, "duration": 8.0, "warmup": 1.0, "measure": 6.0,
    "drain": 10.0, "exits": {"num_exits": 3, "images": 300},
    "profile": {"service_times": [0.04, 0.04, 0.04], "link_delay": 0.005,
                "link_bandwidth": 2e6},
    "model": {"cut_bytes": [20000, 10000], "input_bytes": 3000},
    "topology": {"kind": "geometric", "n": 12, "degree": 4, "sources": 3},
    "arrivals": {"rate": 30.0, "poisson": True},
    "parameters": {"*.queue_thresholds": [2, 6], "w2.admission_mode": "threshold"},
    "sim": {"report_loss": 0.1},
    "churn": [{"at": 2, "leave": "w5"}, {"at": 3.5, "join": "w5"},
              {"at": 2.5, "link_down": ["w1", "w2"], "for": 1},
              {"at": 3.0, "join": "w13", "neighbors": ["w5", "w6"]}],
    "sweep": {"parameters.*.offload_first_task": [False, True],
              "parameters.*.distribution": ["mdi", "data"]},
}


def _run(tmp_path: Path, scenario: Path, name: str, *extra: str,
         env: dict[str, str]) -> tuple[list[dict[str, str]], str]:
    out = tmp_path / name
    done = subprocess.run([sys.executable, "-m", "mdi_exit_ros.sim.cli", str(scenario),
                           "--out", str(out), "--progress", "off", *extra],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400,
                          check=False)
    assert done.returncode == 0, done.stderr
    with open(out / "runs.csv", newline="") as f:
        rows = [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]
    return rows, done.stderr


# two components, split and run in two processes: the documented `--compiled --jobs 2`
SPLIT = {**{k: v for k, v in SCENARIO.items() if k not in ("churn", "sweep")},
         "topology": {"name": "two", "workers": ["w1", "w2", "w3", "w4", "w5"],
                      "sources": ["w1", "w4"],
                      "links": [["w1", "w2"], ["w2", "w3"], ["w4", "w5"]]},
         "parameters": {"*.queue_thresholds": [2, 6], "w4.admission_mode": "threshold"},
         "sim": {"source_reports": "neighbors"}, "split": "components"}


@pytest.mark.slow
def test_the_compiled_simulator_gives_the_same_rows(tmp_path) -> None:
    pytest.importorskip("mypyc", reason="mypy is installed by `make install` (the sim extra)")
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler")
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(yaml.safe_dump(SCENARIO))
    env = {**os.environ, "MDI_EXIT_SIM_CACHE": str(tmp_path / "cache")}
    # an interrupted build's leftover in the build's own folder is replaced, never used
    leftover = tmp_path / "cache" / compiled.build_key()
    leftover.mkdir(parents=True)
    (leftover / "junk").write_text("x")
    plain, plain_err = _run(tmp_path, scenario, "plain", env=env)
    fast, fast_err = _run(tmp_path, scenario, "compiled", "--compiled", env=env)
    assert "compiling the core and the event loop" in fast_err
    assert "compiled (mypyc) core and event loop from" in fast_err
    assert "compiled (mypyc)" not in plain_err
    assert len(plain) == 4 and all(float(r["admitted"]) > 100 for r in plain)
    assert fast == plain
    # the build: extension modules in place of the compiled sources, reused next time
    folder = compiled.find(tmp_path / "cache")
    assert folder is not None
    core = folder / "mdi_exit_ros" / "core"
    assert list(core.glob("worker.*.so")) and not (core / "worker.py").exists()
    assert (core / "clock.py").exists()  # a runtime_checkable Protocol: left as source
    assert not (folder / "junk").exists()
    again, again_err = _run(tmp_path, scenario, "again", "--compiled", env=env)
    assert "compiling" not in again_err and again == plain
    split = tmp_path / "split.yaml"
    split.write_text(yaml.safe_dump(SPLIT))
    one, _ = _run(tmp_path, split, "split-plain", env=env)
    two, two_err = _run(tmp_path, split, "split-fast", "--compiled", "--jobs", "2", env=env)
    assert "compiling" not in two_err and "compiled (mypyc)" in two_err
    assert one == two and float(one[0]["components"]) == 2 and float(one[0]["admitted"]) > 100


def test_bad_input_is_refused_before_anything_is_built(tmp_path, monkeypatch, capsys) -> None:
    from mdi_exit_ros.sim import cli

    monkeypatch.setenv("MDI_EXIT_SIM_CACHE", str(tmp_path / "cache"))
    assert cli.main([str(tmp_path / "missing.yaml"), "--compiled"]) == 2
    assert "missing.yaml" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


def test_a_leftover_environment_variable_does_not_break_a_plain_run(tmp_path, monkeypatch
                                                                     ) -> None:
    from mdi_exit_ros.sim import cli

    monkeypatch.setenv(compiled.ACTIVE_ENV, "1")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**SPLIT, "duration": 2.0, "warmup": 0.5, "measure": 1.5}))
    assert cli.main([str(path), "--out", str(tmp_path / "o"), "--progress", "off"]) == 0


def test_a_changed_source_is_another_build(tmp_path, monkeypatch) -> None:
    """The key covers every copied source: an edit never runs a stale build."""
    package = tmp_path / "mdi_exit_ros"
    for rel in (*compiled.COMPILED, *compiled.PLAIN, *compiled.EXTENDED):
        (package / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(compiled.PACKAGE / rel, package / rel)
    monkeypatch.setattr(compiled, "PACKAGE", package)
    root = tmp_path / "cache"
    key = compiled.build_key()
    (root / key).mkdir(parents=True)
    (root / key / "BUILT").write_text(key)
    assert compiled.find(root) == root / key
    for rel in ("core/offload.py", "sim/engine.py", "core/clock.py", "__init__.py"):
        path = package / rel
        text = path.read_text()
        path.write_text(text + "\n# edited\n")
        assert compiled.build_key() != key and compiled.find(root) is None, rel
        path.write_text(text)
    assert compiled.build_key() == key


def test_an_unfinished_build_is_not_used(tmp_path) -> None:
    root = tmp_path / "cache"
    (root / compiled.build_key()).mkdir(parents=True)  # no BUILT marker: half-built
    assert compiled.find(root) is None

