"""One verdict per acquisition: does it leak, how surely, and under which code.

The held-resource analysis (``slotguard.flow.held``) finds every path on
which an acquisition leaves the function unreleased. A user wants one
finding per leaking acquisition, named after its most certain leaking path,
with the other paths beside it (SPEC section 2):

- never released, nor handed to anyone, on any path → SG1 (by kind: SG101
  pooled connection, SG102 session or engine connection, SG103 direct
  connection);
- released on some path, left on a normal exit (``return``, the end, a
  ``break``/``continue``, a rebound last name) → SG201;
- released on normal exits, left when the consumer throws into a ``yield``
  → SG203;
- left only when an exception is raised → SG202.

Paths that leak nothing a maintainer would fix are set aside first: an
exception raised by a statement of the very ``finally`` that releases; an
exception or a thrown ``yield`` in a test or a pytest fixture (pytest resumes
fixtures itself, and a raising test fails, not a request); and for
connections whose driver closes them as soon as the last reference goes
(``ResourceType.reclaimed_when_unreferenced``: psycopg2, psycopg, asyncpg's
``connect``), any path that leaves the function, which CPython's reference
counting closes at once. Those, and bare acquisitions that are released
correctly on every path, are the opt-in SG108's (prefer the context-manager
form).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import libcst as cst

from slotguard.analysis.infer import FunctionInfo, ModuleInfo
from slotguard.analysis.ownership import (
    builds_a_context_manager,
    in_a_test,
    mocked_by_the_test,
    reclaimed_kinds,
    runs_once_per_process,
)
from slotguard.analysis.pools import lifecycle
from slotguard.analysis.registries import is_registry
from slotguard.flow.cfg import EdgeKind
from slotguard.flow.held import FunctionFlow, Leak, LeakKind, SiteOutcome, flows, releases
from slotguard.model.lifecycle import Phase
from slotguard.model.vocabulary import Kind, ResourceType
from slotguard.syntax import walk


class Verdict(enum.Enum):
    """Which rule an acquisition's defect belongs to."""

    NEVER_RELEASED = "never-released"
    EXIT = "exit"
    YIELD = "yield"
    EXCEPTION = "exception"
    BARE = "bare"
    """Released on every path that matters, but not in context-manager form
    (or left to reference counting): SG108, opt-in."""

    def code(self, kind: Kind) -> str:
        if self is Verdict.NEVER_RELEASED:
            return _NEVER_RELEASED_CODES[kind]
        return _CODES[self]


_NEVER_RELEASED_CODES = {
    Kind.POOLED_CONNECTION: "SG101",
    Kind.SESSION: "SG102",
    Kind.ENGINE_CONNECTION: "SG102",
    Kind.CONNECTION: "SG103",
}
_REGISTRY_CODE = "SG106"
_CODES = {
    Verdict.EXIT: "SG201",
    Verdict.YIELD: "SG203",
    Verdict.EXCEPTION: "SG202",
    Verdict.BARE: "SG108",
}


@dataclass(frozen=True, slots=True)
class Judged:
    """The verdict on one acquisition of one function."""

    flow: FunctionFlow
    outcome: SiteOutcome
    verdict: Verdict
    code: str
    leaks: tuple[Leak, ...]
    """The leaking paths that count, the deciding one first (empty for SG108
    on a resource released on every path)."""
    reclaimed_by_refcount: bool = False
    """SG108 because the only leaks drop the last reference of a connection
    that its driver closes then."""

    @property
    def function(self) -> FunctionInfo:
        return self.flow.function


def judged(module: ModuleInfo) -> list[Judged]:
    """The verdict on every acquisition of the module that has one, computed
    once and shared by the SG1 and SG2 rules."""
    return module.cached("leak-verdicts", lambda: _judge_module(module))


def judged_for(module: ModuleInfo, code: str) -> list[Judged]:
    return [verdict for verdict in judged(module) if verdict.code == code]


def _judge_module(module: ModuleInfo) -> list[Judged]:
    reclaimed = reclaimed_kinds(module)
    found = []
    for flow in flows(module):
        finally_releases = _FinallyReleases(flow)
        for outcome in flow.outcomes:
            site = outcome.site
            if site.type.kind in reclaimed:
                continue
            produced = site.produced
            if produced.via_project and mocked_by_the_test(
                flow.function, produced.callee, produced.call
            ):
                continue
            verdict = _judge(flow, outcome, finally_releases)
            if verdict is not None:
                found.append(verdict)
    return found


def _judge(
    flow: FunctionFlow, outcome: SiteOutcome, finally_releases: _FinallyReleases
) -> Judged | None:
    function = flow.function
    site = outcome.site
    leaks = [leak for leak in outcome.leaks if _counts(leak, function, outcome, finally_releases)]
    dropped: tuple[Leak, ...] = ()
    if site.type.reclaimed_when_unreferenced:
        # Leaving the function drops the frame, and with it the only
        # reference: the driver closes the connection then. (An exception's
        # traceback keeps the frame for as long as someone keeps the
        # exception, which is rare enough to leave to the opt-in SG108.)
        dropped, leaks = tuple(leaks), []
    if not outcome.managed:
        if builds_a_context_manager(function):
            return None
        if leaks:
            return _verdict(flow, outcome, Verdict.NEVER_RELEASED, leaks)
        if dropped:
            return Judged(flow, outcome, Verdict.BARE, "SG108", dropped, True)
        return None
    exits = [leak for leak in leaks if not leak.skipped_by_exception]
    if exits:
        return _verdict(flow, outcome, Verdict.EXIT, _first(exits, leaks))
    thrown = [leak for leak in leaks if leak.via_kind is EdgeKind.THROW]
    if thrown:
        return _verdict(flow, outcome, Verdict.YIELD, _first(thrown, leaks))
    if leaks:
        return _verdict(flow, outcome, Verdict.EXCEPTION, leaks)
    if dropped:
        return Judged(flow, outcome, Verdict.BARE, "SG108", dropped, True)
    if (
        outcome.released
        and not outcome.handed_off
        and _has_a_context_manager(site.type)
        and not builds_a_context_manager(function)
    ):
        return Judged(flow, outcome, Verdict.BARE, "SG108", ())
    return None


def _has_a_context_manager(resource: ResourceType) -> bool:
    """Whether a ``with`` (of the value or of a sibling factory) releases it."""
    return resource.with_releases or bool(resource.context_manager_form)


def _verdict(
    flow: FunctionFlow, outcome: SiteOutcome, verdict: Verdict, leaks: list[Leak]
) -> Judged:
    resource = outcome.site.type
    # A scoped-session registry made in the function is SG106's, however it leaks.
    code = _REGISTRY_CODE if is_registry(resource) else verdict.code(resource.kind)
    return Judged(flow, outcome, verdict, code, tuple(leaks))


def _first(deciding: list[Leak], every: list[Leak]) -> list[Leak]:
    """The deciding leaks first, then the others, each once, in path order."""
    return [*deciding, *(leak for leak in every if leak not in deciding)]


def _counts(
    leak: Leak, function: FunctionInfo, outcome: SiteOutcome, finally_releases: _FinallyReleases
) -> bool:
    """Whether a leaking path is one a maintainer would fix."""
    if runs_once_per_process(function):
        # The process ends when the function returns or raises.
        return leak.kind is LeakKind.LOST and leak.via is None
    if not leak.skipped_by_exception:
        # ``__enter__`` hands what it stores on ``self`` to the ``with``
        # statement whenever it returns, with or without a ``return``.
        return not (
            function.name in ("__enter__", "__aenter__")
            and outcome.site.name is not None
            and outcome.site.name.startswith(f"{function.self_name}.")
        )
    if in_a_test(function) or _starts_the_application(function):
        return False
    via = leak.via
    return via is None or not finally_releases.releases(via.node, outcome)


def _starts_the_application(function: FunctionInfo) -> bool:
    """A startup hook (``@app.on_event("startup")``, Sanic's
    ``before_server_start``...) or a function nested in one: an exception
    there aborts the start and the process exits, so what it was holding
    goes with the process."""
    return lifecycle(function.module).phase_of(function) is Phase.STARTUP


class _FinallyReleases:
    """The ``finally`` bodies of a function that release something, and the
    statements they hold: an exception raised by one of those statements is
    not a leak of what the same ``finally`` releases (SPEC section 2)."""

    def __init__(self, flow: FunctionFlow) -> None:
        self.flow = flow
        self._owner: dict[int, int] | None = None
        self._released: dict[int, set[int]] = {}

    def releases(self, node: cst.CSTNode | None, outcome: SiteOutcome) -> bool:
        if node is None:
            return False
        owners = self._owners()
        finally_id = owners.get(id(node))
        if finally_id is None:
            return False
        return outcome.site.index in self._released.get(finally_id, set())

    def _owners(self) -> dict[int, int]:
        if self._owner is not None:
            return self._owner
        owner: dict[int, int] = {}
        finals = {
            id(point.node): point.node
            for point in self.flow.graph.points
            if isinstance(point.node, cst.Finally)
        }
        for key, node in finals.items():
            assert node is not None
            for inner in walk(node.body):
                owner.setdefault(id(inner), key)
        released: dict[int, set[int]] = {}
        for point in self.flow.graph.points:
            finally_id = owner.get(id(point.node)) if point.node is not None else None
            if finally_id is None:
                continue
            effects = self.flow.effects[point.index]
            for outcome in self.flow.outcomes:
                if any(
                    releases(candidate, outcome.names, outcome.site.type)
                    for candidate in effects.releases
                ):
                    released.setdefault(finally_id, set()).add(outcome.site.index)
        self._owner = owner
        self._released = released
        return owner


__all__ = ["Judged", "LeakKind", "Verdict", "judged", "judged_for"]
