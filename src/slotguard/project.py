"""The files of a run as a project: who imports whom, and in which order to
analyse them so that each module sees the summaries of those it imports.

Everything here works on bytes with regular expressions: it runs for every
file, including the many that are never parsed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_IMPORT = re.compile(
    # A statement starts a line (after a BOM on the first) or follows a `;`.
    rb"(?:^(?:\xef\xbb\xbf)?|;)[ \t]*"
    rb"(?:from[ \t]+(?P<dots>\.*)(?P<module>[\w.]*)[ \t]+import[ \t]+"
    # A parenthesised list may hold comments, brackets and all.
    rb"(?P<names>\((?:[^)#]|#[^\n]*)*\)|[^\n#;]*)|import[ \t]+(?P<plain>[^\n#;]+))",
    re.MULTILINE,
)
_CONTINUATION = re.compile(rb"\\\r?\n")
_COMMENT = re.compile(rb"#[^\n]*")
_NAME = re.compile(rb"[A-Za-z_]\w*|\*")
_STATE_WRITE = re.compile(rb"\.(?:state|ctx)\.\w+[ \t]*(?::[^=\n]*)?=(?!=)")
_STATE_READ = re.compile(rb"\.(?:state|ctx)\.\w")


def module_name_for(path: Path) -> str | None:
    """The dotted module name of a file, walking up through packages.

    ``src/app/db/session.py`` with ``__init__.py`` in ``app`` and ``app/db``
    is ``app.db.session``. A file outside any package is its own stem.
    """
    if path.suffix != ".py":
        return None
    parts = [] if path.stem == "__init__" else [path.stem]
    directory = path.parent
    while (directory / "__init__.py").is_file():
        parts.append(directory.name)
        parent = directory.parent
        if parent == directory:
            break
        directory = parent
    if not parts:
        return None
    parts.reverse()
    return ".".join(parts)


@dataclass(eq=False, slots=True)
class ProjectFile:
    path: Path
    data: bytes
    module: str | None
    imports: set[str] = field(default_factory=set)
    """Qualified names imported (modules, and ``module.name`` for from-imports)."""
    writes_state: bool = False
    reads_state: bool = False
    depends_on: list[ProjectFile] = field(default_factory=list)
    """Files of the run it imports that come before it: analyse them first."""
    comes_later: list[ProjectFile] = field(default_factory=list)
    """Files it imports that an import cycle puts after it."""


@dataclass(frozen=True, slots=True)
class ImportStatement:
    """One import statement, read from bytes without parsing."""

    level: int
    """The leading dots of a relative ``from`` import; 0 otherwise."""
    module: str | None
    """What a ``from`` import imports from (``""`` for ``from . import x``);
    None for ``import a, b``."""
    names: tuple[str, ...]
    """The names a ``from`` import takes (``*`` included; ``as`` aliases
    dropped); for ``import a, b``, the modules."""


def import_statements(data: bytes) -> Iterator[ImportStatement]:
    """The import statements of a file, found by a regular expression: also
    after a BOM or a ``;``, across backslash continuations, and in a
    parenthesised list holding comments. The prefilter and the project's
    import graph both read imports this way."""
    if b"\\" in data:
        data = _CONTINUATION.sub(b" ", data)
    for match in _IMPORT.finditer(data):
        plain = match.group("plain")
        if plain is not None:
            modules = (part.split() for part in plain.split(b","))
            yield ImportStatement(
                0, None, tuple(words[0].decode("ascii", "replace") for words in modules if words)
            )
            continue
        listed = _NAME.findall(_COMMENT.sub(b"", match.group("names")))
        yield ImportStatement(
            len(match.group("dots")),
            match.group("module").decode("ascii", "replace"),
            tuple(name.decode("ascii", "replace") for name in listed if name != b"as"),
        )


def scan_imports(data: bytes, module: str | None, is_package: bool) -> set[str]:
    """Modules and names a file imports, relative imports resolved."""
    found: set[str] = set()
    for statement in import_statements(data):
        if statement.module is None:
            found.update(statement.names)
            continue
        base = _resolve(statement.level, statement.module, module, is_package)
        if base is None:
            continue
        if base:
            found.add(base)
        for name in statement.names:
            if name != "*":
                found.add(f"{base}.{name}" if base else name)
    return found


def _resolve(level: int, module: str, current: str | None, is_package: bool) -> str | None:
    if level == 0:
        return module
    if current is None:
        return None
    package = current.split(".")
    drop = level - 1 if is_package else level
    if drop > len(package):
        return None
    anchor = package[: len(package) - drop]
    return ".".join([*anchor, module] if module else anchor)


def build(files: Iterable[tuple[Path, bytes]]) -> list[ProjectFile]:
    """The files in the order to analyse them: a module after the modules it
    imports; the modules of an import cycle by path."""
    project = [
        ProjectFile(
            path=path,
            data=data,
            module=module_name_for(path),
            writes_state=_STATE_WRITE.search(data) is not None,
            reads_state=_STATE_READ.search(data) is not None,
        )
        for path, data in files
    ]
    by_module: dict[str, ProjectFile] = {}
    for item in project:
        if item.module is not None:
            by_module.setdefault(item.module, item)
            item.imports = scan_imports(item.data, item.module, item.path.name == "__init__.py")
    edges: dict[int, list[ProjectFile]] = {}
    for item in project:
        targets = {by_module[name] for name in _modules_of(item.imports, by_module)}
        targets.discard(item)
        edges[id(item)] = sorted(targets, key=_by_path)
    order = _order(project, edges)
    position = {id(item): index for index, item in enumerate(order)}
    for item in order:
        for target in edges[id(item)]:
            if position[id(target)] < position[id(item)]:
                item.depends_on.append(target)
            else:
                item.comes_later.append(target)
    return order


def _modules_of(imports: set[str], by_module: dict[str, ProjectFile]) -> Iterable[str]:
    """The modules of the run behind imported names: ``app.db`` for
    ``app.db.SessionLocal``, and each package on the way (``app``)."""
    for name in imports:
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            candidate = ".".join(parts[:end])
            if candidate in by_module:
                yield candidate


def _by_path(item: ProjectFile) -> str:
    return item.path.as_posix()


def _order(
    project: Sequence[ProjectFile], edges: dict[int, list[ProjectFile]]
) -> list[ProjectFile]:
    """Strongly connected components in dependency order (Tarjan's algorithm,
    which emits a component after every component it reaches), each
    component's files by path."""
    index_of: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[ProjectFile] = []
    order: list[ProjectFile] = []
    counter = 0
    for root in sorted(project, key=_by_path):
        if id(root) in index_of:
            continue
        work: list[tuple[ProjectFile, int]] = [(root, 0)]
        while work:
            item, next_edge = work.pop()
            key = id(item)
            if next_edge == 0:
                index_of[key] = low[key] = counter
                counter += 1
                stack.append(item)
                on_stack.add(key)
            targets = edges[key]
            if next_edge < len(targets):
                work.append((item, next_edge + 1))
                target = targets[next_edge]
                if id(target) not in index_of:
                    work.append((target, 0))
                elif id(target) in on_stack:
                    low[key] = min(low[key], index_of[id(target)])
                continue
            if work:
                parent = id(work[-1][0])
                low[parent] = min(low[parent], low[key])
            if low[key] == index_of[key]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(id(member))
                    component.append(member)
                    if member is item:
                        break
                order.extend(sorted(component, key=_by_path))
    return order


_MAX_CONTEXT_DEPTH = 3


def imported_project_files(files: Iterable[Path]) -> list[Path]:
    """Files of the same project that ``files`` import, directly or through
    each other (to a small depth): found by module name under the directory
    that holds each file's top-level package."""
    found: dict[Path, None] = {}
    frontier = [Path(os.path.abspath(path)) for path in files]
    seen = set(frontier)
    for _ in range(_MAX_CONTEXT_DEPTH):
        following: list[Path] = []
        for path in frontier:
            module = module_name_for(path)
            if module is None:
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            root = _package_root(path, module)
            for name in scan_imports(data, module, path.name == "__init__.py"):
                target = _module_file(root, name)
                if target is not None and target not in seen:
                    seen.add(target)
                    found[target] = None
                    following.append(target)
        frontier = following
    return list(found)


def _package_root(path: Path, module: str) -> Path:
    """The directory from which ``module`` is importable."""
    depth = module.count(".") + (1 if path.name == "__init__.py" else 0)
    root = path.parent
    for _ in range(depth):
        root = root.parent
    return root


def _module_file(root: Path, name: str) -> Path | None:
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        base = root.joinpath(*parts[:end])
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None
