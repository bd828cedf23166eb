"""Where a connection was taken: the project's frames of the call stack, captured cheaply.

A busy service checks connections out thousands of times a second, so a
capture walks ``sys._getframe()`` and keeps ``(code, line)`` pairs, nothing
more; file names, function names and source lines are looked up only when a
stack is shown, which is rare (a leak, a log line).

Only the project's frames are kept: the standard library, installed packages
(site-packages), the database libraries and slotguard itself say nothing about
which of *your* lines took the connection. Each file is classified once. An
application installed into site-packages has no "project" frames by that
rule; its stacks then fall back to the installed packages' frames, still
without the standard library and the database libraries.

The walk stops early where nothing of the project can follow: after a
project frame, at the frame that starts a task or a thread (asyncio's callback
runner, ``threading``, a thread pool's worker), or after ``MAX_GAP`` frames of
someone else's code (pytest, a web framework).

SQLAlchemy's asyncio layer runs the pool in a greenlet whose frames do not
lead back to the coroutine that asked for the connection; the walk continues
in the parent greenlet, where that coroutine waits.
"""

from __future__ import annotations

import linecache
import os
import site
import sys
import sysconfig
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Any

DEFAULT_DEPTH = 8
"""Project frames kept per taking stack."""

PROJECT = 2
"""The user's own code: what a stack shows."""
LIBRARY = 1
"""Installed third-party code: shown only when a stack has no project frame."""
HIDDEN = 0
"""The standard library, the database libraries and slotguard: never shown."""
POOL = -1
"""A connection pool's own code: hidden, and a connection opened under it is the pool's."""
BOUNDARY = 3
"""Where a task or a thread starts (asyncio's callback runner, ``threading``, a
thread pool's worker): hidden, and nothing above it is the task's own code."""

MAX_WALK = 256
"""Frames walked at most: a bound on the cost of a capture in a deep recursion."""
MAX_GAP = 10
"""Frames walked past the last project frame before giving up on finding another:
what lies beyond is a framework's machinery (pytest, an event loop, a server)."""
_MAX_GREENLET_HOPS = 4

_DRIVER_PACKAGES = frozenset(
    {
        "sqlalchemy",
        "asyncpg",
        "psycopg",
        "psycopg_pool",
        "psycopg2",
        "greenlet",
        "_pytest",
        "pluggy",
    }
)
_BOUNDARIES = frozenset({"asyncio/events.py", "threading.py", "concurrent/futures/thread.py"})
_SLOTGUARD = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))

_tiers: dict[str, int] = {}
_pool_code: list[str] = []
_roots_lock = threading.Lock()
_library_roots: tuple[str, ...] | None = None
_stdlib_roots: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame of a taking stack, for display."""

    filename: str
    line: int
    function: str
    first_line: int
    """The first line of the frame's function (or 1 for module code)."""
    lines: frozenset[int]
    """The lines the frame's own code spans; for module code, its top-level lines only."""
    is_module: bool

    @property
    def source(self) -> str:
        """The text of the line, stripped ("" when the file cannot be read)."""
        return linecache.getline(self.filename, self.line).strip()

    def location(self, root: str | None = None) -> str:
        """``path:line``, the path relative to ``root`` when it lies below it."""
        return f"{display_path(self.filename, root)}:{self.line}"


@dataclass(frozen=True, slots=True)
class Stack:
    """The frames that took a connection, innermost first, as captured (cheap to keep).

    Each frame is kept as its code and the offset of its current instruction
    (``f_lasti``): reading ``f_lineno`` decodes the code's line table, which a
    capture would pay on every frame of every checkout; the line is looked up
    only when a stack is shown.
    """

    raw: tuple[tuple[CodeType, int], ...] = ()

    def frames(self) -> tuple[Frame, ...]:
        """The frames, innermost (the taking line) first."""
        return tuple(_frame(code, offset) for code, offset in self.raw)

    @property
    def taken_at(self) -> Frame | None:
        """The innermost frame: the line that took the connection."""
        return _frame(*self.raw[0]) if self.raw else None

    def format(self, root: str | None = None, indent: str = "  ") -> str:
        """Traceback-style lines, most recent call last, paths relative to ``root``."""
        if not self.raw:
            return f"{indent}(no frame of the project on the stack)"
        lines = []
        for frame in reversed(self.frames()):
            path = display_path(frame.filename, root)
            lines.append(f'{indent}File "{path}", line {frame.line}, in {frame.function}')
            if frame.source:
                lines.append(f"{indent}  {frame.source}")
        return "\n".join(lines)


def display_path(filename: str, root: str | None) -> str:
    if root is not None:
        try:
            relative = os.path.relpath(filename, root)
        except ValueError:  # another drive on Windows
            return filename
        if not relative.startswith(os.pardir):
            return relative
    return filename


Raw = tuple[tuple[CodeType, int], ...]
"""What :class:`Stack` holds; a checkout keeps it bare and wraps it only when shown."""


def capture(depth: int, *, start: int = 1) -> Stack:
    """The project frames of the current call stack, at most ``depth``, innermost
    first, from the ``start``-th caller of this function up."""
    return Stack(capture_raw(depth, start=start + 1))


def capture_raw(depth: int, *, start: int = 1) -> Raw:
    """:func:`capture`'s frames, unwrapped.

    The hot path of every checkout, hence its plain shape, locals only: first
    the library's frames, passed with as little work as possible, then the
    project's, from the first one found. A stack with no project frame (an
    application installed in site-packages) is walked again for its fallback.
    """
    first = sys._getframe(start)
    frame: FrameType | None = first
    get = _tiers.get
    for hops in range(_MAX_GREENLET_HOPS + 1):
        for _ in range(MAX_WALK):
            if frame is None:
                break
            filename = frame.f_code.co_filename
            tier = get(filename)
            if tier == 2 or (tier is None and _classify(filename) == 2):  # PROJECT
                return _project_frames(frame, depth)
            frame = frame.f_back
        if frame is not None or "greenlet" not in sys.modules:
            break
        frame = _parent_greenlet_frame(hops)
        if frame is None:
            break
    stack = _walk(depth, False, 0, first)
    assert stack is not None, "only a walk that skips pools gives up"
    return stack.raw


def _project_frames(frame: FrameType | None, depth: int) -> Raw:
    """From the first project frame outwards: up to ``depth`` of them, stopping
    where the task or thread starts or after ``MAX_GAP`` frames of other code."""
    get = _tiers.get
    project: list[tuple[CodeType, int]] = []
    gap, widest = 0, MAX_GAP
    while frame is not None:
        code = frame.f_code
        tier = get(code.co_filename)
        if tier is None:
            tier = _classify(code.co_filename)
        if tier == 2:  # PROJECT, spelled out: a global lookup per frame costs
            project.append((code, frame.f_lasti))
            if len(project) == depth:
                break
            gap = 0
        else:
            gap += 1
            if gap > widest or tier == 3:  # BOUNDARY
                break
        frame = frame.f_back
    return tuple(project)


def capture_outside_pools(depth: int, *, start: int = 1) -> Stack | None:
    """As :func:`capture`, or None when a pool's own code is on the stack: a
    connection opened there is the pool's, not a direct connection of the project."""
    return _walk(depth, True, start + 1)


def frame_stack(frame: FrameType, depth: int) -> Stack:
    """The project frames from ``frame`` outwards (another thread's current frame)."""
    stack = _walk(depth, False, 0, frame)
    assert stack is not None, "only a walk that skips pools gives up"
    return stack


def coroutine_stack(coroutine: Any, depth: int) -> Stack:
    """The project frames of a suspended coroutine chain, innermost first: where
    an asyncio task waits (its ``await`` chain, down to the future it waits on)."""
    chain: list[tuple[CodeType, int]] = []
    while coroutine is not None and len(chain) < MAX_WALK:
        frame = getattr(coroutine, "cr_frame", None) or getattr(coroutine, "gi_frame", None)
        if frame is None:
            break
        chain.append((frame.f_code, frame.f_lasti))
        coroutine = getattr(coroutine, "cr_await", None) or getattr(coroutine, "gi_yieldfrom", None)
    chain.reverse()
    project = [entry for entry in chain if classify(entry[0].co_filename) == PROJECT]
    fallback = [entry for entry in chain if classify(entry[0].co_filename) == LIBRARY]
    return Stack(tuple((project or fallback)[:depth]))


def _walk(depth: int, skip_pools: bool, start: int, frame: FrameType | None = None) -> Stack | None:
    if frame is None:
        frame = sys._getframe(start)
    project: list[tuple[CodeType, int]] = []
    fallback: list[tuple[CodeType, int]] = []
    tiers = _tiers
    walked = hops = gap = 0
    while walked < MAX_WALK:
        if frame is None:
            if hops >= _MAX_GREENLET_HOPS:
                break
            frame = _parent_greenlet_frame(hops)
            hops += 1
            if frame is None:
                break
        code = frame.f_code
        tier = tiers.get(code.co_filename)
        if tier is None:
            tier = _classify(code.co_filename)
        if tier == PROJECT:
            project.append((code, frame.f_lasti))
            if len(project) >= depth and not skip_pools:
                break
            gap = 0
        elif project and not skip_pools:
            gap += 1
            if gap > MAX_GAP or tier == BOUNDARY:
                break
        elif tier == POOL:
            if skip_pools:
                return None
        elif tier == LIBRARY and not project and len(fallback) < depth:
            fallback.append((code, frame.f_lasti))
        frame = frame.f_back
        walked += 1
    return Stack(tuple(project[:depth] or fallback))


def note_pool_code(paths: Iterable[str]) -> None:
    """Mark files or directories as a pool's own code (see :func:`capture`)."""
    with _roots_lock:
        for path in paths:
            real = os.path.realpath(path)
            if real not in _pool_code:
                _pool_code.append(real)
                _tiers.clear()


def classify(filename: str) -> int:
    """The tier of a file (cached): PROJECT, LIBRARY, HIDDEN, POOL or BOUNDARY."""
    tier = _tiers.get(filename)
    return _classify(filename) if tier is None else tier


def _classify(filename: str) -> int:
    tier = _tier_of(filename)
    _tiers[filename] = tier
    return tier


def _tier_of(filename: str) -> int:
    if filename.startswith("<"):
        return HIDDEN
    path = os.path.realpath(os.path.abspath(filename))
    for pool in _pool_code:
        if path == pool or path.startswith(pool + os.sep):
            return POOL
    if path == _SLOTGUARD or path.startswith(_SLOTGUARD + os.sep):
        return HIDDEN
    libraries, stdlib = _roots()
    for root in libraries:
        if path.startswith(root + os.sep):
            package = path[len(root) + 1 :].split(os.sep, 1)[0]
            return HIDDEN if _package_name(package) in _DRIVER_PACKAGES else LIBRARY
    for root in stdlib:
        if path.startswith(root + os.sep):
            relative = path[len(root) + 1 :].replace(os.sep, "/")
            return BOUNDARY if relative in _BOUNDARIES else HIDDEN
    return PROJECT


def _package_name(entry: str) -> str:
    name = entry.split(".", 1)[0]
    return name.split("-", 1)[0]


def _roots() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Directories of installed packages, and of the standard library (checked after them:
    a virtualenv's site-packages may sit below the standard library's directory)."""
    global _library_roots, _stdlib_roots
    if _library_roots is None or _stdlib_roots is None:
        with _roots_lock:
            libraries: set[str] = set()
            stdlib: set[str] = set()
            for scheme_vars in (None, {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}):
                paths = (
                    sysconfig.get_paths(vars=scheme_vars) if scheme_vars else sysconfig.get_paths()
                )
                libraries.update(paths[key] for key in ("purelib", "platlib") if key in paths)
                stdlib.update(paths[key] for key in ("stdlib", "platstdlib") if key in paths)
            libraries.update(getattr(site, "getsitepackages", list)())
            if site.ENABLE_USER_SITE:
                libraries.add(site.getusersitepackages())
            libraries.update(p for p in sys.path if p.rstrip(os.sep).endswith("-packages"))
            _library_roots = _real(libraries)
            _stdlib_roots = _real(stdlib)
    return _library_roots, _stdlib_roots


def _real(paths: Iterable[str]) -> tuple[str, ...]:
    real = {os.path.realpath(path).rstrip(os.sep) for path in paths if path}
    return tuple(sorted(real, key=len, reverse=True))


def _parent_greenlet_frame(hops: int) -> FrameType | None:
    """The frame where the parent greenlet waits, when this code runs in a child greenlet."""
    greenlet = sys.modules.get("greenlet")
    if greenlet is None:
        return None
    current = greenlet.getcurrent()
    for _ in range(hops):
        current = current.parent
        if current is None:
            return None
    parent = current.parent
    if parent is None:
        return None
    frame: FrameType | None = parent.gr_frame
    return frame


def _line(code: CodeType, offset: int) -> int:
    """The line of the instruction at byte ``offset`` (as ``frame.f_lineno`` says it)."""
    for start, end, line in code.co_lines():
        if start <= offset < end and line is not None:
            return line
    return code.co_firstlineno


def _frame(code: CodeType, offset: int) -> Frame:
    lines = frozenset(number for _, _, number in code.co_lines() if number is not None)
    is_module = code.co_name == "<module>"
    return Frame(
        filename=code.co_filename,
        line=_line(code, offset),
        function=code.co_qualname if hasattr(code, "co_qualname") else code.co_name,
        first_line=1 if is_module else code.co_firstlineno,
        lines=lines,
        is_module=is_module,
    )
