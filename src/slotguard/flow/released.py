"""Where a session or connection is used after it was released (SG107).

A forward may-analysis over a function's graph: a name becomes *released*
where the function closes what it holds (``session.close()``), gives it back
to its pool (``pool.release(conn)``), or leaves the ``with`` block that bound
it (``with Session(engine) as session:``); it stops being released where it
is bound again. A use of a released name (a method call on it, an attribute
read, passing it to a call) on some path is reported once, at the first use
after each release.

A closed SQLAlchemy session can be used again: its next query begins a new
transaction and checks a new connection out of the pool, which nothing will
close. A connection given back to its pool belongs to the next borrower.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from slotguard.analysis.infer import FunctionInfo, ModuleInfo
from slotguard.analysis.raising import raising
from slotguard.flow.cfg import Graph, GraphTooLarge, Point, PointKind, build
from slotguard.flow.held import flow_of
from slotguard.model.catalog import CLOSED_STATE
from slotguard.model.vocabulary import ResourceType
from slotguard.syntax import assigned_names, is_nested_scope, walk


@dataclass(frozen=True, slots=True)
class UseAfterRelease:
    name: str
    type: ResourceType
    use: cst.CSTNode
    """The expression that uses it."""
    release: cst.CSTNode
    """Where it was released: the release call, or the ``with`` item."""
    by_block: bool
    """Released by leaving its ``with`` block."""


def uses_after_release(module: ModuleInfo) -> list[UseAfterRelease]:
    """Every use after release in the module's functions, computed once."""

    def compute() -> list[UseAfterRelease]:
        found: list[UseAfterRelease] = []
        for function in module.functions:
            found.extend(_in_function(module, function))
        return found

    return module.cached("uses-after-release", compute)


@dataclass(frozen=True, slots=True)
class _Release:
    name: str
    type: ResourceType
    node: cst.CSTNode
    by_block: bool


def _in_function(module: ModuleInfo, function: FunctionInfo) -> list[UseAfterRelease]:
    releases = _releases(function)
    if not releases:
        return []
    flow = flow_of(module, function)
    graph: Graph
    if flow is not None:
        graph = flow.graph
    else:
        try:
            graph = build(function.node, raises=raising(module).policy(function))
        except GraphTooLarge:
            return []
    return _Solver(graph, releases).solve()


def _releases(function: FunctionInfo) -> dict[int, list[_Release]]:
    """``id`` of the node whose evaluation releases → what it releases."""
    scope = function.scope
    found: dict[int, list[_Release]] = {}
    for node in scope.of_type(cst.Call, cst.WithItem):
        if isinstance(node, cst.WithItem):
            if node.asname is None or not isinstance(node.asname.name, cst.Name):
                continue
            entered = scope.entered_type(node.item)
            if entered is None or not entered.kind.is_short_lived or not entered.with_releases:
                continue
            name = node.asname.name.value
            found.setdefault(id(node), []).append(_Release(name, entered, node, True))
            continue
        assert isinstance(node, cst.Call)
        func = node.func
        if not isinstance(func, cst.Attribute):
            continue
        method = func.attr.value
        if isinstance(func.value, cst.Name):
            typed = scope.type_of(func.value)
            if typed is not None and typed.kind.is_short_lived and method in typed.release_methods:
                found.setdefault(id(node), []).append(
                    _Release(func.value.value, typed, node, False)
                )
                continue
        if node.args and isinstance(node.args[0].value, cst.Name):
            given = node.args[0].value
            typed = scope.type_of(given)
            if typed is not None and typed.kind.is_short_lived and method in typed.returned_by:
                found.setdefault(id(node), []).append(_Release(given.value, typed, node, False))
    return found


Fact = tuple[str, int]
"""A released name, and the index of its release in ``_Solver.known``."""


class _Solver:
    def __init__(self, graph: Graph, releases: dict[int, list[_Release]]) -> None:
        self.graph = graph
        self.releases = releases
        self.known: list[_Release] = []
        self._index: dict[tuple[int, str], int] = {}
        self.names = {release.name for group in releases.values() for release in group}

    def solve(self) -> list[UseAfterRelease]:
        points = self.graph.points
        states: list[frozenset[Fact] | None] = [None] * len(points)
        states[self.graph.entry.index] = frozenset()
        worklist = [self.graph.entry]
        while worklist:
            point = worklist.pop()
            state = states[point.index]
            assert state is not None
            after = self._after(point, state)
            for target, kind in point.successors:
                out = state if kind.exceptional else after
                current = states[target.index]
                merged = out if current is None else current | out
                if merged != current:
                    states[target.index] = merged
                    worklist.append(target)
        found: dict[tuple[str, int], UseAfterRelease] = {}
        for point in points:
            state = states[point.index]
            if not state:
                continue
            for name, use in _uses(point, self.names, self.releases):
                for released, index in sorted(state):
                    if released != name or (name, index) in found:
                        continue
                    release = self.known[index]
                    found[(name, index)] = UseAfterRelease(
                        name, release.type, use, release.node, release.by_block
                    )
        return sorted(found.values(), key=lambda u: (u.name, id(u.release)))

    def _after(self, point: Point, state: frozenset[Fact]) -> frozenset[Fact]:
        rebound = _bound_names(point) & self.names
        out = {fact for fact in state if fact[0] not in rebound} if rebound else set(state)
        for release in self._released_at(point):
            out = {fact for fact in out if fact[0] != release.name}
            out.add((release.name, self._number(release)))
        return frozenset(out)

    def _released_at(self, point: Point) -> list[_Release]:
        node = point.node
        if node is None:
            return []
        if point.kind is PointKind.WITH_EXIT:
            return self.releases.get(id(node), [])
        if point.kind not in (PointKind.STATEMENT, PointKind.EVAL, PointKind.BRANCH):
            return []
        found: list[_Release] = []
        for sub in walk(node, prune=is_nested_scope):
            found.extend(
                release for release in self.releases.get(id(sub), []) if not release.by_block
            )
        return found

    def _number(self, release: _Release) -> int:
        key = (id(release.node), release.name)
        if key not in self._index:
            self._index[key] = len(self.known)
            self.known.append(release)
        return self._index[key]


def _bound_names(point: Point) -> set[str]:
    node = point.node
    if node is None:
        return set()
    if point.kind is PointKind.STATEMENT:
        if isinstance(node, cst.Assign):
            return {name for target in node.targets for name in assigned_names(target.target)}
        if isinstance(node, cst.AnnAssign | cst.AugAssign):
            return set(assigned_names(node.target))
        if isinstance(node, cst.Del):
            return set(assigned_names(node.target))
    if (
        point.kind is PointKind.WITH_ENTER
        and isinstance(node, cst.WithItem)
        and node.asname is not None
    ):
        return set(assigned_names(node.asname.name))
    if point.kind is PointKind.LOOP_NEXT and isinstance(node, cst.For):
        return set(assigned_names(node.target))
    if (
        point.kind is PointKind.HANDLER
        and isinstance(node, cst.ExceptHandler)
        and node.name is not None
        and isinstance(node.name.name, cst.Name)
    ):
        return {node.name.name.value}
    return set()


def _uses(
    point: Point, names: set[str], releases: dict[int, list[_Release]]
) -> list[tuple[str, cst.CSTNode]]:
    """The tracked names a point uses: a method call or attribute read on
    one, or one passed to a call (a release call itself is not a use, nor a
    question about whether it is closed)."""
    node = point.node
    if node is None or point.kind not in (
        PointKind.STATEMENT,
        PointKind.EVAL,
        PointKind.BRANCH,
        PointKind.WITH_ENTER,
    ):
        return []
    root = node.item if isinstance(node, cst.WithItem) else node
    nodes = list(walk(root, prune=is_nested_scope))
    callees = {id(sub.func) for sub in nodes if isinstance(sub, cst.Call)}
    found: list[tuple[str, cst.CSTNode]] = []
    for sub in nodes:
        if isinstance(sub, cst.Call):
            if id(sub) in releases:
                continue
            func = sub.func
            if (
                isinstance(func, cst.Attribute)
                and isinstance(func.value, cst.Name)
                and func.value.value in names
                and func.attr.value not in CLOSED_STATE
            ):
                found.append((func.value.value, sub))
                continue
            for arg in sub.args:
                if isinstance(arg.value, cst.Name) and arg.value.value in names:
                    found.append((arg.value.value, sub))
        elif (
            isinstance(sub, cst.Attribute)
            and isinstance(sub.value, cst.Name)
            and sub.value.value in names
            and id(sub) not in callees
            and sub.attr.value not in CLOSED_STATE
        ):
            found.append((sub.value.value, sub))
    return found
