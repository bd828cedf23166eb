"""The folders tell the architecture: imports point down, and never round.

``cli`` → ``engine`` → ``rules`` → ``flow`` → ``analysis`` → ``model``, with
``fixes`` and ``report`` beside the rules. Imports inside functions count
(they run too); imports only for type checking do not.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "slotguard"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        type_only: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                type_only.update(id(sub) for sub in ast.walk(node))
        targets: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in type_only:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module in modules:
                    targets.add(node.module)
                targets.update(
                    f"{node.module}.{alias.name}"
                    for alias in node.names
                    if f"{node.module}.{alias.name}" in modules
                )
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names if alias.name in modules)
        targets.discard(name)
        graph[name] = targets
    return graph


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _folder(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_no_module_imports_itself_back() -> None:
    assert _strongly_connected(_imports()) == []


def test_no_folder_imports_itself_back() -> None:
    folders: dict[str, set[str]] = {}
    for module, targets in _imports().items():
        folders.setdefault(_folder(module), set()).update(
            _folder(target) for target in targets if _folder(target) != _folder(module)
        )
    assert _strongly_connected(folders) == []


@pytest.mark.parametrize(
    ("lower", "forbidden"),
    [
        ("slotguard.model", ("analysis", "flow", "rules", "fixes", "engine", "report")),
        ("slotguard.analysis", ("flow", "rules", "fixes", "engine", "report")),
        ("slotguard.flow", ("rules", "fixes", "engine", "report")),
        ("slotguard.rules", ("fixes", "engine", "fixer", "fix_command", "cli")),
    ],
)
def test_knowledge_and_analysis_do_not_import_upwards(
    lower: str, forbidden: tuple[str, ...]
) -> None:
    upward = {f"slotguard.{name}" for name in forbidden}
    offending = {
        (module, target)
        for module, targets in _imports().items()
        if _folder(module) == lower
        for target in targets
        if _folder(target) in upward
    }
    assert offending == set()
