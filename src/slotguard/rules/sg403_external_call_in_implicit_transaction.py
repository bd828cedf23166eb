"""
## What it does
Finds slow external I/O (an HTTP request, an LLM call, an AWS call, a
subprocess, ...) made while a SQLAlchemy session (or engine connection) is
in the transaction its first query began, before its `commit()`,
`rollback()` or `close()`: directly, through a function of the same module,
or from the generator of a streaming response that runs while the request's
session is still open.

## Why is this bad?
SQLAlchemy begins a transaction on a session's first query ("autobegin") and
keeps its connection checked out until the transaction ends. Nothing in the
code says "transaction", but the connection sits idle in transaction for as
long as the model, the payment provider or the S3 upload takes: it cannot
serve anyone else, and its row locks and snapshot are held meanwhile. Under
load every connection of the pool waits on the slow service, and requests
that only need the database time out.

The rule follows each session along the paths of the function: after
`commit()`, `rollback()` or `close()`, or after the end of a
`with session.begin():` block, the call is fine. A session passed to a
function of another module is assumed to come back with its transaction
ended, to stay quiet where slotguard cannot see. A call inside an explicit
transaction block is SG401's business.

## Example
```python
async def generate_bio(user_id: int, db: AsyncSession = Depends(get_db)):
    user = await db.get(User, user_id)
    completion = await llm.chat.completions.create(model=MODEL, messages=prompt(user))
    user.bio = completion.choices[0].message.content
    await db.commit()
```

## Use instead
```python
async def generate_bio(user_id: int, db: AsyncSession = Depends(get_db)):
    user = await db.get(User, user_id)
    name = user.name
    await db.rollback()  # the connection goes back to the pool
    completion = await llm.chat.completions.create(model=MODEL, messages=prompt(name))
    user = await db.get(User, user_id)
    user.bio = completion.choices[0].message.content
    await db.commit()
```

## Fix safety
There is no automatic fix: ending the transaction earlier changes what the
code sees of concurrent writes, and only the author can say whether that is
right.

## At runtime
With `idle-threshold` in `[tool.slotguard.runtime]`, the pytest plugin reports
a transaction idle past it; `slotguard.runtime.install(threshold=30)` logs,
while it waits, where the code holding the transaction waits: the external
call.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import libcst as cst

from slotguard.analysis.infer import FunctionInfo, ModuleInfo
from slotguard.analysis.ownership import in_a_test
from slotguard.analysis.slow_work import RegionKind, SlowCall, SlowKind, SlowWork
from slotguard.flow.cfg import Graph, GraphTooLarge, Point, PointKind, build
from slotguard.model.external import (
    AUTOBEGIN_METHODS,
    STREAMING_RESPONSE_NAMES,
    Autobegin,
    autobegin_of,
)
from slotguard.rules.base import Context, Rule
from slotguard.rules.sg401_external_call_in_transaction import (
    chain_related,
    slow_phrase,
    slow_work_for,
)
from slotguard.syntax import assigned_names, dotted_name, last_name, walk_scope

_MAX_ITERATIONS = 100_000


class ExternalCallInImplicitTransaction(Rule):
    code = "SG403"
    name = "external-call-in-implicit-transaction"
    summary = "Slow external I/O runs while a session's implicit transaction holds its connection."

    def check(self, context: Context) -> None:
        work = slow_work_for(context)
        module = context.module
        reported: set[int] = set()
        for function in module.functions:
            if in_a_test(function) or not sessions_may_begin(module, function, work):
                continue
            outside = [
                slow
                for slow in work.in_function(function, everywhere=True)
                if slow.kind is SlowKind.EXTERNAL and slow.innermost(RegionKind.TRANSACTION) is None
            ]
            streams = list(_streaming_generators(work, function))
            if not outside and not streams:
                continue
            transactions = implicit_transactions(module, function, work)
            if transactions is None:
                continue
            for slow in outside:
                begun = transactions.open_at(slow.node)
                if begun and id(slow.node) not in reported:
                    reported.add(id(slow.node))
                    _report(context, slow, begun[0], None)
            for response, generator in streams:
                begun = transactions.open_at(response)
                if not begun:
                    continue
                for slow in work.in_function(generator, everywhere=True):
                    if (
                        slow.kind is SlowKind.EXTERNAL
                        and slow.innermost(RegionKind.TRANSACTION) is None
                        and id(slow.node) not in reported
                    ):
                        reported.add(id(slow.node))
                        _report(context, slow, begun[0], (response, generator))


def _report(
    context: Context,
    slow: SlowCall,
    begun: Begun,
    streaming: tuple[cst.Call, FunctionInfo] | None,
) -> None:
    query = begun.query
    where = f"`{begun.session}` is idle in the transaction begun at line {context.line(query)}"
    related = [
        (
            query,
            f"`{begun.session}`'s transaction begins here; its connection stays checked out "
            "until the call returns: commit or roll back before the call, or make it before "
            "the first query",
        )
    ]
    if streaming is not None:
        response, generator = streaming
        where = f"`{begun.session}` is idle in a transaction while a response streams"
        related.append(
            (
                response,
                f"the response streams what `{generator.name}()` produces with the session "
                "still open",
            )
        )
    context.report(
        slow.node,
        f"{slow_phrase(context, slow)} while {where}",
        related=[*related, *chain_related(context, slow)],
    )


def _streaming_generators(
    work: SlowWork, function: FunctionInfo
) -> Iterator[tuple[cst.Call, FunctionInfo]]:
    """``StreamingResponse(body())`` where ``body`` is a generator of this module."""
    for node in function.scope.of_type(cst.Call):
        assert isinstance(node, cst.Call)
        if not node.args:
            continue
        if last_name(node.func) not in STREAMING_RESPONSE_NAMES:
            continue
        called = work.classes.call_name(node.func, function)
        if called is None or not work.calls.is_streaming_response(called):
            continue
        content = node.args[0].value
        if isinstance(content, cst.Call):
            generator = work.helper(content.func, function)
            if generator is not None and generator.is_generator:
                yield node, generator


# -- the implicit-transaction pass ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Begun:
    session: str
    """The dotted name of the session (``db``, ``self.session``)."""
    query: cst.Call
    """The call that began its transaction."""


# An effect: (begins, session key, the call that begins it); ends have no call.
_Effect = tuple[bool, str, cst.Call | None]
_Fact = tuple[str, int]
_State = frozenset[_Fact]


class ImplicitTransactions:
    """Where each session of a function may be in its implicit transaction."""

    def __init__(
        self,
        function: FunctionInfo,
        graph: Graph,
        states: list[_State | None],
        queries: dict[int, cst.Call],
    ) -> None:
        self.function = function
        self.graph = graph
        self.states = states
        self.queries = queries
        self._points: dict[int, list[Point]] | None = None
        self._order: dict[int, int] | None = None

    def open_at(self, node: cst.CSTNode) -> list[Begun]:
        """The sessions whose transaction may be open when ``node`` is
        evaluated, earliest query first."""
        if self._points is None:
            self._points = self.graph.evaluating()
        facts: set[_Fact] = set()
        for point in self._points.get(id(node), ()):
            facts.update(self.states[point.index] or ())
        if len(facts) > 1 and self._order is None:
            nodes = self.function.scope.nodes
            self._order = {id(sub): index for index, sub in enumerate(nodes)}
        order = self._order or {}
        ordered = sorted(facts, key=lambda fact: (order.get(fact[1], 0), fact[0]))
        return [Begun(session, self.queries[query]) for session, query in ordered]


@dataclass(slots=True)
class _Function:
    may_begin: bool
    transactions: ImplicitTransactions | None = None
    solved: bool = False


def _cached(module: ModuleInfo, function: FunctionInfo, work: SlowWork) -> _Function:
    functions: dict[int, _Function] = module.cached("implicit-transactions", dict)
    found = functions.get(id(function))
    if found is None:
        found = _Function(_Pass(function, work).may_begin())
        functions[id(function)] = found
    return found


def sessions_may_begin(module: ModuleInfo, function: FunctionInfo, work: SlowWork) -> bool:
    """Whether some session of the function may begin a transaction in it:
    a cheap test before ``implicit_transactions``."""
    return _cached(module, function, work).may_begin


def implicit_transactions(
    module: ModuleInfo, function: FunctionInfo, work: SlowWork
) -> ImplicitTransactions | None:
    """The pass over one function, shared by SG402 and SG403; None when no
    session of it ever begins a transaction (or its graph is too large)."""
    found = _cached(module, function, work)
    if found.may_begin and not found.solved:
        found.transactions = _Pass(function, work).run()
        found.solved = True
    return found.transactions


class _Pass:
    def __init__(self, function: FunctionInfo, work: SlowWork) -> None:
        self.function = function
        self.scope = function.scope
        self.work = work
        self.queries: dict[int, cst.Call] = {}
        self._kinds: dict[str, Autobegin | None] = {}

    def autobegin(self, receiver: cst.BaseExpression) -> tuple[str, Autobegin] | None:
        """The session key and its autobegin data, if ``receiver`` is one."""
        key = dotted_name(receiver)
        if key is None:
            return None
        if key not in self._kinds:
            typed = self.scope.type_of(receiver)
            self._kinds[key] = autobegin_of(typed.name) if typed is not None else None
        found = self._kinds[key]
        return (key, found) if found is not None else None

    def run(self) -> ImplicitTransactions | None:
        try:
            graph = build(self.function.node)
        except GraphTooLarge:
            return None
        effects = [self._effects(point) for point in graph.points]
        states = self._solve(graph, effects)
        if states is None:
            return None
        return ImplicitTransactions(self.function, graph, states, self.queries)

    def may_begin(self) -> bool:
        """A query on a session, or a session passed to a function of the module."""
        for node in self.function.scope.of_type(cst.Call):
            assert isinstance(node, cst.Call)
            func = node.func
            if isinstance(func, cst.Attribute) and func.attr.value in AUTOBEGIN_METHODS:
                found = self.autobegin(func.value)
                if found is not None and func.attr.value in found[1].begins:
                    return True
            if (
                node.args
                and self.work.helper(func, self.function) is not None
                and any(self.autobegin(arg.value) for arg in node.args)
            ):
                return True
        return False

    # -- effects ---------------------------------------------------------------

    def _effects(self, point: Point) -> list[_Effect]:
        node = point.node
        kind = point.kind
        effects: list[_Effect] = []
        if node is None:
            return effects
        if kind is PointKind.STATEMENT:
            self._expression_effects(node, effects)
            effects += [(False, name, None) for name in _rebound(node)]
        elif kind in (PointKind.BRANCH, PointKind.EVAL):
            self._expression_effects(node, effects)
        elif kind is PointKind.WITH_ENTER and isinstance(node, cst.WithItem):
            self._expression_effects(node.item, effects, entered=node.item)
            if node.asname is not None:
                effects += [(False, name, None) for name in assigned_names(node.asname.name)]
        elif kind is PointKind.WITH_EXIT and isinstance(node, cst.WithItem):
            effects += self._exit_effects(node)
        elif kind is PointKind.LOOP_NEXT and isinstance(node, cst.For):
            effects += [(False, name, None) for name in assigned_names(node.target)]
        elif kind is PointKind.CASE and isinstance(node, cst.MatchCase) and node.guard:
            self._expression_effects(node.guard, effects)
        return effects

    def _exit_effects(self, item: cst.WithItem) -> list[_Effect]:
        """A ``with`` block that closes a session, or commits its ``begin()``."""
        effects: list[_Effect] = []
        expression = item.item
        inner = expression.expression if isinstance(expression, cst.Await) else expression
        if isinstance(inner, cst.Call) and isinstance(inner.func, cst.Attribute):
            found = self.autobegin(inner.func.value)
            if found is not None and inner.func.attr.value in found[1].ended_by_block:
                effects.append((False, found[0], None))
        found = self.autobegin(inner)
        if found is not None:
            effects.append((False, found[0], None))
        if item.asname is not None:
            effects += [(False, name, None) for name in assigned_names(item.asname.name)]
        return effects

    def _expression_effects(
        self,
        expression: cst.CSTNode,
        effects: list[_Effect],
        entered: cst.BaseExpression | None = None,
    ) -> None:
        for node in walk_scope(expression):
            if not isinstance(node, cst.Call):
                continue
            func = node.func
            if isinstance(func, cst.Attribute):
                found = self.autobegin(func.value)
                if found is not None:
                    key, data = found
                    method = func.attr.value
                    if method in data.ends:
                        effects.append((False, key, None))
                    elif method in data.begins and not _is_item(node, entered):
                        self.queries[id(node)] = node
                        effects.append((True, key, node))
                    continue
            effects += self._passed(node)

    def _passed(self, call: cst.Call) -> list[_Effect]:
        """A session passed to another function: what that function does to
        it, when it is of this module; else assume it ends the transaction."""
        effects: list[_Effect] = []
        helper = self.work.helper(call.func, self.function)
        for position, arg in enumerate(call.args):
            found = self.autobegin(arg.value)
            if found is None:
                continue
            key = found[0]
            use = _parameter_use(helper, position, arg, found[1]) if helper else "ends"
            if use == "begins":
                self.queries[id(call)] = call
                effects.append((True, key, call))
            elif use == "ends":
                effects.append((False, key, None))
        return effects

    # -- solving ---------------------------------------------------------------

    def _solve(self, graph: Graph, effects: list[list[_Effect]]) -> list[_State | None] | None:
        states: list[_State | None] = [None] * len(graph.points)
        states[graph.entry.index] = frozenset()
        worklist = [graph.entry]
        queued = {graph.entry.index}
        iterations = 0
        while worklist:
            iterations += 1
            if iterations > _MAX_ITERATIONS:
                return None
            point = worklist.pop()
            queued.discard(point.index)
            state = states[point.index]
            assert state is not None
            normal = _apply(state, effects[point.index], begins=True)
            exceptional = _apply(state, effects[point.index], begins=False)
            for target, edge in point.successors:
                out = exceptional if edge.exceptional else normal
                current = states[target.index]
                merged = out if current is None else current | out
                if current is None or merged != current:
                    states[target.index] = merged
                    if target.index not in queued:
                        queued.add(target.index)
                        worklist.append(target)
        return states


def _apply(state: _State, effects: list[_Effect], *, begins: bool) -> _State:
    """The state after a point's effects; along an exception edge its
    queries have not begun anything, but its ends have happened."""
    if not effects:
        return state
    facts = set(state)
    for is_begin, key, call in effects:
        if is_begin:
            if begins and call is not None:
                facts.add((key, id(call)))
        else:
            facts = {fact for fact in facts if not _within(fact[0], key)}
    return frozenset(facts)


def _within(session: str, name: str) -> bool:
    """``db`` and ``db.x`` are gone when ``db`` is ended or rebound."""
    return session == name or session.startswith(name + ".")


def _is_item(call: cst.Call, entered: cst.BaseExpression | None) -> bool:
    """``with session.begin():`` is an explicit transaction block, SG401's."""
    if entered is None:
        return False
    inner = entered.expression if isinstance(entered, cst.Await) else entered
    return inner is call


def _rebound(statement: cst.CSTNode) -> list[str]:
    if isinstance(statement, cst.Assign):
        return [name for target in statement.targets for name in assigned_names(target.target)]
    if isinstance(statement, cst.AnnAssign) and statement.value is not None:
        return list(assigned_names(statement.target))
    if isinstance(statement, cst.Del):
        return list(assigned_names(statement.target))
    return []


def _parameter_use(helper: FunctionInfo, position: int, arg: cst.Arg, data: Autobegin) -> str:
    """ "ends", "begins" or "none": what a function of the module does to the
    session passed as this argument; anything it cannot tell counts as ends."""
    params = helper.node.params
    positional = [*params.posonly_params, *params.params]
    if helper.is_method and positional:
        positional = positional[1:]
    name: str | None = None
    if arg.keyword is not None:
        name = arg.keyword.value
    elif position < len(positional):
        name = positional[position].name.value
    if name is None:
        return "ends"
    begins = False
    for node in helper.scope.of_type(cst.Call):
        if isinstance(node, cst.Call):
            func = node.func
            if (
                isinstance(func, cst.Attribute)
                and isinstance(func.value, cst.Name)
                and func.value.value == name
            ):
                if func.attr.value in data.ends:
                    return "ends"
                begins = begins or func.attr.value in data.begins
                continue
            if any(isinstance(a.value, cst.Name) and a.value.value == name for a in node.args):
                return "ends"
    return "begins" if begins else "none"


# -- which points evaluate which nodes -------------------------------------------
