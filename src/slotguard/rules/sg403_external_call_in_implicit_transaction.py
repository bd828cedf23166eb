"""
## What it does
Finds slow external I/O (an HTTP request, an LLM call, an AWS call, a
subprocess, ...) made while a SQLAlchemy session (or engine connection) is
in the transaction its first query began, before its `commit()`,
`rollback()` or `close()`: directly, through a function of the same module,
or from the generator of a streaming response that runs while the request's
session is still open. DB-API connections count the same way: a psycopg2 or
psycopg connection from its first `execute` (on the connection or on one of
its cursors) to its `commit()`, `rollback()` or `close()`, and an asyncpg
connection between an `execute("BEGIN")` and its `COMMIT`.

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
`with session.begin():` block, the call is fine. A module that turns a
driver's autocommit on anywhere (`conn.autocommit = True`,
`connect(autocommit=True)`, a pool's `kwargs={"autocommit": True}`) has
its DB-API connections left alone, as has a cursor whose connection the
function does not show. A session passed to a
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
from typing import NamedTuple

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
    sql_effect,
)
from slotguard.rules.base import Context, Rule
from slotguard.rules.sg401_external_call_in_transaction import (
    chain_related,
    slow_phrase,
    slow_work_for,
)
from slotguard.syntax import assigned_names, dotted_name, last_name, walk, walk_scope

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
                begun = transactions.open_during(slow, work)
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
    where = f"`{begun.session}` is idle in transaction since line {context.line(query)}"
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
        receivers: dict[str, _Receiver | None],
    ) -> None:
        self.function = function
        self.graph = graph
        self.states = states
        self.queries = queries
        self.receivers = receivers
        self._points: dict[int, list[Point]] | None = None
        self._order: dict[int, int] | None = None

    def open_during(self, slow: SlowCall, work: SlowWork) -> list[Begun]:
        """The sessions in their transaction while the slow call runs. A
        session handed to the function that does the slow work stays in it
        only if that function does not end it first: a function of the
        module is followed from its parameter to where it makes the call; one
        of another module is trusted to (its own analysis judges it)."""
        begun = self.open_at(slow.node)
        call = slow.node
        if not begun or not (slow.chain or slow.elsewhere) or not isinstance(call, cst.Call):
            return begun
        return [
            each
            for each in begun
            if (given := _handed(call, each.session)) is None
            or (slow.chain and self._still_open(slow, work, each.session, *given))
        ]

    def _still_open(
        self, slow: SlowCall, work: SlowWork, session: str, position: int, arg: cst.Arg
    ) -> bool:
        """Whether the helper that got ``session`` as ``arg`` reaches its slow
        call with the transaction its caller began still open: followed hop by
        hop while each hands the session on; a function of another module that
        gets it judges it itself."""
        receiver = self.receivers.get(session)
        if receiver is None:
            return False
        for depth, hop in enumerate(slow.chain):
            helper = hop.function
            parameter = _parameter_name(helper, position, arg)
            if parameter is None:
                return False
            last = depth + 1 == len(slow.chain)
            inside = slow.origin if last else slow.chain[depth + 1].call
            given = receiver._replace(key=parameter)
            transactions = _Pass(helper, work, given=given, trusting=True).run()
            if transactions is None:
                return False
            held = [query for key, query in transactions.facts_at(inside) if key == parameter]
            if not held:
                return False
            if any(query != _GIVEN for query in held):
                # The helper queries it again first: where it knows the session's
                # type, its own analysis reports the call (one finding, there).
                typed = helper.scope.lookup(parameter)
                if typed is not None and autobegin_of(typed.name) is not None:
                    return False
            handed = _handed(inside, parameter)
            if handed is None:
                return True
            if last:
                return slow.elsewhere is None
            position, arg = handed
        return False

    def facts_at(self, node: cst.CSTNode) -> set[_Fact]:
        if self._points is None:
            self._points = self.graph.evaluating()
        facts: set[_Fact] = set()
        for point in self._points.get(id(node), ()):
            facts.update(self.states[point.index] or ())
        return facts

    def open_at(self, node: cst.CSTNode) -> list[Begun]:
        """The sessions whose transaction may be open when ``node`` is
        evaluated, earliest query first."""
        facts = self.facts_at(node)
        if len(facts) > 1 and self._order is None:
            nodes = self.function.scope.nodes
            self._order = {id(sub): index for index, sub in enumerate(nodes)}
        order = self._order or {}
        ordered = sorted(facts, key=lambda fact: (order.get(fact[1], 0), fact[0]))
        return [
            Begun(session, self.queries[query]) for session, query in ordered if query != _GIVEN
        ]


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


class _Receiver(NamedTuple):
    """What a call on one receiver can do to a transaction: a session, a
    connection, or a cursor (whose queries begin its connection's)."""

    key: str
    """The dotted name of the session or connection the transaction is on."""
    begins: tuple[str, ...]
    ends: tuple[str, ...]
    ended_by_block: tuple[str, ...]
    only_by_sql: bool


_GIVEN = 0
"""The query id of a transaction the caller began before handing the session."""


class _Pass:
    def __init__(
        self,
        function: FunctionInfo,
        work: SlowWork,
        given: _Receiver | None = None,
        trusting: bool = False,
        following: frozenset[tuple[int, str]] = frozenset(),
    ) -> None:
        self.function = function
        self.following = following
        """The (function, parameter) pairs being followed into, outermost
        first: recursion, or a chain deeper than ``_MAX_DEPTH``, counts as
        ends."""
        self.trusting = trusting
        """Whether a function of another module given the session leaves its
        transaction as it was (asked of a helper its caller's transaction
        reaches) rather than ending it."""
        self.scope = function.scope
        self.work = work
        self.queries: dict[int, cst.Call] = {}
        self._receivers: dict[str, _Receiver | None] = {}
        self._entry: _State = frozenset()
        if given is not None:
            # A parameter the caller handed in its transaction, whatever its annotation says.
            self._receivers[given.key] = given
            self._entry = frozenset({(given.key, _GIVEN)})

    def autobegin(self, receiver: cst.BaseExpression) -> _Receiver | None:
        """What the receiver's calls do to a transaction, if it has one."""
        key = dotted_name(receiver)
        if key is None:
            return None
        if key not in self._receivers:
            self._receivers[key] = self._receiver(key, receiver)
        return self._receivers[key]

    def _receiver(self, key: str, receiver: cst.BaseExpression) -> _Receiver | None:
        typed = self.scope.type_of(receiver)
        data = autobegin_of(typed.name) if typed is not None else None
        if data is not None:
            if data.autocommit and self._in_autocommit(data):
                return None
            return _Receiver(key, data.begins, data.ends, data.ended_by_block, data.only_by_sql)
        made = self._cursor_of(receiver)
        if made is None:
            return None
        connection = self.autobegin(made)
        if connection is None:
            return None
        typed = self.scope.type_of(made)
        data = autobegin_of(typed.name) if typed is not None else None
        if data is None or not data.cursor_begins:
            return None
        return _Receiver(connection.key, data.cursor_begins, (), (), data.only_by_sql)

    def _cursor_of(self, receiver: cst.BaseExpression) -> cst.BaseExpression | None:
        """The connection a cursor of this function was made by: its only
        binding is ``cur = conn.cursor()`` or ``with conn.cursor() as cur``."""
        if not isinstance(receiver, cst.Name):
            return None
        name = receiver.value
        made: list[cst.BaseExpression] = []
        for node in self.scope.of_type(cst.Assign, cst.WithItem):
            value: cst.BaseExpression | None = None
            if isinstance(node, cst.Assign):
                if any(name in assigned_names(target.target) for target in node.targets):
                    value = node.value
            elif (
                isinstance(node, cst.WithItem)
                and node.asname is not None
                and name in assigned_names(node.asname.name)
            ):
                value = node.item
            if value is None:
                continue
            inner = value.expression if isinstance(value, cst.Await) else value
            if not (isinstance(inner, cst.Call) and isinstance(inner.func, cst.Attribute)):
                return None
            made.append(inner.func.value)
            if inner.func.attr.value != "cursor" or len(made) > 1:
                return None
        return made[0] if made else None

    def _in_autocommit(self, data: Autobegin) -> bool:
        """Whether the module turns a driver's implicit transactions off
        anywhere (``conn.autocommit = True``, ``connect(autocommit=True)``,
        a pool's ``kwargs={"autocommit": True}``): its connections are then
        not judged, where slotguard cannot tell which ones it meant."""
        module = self.function.module
        return module.cached(
            f"turns-autocommit-on:{data.types[0]}",
            lambda: _turns_autocommit_on(module.tree, data.autocommit),
        )

    def run(self) -> ImplicitTransactions | None:
        try:
            graph = build(self.function.node)
        except GraphTooLarge:
            return None
        effects = [self._effects(point) for point in graph.points]
        states = self._solve(graph, effects)
        if states is None:
            return None
        return ImplicitTransactions(self.function, graph, states, self.queries, self._receivers)

    def may_begin(self) -> bool:
        """A query on a session, or a session passed to a function of the module."""
        for node in self.function.scope.of_type(cst.Call):
            assert isinstance(node, cst.Call)
            func = node.func
            if isinstance(func, cst.Attribute) and func.attr.value in AUTOBEGIN_METHODS:
                found = self.autobegin(func.value)
                if found is not None and _begins(found, func.attr.value, node) is not False:
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
            if found is not None and inner.func.attr.value in found.ended_by_block:
                effects.append((False, found.key, None))
        found = self.autobegin(inner)
        if found is not None:
            effects.append((False, found.key, None))
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
                    begins = _begins(found, func.attr.value, node)
                    if begins is False:
                        effects.append((False, found.key, None))
                    elif begins and not _is_item(node, entered):
                        self.queries[id(node)] = node
                        effects.append((True, found.key, node))
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
            key = found.key
            if helper is not None:
                use = _parameter_use(helper, position, arg, found, self)
            else:
                use = "none" if self.trusting else "ends"
            if use == "begins":
                self.queries[id(call)] = call
                effects.append((True, key, call))
            elif use == "ends":
                effects.append((False, key, None))
        return effects

    # -- solving ---------------------------------------------------------------

    def _solve(self, graph: Graph, effects: list[list[_Effect]]) -> list[_State | None] | None:
        states: list[_State | None] = [None] * len(graph.points)
        states[graph.entry.index] = self._entry
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


def _begins(receiver: _Receiver, method: str, call: cst.Call) -> bool | None:
    """True when the call may begin the receiver's transaction, False when it
    ends it, None when it does neither. A literal ``BEGIN`` or ``COMMIT``
    given to ``execute`` says which; a driver that commits each statement
    (asyncpg) begins one only that way."""
    if method in receiver.ends:
        return False
    if method not in receiver.begins:
        return None
    statement = _literal_sql(call)
    said = sql_effect(statement) if statement is not None else None
    if said is not None:
        return said
    return None if receiver.only_by_sql else True


def _literal_sql(call: cst.Call) -> str | None:
    if not call.args or call.args[0].keyword is not None:
        return None
    value = call.args[0].value
    if isinstance(value, cst.SimpleString | cst.ConcatenatedString):
        text = value.evaluated_value
        return text if isinstance(text, str) else None
    return None


def _turns_autocommit_on(tree: cst.Module, spellings: tuple[str, ...]) -> bool:
    """``x.autocommit = True``, ``connect(autocommit=True)``,
    ``{"autocommit": True}``, ``conn.set_autocommit(True)``,
    ``set_session(autocommit=True)``, ``ISOLATION_LEVEL_AUTOCOMMIT``."""
    for node in walk(tree):
        if isinstance(node, cst.Assign):
            for target in node.targets:
                if (
                    isinstance(target.target, cst.Attribute)
                    and target.target.attr.value in spellings
                    and not _false(node.value)
                ):
                    return True
        elif isinstance(node, cst.Arg) and node.keyword is not None:
            if node.keyword.value == "autocommit" and not _false(node.value):
                return True
        elif isinstance(node, cst.DictElement) and isinstance(node.key, cst.SimpleString):
            if node.key.evaluated_value == "autocommit" and not _false(node.value):
                return True
        elif isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
            method = node.func.attr.value
            if (
                method in spellings
                and method.startswith("set_")
                and not (node.args and _false(node.args[0].value))
            ):
                return True
        elif (
            isinstance(node, cst.Name | cst.Attribute)
            and last_name(node) == "ISOLATION_LEVEL_AUTOCOMMIT"
        ):
            return True
    return False


def _false(value: cst.BaseExpression) -> bool:
    return isinstance(value, cst.Name) and value.value in ("False", "None")


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


def _handed(call: cst.BaseExpression, name: str) -> tuple[int, cst.Arg] | None:
    """Where ``call`` passes the name ``name`` as an argument, if it does."""
    if not isinstance(call, cst.Call):
        return None
    for position, arg in enumerate(call.args):
        if dotted_name(arg.value) == name:
            return position, arg
    return None


def _parameter_name(helper: FunctionInfo, position: int, arg: cst.Arg) -> str | None:
    """The parameter of ``helper`` that an argument of a call binds."""
    if arg.keyword is not None:
        return arg.keyword.value
    if arg.star:
        return None
    params = helper.node.params
    positional = [*params.posonly_params, *params.params]
    if helper.is_method and positional:
        positional = positional[1:]
    return positional[position].name.value if position < len(positional) else None


def _parameter_use(
    helper: FunctionInfo, position: int, arg: cst.Arg, data: _Receiver, caller: _Pass
) -> str:
    """ "ends", "begins" or "none": what a function of the module does to the
    session passed as this argument. It ends the transaction only if no normal
    return of the function can leave it open (followed through the function,
    as the caller's own code is, trusting other modules as the caller does);
    anything it cannot tell counts as ends."""
    name = _parameter_name(helper, position, arg)
    if name is None:
        return "ends"
    key = (id(helper.node), name)
    if key in caller.following or len(caller.following) >= _MAX_DEPTH:
        return "ends"
    module = helper.module
    if not module.settled:
        return _followed_use(helper, name, data, caller)
    # Every call of the helper with a session asks the same: follow it once.
    memo = (
        f"sg403-parameter-use:{id(caller.work)}:{key}:{data}:{caller.trusting}:"
        f"{sorted(caller.following)}"
    )
    return module.cached(memo, lambda: _followed_use(helper, name, data, caller))


def _followed_use(helper: FunctionInfo, name: str, data: _Receiver, caller: _Pass) -> str:
    key = (id(helper.node), name)
    transactions = _Pass(
        helper,
        caller.work,
        given=data._replace(key=name),
        trusting=caller.trusting,
        following=caller.following | {key},
    ).run()
    if transactions is None:
        return "ends"
    left = transactions.states[transactions.graph.exit.index] or frozenset()
    held = {query for held_key, query in left if held_key == name}
    if not held:
        return "ends"
    return "begins" if held - {_GIVEN} else "none"


_MAX_DEPTH = 8


# -- which points evaluate which nodes -------------------------------------------
