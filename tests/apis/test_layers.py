"""adtool.apis is layered: no import cycle, no function-level imports between its modules,
and no `except ImportError` that could report a broken install as "not available"."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

APIS = Path(__file__).resolve().parents[2] / "adtool" / "apis"
# Each module may import only modules of a lower layer.
LAYERS = {
    "config_index": 0,
    "overrides": 0,
    "checkpoints": 1,
    "inputs": 1,
    "thresholds": 2,
    "core": 3,
    "benchmark": 4,
    "tasks": 4,
    "inference": 5,
    "ensemble": 5,
    "simple": 5,
    "__init__": 6,
}


def _apis_imports(path: Path) -> list[tuple[str, bool]]:
    """(imported apis module, imported inside a function?) for each import of ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nested = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            nested |= {id(n) for n in ast.walk(node) if n is not node}
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            if name.startswith("adtool.apis."):
                module = name.split(".")[2]
                if module in LAYERS:
                    found.append((module, id(node) in nested))
    return found


def test_every_module_has_a_layer():
    assert {p.stem for p in APIS.glob("*.py")} == set(LAYERS)


@pytest.mark.parametrize("module", sorted(LAYERS))
def test_imports_go_down_the_layers_at_module_level(module):
    for imported, in_function in _apis_imports(APIS / f"{module}.py"):
        assert not in_function, f"{module} imports adtool.apis.{imported} inside a function"
        assert LAYERS[imported] < LAYERS[module], f"{module} imports {imported}"


def test_package_imports_in_a_fresh_interpreter():
    # Any `import adtool.apis.<module>` runs adtool/apis/__init__.py first, so one fresh
    # import covers every entry point; the AST test above covers the order between modules.
    modules = ", ".join(f"adtool.apis.{m}" for m in sorted(set(LAYERS) - {"__init__"}))
    done = subprocess.run(
        [sys.executable, "-c", f"import {modules}"],
        cwd=APIS.parents[1],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_no_import_error_is_swallowed():
    for path in APIS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ExceptHandler) and node.type is not None:
                names = {n.id for n in ast.walk(node.type) if isinstance(n, ast.Name)}
                assert not names & {"ImportError", "ModuleNotFoundError"}, path.name
