"""Control-flow graphs of functions, module bodies, class bodies and lambdas.

A graph is made of *points*: one per small statement, branch test, loop step,
``with`` entry and exit, exception handler and ``match`` case. Edges carry the
reason control moves (normal, a branch outcome, an exception, a jump).

Exceptions are routed as Python routes them, with a *category* so that
handlers catch what they really catch:

- ``ERROR``: an ``Exception`` raised by any call, ``raise`` or ``assert``.
- ``CANCEL``: ``asyncio.CancelledError`` at any ``await`` (``async with`` and
  ``async for`` included). It is a ``BaseException``: ``except Exception``
  does not catch it.
- ``BASE``: ``GeneratorExit`` (and its like) thrown into a ``yield`` when the
  consumer closes the generator; ``yield`` also receives ``ERROR`` thrown in.

Each ``except*`` clause may be followed by the later clauses and by the
re-raise of what is left of the group.

``finally`` bodies and ``with`` exits are built once per way of reaching them
(falling through, each exception category, ``return``, ``break``,
``continue``), as CPython compiles them, so that what happens after a
``finally`` depends on how it was entered. Graphs are bounded in size; a
function whose graph would exceed the bound raises ``GraphTooLarge``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import libcst as cst

from slotguard.syntax import always_true, dotted_name, walk_scope


class GraphTooLarge(Exception):
    pass


class RaisePolicy(Protocol):
    """Which operations get an exception edge. Without a policy, every call,
    ``with`` entry and exit, loop step and pattern that runs code does; an
    ``await``, a ``raise``, an ``assert`` and a ``yield`` always do."""

    def call(self, call: cst.Call) -> bool: ...

    def with_enter(self, item: cst.WithItem) -> bool: ...

    def with_exit(self, item: cst.WithItem) -> bool: ...

    def loop_step(self, loop: cst.For) -> bool: ...

    def pattern(self, pattern: cst.MatchPattern) -> bool: ...


class EdgeKind(enum.Enum):
    NORMAL = "normal"
    TRUE = "true"
    FALSE = "false"
    RAISE = "raise"
    CANCEL = "cancel"
    THROW = "throw"
    RETURN = "return"
    BREAK = "break"
    CONTINUE = "continue"

    @property
    def exceptional(self) -> bool:
        return self in (EdgeKind.RAISE, EdgeKind.CANCEL, EdgeKind.THROW)


class Category(enum.Enum):
    ERROR = "Exception"
    CANCEL = "CancelledError"
    BASE = "GeneratorExit"


class PointKind(enum.Enum):
    ENTRY = "entry"
    EXIT = "exit"
    """Normal end of the unit: ``return`` or falling off the end."""
    RAISE_EXIT = "raise-exit"
    """An exception leaves the unit."""
    STATEMENT = "statement"
    """A small statement (``node`` is it)."""
    EVAL = "eval"
    """An expression evaluated for control flow: a ``for`` iterable, a ``match``
    subject, a lambda body."""
    BRANCH = "branch"
    """An ``if``/``while`` test; leaves by TRUE and FALSE edges."""
    LOOP_NEXT = "loop-next"
    """A ``for`` loop takes its next item (``node`` is the ``For``)."""
    WITH_ENTER = "with-enter"
    WITH_EXIT = "with-exit"
    HANDLER = "handler"
    """Entry of an ``except`` clause (``node`` is the handler)."""
    CASE = "case"
    """A ``match`` case's pattern and guard (``node`` is the ``MatchCase``)."""
    FINALLY = "finally"
    """Entry of one copy of a ``finally`` body (``node`` is the ``Finally``)."""
    RESUME = "resume"
    """After a ``finally`` copy or ``with`` exit: carry on with the exception
    or jump that led there. After an ``except*`` clause: carry on with the rest
    of the exception group. Does nothing itself."""
    DEFINITION = "definition"
    """A nested ``def`` or ``class``: decorators and defaults are evaluated and
    the name bound; the body is a unit of its own."""


@dataclass(eq=False, slots=True)
class Point:
    index: int
    kind: PointKind
    node: cst.CSTNode | None = None
    successors: list[tuple[Point, EdgeKind]] = field(default_factory=list)
    predecessors: list[tuple[Point, EdgeKind]] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"<Point {self.index} {self.kind.value} {self.label}>"

    @property
    def label(self) -> str:
        if self.node is None:
            return self.kind.value
        node = self.node
        if isinstance(node, cst.For):
            return f"for {_code(node.target)} in ..."
        if isinstance(node, cst.WithItem):
            return _code(node.with_changes(comma=cst.MaybeSentinel.DEFAULT))
        if isinstance(node, cst.ExceptHandler | cst.ExceptStarHandler):
            keyword = "except*" if isinstance(node, cst.ExceptStarHandler) else "except"
            return f"{keyword} {_code(node.type)}" if node.type else keyword
        if isinstance(node, cst.Finally):
            return "finally"
        if isinstance(node, cst.MatchCase):
            return f"case {_code(node.pattern)}"
        if isinstance(node, cst.FunctionDef | cst.ClassDef):
            return (
                f"def {node.name.value}"
                if isinstance(node, cst.FunctionDef)
                else (f"class {node.name.value}")
            )
        return _code(node)


def _code(node: cst.CSTNode | None) -> str:
    if node is None:
        return ""
    try:
        code = cst.Module([]).code_for_node(node)
    except RecursionError:
        # libcst generates code recursively; thousands of implicitly
        # concatenated strings are too deep for it.
        return f"<{type(node).__name__}>"
    return " ".join(code.split())


@dataclass(slots=True)
class Graph:
    unit: cst.CSTNode
    entry: Point
    exit: Point
    raise_exit: Point
    points: list[Point]

    _evaluating: dict[int, list[Point]] | None = None

    def edges(self) -> Iterator[tuple[Point, Point, EdgeKind]]:
        for point in self.points:
            for target, kind in point.successors:
                yield point, target, kind

    def evaluating(self) -> dict[int, list[Point]]:
        """``id`` of each call and ``await`` of the unit → the points that
        evaluate it (several where a ``finally`` body was copied): where the
        call runs, unlike the compound statements that merely contain it."""
        if self._evaluating is None:
            index: dict[int, list[Point]] = {}
            for point in self.points:
                for part in _evaluated(point):
                    for node in walk_scope(part):
                        if type(node) is cst.Call or type(node) is cst.Await:
                            index.setdefault(id(node), []).append(point)
            self._evaluating = index
        return self._evaluating


def _evaluated(point: Point) -> list[cst.CSTNode]:
    """The expressions a point evaluates itself."""
    node = point.node
    if node is None:
        return []
    kind = point.kind
    if kind in (PointKind.STATEMENT, PointKind.BRANCH, PointKind.EVAL):
        return [node]
    if kind is PointKind.WITH_ENTER and isinstance(node, cst.WithItem):
        return [node.item]
    if kind is PointKind.CASE and isinstance(node, cst.MatchCase):
        return [node.pattern, *([node.guard] if node.guard else [])]
    return []


Pending = list[tuple[Point, EdgeKind]]

_ALL = frozenset(Category)
_EDGE_FOR = {
    Category.ERROR: EdgeKind.RAISE,
    Category.CANCEL: EdgeKind.CANCEL,
    Category.BASE: EdgeKind.THROW,
}
_BARE_HANDLER = (_ALL, _ALL)


_Clause = tuple[Point, frozenset[Category], frozenset[Category]]
"""A handler's entry point, what it may catch and what it surely catches."""


@dataclass(eq=False)
class _Try:
    node: cst.Try | cst.TryStar
    handlers: list[_Clause]
    in_body: bool = True
    copies: dict[object, Point] = field(default_factory=dict)


@dataclass(eq=False)
class _With:
    item: cst.WithItem
    is_async: bool
    suppresses: bool
    after: Pending = field(default_factory=list)
    copies: dict[object, Point] = field(default_factory=dict)


@dataclass(eq=False)
class _Loop:
    head: Point
    breaks: Pending = field(default_factory=list)


@dataclass(eq=False)
class _Handler:
    """Inside an ``except`` body, or a ``finally`` body entered by an exception:
    a bare ``raise`` re-raises what it caught."""

    catches: frozenset[Category]


_Context = _Try | _With | _Loop | _Handler


class _Builder:
    def __init__(
        self,
        unit: cst.CSTNode,
        max_points: int,
        policy: RaisePolicy | None = None,
    ) -> None:
        self.policy = policy
        self.points: list[Point] = []
        self.max_points = max_points
        self.contexts: list[_Context] = []
        self._evaluations: dict[int, tuple[cst.CSTNode, bool, bool, bool]] = {}
        """What evaluating a node may do (``_evaluation``), by node id."""
        self.entry = self._point(PointKind.ENTRY)
        self.exit = self._point(PointKind.EXIT)
        self.raise_exit = self._point(PointKind.RAISE_EXIT)
        self.graph = Graph(unit, self.entry, self.exit, self.raise_exit, self.points)

    # -- points and edges --------------------------------------------------

    def _point(self, kind: PointKind, node: cst.CSTNode | None = None) -> Point:
        if len(self.points) >= self.max_points:
            raise GraphTooLarge(f"more than {self.max_points} points")
        point = Point(len(self.points), kind, node)
        self.points.append(point)
        return point

    @staticmethod
    def _edge(source: Point, target: Point, kind: EdgeKind) -> None:
        if (target, kind) in source.successors:
            return
        source.successors.append((target, kind))
        target.predecessors.append((source, kind))

    def _link(self, pending: Pending, target: Point) -> None:
        for source, kind in pending:
            self._edge(source, target, kind)

    def _enter(self, pending: Pending, kind: PointKind, node: cst.CSTNode | None) -> Point:
        point = self._point(kind, node)
        self._link(pending, point)
        return point

    # -- exceptions and jumps ----------------------------------------------

    def _raises(
        self,
        point: Point,
        evaluated: cst.CSTNode | None,
        *,
        awaits: bool = False,
        calls: bool = False,
    ) -> None:
        """Add the exceptional edges of a point evaluating ``evaluated``."""
        has_call, has_await, has_yield = calls, awaits, False
        if evaluated is not None and not calls:
            has_call, has_await, has_yield = self._evaluation(evaluated)
            has_await = has_await or awaits
        elif evaluated is not None:
            for node in walk_scope(evaluated):
                kind = type(node)
                if kind is cst.Await:
                    has_await = True
                elif kind is cst.Yield:
                    has_yield = True
        if has_call or has_await:
            self._throw([(point, EdgeKind.RAISE)], Category.ERROR)
        if has_await:
            self._throw([(point, EdgeKind.CANCEL)], Category.CANCEL)
        if has_yield:
            self._throw([(point, EdgeKind.THROW)], Category.ERROR)
            self._throw([(point, EdgeKind.THROW)], Category.BASE)

    def _evaluation(self, evaluated: cst.CSTNode) -> tuple[bool, bool, bool]:
        """Whether evaluating a node makes a call that may raise, awaits,
        yields: worked out once per node, though a ``finally`` body is built
        again for each way out of its ``try``."""
        known = self._evaluations.get(id(evaluated))
        if known is not None and known[0] is evaluated:
            return known[1:]
        has_call = has_await = has_yield = False
        policy = self.policy
        for node in walk_scope(evaluated):
            kind = type(node)
            if kind is cst.Call:
                if not has_call and (policy is None or policy.call(node)):  # type: ignore[arg-type]
                    has_call = True
            elif kind is cst.Await:
                has_await = True
            elif kind is cst.Yield:
                has_yield = True
        self._evaluations[id(evaluated)] = (evaluated, has_call, has_await, has_yield)
        return has_call, has_await, has_yield

    def _exit_raises(self, item: cst.WithItem) -> bool:
        return self.policy is None or self.policy.with_exit(item)

    def _throw(self, sources: Pending, category: Category, depth: int | None = None) -> None:
        """Route an exception of ``category`` from ``sources`` to the handlers,
        ``finally`` bodies and ``with`` exits that see it, or out of the unit."""
        if not sources:
            return
        level = len(self.contexts) if depth is None else depth
        while level > 0:
            level -= 1
            context = self.contexts[level]
            if isinstance(context, _Try):
                if context.in_body:
                    remaining = sources
                    for handler, catches, fully in context.handlers:
                        if category in catches:
                            self._link(remaining, handler)
                            if category in fully:
                                return
                    sources = remaining
                finally_body = context.node.finalbody
                if finally_body is not None:
                    entry = self._finally_copy(context, level, ("raise", category), sources)
                    self._link(sources, entry)
                    return
            elif isinstance(context, _With):
                exit_point = self._with_exit_copy(context, level, ("raise", category))
                self._link(sources, exit_point)
                return
        self._link(sources, self.raise_exit)

    def _jump(self, source: Point, kind: EdgeKind) -> None:
        """Route a ``return``, ``break`` or ``continue`` through the ``finally``
        bodies and ``with`` exits between it and its target."""
        self._jump_from([(source, kind)], kind, len(self.contexts))

    def _jump_from(self, sources: Pending, kind: EdgeKind, level: int) -> None:
        while level > 0:
            level -= 1
            context = self.contexts[level]
            if isinstance(context, _Loop) and kind is not EdgeKind.RETURN:
                if kind is EdgeKind.BREAK:
                    context.breaks.extend(sources)
                else:
                    self._link(sources, context.head)
                return
            if isinstance(context, _Try) and context.node.finalbody is not None:
                key = (kind, id(self._jump_target(level, kind)))
                entry = self._finally_copy(context, level, key, sources, jump=kind)
                self._link(sources, entry)
                return
            if isinstance(context, _With):
                exit_point = self._with_exit_copy(
                    context, level, (kind, id(self._jump_target(level, kind))), jump=kind
                )
                self._link(sources, exit_point)
                return
        if kind is EdgeKind.RETURN:
            self._link(sources, self.exit)
        # ``break``/``continue`` outside a loop is a syntax error libcst rejects.

    def _jump_target(self, level: int, kind: EdgeKind) -> object:
        if kind is EdgeKind.RETURN:
            return self.exit
        for context in reversed(self.contexts[:level]):
            if isinstance(context, _Loop):
                return context
        return self.exit

    def _finally_copy(
        self,
        context: _Try,
        level: int,
        key: object,
        sources: Pending,
        jump: EdgeKind | None = None,
    ) -> Point:
        """The entry point of the ``finally`` body built for one continuation."""
        existing = context.copies.get(key)
        if existing is not None:
            return existing
        assert context.node.finalbody is not None
        saved = self.contexts
        self.contexts = saved[:level]
        if isinstance(key, tuple) and key[0] == "raise":
            self.contexts.append(_Handler(frozenset([key[1]])))
        try:
            entry = self._point(PointKind.FINALLY, context.node.finalbody)
            context.copies[key] = entry
            end = self._suite(context.node.finalbody.body, [(entry, EdgeKind.NORMAL)])
            self._continue_after(end, key, level, jump)
        finally:
            self.contexts = saved
        return entry

    def _with_exit_copy(
        self, context: _With, level: int, key: object, jump: EdgeKind | None = None
    ) -> Point:
        existing = context.copies.get(key)
        if existing is not None:
            return existing
        saved = self.contexts
        self.contexts = saved[:level]
        try:
            exit_point = self._point(PointKind.WITH_EXIT, context.item)
            context.copies[key] = exit_point
            self._raises(
                exit_point, None, calls=self._exit_raises(context.item), awaits=context.is_async
            )
            end: Pending = [(exit_point, EdgeKind.NORMAL)]
            if context.suppresses and isinstance(key, tuple) and key[0] == "raise":
                context.after.append((exit_point, EdgeKind.NORMAL))
            self._continue_after(end, key, level, jump)
        finally:
            self.contexts = saved
        return exit_point

    def _continue_after(self, end: Pending, key: object, level: int, jump: EdgeKind | None) -> None:
        """Resume what was interrupted once a ``finally`` body or ``with`` exit
        has run: re-raise, or carry on with the jump."""
        if not end:
            return
        resume = self._enter(end, PointKind.RESUME, None)
        if isinstance(key, tuple) and key[0] == "raise":
            category = key[1]
            assert isinstance(category, Category)
            self._throw([(resume, _EDGE_FOR[category])], category, level)
        elif jump is not None:
            self._jump_from([(resume, jump)], jump, level)

    # -- statements --------------------------------------------------------

    def _body(self, statements: Sequence[cst.CSTNode], pending: Pending) -> Pending:
        for statement in statements:
            if not pending:
                break  # unreachable code
            pending = self._statement(statement, pending)
        return pending

    def _suite(self, suite: cst.BaseSuite, pending: Pending) -> Pending:
        # An indented block's statements, or a one-line suite's small ones.
        return self._body(suite.body, pending)

    def _statement(self, statement: cst.CSTNode, pending: Pending) -> Pending:
        if isinstance(statement, cst.SimpleStatementLine):
            return self._body(statement.body, pending)
        method = _STATEMENT_BUILDERS.get(type(statement))
        if method is not None:
            return method(self, statement, pending)
        return self._small(statement, pending)

    def _small(self, statement: cst.CSTNode, pending: Pending) -> Pending:
        point = self._enter(pending, PointKind.STATEMENT, statement)
        if isinstance(statement, cst.Raise):
            self._raise(point, statement)
            return []
        if isinstance(statement, cst.Assert):
            self._raises(point, statement, calls=True)
            return [(point, EdgeKind.NORMAL)]
        self._raises(point, statement)
        if isinstance(statement, cst.Return):
            self._jump(point, EdgeKind.RETURN)
            return []
        if isinstance(statement, cst.Break):
            self._jump(point, EdgeKind.BREAK)
            return []
        if isinstance(statement, cst.Continue):
            self._jump(point, EdgeKind.CONTINUE)
            return []
        return [(point, EdgeKind.NORMAL)]

    def _raise(self, point: Point, statement: cst.Raise) -> None:
        if statement.exc is None:
            categories = frozenset([Category.ERROR])
            for context in reversed(self.contexts):
                if isinstance(context, _Handler):
                    categories = context.catches
                    break
        else:
            self._raises(point, statement)  # the cause is evaluated too
            categories = frozenset([_raised_category(statement.exc)])
        for category in sorted(categories, key=lambda c: c.value):
            kind = EdgeKind.CANCEL if category is Category.CANCEL else EdgeKind.RAISE
            self._throw([(point, kind)], category)

    def _if(self, statement: cst.If, pending: Pending) -> Pending:
        after: Pending = []
        while True:  # a loop, not recursion: ``elif`` chains can be thousands long
            test = self._enter(pending, PointKind.BRANCH, statement.test)
            self._raises(test, statement.test)
            after += self._suite(statement.body, [(test, EdgeKind.TRUE)])
            pending = [(test, EdgeKind.FALSE)]
            orelse = statement.orelse
            if not isinstance(orelse, cst.If):
                break
            statement = orelse
        if orelse is None:
            return after + pending
        return after + self._suite(orelse.body, pending)

    def _while(self, statement: cst.While, pending: Pending) -> Pending:
        test = self._enter(pending, PointKind.BRANCH, statement.test)
        self._raises(test, statement.test)
        loop = _Loop(test)
        self.contexts.append(loop)
        try:
            end = self._suite(statement.body, [(test, EdgeKind.TRUE)])
        finally:
            self.contexts.pop()
        self._link(end, test)
        after = list(loop.breaks)
        if not always_true(statement.test):
            exhausted: Pending = [(test, EdgeKind.FALSE)]
            if statement.orelse is not None:
                exhausted = self._suite(statement.orelse.body, exhausted)
            after += exhausted
        return after

    def _for(self, statement: cst.For, pending: Pending) -> Pending:
        iterable = self._enter(pending, PointKind.EVAL, statement.iter)
        self._raises(iterable, statement.iter)
        is_async = statement.asynchronous is not None
        step = self._enter([(iterable, EdgeKind.NORMAL)], PointKind.LOOP_NEXT, statement)
        step_raises = self.policy is None or self.policy.loop_step(statement)
        self._raises(step, statement.target, calls=step_raises, awaits=is_async)
        loop = _Loop(step)
        self.contexts.append(loop)
        try:
            end = self._suite(statement.body, [(step, EdgeKind.TRUE)])
        finally:
            self.contexts.pop()
        self._link(end, step)
        exhausted: Pending = [(step, EdgeKind.FALSE)]
        if statement.orelse is not None:
            exhausted = self._suite(statement.orelse.body, exhausted)
        return list(loop.breaks) + exhausted

    def _with(self, statement: cst.With, pending: Pending) -> Pending:
        return self._with_items(statement, 0, pending)

    def _with_items(self, statement: cst.With, index: int, pending: Pending) -> Pending:
        """Enter item ``index``, build the rest inside it, and exit it."""
        if index == len(statement.items):
            return self._suite(statement.body, pending)
        item = statement.items[index]
        is_async = statement.asynchronous is not None
        enter = self._enter(pending, PointKind.WITH_ENTER, item)
        enter_raises = self.policy is None or self.policy.with_enter(item)
        self._raises(enter, item.item, calls=enter_raises, awaits=is_async)
        context = _With(item, is_async, _suppresses(item))
        self.contexts.append(context)
        try:
            end = self._with_items(statement, index + 1, [(enter, EdgeKind.NORMAL)])
        finally:
            self.contexts.pop()
        if end:
            exit_point = self._enter(end, PointKind.WITH_EXIT, item)
            self._raises(exit_point, None, calls=self._exit_raises(item), awaits=is_async)
            end = [(exit_point, EdgeKind.NORMAL)]
        return end + context.after

    def _try(self, statement: cst.Try | cst.TryStar, pending: Pending) -> Pending:
        context = _Try(statement, [])
        for handler in statement.handlers:
            point = self._point(PointKind.HANDLER, handler)
            catches, fully = _handler_catches(handler)
            context.handlers.append((point, catches, fully))
        self.contexts.append(context)
        try:
            end = self._suite(statement.body, pending)
            context.in_body = False
            if statement.orelse is not None:
                end = self._suite(statement.orelse.body, end)
            clauses = list(context.handlers)
            for position, (point, catches, _) in enumerate(clauses):
                if not point.predecessors:
                    continue
                self._raises(
                    point,
                    point.node.type
                    if isinstance(point.node, cst.ExceptHandler | cst.ExceptStarHandler)
                    else None,
                )
                self.contexts.append(_Handler(catches))
                try:
                    handled = self._suite(point.node.body, [(point, EdgeKind.NORMAL)])  # type: ignore[union-attr]
                finally:
                    self.contexts.pop()
                end += handled
                if isinstance(statement, cst.TryStar):
                    self._rest_of_group(context, clauses, position, handled)
        finally:
            self.contexts.pop()
        if statement.finalbody is None or not end:
            return end
        entry = self._enter(end, PointKind.FINALLY, statement.finalbody)
        return self._suite(statement.finalbody.body, [(entry, EdgeKind.NORMAL)])

    def _rest_of_group(
        self, context: _Try, clauses: list[_Clause], position: int, handled: Pending
    ) -> None:
        """After an ``except*`` clause, the rest of the exception group meets the
        later clauses, and what none of them matches is raised."""
        if not handled or any(Category.ERROR in fully for _, _, fully in clauses[: position + 1]):
            return
        resume = self._enter(handled, PointKind.RESUME, None)
        context.handlers, context.in_body = clauses[position + 1 :], True
        try:
            self._throw([(resume, EdgeKind.RAISE)], Category.ERROR)
        finally:
            context.handlers, context.in_body = clauses, False

    def _match(self, statement: cst.Match, pending: Pending) -> Pending:
        subject = self._enter(pending, PointKind.EVAL, statement.subject)
        self._raises(subject, statement.subject)
        after: Pending = []
        current: Pending = [(subject, EdgeKind.NORMAL)]
        for case in statement.cases:
            test = self._enter(current, PointKind.CASE, case)
            pattern_raises = _pattern_calls(case.pattern) and (
                self.policy is None or self.policy.pattern(case.pattern)
            )
            self._raises(test, case.guard, calls=pattern_raises)
            after += self._suite(case.body, [(test, EdgeKind.TRUE)])
            if case.guard is None and _irrefutable(case.pattern):
                current = []
                break
            current = [(test, EdgeKind.FALSE)]
        return after + current

    def _definition(self, statement: cst.FunctionDef | cst.ClassDef, pending: Pending) -> Pending:
        point = self._enter(pending, PointKind.DEFINITION, statement)
        evaluated: list[cst.CSTNode] = [d.decorator for d in statement.decorators]
        if isinstance(statement, cst.FunctionDef):
            evaluated += [p.default for p in _params(statement.params) if p.default is not None]
        else:
            evaluated += [arg.value for arg in (*statement.bases, *statement.keywords)]
        for node in evaluated:
            self._raises(point, node)
        return [(point, EdgeKind.NORMAL)]


def _params(params: cst.Parameters) -> Iterator[cst.Param]:
    yield from params.posonly_params
    yield from params.params
    if isinstance(params.star_arg, cst.Param):
        yield params.star_arg
    yield from params.kwonly_params
    if params.star_kwarg is not None:
        yield params.star_kwarg


_STATEMENT_BUILDERS: dict[type[cst.CSTNode], Callable[[_Builder, Any, Pending], Pending]] = {
    cst.If: _Builder._if,
    cst.While: _Builder._while,
    cst.For: _Builder._for,
    cst.With: _Builder._with,
    cst.Try: _Builder._try,
    cst.TryStar: _Builder._try,
    cst.Match: _Builder._match,
    cst.FunctionDef: _Builder._definition,
    cst.ClassDef: _Builder._definition,
}


def _irrefutable(pattern: cst.MatchPattern) -> bool:
    if isinstance(pattern, cst.MatchAs):
        return pattern.pattern is None or _irrefutable(pattern.pattern)
    if isinstance(pattern, cst.MatchOr):
        return any(_irrefutable(element.pattern) for element in pattern.patterns)
    return False


def _pattern_calls(pattern: cst.MatchPattern) -> bool:
    """Class patterns and value patterns run user code (``__eq__``,
    ``__match_args__`` lookups, ``isinstance``)."""
    return any(isinstance(n, cst.MatchClass | cst.MatchValue) for n in walk_scope(pattern))


def _suppresses(item: cst.WithItem) -> bool:
    expr = item.item
    if isinstance(expr, cst.Call):
        name = dotted_name(expr.func)
        return name is not None and name.rsplit(".", 1)[-1] == "suppress"
    return False


_FULL_CATCH: dict[str, frozenset[Category]] = {
    "BaseException": _ALL,
    "Exception": frozenset([Category.ERROR]),
    "CancelledError": frozenset([Category.CANCEL]),
    "GeneratorExit": frozenset([Category.BASE]),
}
_PARTIAL_CATCH: dict[str, frozenset[Category]] = {
    "KeyboardInterrupt": frozenset([Category.BASE]),
    "SystemExit": frozenset([Category.BASE]),
}


def _handler_catches(
    handler: cst.ExceptHandler | cst.ExceptStarHandler,
) -> tuple[frozenset[Category], frozenset[Category]]:
    """(categories the handler may catch, categories it surely catches)."""
    if handler.type is None:
        return _BARE_HANDLER
    kinds = handler.type.elements if isinstance(handler.type, cst.Tuple) else None
    expressions = [e.value for e in kinds] if kinds is not None else [handler.type]
    catches: set[Category] = set()
    fully: set[Category] = set()
    for expression in expressions:
        name = dotted_name(expression)
        last = name.rsplit(".", 1)[-1] if name else ""
        if last in _FULL_CATCH:
            catches |= _FULL_CATCH[last]
            fully |= _FULL_CATCH[last]
        elif last in _PARTIAL_CATCH:
            catches |= _PARTIAL_CATCH[last]
        else:
            catches.add(Category.ERROR)
    return frozenset(catches), frozenset(fully)


def _raised_category(exc: cst.BaseExpression) -> Category:
    target = exc.func if isinstance(exc, cst.Call) else exc
    name = dotted_name(target)
    last = name.rsplit(".", 1)[-1] if name else ""
    if last == "CancelledError":
        return Category.CANCEL
    if last in ("GeneratorExit", "KeyboardInterrupt", "SystemExit"):
        return Category.BASE
    return Category.ERROR


DEFAULT_MAX_POINTS = 20_000


def build(
    unit: cst.CSTNode,
    *,
    max_points: int = DEFAULT_MAX_POINTS,
    raises: RaisePolicy | None = None,
) -> Graph:
    """The graph of a ``FunctionDef``, ``Module``, ``ClassDef`` or ``Lambda``.

    ``raises`` tells which operations can raise (every one that runs code, by
    default): the caller knows those that realistically cannot.
    """
    builder = _Builder(unit, max_points, raises)
    start: Pending = [(builder.entry, EdgeKind.NORMAL)]
    if isinstance(unit, cst.Module):
        end = builder._body(unit.body, start)
    elif isinstance(unit, cst.FunctionDef | cst.ClassDef):
        end = builder._suite(unit.body, start)
    elif isinstance(unit, cst.Lambda):
        body = builder._enter(start, PointKind.EVAL, unit.body)
        builder._raises(body, unit.body)
        builder._jump(body, EdgeKind.RETURN)
        end = []
    else:
        raise TypeError(f"cannot build a graph of {type(unit).__name__}")
    builder._link(end, builder.exit)
    return _pruned(builder.graph)


def _pruned(graph: Graph) -> Graph:
    """The graph without points nothing reaches (handlers of a ``try`` whose
    body cannot raise, code after ``return``), renumbered in creation order."""
    reached = {id(graph.entry)}
    stack = [graph.entry]
    while stack:
        for target, _ in stack.pop().successors:
            if id(target) not in reached:
                reached.add(id(target))
                stack.append(target)
    keep = [p for p in graph.points if id(p) in reached or p is graph.exit or p is graph.raise_exit]
    for index, point in enumerate(keep):
        point.index = index
        point.predecessors = [(s, k) for s, k in point.predecessors if id(s) in reached]
    graph.points = keep
    return graph
