"""The project a run analyses, whatever files it names, and who imports whom.

The project is the directory of the configuration file, else the root of the
repository, else the directory of what is named (SPEC section 3): every
Python file in it contributes what it tells the others (its summary, the
application state it types, the facts of the run-level rules), and findings
are reported for the named files. Its import graph, cut into strongly
connected components in dependency order, says in which order to analyse
them so that each module sees the summaries of those it imports.

Imports are read from bytes with regular expressions: it runs for every
file, including the many that are never parsed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from slotguard.settings import Settings

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
_STATE_WRITE = re.compile(
    rb"(?:\.(?:state|ctx)\.\w+|(?:app|application|config_dict)\s*\[[^\]\n]+\])"
    rb"[ \t]*(?::[^=\n]*)?=(?!=)"
)
STATE_READ = re.compile(rb"\.(?:state|ctx)\.\w|(?:app|application|config_dict)\s*\[")
"""Application state: ``app.state.pool`` (Starlette, FastAPI, Litestar),
``app.ctx.pool`` (Sanic), ``app["pool"]`` (aiohttp)."""


def module_name_for(path: Path) -> str | None:
    """The dotted module name of a file, walking up through packages.

    ``src/app/db/session.py`` with ``__init__.py`` in ``app`` and ``app/db``
    is ``app.db.session``. A file outside any package is its own stem.
    """
    return Modules().name(path)


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


def project_root(named: Sequence[Path], configuration: Path | None) -> Path:
    """The directory whose files make up the project of a run: the
    configuration file's, else the repository's root, else the named
    directory (the directory of a named file, the common one of several)."""
    if configuration is not None:
        return Path(os.path.abspath(configuration)).parent
    given = [Path(os.path.abspath(path)) for path in named] or [Path(os.getcwd())]
    directories = [path if path.is_dir() else path.parent for path in given]
    for candidate in (directories[0], *directories[0].parents):
        if (candidate / ".git").exists():
            return candidate
    return Path(os.path.commonpath(directories))


def project_files(root: Path, settings: Settings) -> list[Path]:
    """The Python files of the project at ``root``, found as a run over the
    root finds them (excludes and ``.gitignore`` files apply)."""
    from slotguard.files import discover

    found, _ = discover(
        [root],
        root=settings.root,
        exclude=settings.excludes,
        respect_gitignore=settings.config.respect_gitignore,
    )
    return found


@dataclass(frozen=True, slots=True)
class Scan:
    """What a file's bytes say of its place in the project."""

    imports: tuple[str, ...]
    """Qualified names it imports (``scan_imports``)."""
    reads_state: bool
    writes_state: bool


def scan(data: bytes, module: str | None, is_package: bool) -> Scan:
    return Scan(
        tuple(sorted(scan_imports(data, module, is_package))),
        STATE_READ.search(data) is not None,
        _STATE_WRITE.search(data) is not None,
    )


@dataclass(eq=False, slots=True)
class ProjectFile:
    """One file of the project."""

    path: Path
    """Absolute, as found (symbolic links are not resolved)."""
    shown: str
    """Its path relative to the project root, with ``/`` (what results and
    the cache know it by, wherever the run starts)."""
    module: str | None
    is_package: bool
    scan: Scan | None = None
    imports: list[ProjectFile] = field(default_factory=list)
    """The files of the project it imports."""


class Modules:
    """Dotted module names of files, with each directory's package status
    looked up once."""

    def __init__(self) -> None:
        self._packages: dict[str, bool] = {}

    def _is_package(self, directory: str) -> bool:
        found = self._packages.get(directory)
        if found is None:
            found = self._packages[directory] = os.path.isfile(
                os.path.join(directory, "__init__.py")
            )
        return found

    def name(self, path: Path) -> str | None:
        """``module_name_for``, for many files at a time."""
        text = os.fspath(path)
        directory, base = os.path.split(text)
        stem, suffix = os.path.splitext(base)
        if suffix != ".py":
            return None
        parts = [] if stem == "__init__" else [stem]
        while self._is_package(directory):
            parent, name = os.path.split(directory)
            parts.append(name)
            if parent == directory:
                break
            directory = parent
        if not parts:
            return None
        parts.reverse()
        return ".".join(parts)


def link(files: Sequence[ProjectFile]) -> list[list[ProjectFile]]:
    """Set each file's imports and return the strongly connected components
    of the import graph, each component after every component it imports,
    its files by path (Tarjan's algorithm, whose output has that order).
    An import of a module name that several files have goes to the one under
    the importer's own import root, else to the first by path."""
    by_module: dict[str, list[ProjectFile]] = {}
    for item in sorted(files, key=_by_path):
        if item.module is not None:
            by_module.setdefault(item.module, []).append(item)
    for item in files:
        targets: dict[int, ProjectFile] = {}
        imports = item.scan.imports if item.scan is not None else ()
        for name in _modules_of(imports, by_module):
            target = _choose(by_module[name], item)
            if target is not item:
                targets[id(target)] = target
        item.imports = sorted(targets.values(), key=_by_path)
    return _components(files)


def _choose(candidates: list[ProjectFile], importer: ProjectFile) -> ProjectFile:
    if len(candidates) == 1:
        return candidates[0]
    root = _import_root(importer)
    for candidate in candidates:
        if _import_root(candidate) == root:
            return candidate
    return candidates[0]


def _import_root(item: ProjectFile) -> Path:
    module = item.module or ""
    return _package_root(item.path, module)


def _modules_of(imports: Iterable[str], by_module: Mapping[str, object]) -> Iterable[str]:
    """The modules of the project behind imported names: ``app.db`` for
    ``app.db.SessionLocal``, and each package on the way (``app``)."""
    for name in imports:
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            candidate = ".".join(parts[:end])
            if candidate in by_module:
                yield candidate


def _by_path(item: ProjectFile) -> str:
    return item.shown


def _components(project: Sequence[ProjectFile]) -> list[list[ProjectFile]]:
    """Strongly connected components in dependency order (Tarjan's algorithm,
    which emits a component after every component it reaches), each
    component's files by path."""
    index_of: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[ProjectFile] = []
    order: list[list[ProjectFile]] = []
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
            targets = item.imports
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
                order.append(sorted(component, key=_by_path))
    return order


def _package_root(path: Path, module: str) -> Path:
    """The directory from which ``module`` is importable."""
    depth = module.count(".") + (1 if path.name == "__init__.py" else 0)
    root = path.parent
    for _ in range(depth):
        root = root.parent
    return root
