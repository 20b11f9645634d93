"""Where decoded datasets are cached (outside the repository)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$MDI_EXIT_CACHE`` or ``~/.cache/mdi_exit_ros`` (created on demand)."""
    d = Path(os.environ.get("MDI_EXIT_CACHE", Path.home() / ".cache" / "mdi_exit_ros"))
    d.mkdir(parents=True, exist_ok=True)
    return d
