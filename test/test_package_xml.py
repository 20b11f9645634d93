"""package.xml names every dependency the code imports, so `rosdep install` brings them in.

The rosdep database cannot be reached from here (docs/TESTING.md, "ROS 2 distributions"), so
this checks the other half: each import of the package, its launch files and its tests maps
to a key in package.xml, no declared Python key is stale, and the keys the README tells
rosdep to skip are declared ones.
"""

from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Python import name -> rosdep key (ROS packages are imported under their key's name).
IMPORT_KEYS = {
    "PIL": "python3-pil",
    "yaml": "python3-yaml",
    "numpy": "python3-numpy",
    "torch": "python3-torch",
    "torchvision": "python3-torchvision",
    "tqdm": "python3-tqdm",
    "matplotlib": "python3-matplotlib",
    "safetensors": "python3-safetensors",
    "pytest": "python3-pytest",
    "hypothesis": "python3-hypothesis",
}
# Imported only where an optional feature is used, and said so where it is.
OPTIONAL = {
    "cv2": "video input (image player `video:`), pip install opencv-python-headless",
    "mutmut": "`make mutation` only (test_mutation_config.py)",
    "mypyc": "`mdi-exit sim --compiled` only (the `sim` extra: pip install 'mdi_exit_ros[sim]')",
}
# Declared without an import of that name: a plugin, or a dependency of the messages.
NOT_IMPORTED = {"python3-pytest-timeout"}


def _imports(folder: str) -> set[str]:
    local = {p.stem for p in (REPO / folder).glob("*.py")}
    names: set[str] = set()
    for path in (REPO / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found = [node.module]
            else:
                continue
            names |= {n.split(".")[0] for n in found}
    return {n for n in names
            if n not in sys.stdlib_module_names and n != "mdi_exit_ros" and n not in local}


def _keys(*tags: str) -> set[str]:
    root = ET.parse(REPO / "package.xml").getroot()
    return {e.text.strip() for tag in tags for e in root.iter(tag)}


RUN_TAGS = ("depend", "exec_depend")


def _missing(imports: set[str], declared: set[str]) -> list[str]:
    return sorted(f"{name} -> {IMPORT_KEYS.get(name, name)}" for name in imports
                  if name not in OPTIONAL and IMPORT_KEYS.get(name, name) not in declared)


def test_every_import_of_the_package_has_a_run_key() -> None:
    imports = _imports("mdi_exit_ros") | _imports("launch")
    assert {"rclpy", "torch", "safetensors", "launch_ros"} <= imports  # the scan works
    assert _missing(imports, _keys(*RUN_TAGS)) == []


def test_every_import_of_the_tests_has_a_key() -> None:
    imports = _imports("test")
    assert {"pytest", "hypothesis", "rclpy"} <= imports
    assert _missing(imports, _keys(*RUN_TAGS, "test_depend")) == []


def test_no_python_key_is_stale() -> None:
    used = {IMPORT_KEYS.get(n, n)
            for n in _imports("mdi_exit_ros") | _imports("launch") | _imports("test")}
    declared = {k for k in _keys(*RUN_TAGS, "test_depend") if k.startswith("python3-")}
    assert sorted(declared - used - NOT_IMPORTED) == []


def test_the_readme_skips_only_declared_keys_and_pip_installs_them() -> None:
    readme = (REPO / "README.md").read_text()
    skipped = re.search(r'--skip-keys "([^"]+)"', readme)
    assert skipped, "README: the rosdep line names the keys it skips"
    keys = skipped.group(1).split()
    assert "python3-safetensors" in keys  # rosdistro has no key for it
    assert set(keys) <= _keys(*RUN_TAGS)
    pip_line = next(line for line in readme.splitlines() if line.startswith("pip install"))
    for key in keys:
        assert key.removeprefix("python3-") in pip_line, (key, pip_line)
