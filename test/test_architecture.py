"""The package layout's two promises: the core imports without ROS, and no module imports itself back."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "seafusion_ros"
CORE_PACKAGES = ("models", "weights", "inference", "imaging", "data", "training", "evaluation", "bags")
ROS_MODULES = ("rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "message_filters", "cv_bridge",
               "rosidl_runtime_py")

# Imports every module of the core packages with ROS imports made to fail, then reports what ROS code was
# loaded anyway: a lazy or guarded ROS import in the core shows up as a blocked attempt.
_IMPORT_CORE = """
import importlib, importlib.abc, json, pkgutil, sys
ros = {ros!r}
attempts = []
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ros:
            attempts.append(name)
            raise ImportError('blocked ' + name)
        return None
sys.meta_path.insert(0, Block())
import seafusion_ros
imported, failed = [], {{}}
for package in {packages!r}:
    package = importlib.import_module('seafusion_ros.' + package)
    names = [package.__name__] + [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + '.')]
    for name in names:
        try:
            importlib.import_module(name)
            imported.append(name)
        except Exception as error:
            failed[name] = repr(error)
loaded = sorted(m for m in sys.modules if m.split('.')[0] in ros)
print(json.dumps({{"imported": imported, "failed": failed, "attempts": attempts, "loaded": loaded}}))
"""


def test_core_packages_import_without_ros() -> None:
    code = _IMPORT_CORE.format(ros=ROS_MODULES, packages=CORE_PACKAGES)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["failed"] == {}
    assert result["attempts"] == [] and result["loaded"] == []
    assert "seafusion_ros.inference.engine" in result["imported"]
    assert "seafusion_ros.bags.replay" in result["imported"]
    assert len(result["imported"]) >= 40


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (anywhere in the file, lazy imports included)."""
    modules = {_module_name(p): p for p in PACKAGE_DIR.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                           for alias in node.names]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_no_import_cycle_between_modules() -> None:
    graph = import_graph()
    assert "seafusion_ros.inference.engine" in graph["seafusion_ros.ros.node"]
    assert import_cycles(graph) == []


def test_cycle_finder_finds_a_cycle() -> None:
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_subpackage_says_its_job() -> None:
    for init in PACKAGE_DIR.glob("*/__init__.py"):
        docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert docstring, f"{init} has no docstring"
