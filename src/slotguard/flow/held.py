"""Which resources are held where: a may-analysis over a function's graph.

A *fact* says: on some path, the resource acquired at a site is held and
these local names refer to it; and, if the path left normal flow on the way,
the first point where it did (the ``return``, ``break`` or raising call that
the message will name). A fact ends when a name it holds is released, when the
resource is handed to another owner, or when the last name referring to it is
rebound (then it leaks there).

Along an exception edge a point's releases and hand-offs have happened (a
``release`` that raises does not leave the connection to us) but its
acquisitions have not (an ``acquire`` that raises acquired nothing).

A site that is released or handed off on some path is *managed*; a leak of a
managed site is an SG2 finding. A site that is never released or handed off
anywhere is the SG1 rules' business ("never released").
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import libcst as cst

from slotguard.analysis.infer import FunctionInfo, ModuleInfo, Produced
from slotguard.analysis.raising import raising
from slotguard.analysis.releasers import releasing_parameters
from slotguard.flow.cfg import EdgeKind, Graph, GraphTooLarge, Point, PointKind, build
from slotguard.flow.effects import Binding, EffectReader, Effects, ReleaseCandidate, negate
from slotguard.model.catalog import (
    EXPECTS_A_RAISE,
)
from slotguard.model.vocabulary import ResourceType
from slotguard.syntax import dotted_name, walk


class LeakKind(enum.Enum):
    EXIT = "exit"
    """Held when the function returns or falls off its end."""
    RAISE = "raise"
    """Held when an exception leaves the function."""
    LOST = "lost"
    """Nothing refers to it any more: its last name was rebound, or the
    result of the acquisition was never kept."""


_JUMPS = (EdgeKind.RETURN, EdgeKind.BREAK, EdgeKind.CONTINUE)


@dataclass(eq=False, slots=True)
class Site:
    """One acquisition in the function."""

    index: int
    point: Point
    produced: Produced
    name: str | None
    """The name it was first bound to, if any."""

    @property
    def type(self) -> ResourceType:
        return self.produced.type

    @property
    def node(self) -> cst.BaseExpression:
        return self.produced.expression


@dataclass(frozen=True, slots=True)
class Leak:
    kind: LeakKind
    via_kind: EdgeKind | None
    """How the path first left normal flow (``RETURN``, ``RAISE``, ...), if it did."""
    via: Point | None
    at: Point | None
    """For ``LOST``: where the last reference went away."""

    @property
    def skipped_by_exception(self) -> bool:
        """The path that leaks is an exception's, not a ``return``, ``break``
        or ``continue`` that an exception happened to follow."""
        return self.kind is LeakKind.RAISE and self.via_kind not in _JUMPS


@dataclass(slots=True)
class SiteOutcome:
    site: Site
    released: bool = False
    """Released on some path."""
    handed_off: bool = False
    """Handed to another owner on some path."""
    release_written: bool = False
    """The function contains a release of a name that referred to it, even
    if no path reaches that release with it held."""
    names: set[str] = field(default_factory=set)
    """Every local name that referred to it somewhere."""
    leaks: list[Leak] = field(default_factory=list)

    @property
    def managed(self) -> bool:
        """The function means to release it or pass it on: a leak of it is a
        path the code forgot (SG2), not a resource it ignores (SG1)."""
        return self.released or self.handed_off or self.release_written


class Fact(NamedTuple):
    """On some path, the resource acquired at ``site`` is held under ``names``."""

    site: int
    names: frozenset[str]
    via_kind: EdgeKind | None
    """How the path first left normal flow; None while it stayed in it."""
    via: int
    """The index of the point where it did, or -1."""
    conditions: frozenset[str] = frozenset()
    """What is known on this path since the acquisition, as condition keys
    (``created``, ``!created``, ``has:request.state.db``): a later test that
    contradicts one cannot take this path (see ``effects.conditions``)."""


State = frozenset[Fact]


@dataclass(slots=True)
class FunctionFlow:
    function: FunctionInfo
    graph: Graph
    outcomes: list[SiteOutcome]
    states: list[State | None]
    """The facts that hold on entry to each point (by ``Point.index``);
    None for points the analysis never reached."""
    effects: list[Effects]
    """What each point does (by ``Point.index``)."""

    def outcome_for(self, node: cst.CSTNode) -> SiteOutcome | None:
        for outcome in self.outcomes:
            if outcome.site.node is node or outcome.site.produced.call is node:
                return outcome
        return None

    def held_at(self, point: Point) -> list[tuple[Site, frozenset[str]]]:
        """The acquisitions that may be held when ``point`` runs, with the
        names that refer to them there."""
        state = self.states[point.index] or frozenset()
        held: dict[int, set[str]] = {}
        for fact in state:
            held.setdefault(fact.site, set()).update(fact.names)
        return [
            (self.outcomes[index].site, frozenset(names)) for index, names in sorted(held.items())
        ]


_MAX_ITERATIONS = 200_000


def flow_of(module: ModuleInfo, function: FunctionInfo | None) -> FunctionFlow | None:
    """The analysis of one function, computed once per module and shared by
    the rules; None for the module body, a function that acquires nothing, or
    one whose graph is too large."""
    if function is None:
        return None
    flows: dict[int, FunctionFlow | None] = module.cached("flows", dict)
    key = id(function.node)
    if key not in flows:
        flows[key] = analyse(module, function)
    return flows[key]


def flows(module: ModuleInfo) -> list[FunctionFlow]:
    """The analysis of every function of the module that acquires something."""
    found = (flow_of(module, function) for function in module.functions)
    return [flow for flow in found if flow is not None]


def analyse(module: ModuleInfo, function: FunctionInfo) -> FunctionFlow | None:
    """The analysis of one function, or None when it has nothing to track or
    its graph is too large."""
    scope = function.scope
    if not _may_acquire(function):
        return None
    try:
        graph = build(function.node, raises=raising(module).policy(function))
    except GraphTooLarge:
        too_large(module).append(function)
        return None
    reader = EffectReader(scope, releasing_functions=releasing_parameters(module))
    effects = _read_effects(reader, graph)
    if function.is_generator and not function.lends_what_it_yields:
        # A plain generator hands over what it yields, unless it releases it
        # itself after the yield: then it only lends it.
        reader.yield_hands_off = True
        reader.lent = {
            candidate.name
            for point_effects in effects
            for candidate in point_effects.releases
            if _could_release(candidate, module)
        }
        effects = _read_effects(reader, graph)
    _keep_relevant_conditions(effects)
    return _Solver(function, graph, effects, _expected_to_raise(function)).solve()


def _read_effects(reader: EffectReader, graph: Graph) -> list[Effects]:
    """What each point does (by ``Point.index``).

    A ``finally`` body is built once for each way out of its ``try``, so one
    statement can be many points: it is read once, and each further point
    gets a copy of what it does (the solver edits a point's effects)."""
    read: dict[tuple[int, PointKind], Effects] = {}
    found: list[Effects] = []
    for point in graph.points:
        key = (id(point.node), point.kind)
        known = read.get(key)
        if known is None:
            read[key] = known = reader.read(point)
            found.append(known)
        else:
            found.append(_copy(known))
    return found


def _copy(effects: Effects) -> Effects:
    return replace(
        effects,
        releases=list(effects.releases),
        handoffs=set(effects.handoffs),
        bindings=list(effects.bindings),
        discarded=list(effects.discarded),
        sets=dict(effects.sets),
    )


def _keep_relevant_conditions(effects: list[Effects]) -> None:
    """Only conditions some branch tests are worth carrying: most functions
    test none, and their facts then carry nothing."""
    tested = {
        key.lstrip("!")
        for point_effects in effects
        for key in (*point_effects.known_if_true, *point_effects.known_if_false)
    }
    for point_effects in effects:
        if point_effects.sets:
            point_effects.sets = {k: v for k, v in point_effects.sets.items() if k in tested}


def _known_conditions(graph: Graph, effects: list[Effects]) -> list[frozenset[str] | None]:
    """What is known true on every path to each point (a must-analysis): a
    resource acquired where a test already told a flag inherits it, so that
    ``if owned: session = Session(...)`` and a later ``if owned: session.close()``
    correlate."""
    if not any(e.known_if_true or e.known_if_false for e in effects):
        return [frozenset()] * len(graph.points)
    known: list[frozenset[str] | None] = [None] * len(graph.points)
    known[graph.entry.index] = frozenset()
    worklist = [graph.entry]
    while worklist:
        point = worklist.pop()
        here = known[point.index]
        assert here is not None
        point_effects = effects[point.index]
        after = _set(here, point_effects.sets) if point_effects.sets else here
        for target, kind in point.successors:
            out = here if kind.exceptional else after
            if kind is EdgeKind.TRUE and point_effects.known_if_true:
                out = _set(out, dict.fromkeys(point_effects.known_if_true, True))
            elif kind is EdgeKind.FALSE and point_effects.known_if_false:
                out = _set(out, dict.fromkeys(point_effects.known_if_false, True))
            current = known[target.index]
            merged = out if current is None else current & out
            if merged != current:
                known[target.index] = merged
                worklist.append(target)
    return known


def too_large(module: ModuleInfo) -> list[FunctionInfo]:
    """The functions of the module whose graph was too large to analyse: the
    engine reports each (SG000), so that a leak in one is not silently missed."""
    return module.cached("functions-too-large", list)


def _expected_to_raise(function: FunctionInfo) -> set[int]:
    """Nodes inside ``with pytest.raises(...)``-like blocks: what they
    acquire is expected to fail, not to leak."""
    found: set[int] = set()
    module = function.module
    for statement in function.scope.of_type(cst.With):
        assert isinstance(statement, cst.With)
        for item in statement.items:
            expression = item.item.func if isinstance(item.item, cst.Call) else item.item
            name = dotted_name(expression)
            if name is None:
                continue
            qualified = module.qualify(name) or name
            if qualified in EXPECTS_A_RAISE or name.rsplit(".", 1)[-1] in EXPECTS_A_RAISE:
                found.update(id(node) for node in walk(statement.body))
                break
    return found


def _could_release(candidate: ReleaseCandidate, module: ModuleInfo) -> bool:
    """Whether the candidate releases a value of some type the model knows."""
    if candidate.how == "method":
        return any(candidate.method in t.release_methods for t in module.model.types())
    if candidate.how == "returned":
        return any(candidate.method in t.returned_by for t in module.model.types())
    return True


def _may_acquire(function: FunctionInfo) -> bool:
    scope = function.scope
    for node in scope.of_type(cst.Call, cst.Await):
        if type(node) is cst.Call:
            produced = scope.produced(node)
            if produced is not None and produced.type.kind.is_short_lived:
                return True
        elif isinstance(node, cst.Await) and type(node.expression) is cst.Call:
            produced = scope.produced(node)
            if produced is not None and produced.acquires and produced.type.kind.is_short_lived:
                return True
    return False


def releases(
    candidate: ReleaseCandidate, names: frozenset[str] | set[str], resource: ResourceType
) -> bool:
    """Whether a release candidate releases a resource of type ``resource``
    that ``names`` refer to."""
    if candidate.name not in names:
        return False
    how = candidate.how
    if how == "method":
        return candidate.method in resource.release_methods
    if how == "returned":
        return candidate.method in resource.returned_by
    if how == "entered":
        return resource.with_releases
    return True  # a releasing function, or ``with closing(name)``


class _Solver:
    def __init__(
        self,
        function: FunctionInfo,
        graph: Graph,
        effects: list[Effects],
        expected_to_raise: set[int],
    ) -> None:
        self.function = function
        self.expected_to_raise = expected_to_raise
        self.graph = graph
        self.effects = effects
        self.sites: list[Site] = []
        self._site_by_node: dict[int, Site] = {}
        self.outcomes: list[SiteOutcome] = []
        self._leaks: set[tuple[int, Leak]] = set()
        self.known = _known_conditions(graph, effects)

    def _site(self, point: Point, produced: Produced, name: str | None) -> Site:
        key = id(produced.expression)
        site = self._site_by_node.get(key)
        if site is None:
            site = Site(len(self.sites), point, produced, name)
            self.sites.append(site)
            self._site_by_node[key] = site
            self.outcomes.append(SiteOutcome(site))
        return site

    def solve(self) -> FunctionFlow | None:
        for point in self.graph.points:
            effects = self.effects[point.index]
            if self.expected_to_raise and id(point.node) in self.expected_to_raise:
                effects.bindings = [
                    b if b.acquired is None else Binding(b.target) for b in effects.bindings
                ]
                effects.discarded = []
            for binding in effects.bindings:
                if binding.acquired is not None:
                    self._site(point, binding.acquired, binding.target)
            for produced in effects.discarded:
                self._site(point, produced, None)
        if not self.sites:
            return None
        states: list[State | None] = [None] * len(self.graph.points)
        states[self.graph.entry.index] = frozenset()
        worklist = [self.graph.entry]
        queued = {self.graph.entry.index}
        iterations = 0
        while worklist:
            iterations += 1
            if iterations > _MAX_ITERATIONS:
                return None
            point = worklist.pop()
            queued.discard(point.index)
            state = states[point.index]
            assert state is not None
            for target, out in self._transfer(point, state):
                current = states[target.index]
                merged = out if current is None else current | out
                if current is None or merged != current:
                    states[target.index] = merged
                    if target.index not in queued:
                        queued.add(target.index)
                        worklist.append(target)
        for end, leak_kind in (
            (self.graph.exit, LeakKind.EXIT),
            (self.graph.raise_exit, LeakKind.RAISE),
        ):
            for fact in states[end.index] or ():
                self._leak(fact, leak_kind, None)
        for state in states:
            for fact in state or ():
                self.outcomes[fact.site].names.update(fact.names)
        for outcome in self.outcomes:
            outcome.leaks.sort(key=_leak_order)
            outcome.release_written = self._release_written(outcome)
        return FunctionFlow(self.function, self.graph, self.outcomes, states, self.effects)

    def _release_written(self, outcome: SiteOutcome) -> bool:
        names = frozenset(outcome.names)
        resource = outcome.site.type
        return any(
            releases(candidate, names, resource)
            for effects in self.effects
            for candidate in effects.releases
        )

    # -- transfer ------------------------------------------------------------

    def _transfer(self, point: Point, state: State) -> Iterable[tuple[Point, State]]:
        effects = self.effects[point.index]
        if effects.catches:
            state = frozenset(fact._replace(via_kind=None, via=-1) for fact in state)
        killed = self._kill(state, effects, point)
        normal: State | None = None
        for target, kind in point.successors:
            if kind.exceptional:
                if point.kind is PointKind.RESUME:
                    # The exception in flight carries on past a ``finally``.
                    yield target, _with_via(killed, kind, point)
                else:
                    yield target, _raised(killed, kind, point)
                continue
            if normal is None:
                normal = self._bind(killed, effects, point)
            out = normal
            if kind is EdgeKind.TRUE:
                if effects.none_if_true:
                    out = _drop_names(out, effects.none_if_true)
                if effects.known_if_true:
                    out = _knowing(out, effects.known_if_true)
            elif kind is EdgeKind.FALSE:
                if effects.none_if_false:
                    out = _drop_names(out, effects.none_if_false)
                if effects.known_if_false:
                    out = _knowing(out, effects.known_if_false)
            if kind in (EdgeKind.RETURN, EdgeKind.BREAK, EdgeKind.CONTINUE):
                out = _with_via(out, kind, point)
            yield target, out

    def _kill(self, state: State, effects: Effects, point: Point) -> State:
        if not state or not (effects.releases or effects.handoffs):
            return state
        kept = []
        for fact in state:
            names = fact.names
            outcome = self.outcomes[fact.site]
            if any(releases(c, names, outcome.site.type) for c in effects.releases):
                outcome.released = True
                continue
            if names & effects.handoffs:
                outcome.handed_off = True
                continue
            kept.append(fact)
        return frozenset(kept)

    def _bind(self, state: State, effects: Effects, point: Point) -> State:
        if effects.sets:
            state = frozenset(
                fact._replace(conditions=_set(fact.conditions, effects.sets)) for fact in state
            )
        if not effects.bindings and not effects.discarded:
            return state
        facts = set(state)
        for binding in effects.bindings:
            target = binding.target
            joined = set()
            if binding.aliases:
                joined = {f for f in facts if f.names & binding.aliases}
            rebound = set()
            for fact in facts:
                if target in fact.names:
                    rebound.add(fact)
            for fact in rebound:
                facts.discard(fact)
                remaining = fact.names - {target}
                if fact in joined:
                    remaining = fact.names | {target}
                if remaining:
                    facts.add(fact._replace(names=remaining))
                else:
                    self._leak(fact, LeakKind.LOST, point)
            for fact in joined - rebound:
                facts.discard(fact)
                facts.add(fact._replace(names=fact.names | {target}))
            if binding.acquired is not None:
                site = self._site(point, binding.acquired, target)
                # What the statement itself assigns is known after it.
                known = _set(self.known[point.index] or frozenset(), effects.sets)
                facts.add(Fact(site.index, frozenset([target]), None, -1, known))
        for produced in effects.discarded:
            site = self._site(point, produced, None)
            self._leak(Fact(site.index, frozenset(), None, -1), LeakKind.LOST, point)
        return frozenset(facts)

    def _leak(self, fact: Fact, kind: LeakKind, at: Point | None) -> None:
        site_index, _, via_kind, via_index, _ = fact
        via = self.graph.points[via_index] if via_index >= 0 else None
        leak = Leak(kind, via_kind, via, at)
        key = (site_index, leak)
        if key not in self._leaks:
            self._leaks.add(key)
            self.outcomes[site_index].leaks.append(leak)


_LANDS_IN_NORMAL_FLOW = (EdgeKind.BREAK, EdgeKind.CONTINUE)


def _raised(state: State, kind: EdgeKind, point: Point) -> State:
    """``state`` leaving by an exception raised at ``point``. Whatever way out
    the path took before (a ``return``, another exception), the exception
    raised last is the one that leaves: a statement of a ``finally`` that
    raises replaces the exception in flight, and a path that leaks only
    because such a statement raised is judged by that statement."""
    if not state:
        return state
    return frozenset(fact._replace(via_kind=kind, via=point.index) for fact in state)


def _with_via(state: State, kind: EdgeKind, point: Point) -> State:
    """``state`` leaving normal flow at ``point`` by ``kind``. The first way
    out is kept, except a ``break`` or ``continue``: it lands in normal flow
    again (after the loop, at its head), so a later ``return`` or exception is
    the way the path leaves, not the jump it happened to take earlier."""
    if not state:
        return state
    return frozenset(
        fact
        if fact.via_kind is not None and fact.via_kind not in _LANDS_IN_NORMAL_FLOW
        else fact._replace(via_kind=kind, via=point.index)
        for fact in state
    )


def _drop_names(state: State, names: frozenset[str]) -> State:
    return frozenset(fact for fact in state if not fact.names & names)


def _knowing(state: State, known: frozenset[str]) -> State:
    """The facts that can take a branch whose test tells ``known``: those
    that know its opposite cannot, the others learn it."""
    opposite = frozenset(negate(key) for key in known)
    return frozenset(
        fact._replace(conditions=_set(fact.conditions, dict.fromkeys(known, True)))
        for fact in state
        if not fact.conditions & opposite
    )


def _set(conditions: frozenset[str], sets: dict[str, bool | None]) -> frozenset[str]:
    """``conditions`` after keys become true, false or unknown (a key
    written ``!key`` is set to the opposite)."""
    values: dict[str, bool | None] = {}
    for key, value in sets.items():
        if key.startswith("!"):
            values[key[1:]] = None if value is None else not value
        else:
            values[key] = value
    kept = {key for key in conditions if key.lstrip("!") not in values}
    for key, value in values.items():
        if value is not None:
            kept.add(key if value else negate(key))
    return frozenset(kept)


_KIND_RANK = {kind: rank for rank, kind in enumerate(LeakKind)}
_EDGE_RANK = {kind: rank for rank, kind in enumerate(EdgeKind)}


def _leak_order(leak: Leak) -> tuple[int, ...]:
    """Leaks by where they leave, then by how: a raise and a cancellation
    at the same await are always told in the same order, whatever the order
    the analysis met them in (which depends on set iteration)."""
    point = leak.via or leak.at
    return (
        0 if point is None else 1,
        point.index if point is not None else 0,
        _KIND_RANK[leak.kind],
        -1 if leak.via_kind is None else _EDGE_RANK[leak.via_kind],
        -1 if leak.at is None else leak.at.index,
    )


__all__ = ["FunctionFlow", "Leak", "LeakKind", "PointKind", "Site", "SiteOutcome", "analyse"]
