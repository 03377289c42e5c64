"""The package's layers, read from its source: no import circles, lower layers never import
upper ones, and grpc and the kubernetes client stay inside the layer that translates them.

Every import counts: at module level, inside functions (imported late for speed, still a
dependency) and under ``TYPE_CHECKING`` (a circle of types is a circle of concepts).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

PACKAGE = "kubectl_build"
ROOT = Path(__file__).resolve().parents[2]



@cache
def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    found = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(path: Path) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(module imported from, names) for every import statement in the file, wherever."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                # Parts include the file's own name (``__init__`` for a package), so
                # dropping ``level`` of them leaves the package the dots point at.
                own = path.relative_to(ROOT).with_suffix("").parts
                base = ".".join([*own[: len(own) - node.level], *([node.module] if node.module else [])])
            yield base, tuple(alias.name for alias in node.names)


@cache
def edges(name: str) -> frozenset[str]:
    """The package's modules ``name`` imports."""
    known, found = modules(), set()
    for base, names in _imports(known[name]):
        if not base.startswith(PACKAGE):
            continue
        subs = [f"{base}.{n}" for n in names if f"{base}.{n}" in known]
        found.update(subs or [base])
        if len(subs) < len(names):
            found.add(base)
    return frozenset(m for m in found if m in known and m != name)


def cycles() -> list[frozenset[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in edges(node):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(frozenset(group))

    for name in modules():
        if name not in index:
            visit(name)
    return found


def _under(name: str, *packages: str) -> bool:
    return any(name == f"{PACKAGE}.{p}" or name.startswith(f"{PACKAGE}.{p}.") for p in packages)


def test_the_analysis_sees_imports_at_every_level() -> None:
    # Guards the guard: a function-level and a TYPE_CHECKING import are both edges.
    assert "kubectl_build.run.build" in edges("kubectl_build.cli.invocation")  # in a function
    assert "kubectl_build.options.build" in edges("kubectl_build.cli.invocation")  # types only
    assert len(modules()) > 50


def test_no_import_cycles() -> None:
    assert [sorted(c) for c in cycles()] == []


def test_kube_never_imports_agent_planning_or_run() -> None:
    upward = {(name, other) for name in modules() if _under(name, "kube")
              for other in edges(name) if _under(other, "agent", "planning", "run")}
    assert upward == set()


# ARCHITECTURE.md's layers, lowest first: a module may import its own layer and lower ones.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("host",),
    ("options", "platforms", "context", "ocilayout", "progress", "errors", "console", "_proto"),
    ("buildkit", "kube", "registry"),
    ("planning", "dockerfile"),
    ("run",),
    ("agent",),
    ("cli", "__main__"),
)


def _layer(name: str) -> int | None:
    if name == "kubectl_build.agent.__main__":
        return len(LAYERS) - 1  # a program entry (python -m kubectl_build.agent)
    return next((i for i, tops in enumerate(LAYERS) if _under(name, *tops)), None)


def test_lower_layers_never_import_upper_ones() -> None:
    upward = set()
    for name in modules():
        own = _layer(name)
        for other in edges(name):
            theirs = _layer(other)
            if own is not None and theirs is not None and theirs > own:
                upward.add((name, other))
    assert upward == set()


def test_nothing_imports_the_entry_module_but_program_entries() -> None:
    # The agent used to import it to run a build: now the entry hands the build over.
    entries = {"kubectl_build.agent.__main__"}
    importers = {name for name in modules() if "kubectl_build.__main__" in edges(name)}
    assert importers <= entries


def test_the_agent_knows_nothing_of_the_cli_or_the_build() -> None:
    uses = {(name, other) for name in modules()
            if _under(name, "agent") and name != "kubectl_build.agent.__main__"
            for other in edges(name) if _under(other, "cli", "run", "planning", "registry")}
    assert uses == set()


def _third_party_users(top: str) -> set[str]:
    users = set()
    for name, path in modules().items():
        if any(base == top or base.startswith(f"{top}.") for base, _ in _imports(path)):
            users.add(name)
    return users


def test_grpc_only_in_buildkit() -> None:
    # _proto holds the generated stubs, which import grpc themselves.
    assert {m for m in _third_party_users("grpc") if not _under(m, "buildkit", "_proto")} == set()


def test_the_kubernetes_client_only_in_kube() -> None:
    assert {m for m in _third_party_users("kubernetes") if not _under(m, "kube")} == set()
