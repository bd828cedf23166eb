"""Where a module does slow work, and what it holds meanwhile (SG4).

For each function: its external calls, sleeps and unbounded waits
(``slotguard.model.external`` says which calls those are), with the lexical
regions they run in: transaction blocks (``session.begin()``,
``conn.transaction()``, ``transaction.atomic()``, as ``with`` items or as
decorators) and blocks that hold a checked-out connection
(``async with pool.acquire() as conn``). A call of a function of the same
module that does slow work itself counts as that slow work, followed
transitively up to a bound, and keeps the chain for messages.

A call inside the arguments of a scheduling call (``asyncio.create_task``,
``background_tasks.add_task``) runs later, outside the region: it is not
counted. A call of an ``async def`` counts when it is awaited. A wait inside
``asyncio.wait_for(..., timeout)`` or ``async with asyncio.timeout(...)`` is
bounded and not counted.

To name calls, the classes of values are inferred flow-insensitively, as the
resource model infers types (``slotguard.analysis.infer``): from the call that
created them (``client = httpx.AsyncClient()``), ``with ... as`` bindings,
annotations (``queue: asyncio.Queue[Job]``) and ``self`` attributes.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import libcst as cst

from slotguard.analysis.infer import FunctionInfo, ModuleInfo, assignment_names
from slotguard.analysis.lifetimes import SCHEDULERS
from slotguard.model.external import (
    AUTOBEGIN_ENDS,
    AUTOBEGIN_METHODS,
    AWAITED_WAITS,
    CONNECTING_CONSTRUCTORS,
    STUB_CHANNELS,
    STUB_CLASS,
    STUB_SUFFIX,
    Bound,
    SlowCalls,
    WaitKind,
    sql_effect,
)
from slotguard.model.vocabulary import Kind
from slotguard.syntax import (
    SCOPE_NODES,
    assigned_names,
    children,
    dotted_name,
    last_name,
    string_value,
    walk_scope,
)

MAX_CHAIN = 4
"""How many calls of same-module functions a chain may go through."""

CONNECTION_KINDS = frozenset([Kind.POOLED_CONNECTION, Kind.ENGINE_CONNECTION])
"""Kinds that hold a pool's connection from the moment they are acquired. A
session holds one only from its first query (see ``external.AUTOBEGIN``); a
direct connection is no pool's, and often waits on purpose (``LISTEN``)."""


class RegionKind(enum.Enum):
    TRANSACTION = "transaction"
    CONNECTION = "connection"


@dataclass(frozen=True, slots=True)
class Region:
    kind: RegionKind
    node: cst.BaseExpression
    """The ``with`` item's expression, or the decorator."""
    name: str | None = None
    """The name a connection region binds (``conn``)."""


class SlowKind(enum.Enum):
    EXTERNAL = "external"
    SLEEP = "sleep"
    WAIT = "wait"


@dataclass(frozen=True, slots=True)
class Hop:
    """A call of a same-module function on the way to the slow call."""

    call: cst.Call
    function: FunctionInfo


@dataclass(frozen=True, slots=True)
class SlowCall:
    node: cst.BaseExpression
    """Where the function does it: the slow call itself, or the call of the
    helper that does it."""
    kind: SlowKind
    what: str
    """"an HTTP request", "a sleep", "a wait without a timeout"."""
    origin: cst.BaseExpression
    """The slow call itself, in the last function of the chain."""
    chain: tuple[Hop, ...] = ()
    regions: tuple[Region, ...] = ()
    """Enclosing regions, outermost first."""
    elsewhere: str | None = None
    """The qualified name of the function of another module of the project
    that makes it, called at ``origin`` (its summary says so)."""

    def innermost(self, kind: RegionKind) -> Region | None:
        for region in reversed(self.regions):
            if region.kind is kind:
                return region
        return None


_WHAT = {
    WaitKind.SLEEP: (SlowKind.SLEEP, "a sleep"),
    WaitKind.WAIT: (SlowKind.WAIT, "a wait without a timeout"),
}


@dataclass(frozen=True, slots=True)
class _Context:
    regions: tuple[Region, ...] = ()
    bounded: bool = False
    scheduled: bool = False
    awaited: bool = False
    everywhere: bool = False
    """Look for slow calls outside regions too (else only regions are sought)."""


_NO_REGION_INSIDE = (cst.BaseExpression, cst.SimpleStatementLine, cst.SimpleStatementSuite)


def _concrete(*bases: type) -> frozenset[type]:
    """The classes derived from ``bases`` (themselves included), so that the
    walk tests ``type(node) in ...``: ``isinstance`` against libcst's abstract
    bases goes through ``abc`` and costs several times more."""
    found: set[type] = set()
    pending = list(bases)
    while pending:
        cls = pending.pop()
        if cls not in found:
            found.add(cls)
            pending.extend(cls.__subclasses__())
    return frozenset(found)


_NO_REGION_TYPES = _concrete(*_NO_REGION_INSIDE)
_SCOPE_TYPES = _concrete(*SCOPE_NODES)

Summarise = Callable[[FunctionInfo], dict[SlowKind, SlowCall]]

_SCHEDULING = frozenset(
    {scheduler.name.rsplit(".", 1)[-1] for scheduler in SCHEDULERS} | {"Process"}
)
"""Calls (by their last name) that schedule their arguments to run later,
elsewhere (the SG3 table of schedulers, and processes): a call inside them
runs outside the region, which is SG302's business, not SG4's."""


def slow_work(module: ModuleInfo, calls: SlowCalls) -> SlowWork:
    """The analysis of a module, shared by the SG4 rules."""
    return module.cached(f"slow-work:{id(calls)}", lambda: SlowWork(module, calls))


class SlowWork:
    def __init__(self, module: ModuleInfo, calls: SlowCalls) -> None:
        self.module = module
        self.calls = calls
        self.classes = Classes(module, calls)
        self._in_regions: dict[int, list[SlowCall]] = {}
        self._everywhere: dict[int, list[SlowCall]] = {}
        self._summaries: dict[int, dict[SlowKind, SlowCall]] = {}
        self._nested: dict[int, dict[str, FunctionInfo]] = {}
        for function in module.functions:
            if function.parent is not None:
                self._nested.setdefault(id(function.parent), {})[function.name] = function

    def in_function(
        self, function: FunctionInfo | None, *, everywhere: bool = False
    ) -> list[SlowCall]:
        """The slow work of a function's own body (None: the module body):
        inside its regions, or ``everywhere`` in it."""
        key = id(function)
        found = self._everywhere.get(key)
        if found is not None:
            return found if everywhere else [slow for slow in found if slow.regions]
        cache = self._everywhere if everywhere else self._in_regions
        found = cache.get(key)
        if found is None:
            start = _Context(everywhere=everywhere)
            if function is None:
                found = list(self._walk(self.module.tree, None, start, self.summary))
            else:
                start = replace(start, regions=self._decorator_regions(function))
                found = list(self._walk(function.node.body, function, start, self.summary))
            cache[key] = found
        return found

    # -- regions ------------------------------------------------------------

    def _decorator_regions(self, function: FunctionInfo) -> tuple[Region, ...]:
        """``@transaction.atomic`` and ``@database.transaction()``: the whole
        body runs in the transaction."""
        module = self.module
        outer = function.parent.scope if function.parent is not None else module.module_scope
        regions = []
        for decorator in function.node.decorators:
            expression = decorator.decorator
            if isinstance(expression, cst.Call):
                opens = outer.transaction_of(expression) is not None
            else:
                name = dotted_name(expression)
                qualified = module.qualify(name) if name is not None else None
                constructor = module.model.constructor(qualified) if qualified else None
                opens = (
                    constructor is not None
                    and module.model.type(constructor.produces).kind is Kind.TRANSACTION
                )
            if opens:
                regions.append(Region(RegionKind.TRANSACTION, expression))
        return tuple(regions)

    def _entered(
        self, item: cst.WithItem, context: _Context, function: FunctionInfo | None
    ) -> _Context:
        """The context of what follows a ``with`` item, inside its block."""
        scope = function.scope if function is not None else self.module.module_scope
        expression = item.item
        if scope.transaction_of(expression) is not None:
            region = Region(RegionKind.TRANSACTION, expression)
            return replace(context, regions=(*context.regions, region))
        produced = scope.produced(expression)
        if produced is not None and produced.type.kind in CONNECTION_KINDS:
            name = None
            if item.asname is not None and isinstance(item.asname.name, cst.Name):
                name = item.asname.name.value
            region = Region(RegionKind.CONNECTION, expression, name)
            return replace(context, regions=(*context.regions, region))
        if isinstance(expression, cst.Call):
            called = self.classes.call_name(expression.func, function)
            bound = self.calls.bounding_context(called) if called else None
            if bound is not None and _has_bound(expression, bound):
                return replace(context, bounded=True)
        return context

    # -- the walk ------------------------------------------------------------

    def _walk(
        self,
        root: cst.CSTNode,
        function: FunctionInfo | None,
        start: _Context,
        summarise: Summarise,
    ) -> Iterator[SlowCall]:
        stack: list[tuple[cst.CSTNode, _Context]] = [(root, start)]
        while stack:
            node, context = stack.pop()
            kind = type(node)
            if node is not root and kind in _SCOPE_TYPES:
                continue
            if not (context.regions or context.everywhere) and kind in _NO_REGION_TYPES:
                # Outside regions only ``with`` statements matter, and no
                # expression or simple statement holds one.
                continue
            pending: list[tuple[cst.CSTNode, _Context]]
            if type(node) is cst.With:
                pending = []
                inner = context
                for item in node.items:
                    pending.append((item.item, inner))
                    inner = self._entered(item, inner, function)
                pending.append((node.body, inner))
            elif type(node) is cst.Call:
                yield from self._classify(node, context, function, summarise)
                pending = self._call_children(node, context, function)
            elif type(node) is cst.Await:
                yield from self._awaited(node, context, function)
                pending = [(node.expression, replace(context, awaited=True))]
            elif type(node) is cst.For and node.asynchronous is not None:
                pending = [
                    (child, replace(context, awaited=True) if child is node.iter else context)
                    for child in children(node)
                ]
            else:
                pending = [(child, context) for child in children(node)]
            pending.reverse()
            stack.extend(pending)

    def _call_children(
        self, call: cst.Call, context: _Context, function: FunctionInfo | None
    ) -> list[tuple[cst.CSTNode, _Context]]:
        pending: list[tuple[cst.CSTNode, _Context]] = [(call.func, context)]
        if last_name(call.func) in _SCHEDULING:
            scheduled = replace(context, scheduled=True)
            pending += [(arg, scheduled) for arg in call.args]
            return pending
        called = self.classes.call_name(call.func, function)
        bound = self.calls.bounding_call(called) if called else None
        for position, arg in enumerate(call.args):
            if bound is not None and position == 0 and _has_bound(call, bound):
                pending.append((arg, replace(context, bounded=True)))
            else:
                pending.append((arg, context))
        return pending

    def _classify(
        self,
        call: cst.Call,
        context: _Context,
        function: FunctionInfo | None,
        summarise: Summarise,
    ) -> Iterator[SlowCall]:
        if context.scheduled:
            return
        called = self.classes.call_name(call.func, function)
        if called is not None:
            wait = self.calls.wait(called)
            if wait is not None:
                if wait.kind is WaitKind.SLEEP:
                    if not _sleeps_zero(call):
                        kind, what = _WHAT[wait.kind]
                        yield SlowCall(call, kind, what, call, (), context.regions)
                elif not (
                    context.bounded
                    or _given(call, wait.timeout)
                    or _literal_false(call, wait.block)
                ):
                    kind, what = _WHAT[wait.kind]
                    yield SlowCall(call, kind, what, call, (), context.regions)
                return
            external = self.calls.external(called)
            if external is not None:
                yield SlowCall(call, SlowKind.EXTERNAL, external.what, call, (), context.regions)
                return
            connecting = CONNECTING_CONSTRUCTORS.get(called)
            if connecting is not None and _given(call, connecting[0]):
                yield SlowCall(call, SlowKind.EXTERNAL, connecting[1], call, (), context.regions)
                return
        helper = self.helper(call.func, function)
        if helper is None:
            yield from self._elsewhere(call, called, context)
            return
        if helper.is_async and not context.awaited:
            return
        for kind, inner in summarise(helper).items():
            if (kind is SlowKind.WAIT and context.bounded) or len(inner.chain) >= MAX_CHAIN:
                continue
            chain = (Hop(call, helper), *inner.chain)
            yield SlowCall(
                call, kind, inner.what, inner.origin, chain, context.regions, inner.elsewhere
            )

    def _elsewhere(
        self, call: cst.Call, called: str | None, context: _Context
    ) -> Iterator[SlowCall]:
        """A function or method of another module of the project whose
        summary says it makes a slow external call."""
        if called is None or not self.module.index:
            return
        symbol = self.module.index.symbol(called)
        if symbol is None or symbol.slow is None or (symbol.awaited and not context.awaited):
            return
        yield SlowCall(
            call, SlowKind.EXTERNAL, symbol.slow, call, (), context.regions, elsewhere=called
        )

    def _awaited(
        self, node: cst.Await, context: _Context, function: FunctionInfo | None
    ) -> Iterator[SlowCall]:
        """``await future`` for a future nobody bounds."""
        if context.scheduled or context.bounded or isinstance(node.expression, cst.Call):
            return
        if self.classes.of(node.expression, function) in AWAITED_WAITS:
            kind, what = _WHAT[WaitKind.WAIT]
            yield SlowCall(node, kind, what, node, (), context.regions)

    # -- same-module helpers --------------------------------------------------

    def helper(
        self, func: cst.BaseExpression, function: FunctionInfo | None
    ) -> FunctionInfo | None:
        """The function of this module a call calls: a nested function, a
        module-level one, a method of the same class through ``self``, or a
        method of a class of the module called on an instance of it
        (``Summariser(llm).run()``, ``self.notifier.send()``)."""
        if isinstance(func, cst.Name):
            outer = function
            while outer is not None:
                nested = self._nested.get(id(outer), {}).get(func.value)
                if nested is not None:
                    return nested
                outer = outer.parent
            return self.module.function_named(func.value)
        if not isinstance(func, cst.Attribute):
            return None
        if isinstance(func.value, cst.Name) and function is not None:
            method = _outermost(function)
            if method.cls is not None and func.value.value == method.self_name:
                return method.cls.methods.get(func.attr.value)
        scope = function.scope if function is not None else self.module.module_scope
        called = scope.method_called(func)
        if isinstance(called, FunctionInfo):
            return called
        qualified = self.classes.call_name(func, function)
        if qualified is not None:
            owner, _, name = qualified.rpartition(".")
            cls = self.module.own_class(owner)
            if cls is not None:
                return cls.methods.get(name)
        return None

    def summary(self, function: FunctionInfo) -> dict[SlowKind, SlowCall]:
        """For each kind, the slow call the function makes most directly
        (the first of those), itself or through its own helpers."""
        return self._summary(function, ())[0]

    def _summary(
        self, function: FunctionInfo, stack: tuple[int, ...]
    ) -> tuple[dict[SlowKind, SlowCall], bool]:
        """(summary, complete): a summary cut short by the bound or a cycle
        is incomplete, and not remembered."""
        key = id(function)
        if key in self._summaries:
            return self._summaries[key], True
        if key in stack or len(stack) >= MAX_CHAIN:
            return {}, False
        inner_stack = (*stack, key)
        complete = True

        def summarise(helper: FunctionInfo) -> dict[SlowKind, SlowCall]:
            nonlocal complete
            found, helper_complete = self._summary(helper, inner_stack)
            complete = complete and helper_complete
            return found

        found: dict[SlowKind, SlowCall] = {}
        start = _Context(everywhere=True)
        ended = _after_ending_a_transaction(function)
        for slow in self._walk(function.node.body, function, start, summarise):
            if slow.kind is SlowKind.SLEEP and not slow.chain and id(slow.node) in ended:
                continue
            known = found.get(slow.kind)
            if known is None or len(slow.chain) < len(known.chain):
                found[slow.kind] = replace(slow, regions=())
        if complete:
            self._summaries[key] = found
        return found, complete


def _after_ending_a_transaction(function: FunctionInfo) -> set[int]:
    """The calls of a helper that come after a statement of the same block
    which ends a parameter's transaction (``session.rollback()``, then
    ``time.sleep(...)`` before a retry): a caller's session handed to the
    helper holds no connection while such a sleep runs."""
    params = function.node.params
    names = {param.name.value for param in (*params.posonly_params, *params.params)}
    if not names:
        return set()
    for node in walk_scope(function.node.body):
        # ``connection, cursor = session``: the parameter under other names.
        if (
            isinstance(node, cst.Assign)
            and isinstance(node.value, cst.Name)
            and node.value.value in names
        ):
            for target in node.targets:
                names.update(assigned_names(target.target))
    after: set[int] = set()
    for block in walk_scope(function.node.body):
        if not isinstance(block, cst.IndentedBlock):
            continue
        ended = False
        for statement in block.body:
            if ended:
                after.update(
                    id(node) for node in walk_scope(statement) if isinstance(node, cst.Call)
                )
            elif isinstance(statement, cst.SimpleStatementLine) and any(
                isinstance(node, cst.Call) and _ends_a_transaction(node, names)
                for node in walk_scope(statement)
            ):
                ended = True
    return after


def _ends_a_transaction(call: cst.Call, names: set[str]) -> bool:
    """A method that ends a transaction (``session.rollback()``,
    ``conn.commit()``), or a literal ``ROLLBACK``/``COMMIT`` given to a
    statement method (``conn.execute("ROLLBACK")``), on one of ``names``."""
    func = call.func
    if not (
        isinstance(func, cst.Attribute)
        and isinstance(func.value, cst.Name)
        and func.value.value in names
    ):
        return False
    method = func.attr.value
    if method in AUTOBEGIN_ENDS:
        return True
    if method in AUTOBEGIN_METHODS and call.args:
        sql = string_value(call.args[0].value)
        return sql is not None and sql_effect(sql) is False
    return False


def _outermost(function: FunctionInfo) -> FunctionInfo:
    while function.parent is not None:
        function = function.parent
    return function


def _argument(call: cst.Call, where: tuple[int, str]) -> cst.BaseExpression | None:
    position, keyword = where
    positional = [arg for arg in call.args if arg.keyword is None and not arg.star]
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == keyword:
            return arg.value
    if len(positional) > position:
        return positional[position].value
    return None


def _is_none(expression: cst.BaseExpression) -> bool:
    return isinstance(expression, cst.Name) and expression.value == "None"


def _given(call: cst.Call, where: tuple[int, str] | None) -> bool:
    """The call passes a value other than ``None`` for the parameter."""
    if where is None:
        return False
    value = _argument(call, where)
    return value is not None and not _is_none(value)


def _has_bound(call: cst.Call, bound: Bound) -> bool:
    return _given(call, bound.timeout)


def _literal_false(call: cst.Call, where: tuple[int, str] | None) -> bool:
    if where is None:
        return False
    value = _argument(call, where)
    return isinstance(value, cst.Name) and value.value == "False"


def _sleeps_zero(call: cst.Call) -> bool:
    """``await asyncio.sleep(0)`` yields to the event loop; it does not wait."""
    value = _argument(call, (0, "delay")) or _argument(call, (0, "seconds"))
    return isinstance(value, cst.Integer | cst.Float) and float(value.value) == 0


# -- the classes of values --------------------------------------------------------


@dataclass(slots=True)
class _Names:
    """What one scope binds: typed candidates by name, and every local name."""

    candidates: dict[str, list[tuple[bool, cst.BaseExpression]]]
    """name → (is an annotation, expression), in source order."""
    local: set[str]


_Candidate = tuple[FunctionInfo | None, cst.BaseExpression, bool]
"""Where an attribute is assigned, what, and whether it is an annotation."""


class Classes:
    """The classes of values, as qualified names, where the code tells."""

    def __init__(self, module: ModuleInfo, calls: SlowCalls) -> None:
        self.module = module
        self.calls = calls
        self._names: dict[int, _Names] = {}
        self._attributes: dict[int, dict[str, list[_Candidate]]] = {}
        self._memo: dict[tuple[int, str], str | None] = {}
        self._open = 0
        """How many classes are being worked out (``_memoised``,
        ``_attribute``): while one is, a cycle back into it sees none."""
        self._call_names: dict[tuple[int, int], tuple[cst.BaseExpression, str | None]] = {}
        """By callee node and function; with the node, which keeps its id its own."""

    def call_name(self, func: cst.BaseExpression, function: FunctionInfo | None) -> str | None:
        """The qualified name of what a call calls: ``httpx.get``, or
        ``httpx.AsyncClient.post`` for ``client.post`` on a known client.

        The walks ask it twice for each call (to classify the call, to walk
        its arguments), and a body is walked more than once (for its summary,
        for the rules). Kept only when no class is being worked out: then all
        it read is memoised for good, and asking again gives the same answer."""
        key = (id(func), id(function))
        known = self._call_names.get(key)
        if known is not None and known[0] is func:
            return known[1]
        found = self._call_name(func, function)
        if not self._open:
            self._call_names[key] = (func, found)
        return found

    def _call_name(self, func: cst.BaseExpression, function: FunctionInfo | None) -> str | None:
        parts: list[str] = []
        node = func
        while isinstance(node, cst.Attribute):
            parts.append(node.attr.value)
            node = node.value
        parts.reverse()
        if isinstance(node, cst.Name):
            head = node.value
            if parts and function is not None:
                method = _outermost(function)
                if method.cls is not None and head == method.self_name:
                    owner = self._attribute(method, parts[0])
                    if owner is not None:
                        return ".".join([owner, *parts[1:]])
                    return None
            bound, cls = self._lookup(head, function)
            if bound:
                return ".".join([cls, *parts]) if cls is not None else None
            return self.module.qualify(".".join([head, *parts]))
        if isinstance(node, cst.Call | cst.Await) and parts:
            cls = self.of(node, function)
            return ".".join([cls, *parts]) if cls is not None else None
        return None

    def of(self, expression: cst.BaseExpression, function: FunctionInfo | None) -> str | None:
        """The class of the value an expression evaluates to, if known."""
        if isinstance(expression, cst.Await):
            expression = expression.expression
        if isinstance(expression, cst.Name):
            return self._lookup(expression.value, function)[1]
        if isinstance(expression, cst.Attribute) and function is not None:
            name = dotted_name(expression)
            method = _outermost(function)
            if name is not None and method.cls is not None:
                head, _, rest = name.partition(".")
                if head == method.self_name and "." not in rest:
                    return self._attribute(method, rest)
            return None
        if isinstance(expression, cst.Call):
            called = self.call_name(expression.func, function)
            if called is None:
                return None
            returned = self.calls.returns(called)
            if returned is not None:
                return returned
            last = called.rsplit(".", 1)[-1]
            if (
                last.endswith(STUB_SUFFIX)
                and expression.args
                and self.of(expression.args[0].value, function) in STUB_CHANNELS
            ):
                return STUB_CLASS
            return called if last[:1].isupper() else None
        return None

    # -- names ----------------------------------------------------------------

    def _lookup(self, name: str, function: FunctionInfo | None) -> tuple[bool, str | None]:
        """(whether some scope binds the name, the class it holds there)."""
        scope: FunctionInfo | None = function
        while True:
            names = self._scope_names(scope)
            if name in names.candidates:
                key = (id(scope), name)
                return True, self._memoised(key, names.candidates[name], scope)
            if name in names.local:
                return True, None
            if scope is None:
                return False, None
            scope = scope.parent

    def _memoised(
        self,
        key: tuple[int, str],
        candidates: list[tuple[bool, cst.BaseExpression]],
        scope: FunctionInfo | None,
    ) -> str | None:
        """The class of the first candidate that has one, computed once; a
        cycle back into the same name (``query = query.where(...)``) sees none."""
        if key in self._memo:
            return self._memo[key]
        self._memo[key] = None
        self._open += 1
        try:
            found = None
            for is_annotation, expression in candidates:
                found = self.annotation(expression) if is_annotation else self.of(expression, scope)
                if found is not None:
                    break
        finally:
            self._open -= 1
        self._memo[key] = found
        return found

    def _scope_names(self, function: FunctionInfo | None) -> _Names:
        key = id(function)
        names = self._names.get(key)
        if names is not None:
            return names
        names = _Names({}, set())
        if function is not None:
            params = function.node.params
            for param in (
                *params.posonly_params,
                *params.params,
                *params.kwonly_params,
                *(p for p in (params.star_arg, params.star_kwarg) if isinstance(p, cst.Param)),
            ):
                names.local.add(param.name.value)
                if param.annotation is not None:
                    names.candidates.setdefault(param.name.value, []).append(
                        (True, param.annotation.annotation)
                    )
            body: cst.CSTNode = function.node.body
        else:
            body = self.module.tree
        for node in _binding_nodes(body):
            if isinstance(node, cst.FunctionDef | cst.ClassDef):
                names.local.add(node.name.value)
            elif isinstance(node, cst.Assign):
                for target in node.targets:
                    if isinstance(target.target, cst.Name):
                        names.candidates.setdefault(target.target.value, []).append(
                            (False, node.value)
                        )
                names.local.update(assignment_names(node))
            elif isinstance(node, cst.AnnAssign) and isinstance(node.target, cst.Name):
                entry = names.candidates.setdefault(node.target.value, [])
                entry.append((True, node.annotation.annotation))
                if node.value is not None:
                    entry.append((False, node.value))
                names.local.add(node.target.value)
            elif isinstance(node, cst.WithItem) and node.asname is not None:
                bound = node.asname.name
                if isinstance(bound, cst.Name):
                    # Clients enter as themselves (``async with httpx.AsyncClient() as c``).
                    names.candidates.setdefault(bound.value, []).append((False, node.item))
                names.local.update(assigned_names(bound))
            elif isinstance(node, cst.For | cst.AugAssign):
                names.local.update(assigned_names(node.target))
        self._names[key] = names
        return names

    def _attribute(self, method: FunctionInfo, attribute: str) -> str | None:
        """The class of ``self.<attribute>``, from the class body and from
        assignments in any method of the class."""
        cls = method.cls
        assert cls is not None
        table = self._attributes.get(id(cls))
        if table is None:
            table = {}
            for statement in walk_scope(cls.node.body):
                if isinstance(statement, cst.Assign):
                    for target in statement.targets:
                        if isinstance(target.target, cst.Name):
                            table.setdefault(target.target.value, []).append(
                                (None, statement.value, False)
                            )
            for other in cls.methods.values():
                self_name = other.self_name
                if self_name is None:
                    continue
                for name, value, is_annotation in _self_assignments(other, self_name):
                    table.setdefault(name, []).append((other, value, is_annotation))
            self._attributes[id(cls)] = table
        key = (id(cls), f"self.{attribute}")
        if key in self._memo:
            return self._memo[key]
        self._memo[key] = None
        self._open += 1
        try:
            found = None
            for scope, expression, is_annotation in table.get(attribute, []):
                found = self.annotation(expression) if is_annotation else self.of(expression, scope)
                if found is not None:
                    break
            annotation = cls.annotations.get(attribute)
            if found is None and annotation is not None:
                found = self.annotation(annotation)
        finally:
            self._open -= 1
        self._memo[key] = found
        return found

    def annotation(self, annotation: cst.BaseExpression, depth: int = 0) -> str | None:
        """The class an annotation names: through strings, ``Optional``,
        unions, ``Annotated`` and generic parameters (``asyncio.Queue[Job]``)."""
        if depth > 5:
            return None
        text = string_value(annotation)
        if text is not None:
            try:
                annotation = cst.parse_expression(text)
            except cst.ParserSyntaxError:
                return None
        if isinstance(annotation, cst.BinaryOperation):
            return self.annotation(annotation.left, depth + 1) or self.annotation(
                annotation.right, depth + 1
            )
        if isinstance(annotation, cst.Subscript):
            head = dotted_name(annotation.value) or ""
            last = head.rsplit(".", 1)[-1]
            elements = [
                element.slice.value
                for element in annotation.slice
                if isinstance(element.slice, cst.Index)
            ]
            if last in ("Optional", "Union"):
                for element in elements:
                    found = self.annotation(element, depth + 1)
                    if found is not None:
                        return found
                return None
            if last == "Annotated" and elements:
                return self.annotation(elements[0], depth + 1)
            return self.annotation(annotation.value, depth + 1)
        name = dotted_name(annotation)
        if name is None or name == "None":
            return None
        return self.module.qualify(name)


def _self_assignments(
    method: FunctionInfo, self_name: str
) -> Iterator[tuple[str, cst.BaseExpression, bool]]:
    """``self.<name> = value`` and ``self.<name>: annotation`` in a method:
    (name, value or annotation, whether it is an annotation)."""
    for node in method.scope.of_type(cst.Assign, cst.AnnAssign):
        assigned: list[tuple[cst.BaseExpression, cst.BaseExpression, bool]]
        if isinstance(node, cst.Assign):
            assigned = [(target.target, node.value, False) for target in node.targets]
        elif isinstance(node, cst.AnnAssign):
            assigned = [(node.target, node.annotation.annotation, True)]
            if node.value is not None:
                assigned.append((node.target, node.value, False))
        else:
            continue
        for target, value, is_annotation in assigned:
            name = dotted_name(target)
            if name is not None and name.startswith(self_name + "."):
                rest = name[len(self_name) + 1 :]
                if "." not in rest:
                    yield rest, value, is_annotation


def _binding_nodes(body: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """The nodes of a scope that bind names: small statements, ``with``
    items, ``for`` loops and nested definitions, in source order, without
    walking expressions (a walrus is not seen) or nested scopes."""
    stack = [body]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.SimpleStatementLine | cst.SimpleStatementSuite):
            yield from node.body
            continue
        if node is not body and isinstance(node, cst.FunctionDef | cst.ClassDef | cst.WithItem):
            yield node
            continue
        if isinstance(node, cst.For):
            yield node
        stack.extend(
            reversed(
                [child for child in children(node) if not isinstance(child, cst.BaseExpression)]
            )
        )
