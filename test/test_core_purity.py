"""The core must import without rclpy, torch or numpy (simulator, CI without ROS)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import sys
import mdi_exit_ros.core as core
import mdi_exit_ros.core.worker, mdi_exit_ros.core.admission  # noqa: E401
heavy = sorted(m for m in ("rclpy", "torch", "numpy") if m in sys.modules)
print(",".join(heavy) or "clean")
"""


def test_core_imports_neither_rclpy_nor_torch_nor_numpy() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "clean"


def test_core_sources_use_no_heavy_imports() -> None:
    for path in (ROOT / "mdi_exit_ros" / "core").glob("*.py"):
        text = path.read_text()
        for name in ("rclpy", "torch", "numpy"):
            assert f"import {name}" not in text, f"{path.name} imports {name}"
            assert f"from {name}" not in text, f"{path.name} imports from {name}"


def test_core_never_sleeps_or_reads_wall_clock() -> None:
    for path in (ROOT / "mdi_exit_ros" / "core").glob("*.py"):
        text = path.read_text()
        assert "time.sleep" not in text, path.name
        assert "time.time(" not in text, path.name
        if path.name != "clock.py":
            assert "time.monotonic" not in text, path.name
