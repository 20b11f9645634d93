"""`make mutation` runs every core test file (a new one left out would make its kills
invisible and its module look untested)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mutation_runs_every_core_test_file() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    selected = set(config["pytest_add_cli_args_test_selection"])
    core_tests = {f"test/{p.name}" for p in (ROOT / "test").glob("test_core_*.py")}
    # test_core_purity reads source text in a subprocess: it neither needs nor suits mutants
    assert selected == core_tests - {"test/test_core_purity.py"}
