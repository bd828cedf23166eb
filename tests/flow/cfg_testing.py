"""Helpers for tests of ``slotguard.flow.cfg``: build a graph from source,
render its edges as text, and list what makes a graph ill-formed."""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Iterator

import libcst as cst

from slotguard.flow.cfg import EdgeKind, Graph, Point, PointKind, build
from slotguard.syntax import walk

# Points whose label alone would be ambiguous (a ``with`` item is entered and
# exited) or would read like a statement (a branch test, an evaluated expression).
_PREFIXES = {
    PointKind.BRANCH: "test",
    PointKind.EVAL: "eval",
    PointKind.WITH_ENTER: "enter",
    PointKind.WITH_EXIT: "exit",
}


def name(point: Point) -> str:
    """``a()``, ``test x > 0``, ``enter open(p) as f``, ``finally``, ``resume``,
    ``exit``, ``raise-exit``..."""
    prefix = _PREFIXES.get(point.kind)
    return f"{prefix} {point.label}" if prefix else point.label


def edge_text(source: Point, target: Point, kind_value: str) -> str:
    return f"{name(source)} -[{kind_value}]-> {name(target)}"


def edges(graph: Graph) -> set[str]:
    """Every edge as ``"<source> -[<kind>]-> <target>"``."""
    return {edge_text(source, target, kind.value) for source, target, kind in graph.edges()}


def names(graph: Graph) -> list[str]:
    return [name(point) for point in graph.points]


def has_chain(graph: Graph, *chain: str) -> bool:
    """Whether consecutive edges, as rendered by ``edges``, follow each other
    through the same points: the target of each is the source of the next.

    Copies of a ``finally`` body share a label; a chain tells them apart."""

    def extend(point: Point, rest: tuple[str, ...]) -> bool:
        if not rest:
            return True
        return any(
            edge_text(point, target, kind.value) == rest[0] and extend(target, rest[1:])
            for target, kind in point.successors
        )

    return any(
        edge_text(source, target, kind.value) == chain[0] and extend(target, chain[1:])
        for source, target, kind in graph.edges()
    )


def parse(source: str) -> cst.Module:
    return cst.parse_module(textwrap.dedent(source))


def graph_of(source: str) -> Graph:
    """The graph of the first function, class or lambda in ``source``."""
    return build(first_unit(parse(source)))


def first_unit(module: cst.Module) -> cst.CSTNode:
    for node in walk(module):
        if isinstance(node, cst.FunctionDef | cst.ClassDef | cst.Lambda):
            return node
    raise AssertionError("no function, class or lambda in the source")


def units(module: cst.Module) -> Iterator[cst.CSTNode]:
    """The module and every function, class and lambda in it, at any depth."""
    yield module
    for node in walk(module):
        if isinstance(node, cst.FunctionDef | cst.ClassDef | cst.Lambda):
            yield node


_DECIDING = frozenset([PointKind.BRANCH, PointKind.LOOP_NEXT, PointKind.CASE])
_CATCHING = frozenset(
    [PointKind.HANDLER, PointKind.FINALLY, PointKind.WITH_EXIT, PointKind.RAISE_EXIT]
)
_RETURN_TARGETS = frozenset([PointKind.EXIT, PointKind.FINALLY, PointKind.WITH_EXIT])


def problems(graph: Graph) -> list[str]:
    """What is wrong with the shape of ``graph``; empty when it is well-formed:

    - the entry is the first point, the exits are points, indices are positions;
    - every edge's target is a point, predecessors mirror successors, no edge
      is there twice;
    - every point but the entry has a predecessor, and every point is reached
      from the entry, except the two exits, which stay in every graph;
    - the exits have no successors; only exceptional edges reach the raise
      exit, and none reach the normal exit;
    - TRUE/FALSE edges leave branch tests, loop steps and cases; exceptional
      edges enter handlers, ``finally`` copies, ``with`` exits and the raise
      exit; handlers are entered by exceptional edges only; ``return`` goes to
      the exit, a ``finally`` copy or a ``with`` exit.
    """
    found: list[str] = []
    members = {id(point) for point in graph.points}
    ends = (graph.exit, graph.raise_exit)
    for required in (graph.entry, *ends):
        if id(required) not in members:
            found.append(f"{required!r} is not among the points")
    if graph.points[:1] != [graph.entry]:
        found.append("the first point is not the entry")
    forward = Counter(
        (id(point), id(target), kind) for point in graph.points for target, kind in point.successors
    )
    backward = Counter(
        (id(source), id(point), kind)
        for point in graph.points
        for source, kind in point.predecessors
    )
    if forward != backward:
        unmatched = (forward - backward) + (backward - forward)
        found.append(f"predecessors do not mirror successors ({sum(unmatched.values())} edges)")
    if any(count > 1 for count in forward.values()):
        found.append("some edge is there twice")
    for position, point in enumerate(graph.points):
        if point.index != position:
            found.append(f"{point!r} is numbered {point.index} at position {position}")
        for target, kind in point.successors:
            if id(target) not in members:
                found.append(f"{point!r} -[{kind.value}]-> {target!r}, which is not a point")
            if target is graph.raise_exit and not kind.exceptional:
                found.append(f"{point!r} reaches the raise exit by a {kind.value} edge")
            if target is graph.exit and kind.exceptional:
                found.append(f"{point!r} reaches the normal exit by a {kind.value} edge")
            if kind in (EdgeKind.TRUE, EdgeKind.FALSE) and point.kind not in _DECIDING:
                found.append(f"{point!r} decides nothing but has a {kind.value} edge")
            if kind.exceptional and target.kind not in _CATCHING:
                found.append(f"{point!r} -[{kind.value}]-> {target!r}, which catches nothing")
            if target.kind is PointKind.HANDLER and not kind.exceptional:
                found.append(f"{point!r} enters a handler by a {kind.value} edge")
            if kind is EdgeKind.RETURN and target.kind not in _RETURN_TARGETS:
                found.append(f"{point!r} returns to {target!r}")
        if point is graph.entry:
            if point.predecessors:
                found.append("the entry has predecessors")
        elif not point.predecessors and point not in ends:
            found.append(f"{point!r} has no predecessor")
        if point in ends and point.successors:
            found.append(f"{point!r} has successors")
    found += [f"{point!r} is not reachable from the entry" for point in _unreached(graph)]
    return found


def _unreached(graph: Graph) -> list[Point]:
    reached = {id(graph.entry)}
    stack = [graph.entry]
    while stack:
        for target, _ in stack.pop().successors:
            if id(target) not in reached:
                reached.add(id(target))
                stack.append(target)
    return [
        point
        for point in graph.points
        if id(point) not in reached and point is not graph.exit and point is not graph.raise_exit
    ]
