"""The package's shape limits: modules and functions small enough to read whole."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "kubectl_build"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 50


def _sources() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if "_proto" not in p.relative_to(PACKAGE).parts]


def test_the_package_is_found() -> None:
    assert len(_sources()) > 50


def test_no_module_over_the_limit() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in _sources()
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def test_no_function_over_the_limit() -> None:
    long = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(PACKAGE)}:{node.name}"] = length
    assert long == {}


def test_the_package_root_holds_only_the_entry_errors_console_and_subpackages() -> None:
    modules = {p.name for p in PACKAGE.glob("*.py")}
    assert modules == {"__init__.py", "__main__.py", "errors.py", "console.py"}
