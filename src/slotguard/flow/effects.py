"""What one point of a control-flow graph does to the resources it can see.

For each point: which names it may release (``conn.close()``,
``pool.release(conn)``, a releasing function; whether that really releases
depends on what the name holds, which the analysis knows), which names it
hands to another owner (returned, yielded, stored on an object or in a
container, registered on an exit stack, captured by a closure, passed to an
owning constructor or to background work), which names it binds and to what,
and which acquisitions it makes without keeping the result.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import libcst as cst

from slotguard.analysis.escapes import escaping, escaping_leaves, handed_over
from slotguard.analysis.index import SymbolKind
from slotguard.analysis.infer import FunctionInfo, Produced, Scope
from slotguard.analysis.releasers import released_parameter
from slotguard.flow.cfg import Point, PointKind
from slotguard.model.catalog import CLOSED_STATE
from slotguard.syntax import (
    CONTAINER_METHODS,
    SCOPE_TYPES,
    assigned_names,
    dotted_name,
    is_class_name,
    last_name,
    names_in,
    string_value,
    unwrap_await,
    walk,
)

_DEFERRING_METHODS = frozenset(
    {
        "enter_context",
        "enter_async_context",
        "callback",
        "push_async_callback",
        "push_async_exit",
        "create_task",
        "ensure_future",
        "add_task",
        "submit",
        "run_in_executor",
        "start_soon",
        "spawn",
        "call_soon",
        "call_later",
        "call_soon_threadsafe",
        "add_done_callback",
    }
)
"""Keep whatever their arguments mention (``stack.callback(conn.close)``,
``create_task(work(conn))``) to run it later."""

_DEFERRING_FUNCTIONS = frozenset(
    {"Thread", "Timer", "Process", "partial", "create_task", "ensure_future", "closing", "aclosing"}
)


@dataclass(frozen=True, slots=True)
class ReleaseCandidate:
    """``name`` is released here if what it holds agrees with ``how``."""

    name: str
    how: str
    """``method``: ``name.<method>()``; ``returned``: ``x.<method>(name)``;
    ``function``: a function that releases its argument; ``entered``:
    ``with name:``; ``closing``: ``with closing(name):``."""
    method: str = ""


@dataclass(frozen=True, slots=True)
class Binding:
    target: str
    acquired: Produced | None = None
    aliases: frozenset[str] = frozenset()
    """Names whose values ``target`` now refers to or holds."""


@dataclass(slots=True)
class Effects:
    releases: list[ReleaseCandidate] = field(default_factory=list)
    handoffs: set[str] = field(default_factory=set)
    bindings: list[Binding] = field(default_factory=list)
    discarded: list[Produced] = field(default_factory=list)
    """Acquisitions whose result nothing keeps."""
    none_if_true: frozenset[str] = frozenset()
    """Names that hold nothing (None or falsy) when a branch test is true."""
    none_if_false: frozenset[str] = frozenset()
    known_if_true: frozenset[str] = frozenset()
    """Condition keys a branch test makes true when it is true (see
    ``conditions``)."""
    known_if_false: frozenset[str] = frozenset()
    sets: dict[str, bool | None] = field(default_factory=dict)
    """Condition keys an assignment makes true, false or unknown."""
    catches: bool = False
    """An ``except`` clause: the exception that led here is handled."""


class EffectReader:
    """Reads the effects of the points of one function."""

    def __init__(
        self,
        scope: Scope,
        *,
        releasing_functions: dict[str, int],
    ) -> None:
        self.scope = scope
        self.model = scope.module.model
        self.yield_hands_off = False
        """A plain generator: what it yields goes to the consumer..."""
        self.lent: set[str] = set()
        """...except the names it releases itself after the yield."""
        self.releasing_functions = releasing_functions
        self._helpers: frozenset[str] | None = None
        self.global_names: set[str] = set()
        for node in scope.of_type(cst.Global, cst.Nonlocal):
            assert isinstance(node, cst.Global | cst.Nonlocal)
            self.global_names.update(n.name.value for n in node.names)
        self.entering = _entering_self(scope)
        """In ``__enter__``/``__aenter__``, the name of ``self``: what it stores
        on ``self`` is handed over only when it returns (``__exit__`` does not
        run if it raises), so it is tracked as ``self.<attribute>`` until then."""
        self.self_stores: frozenset[str] = frozenset()
        if self.entering is not None:
            self.self_stores = frozenset(
                target
                for target, _ in scope.attribute_assignments()
                if target.startswith(self.entering + ".") and target.count(".") == 1
            )

    def read(self, point: Point) -> Effects:
        effects = Effects()
        node = point.node
        kind = point.kind
        if node is None:
            return effects
        if kind is PointKind.STATEMENT:
            self._statement(node, effects)
        elif kind is PointKind.BRANCH:
            assert isinstance(node, cst.BaseExpression)
            self._expression(node, effects)
            effects.none_if_true, effects.none_if_false = refinements(node)
            effects.known_if_true, effects.known_if_false = conditions(node)
        elif kind is PointKind.EVAL:
            assert isinstance(node, cst.BaseExpression)
            self._expression(node, effects)
        elif kind is PointKind.LOOP_NEXT:
            assert isinstance(node, cst.For)
            effects.bindings.extend(Binding(name) for name in assigned_names(node.target))
        elif kind is PointKind.WITH_ENTER:
            assert isinstance(node, cst.WithItem)
            self._with_item(node, effects)
        elif kind is PointKind.HANDLER:
            assert isinstance(node, cst.ExceptHandler | cst.ExceptStarHandler)
            effects.catches = True
            if node.name is not None and isinstance(node.name.name, cst.Name):
                effects.bindings.append(Binding(node.name.name.value))
        elif kind is PointKind.CASE:
            assert isinstance(node, cst.MatchCase)
            for sub in walk(node.pattern):
                if isinstance(sub, cst.MatchAs | cst.MatchStar) and isinstance(sub.name, cst.Name):
                    effects.bindings.append(Binding(sub.name.value))
            if node.guard is not None:
                self._expression(node.guard, effects)
        elif kind is PointKind.DEFINITION:
            assert isinstance(node, cst.FunctionDef | cst.ClassDef)
            effects.handoffs |= names_in(node.body)
            effects.bindings.append(Binding(node.name.value))
        return effects

    # -- statements ---------------------------------------------------------

    def _statement(self, node: cst.CSTNode, effects: Effects) -> None:
        if isinstance(node, cst.Assign | cst.AnnAssign | cst.AugAssign | cst.Del):
            effects.sets = assigned_conditions(node)
        if isinstance(node, cst.Assign):
            if self._builds_a_helper(node):
                # ``summarizer = Summarizer(session=s)``, then only
                # ``summarizer.run()``: the object is as temporary as a
                # ``Summarizer(session=s).run()``.
                self._expression(node.value, effects, kept=True, temporary=node.value)
            else:
                self._expression(node.value, effects, kept=True)
            for target in node.targets:
                self._assign(target.target, node.value, effects)
        elif isinstance(node, cst.AnnAssign):
            if node.value is not None:
                self._expression(node.value, effects, kept=True)
                self._assign(node.target, node.value, effects)
        elif isinstance(node, cst.AugAssign):
            self._expression(node.value, effects)
            effects.bindings.extend(Binding(name) for name in assigned_names(node.target))
        elif isinstance(node, cst.Return):
            if node.value is not None:
                self._expression(node.value, effects, kept=True)
                effects.handoffs |= handed_over(node.value)
            effects.handoffs |= self.self_stores
        elif isinstance(node, cst.Expr):
            self._expression(node.value, effects)
        elif isinstance(node, cst.Del):
            effects.bindings.extend(Binding(name) for name in assigned_names(node.target))
        elif isinstance(node, cst.Raise):
            if node.exc is not None:
                self._expression(node.exc, effects)
        elif isinstance(node, cst.Assert):
            self._expression(node.test, effects)
        elif isinstance(node, cst.Import | cst.ImportFrom) and not isinstance(
            node.names, cst.ImportStar
        ):
            for alias in node.names:
                bound = alias.evaluated_alias or alias.evaluated_name
                effects.bindings.append(Binding(bound.split(".", 1)[0]))

    def _assign(
        self, target: cst.BaseExpression, value: cst.BaseExpression, effects: Effects
    ) -> None:
        if isinstance(target, cst.Name) and target.value not in self.global_names:
            produced = self._acquisition(value)
            if produced is not None:
                effects.bindings.append(Binding(target.value, acquired=produced))
            else:
                effects.bindings.append(Binding(target.value, aliases=frozenset(escaping(value))))
            return
        produced = self._acquired_by(value)
        if isinstance(target, cst.Tuple | cst.List) and produced is not None:
            # ``conn, cur = open_db()``: the name at the resource's position
            # acquires it.
            for position, element in enumerate(target.elements):
                for name in assigned_names(element.value):
                    if name in self.global_names:
                        continue
                    acquired = produced if position == produced.element else None
                    effects.bindings.append(Binding(name, acquired=acquired))
            return
        stored = dotted_name(target)
        if stored in self.self_stores:
            effects.bindings.append(Binding(stored, acquired=self._acquisition(value)))
            return
        # Stored on an object, in a container, in a global, or unpacked.
        effects.handoffs |= escaping(value)
        for name in assigned_names(target):
            if name not in self.global_names:
                effects.bindings.append(Binding(name))

    def _with_item(self, item: cst.WithItem, effects: Effects) -> None:
        expression = item.item
        inner = expression.expression if isinstance(expression, cst.Await) else expression
        if isinstance(inner, cst.Name):
            effects.releases.append(ReleaseCandidate(inner.value, "entered"))
        elif isinstance(inner, cst.Call) and last_name(inner.func) in ("closing", "aclosing"):
            for arg in inner.args[:1]:
                if isinstance(arg.value, cst.Name):
                    effects.releases.append(ReleaseCandidate(arg.value.value, "closing"))
        # Whatever a ``with`` item creates is SG104's business if the ``with``
        # does not release it; it is not thrown away here.
        self._expression(expression, effects, kept=True, keep_all=True)
        if item.asname is not None:
            effects.bindings.extend(Binding(name) for name in assigned_names(item.asname.name))

    # -- expressions --------------------------------------------------------

    def _acquisition(self, value: cst.BaseExpression) -> Produced | None:
        """What assigning ``value`` to a name acquires (not a tuple that
        holds an acquisition: see ``_assign``)."""
        produced = self._acquired_by(value)
        return produced if produced is not None and produced.element is None else None

    def _acquired_by(self, value: cst.BaseExpression) -> Produced | None:
        produced = self.scope.produced(value)
        if produced is not None and produced.acquires and produced.type.kind.is_short_lived:
            return produced
        return None

    def _expression(
        self,
        expression: cst.BaseExpression,
        effects: Effects,
        *,
        kept: bool = False,
        keep_all: bool = False,
        temporary: cst.BaseExpression | None = None,
    ) -> None:
        """Calls, yields, walruses and closures inside ``expression``.

        ``kept``: the expression's value is assigned, returned or entered, so
        what it holds on to (see ``escaping``) is not thrown away.
        ``temporary``: a construction whose object lives only for this
        function's calls of its methods (see ``_builds_a_helper``).
        """
        kept_nodes = {id(n) for n in escaping_leaves(expression)} if kept else set()
        discardable = None if keep_all else kept_nodes
        inside_await: set[int] = set()
        temporaries: set[int] = {id(temporary)} if temporary is not None else set()
        for node in walk(expression, prune=_is_nested_scope):
            kind = type(node)
            if kind not in _EXPRESSION_EFFECTS:
                continue
            if isinstance(node, cst.Lambda):
                effects.handoffs |= names_in(node.body)
            elif isinstance(node, cst.Await):
                if isinstance(node.expression, cst.Call):
                    inside_await.add(id(node.expression))
                    self._maybe_discarded(node, effects, discardable)
            elif isinstance(node, cst.Call):
                if isinstance(node.func, cst.Attribute) and isinstance(node.func.value, cst.Call):
                    # ``Handler(session=s).run()``: the object lives for this call.
                    temporaries.add(id(node.func.value))
                self._call(node, effects, kept_nodes, temporary=id(node) in temporaries)
                if discardable is not None:
                    discardable |= self._released_in_place(node)
                if id(node) not in inside_await:
                    self._maybe_discarded(node, effects, discardable)
            elif isinstance(node, cst.Yield):
                if self.yield_hands_off and isinstance(node.value, cst.BaseExpression):
                    effects.handoffs |= handed_over(node.value) - self.lent
                    kept_nodes.update(id(n) for n in escaping_leaves(node.value))
            elif isinstance(node, cst.NamedExpr):
                kept_nodes.update(id(n) for n in escaping_leaves(node.value))
                for name in assigned_names(node.target):
                    produced = self._acquisition(node.value)
                    if produced is not None:
                        effects.bindings.append(Binding(name, acquired=produced))
                    else:
                        effects.bindings.append(
                            Binding(name, aliases=frozenset(escaping(node.value)))
                        )

    def _released_in_place(self, call: cst.Call) -> set[int]:
        """``engine.connect().close()``: the acquisition the call releases as
        soon as it is made, which is therefore not thrown away."""
        func = call.func
        if type(func) is not cst.Attribute:
            return set()
        produced = self._acquisition(func.value)
        if produced is None or func.attr.value not in produced.type.release_methods:
            return set()
        return {id(func.value), id(unwrap_await(func.value)[0])}

    def _maybe_discarded(
        self, node: cst.BaseExpression, effects: Effects, kept_nodes: set[int] | None
    ) -> None:
        if kept_nodes is None or id(node) in kept_nodes:
            return
        produced = self._acquisition(node)
        if produced is not None:
            effects.discarded.append(produced)

    def _call(
        self, call: cst.Call, effects: Effects, kept_nodes: set[int], *, temporary: bool = False
    ) -> None:
        """What a call does to held names. ``temporary``: the call builds an
        object only to call one of its methods (``Handler(session=s).run()``);
        an object of a project class that is dropped at once keeps nothing, so
        what it is given is lent, not handed over (threads, timers and
        configured owner classes still take it)."""
        func = call.func
        method = func.attr.value if isinstance(func, cst.Attribute) else ""
        if method and isinstance(func, cst.Attribute):
            receiver = self._held_name(func.value)
            if receiver is not None:
                effects.releases.append(ReleaseCandidate(receiver, "method", method))
        first = self._held_name(call.args[0].value) if call.args else None
        if method and first is not None:
            effects.releases.append(ReleaseCandidate(first, "returned", method))
        name = dotted_name(func)
        index = self._releasing_index(func, name)
        if index is not None and len(call.args) > index:
            released = self._held_name(call.args[index].value)
            if released is not None:
                effects.releases.append(ReleaseCandidate(released, "function"))
        last = last_name(func)
        if method in _DEFERRING_METHODS or last in _DEFERRING_FUNCTIONS:
            for arg in call.args:
                effects.handoffs |= names_in(arg.value)
                kept_nodes.update(id(n) for n in escaping_leaves(arg.value))
        elif method in CONTAINER_METHODS or self._owns(name, last, temporary=temporary):
            for arg in call.args:
                effects.handoffs |= escaping(arg.value)
                kept_nodes.update(id(n) for n in escaping_leaves(arg.value))

    def _held_name(self, expr: cst.BaseExpression) -> str | None:
        """The name a fact can hold an expression's value under: a local name,
        or ``self.<attribute>`` where that is tracked."""
        if isinstance(expr, cst.Name):
            return expr.value
        dotted = dotted_name(expr) if isinstance(expr, cst.Attribute) else None
        return dotted if dotted in self.self_stores else None

    def _releasing_index(self, func: cst.BaseExpression, name: str | None) -> int | None:
        if name is None:
            return None
        module = self.scope.module
        qualified = module.qualify(name)
        if qualified is not None and self.model.releases_argument(qualified):
            return 0
        symbol = module.imported_symbol(name)
        if symbol is not None and symbol.kind is SymbolKind.RELEASER:
            return symbol.parameter
        found = self.releasing_functions.get(name)
        if found is not None:
            return found
        return self._releasing_method(func)

    def _releasing_method(self, func: cst.BaseExpression) -> int | None:
        """``db.release(conn)`` where ``Database.release`` releases its argument."""
        method = self.scope.method_called(func)
        if isinstance(method, FunctionInfo):
            return released_parameter(method)
        if method is not None and method.kind is SymbolKind.RELEASER:
            return method.parameter
        return None

    def _builds_a_helper(self, node: cst.Assign) -> bool:
        """``helper = Helper(session=s)`` where ``helper`` is a local used
        only as the receiver of attribute reads and method calls in this
        function: never passed, returned, stored, rebound or captured by a
        nested function, so the object dies with the call."""
        value = node.value
        if not (isinstance(value, cst.Call) and len(node.targets) == 1):
            return False
        target = node.targets[0].target
        if not isinstance(target, cst.Name) or not is_class_name(last_name(value.func)):
            return False
        return target.value in self._attribute_only_locals()

    def _attribute_only_locals(self) -> frozenset[str]:
        """Locals assigned once and otherwise only read as ``name.<attribute>``."""
        if self._helpers is None:
            scope = self.scope
            uses: Counter[str] = Counter()
            for node in scope.of_type(cst.Name):
                assert isinstance(node, cst.Name)
                uses[node.value] += 1
            for node in scope.of_type(cst.Attribute):
                assert isinstance(node, cst.Attribute)
                if isinstance(node.value, cst.Name):
                    uses[node.value.value] -= 1
            assigned = Counter(
                node.target.value
                for node in scope.of_type(cst.AssignTarget)
                if isinstance(node, cst.AssignTarget) and isinstance(node.target, cst.Name)
            )
            captured = {
                inner.value
                for nested in scope.of_type(*SCOPE_TYPES)
                for inner in walk(nested)
                if isinstance(inner, cst.Name)
            }
            self._helpers = frozenset(
                name
                for name, count in assigned.items()
                if count == 1
                and uses[name] == 1
                and name not in captured
                and name not in self.global_names
            )
        return self._helpers

    def _owns(self, name: str | None, last: str, *, temporary: bool = False) -> bool:
        """A constructor (``Repository(session)``) or a configured owner class.

        Exception constructors are not owners: ``raise Error(conn)`` does not
        hand ``conn`` to anyone who will release it; nor is an object built
        only to call one of its methods (``temporary``).
        """
        if name is not None:
            qualified = self.scope.module.qualify(name)
            if qualified is not None and self.model.is_owner_class(qualified):
                return True
        if temporary:
            return False
        return is_class_name(last) and not last.endswith(("Error", "Exception", "Warning"))


_EXPRESSION_EFFECTS = frozenset({cst.Lambda, cst.Await, cst.Call, cst.Yield, cst.NamedExpr})
"""The nodes of an expression ``_expression`` reads (libcst's node classes
are final: their exact type tells them, without ``isinstance``'s ABC checks)."""


def _is_nested_scope(node: cst.CSTNode) -> bool:
    return type(node) in SCOPE_TYPES


def _closed_state_of(test: cst.BaseExpression) -> str | None:
    """``conn`` in ``conn.is_closed()`` or ``conn.closed``."""
    if isinstance(test, cst.Call) and not test.args:
        test = test.func
    if (
        isinstance(test, cst.Attribute)
        and isinstance(test.value, cst.Name)
        and test.attr.value in CLOSED_STATE
    ):
        return test.value.value
    return None


def refinements(test: cst.BaseExpression) -> tuple[frozenset[str], frozenset[str]]:
    """(names that hold nothing when the test is true, ... when it is false).

    ``if conn:`` and ``if conn is not None:`` tell that on the false branch
    ``conn`` holds no resource, ``if conn.is_closed():`` that on the true
    branch it holds no live one; ``and``/``or`` combine what both sides tell.
    """
    if isinstance(test, cst.NamedExpr) and isinstance(test.target, cst.Name):
        # ``if (conn := await pool.acquire()):`` tests what it binds.
        return refinements(test.target)
    if isinstance(test, cst.Name):
        return frozenset(), frozenset([test.value])
    closed = _closed_state_of(test)
    if closed is not None:
        return frozenset([closed]), frozenset()
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        when_true, when_false = refinements(test.expression)
        return when_false, when_true
    compared = compared_with_none(test)
    if compared is not None:
        name, none_if_true = compared
        return (
            (frozenset([name]), frozenset()) if none_if_true else (frozenset(), frozenset([name]))
        )
    if isinstance(test, cst.BooleanOperation):
        left_true, left_false = refinements(test.left)
        right_true, right_false = refinements(test.right)
        if isinstance(test.operator, cst.And):
            return left_true | right_true, left_false & right_false
        return left_true & right_true, left_false | right_false
    if isinstance(test, cst.Call) and last_name(test.func) == "bool" and len(test.args) == 1:
        return refinements(test.args[0].value)
    return frozenset(), frozenset()


def compared_with_none(test: cst.BaseExpression) -> tuple[str, bool] | None:
    """``x is None`` (or ``==``): ``("x", True)``; ``x is not None`` (or
    ``!=``): ``("x", False)``; the name, and whether it is None where the
    test is true. None for any other test."""
    if not isinstance(test, cst.Comparison) or len(test.comparisons) != 1:
        return None
    target = test.comparisons[0]
    left, right = test.left, target.comparator
    if isinstance(left, cst.NamedExpr) and isinstance(left.target, cst.Name):
        left = left.target
    if not (isinstance(left, cst.Name) and isinstance(right, cst.Name) and right.value == "None"):
        return None
    if isinstance(target.operator, cst.Is | cst.Equal):
        return left.value, True
    if isinstance(target.operator, cst.IsNot | cst.NotEqual):
        return left.value, False
    return None


def negate(key: str) -> str:
    """The opposite of a condition key: ``x`` and ``!x``."""
    return key[1:] if key.startswith("!") else "!" + key


def conditions(test: cst.BaseExpression) -> tuple[frozenset[str], frozenset[str]]:
    """(condition keys true when the test is true, ... when it is false).

    A key is a name whose truth a flag holds (``created`` for ``if
    created:``), or ``has:<dotted>`` for an attribute that exists and is not
    None (``hasattr(request.state, "db")``, ``getattr(o, "db", None)``,
    ``o.db is not None``). A ``!`` in front negates it. Correlated with what
    was assigned since an acquisition, they tell that a release under such a
    test runs on every path where the resource exists.
    """
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        when_true, when_false = conditions(test.expression)
        return when_false, when_true
    if isinstance(test, cst.BooleanOperation):
        left_true, left_false = conditions(test.left)
        right_true, right_false = conditions(test.right)
        if isinstance(test.operator, cst.And):
            return left_true | right_true, left_false & right_false
        return left_true & right_true, left_false | right_false
    key = _condition_key(test)
    if key is not None:
        return frozenset([key]), frozenset([negate(key)])
    if isinstance(test, cst.Comparison) and len(test.comparisons) == 1:
        target = test.comparisons[0]
        key = _condition_key(test.left)
        if key is not None and _is_none(target.comparator):
            if isinstance(target.operator, cst.IsNot | cst.NotEqual):
                return frozenset([key]), frozenset([negate(key)])
            if isinstance(target.operator, cst.Is | cst.Equal):
                return frozenset([negate(key)]), frozenset([key])
    return frozenset(), frozenset()


def _condition_key(expr: cst.BaseExpression) -> str | None:
    if isinstance(expr, cst.Name):
        return expr.value
    if isinstance(expr, cst.Attribute):
        dotted = dotted_name(expr)
        return f"has:{dotted}" if dotted is not None else None
    if isinstance(expr, cst.Call) and last_name(expr.func) in ("hasattr", "getattr"):
        if len(expr.args) < 2 or (last_name(expr.func) == "getattr" and len(expr.args) != 3):
            return None
        owner = dotted_name(expr.args[0].value)
        attribute = string_value(expr.args[1].value)
        if owner is None or attribute is None:
            return None
        return f"has:{owner}.{attribute}"
    return None


def assigned_conditions(node: cst.CSTNode) -> dict[str, bool | None]:
    """The condition keys an assignment statement changes: a name given a
    constant becomes true or false, an attribute given a value exists (and
    one given None does not), anything else makes them unknown."""
    found: dict[str, bool | None] = {}
    if isinstance(node, cst.Assign):
        for target in node.targets:
            _assigned_condition(target.target, node.value, found)
    elif isinstance(node, cst.AnnAssign) and node.value is not None:
        _assigned_condition(node.target, node.value, found)
    elif isinstance(node, cst.AugAssign):
        _assigned_condition(node.target, None, found)
    elif isinstance(node, cst.Del):
        key = _condition_key(node.target)
        if key is not None:
            found[key] = False if key.startswith("has:") else None
    return found


def _assigned_condition(
    target: cst.BaseExpression, value: cst.BaseExpression | None, found: dict[str, bool | None]
) -> None:
    if isinstance(target, cst.Name | cst.Attribute):
        key = _condition_key(target)
        if key is None:
            return
        if value is None:
            found[key] = None
        elif key.startswith("has:"):
            found[key] = not _is_none(value)
        else:
            found[key] = _truth(value)
    elif isinstance(target, cst.Tuple | cst.List):
        for element in target.elements:
            _assigned_condition(element.value, None, found)


def _truth(value: cst.BaseExpression) -> bool | None:
    """The truth of a constant; None for anything else."""
    if isinstance(value, cst.Name) and value.value in ("True", "False", "None"):
        return value.value == "True"
    if isinstance(value, cst.Integer):
        return value.value not in ("0", "0x0", "0o0", "0b0")
    if isinstance(value, cst.SimpleString):
        return len(value.evaluated_value) > 0
    return None


def _is_none(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, cst.Name) and expr.value == "None"


def _entering_self(scope: Scope) -> str | None:
    """The ``self`` of an ``__enter__`` or ``__aenter__`` method."""
    function = scope.function
    if function is None or function.name not in ("__enter__", "__aenter__"):
        return None
    return function.self_name
