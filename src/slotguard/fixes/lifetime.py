"""How long a resource that is never released is used, and whether a block
can end its life there without changing what the code does.

A fix that enters a never-released session or connection in a ``with`` (or a
``try``/``finally``) releases it where the new block ends: after the last
statement of its block that uses it, or uses what was computed from it. That
changes nothing only if, after that point, nobody uses

- the resource itself (in the rest of the function, or in the next turn of
  a loop around it);
- what was *loaded* through it: objects a session returned (a closed
  SQLAlchemy session detaches them, and a lazy attribute then raises
  ``DetachedInstanceError``), a cursor or an unread result of a connection;

and if neither leaves the function while the block runs: returned, yielded,
stored on an object or in a global, captured by a nested function, or passed
to a function of the module that keeps it.

*Loaded* values follow the model of ``slotguard.analysis.escapes``: a method
called on the resource (``db.query(User).first()``), an attribute or an item
of a loaded value, a loop over one, a collection built from them; the result
of a plain function call (``len(users)``, ``serialize(user)``) is data. Some
methods of connections return plain rows (``fetchall()``, ``scalar()``):
their results are data too. A session's results may be ORM objects, except a
``count()`` and the rows of raw SQL (``db.execute(text(...)).scalar_one()``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

import libcst as cst

from slotguard.analysis.columns import IsColumn, entities, loaded
from slotguard.analysis.escapes import escaping
from slotguard.fixes.base import Unfixable
from slotguard.model.catalog import SELF_RETURNING_METHODS
from slotguard.model.vocabulary import Kind
from slotguard.rules.common import code
from slotguard.syntax import (
    CONTAINER_METHODS,
    SCOPE_NODES,
    always_true,
    assigned_names,
    children,
    is_class_name,
    last_name,
    walk,
    walk_scope,
)

ROW_METHODS = frozenset(
    {
        "fetch",
        "fetchrow",
        "fetchval",
        "fetchall",
        "fetchone",
        "fetchmany",
        "all",
        "first",
        "one",
        "one_or_none",
        "scalar",
        "scalar_one",
        "scalar_one_or_none",
        "count",
    }
)
"""Methods of a connection, a cursor or a result that return plain rows or
values: what they return is still there once the connection is closed."""

SESSION_PLAIN_METHODS = frozenset({"count"})
"""Methods of a session's queries whose result is never an ORM object."""

CALLS_AT_ONCE = frozenset(
    {"sorted", "sort", "min", "max", "reduce", "groupby", "any", "all", "sum"}
)
"""Functions and methods that call the function they are given before they
return, and keep nothing of it."""

LAZY_CALLS = frozenset(
    {"map", "filter", "zip", "iter", "reversed", "enumerate", "islice", "chain", "starmap"}
)
"""Functions whose result reads their arguments later, as it is iterated:
it holds on to what they hold (``map(str, rows)``)."""


@dataclass(frozen=True, slots=True)
class Plain:
    """What makes a value computed from the resource plain data."""

    methods: frozenset[str]
    """Methods whose result is plain (``ROW_METHODS``, ``SESSION_PLAIN_METHODS``)."""
    statements: frozenset[str] = frozenset()
    """Names bound to raw SQL (``query = text("...")``): a session runs it
    into plain rows."""
    entities: Mapping[str, cst.BaseExpression] = field(default_factory=dict)
    """Names holding instances of a mapped class, and the class
    (``slotguard.analysis.columns``)."""
    is_column: IsColumn | None = None
    """Whether a class has a column of a name: an instance's column is plain."""

    @classmethod
    def of(cls, kind: Kind, scope: cst.CSTNode | None = None) -> Plain:
        methods = SESSION_PLAIN_METHODS if kind is Kind.SESSION else ROW_METHODS
        if scope is None:
            return cls(methods)
        raw: set[str] = set()
        other: set[str] = set()
        for node in walk(scope):
            if isinstance(node, cst.Assign):
                found = raw if _is_raw_sql(node.value, frozenset()) else other
                for target in node.targets:
                    found |= set(assigned_names(target.target))
            elif isinstance(node, cst.AnnAssign | cst.AugAssign | cst.For | cst.NamedExpr):
                other |= set(assigned_names(node.target))
            elif isinstance(node, cst.AsName):
                other |= set(assigned_names(node.name))
        return cls(methods, frozenset(raw - other))

    def column_read(self, node: cst.BaseExpression) -> bool:
        """``order.total``, ``db.query(Order).first().total``: a column of an
        instance the session loaded, plain data once read."""
        if self.is_column is None or not isinstance(node, cst.Attribute):
            return False
        base = node.value
        if isinstance(base, cst.Name):
            entity = self.entities.get(base.value)
        else:
            entity = loaded(base, iterated=False, single=True)
        return entity is not None and self.is_column(entity, node.attr.value)


@dataclass(frozen=True, slots=True)
class Lifetime:
    """Where the block that releases the resource ends."""

    end: int
    """Index, in the acquisition's block, of the first statement after it."""
    loaded: frozenset[str]
    """Names that hold values loaded through the resource."""


def lifetime(
    function: cst.FunctionDef,
    block: cst.IndentedBlock | cst.Module,
    index: int,
    name: str,
    kind: Kind,
    parents: dict[int, cst.CSTNode],
    *,
    first: Sequence[cst.BaseStatement] = (),
    callees: dict[str, cst.FunctionDef] | None = None,
    extend: bool = True,
    ignored: frozenset[int] = frozenset(),
    is_column: IsColumn | None = None,
) -> Lifetime | Unfixable:
    """The lifetime of ``name``, acquired by ``block.body[index]``, or why no
    block can end it. ``first``: what the new block starts with, before the
    statements that follow the acquisition (an acquisition written inline:
    its statement, where it is replaced by ``name``; a loop: its body).
    ``extend``: the block may take the following statements that use the
    resource; else it ends with the acquiring statement. ``index`` -1: the
    resource is held from the start of ``block`` (a branch where a test
    showed the value is the resource); ``ignored``: ``id`` of nodes whose
    reads do not see the resource (the branches where it is something
    else); ``is_column``: which attributes of the project's mapped classes
    are columns, whose values are plain data."""
    plain = Plain.of(kind, function)
    later = list(block.body[index + 1 :]) if extend else []
    if is_column is not None and kind is Kind.SESSION:
        # What a name holds where the resource is: its bindings in the
        # statements from the acquisition on, not in other branches.
        plain = replace(plain, entities=entities(*first, *later), is_column=is_column)
    derived, loaded = _derived([*first, *later], name, plain)
    end = index
    for position, statement in enumerate(later, start=index + 1):
        if mentions(statement, derived):
            end = position
    body = [*first, *block.body[index + 1 : end + 1]]
    for statement in body:
        rebound = _rebinding(statement, name)
        if rebound is not None:
            return Unfixable(f"`{name}` is bound to something else by `{_first_line(rebound)}`")
    watched = loaded | {name}
    escape = _escape(body, watched, plain, name, kind, callees or {})
    if escape is not None:
        return escape
    opening = block.body[index] if index >= 0 else block
    held = block.body[max(index, 0) : end + 1]
    region = {id(node) for statement in held for node in walk(statement)}
    used = _used_outside(function, opening, region | ignored, watched, parents)
    if used is not None:
        user, statement = used
        what = f"`{name}`" if user == name else f"`{user}`, loaded through `{name}`,"
        return Unfixable(f"{what} is used outside the new block, by `{_first_line(statement)}`")
    return Lifetime(end + 1, frozenset(loaded))


# -- what the statements compute from the resource --------------------------------


def escapes(
    statements: Sequence[cst.BaseStatement], name: str, kind: Kind, scope: cst.CSTNode
) -> Unfixable | None:
    """Why what the statements load through ``name`` would outlive a block
    around them that releases it (returned, yielded, stored, captured)."""
    plain = Plain.of(kind, scope)
    loaded = _derived(statements, name, plain)[1]
    return _escape(statements, loaded | {name}, plain, name, kind, {})


def loaded_through(statements: Sequence[cst.BaseStatement], name: str, kind: Kind) -> set[str]:
    """The names that statements bind to what was loaded through ``name``."""
    return _derived(statements, name, Plain.of(kind))[1]


def _derived(
    statements: Sequence[cst.BaseStatement], name: str, plain: Plain
) -> tuple[set[str], set[str]]:
    """Names computed from the resource (``derived``: from any expression
    that mentions it) and names holding what was loaded through it
    (``loaded``), to a fixed point over the statements."""
    derived = {name}
    loaded = {name}
    flows = [flow for statement in statements for flow in _flows(statement)]
    changed = True
    while changed:
        changed = False
        for targets, value in flows:
            if mentions(value, derived) and not targets <= derived:
                derived |= targets
                changed = True
            if carries(value, loaded, plain) and not targets <= loaded:
                loaded |= targets
                changed = True
    loaded.discard(name)
    return derived, loaded


def _flows(statement: cst.CSTNode) -> Iterator[tuple[set[str], cst.BaseExpression]]:
    """(names, expression): each place where names take a value from an
    expression. A local collection or object that something is put in
    takes it too (``rows.append(row)``, ``found[key] = row``)."""
    for node in walk(statement, prune=_is_scope):
        if isinstance(node, cst.Assign):
            for target in node.targets:
                yield _targets(target.target), node.value
        elif isinstance(node, cst.AnnAssign | cst.AugAssign) and node.value is not None:
            yield _targets(node.target), node.value
        elif isinstance(node, cst.For | cst.CompFor):
            yield _targets(node.target), node.iter
        elif isinstance(node, cst.WithItem) and node.asname is not None:
            yield _targets(node.asname.name), node.item
        elif isinstance(node, cst.NamedExpr):
            yield _targets(node.target), node.value
        elif isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
            receiver = node.func.value
            if node.func.attr.value in CONTAINER_METHODS and isinstance(receiver, cst.Name):
                for arg in node.args:
                    yield {receiver.value}, arg.value


def _targets(target: cst.BaseExpression) -> set[str]:
    """The names an assignment target binds or puts something in."""
    found = set(assigned_names(target))
    if isinstance(target, cst.Attribute | cst.Subscript):
        root = _root(target)
        if root is not None:
            found.add(root)
    return found


def carries(expression: cst.BaseExpression, names: set[str], plain: Plain) -> bool:
    """Whether the value of ``expression`` holds on to what ``names`` hold:
    one of them, something obtained from one by attributes, items and method
    calls (short of a method in ``plain``), or a collection or object built
    from those."""
    stack: list[tuple[cst.BaseExpression, frozenset[str]]] = [(expression, frozenset(names))]
    while stack:
        node, known = stack.pop()
        if isinstance(node, cst.Tuple | cst.List | cst.Set):
            stack.extend((element.value, known) for element in node.elements)
        elif isinstance(node, cst.Dict):
            for element in node.elements:
                if isinstance(element, cst.DictElement):
                    stack.extend(((element.key, known), (element.value, known)))
                else:
                    stack.append((element.value, known))
        elif isinstance(node, cst.IfExp):
            stack.extend(((node.body, known), (node.orelse, known)))
        elif isinstance(node, cst.BooleanOperation):
            stack.extend(((node.left, known), (node.right, known)))
        elif isinstance(node, cst.NamedExpr | cst.StarredElement):
            stack.append((node.value, known))
        elif isinstance(node, cst.GeneratorExp):
            # Evaluated as it is iterated, after the block maybe: what it
            # reads is read then.
            if mentions(node, set(known)):
                return True
        elif isinstance(node, cst.ListComp | cst.SetComp | cst.DictComp):
            inner = set(known)
            clause: cst.CompFor | None = node.for_in
            while clause is not None:
                if carries(clause.iter, inner, plain):
                    inner |= set(assigned_names(clause.target))
                clause = clause.inner_for_in
            if isinstance(node, cst.DictComp):
                stack.extend(((node.key, frozenset(inner)), (node.value, frozenset(inner))))
            else:
                stack.append((node.elt, frozenset(inner)))
        elif isinstance(node, cst.Call) and _is_constructor(node):
            # ``list(o.total for o in rows)`` runs the generator at once.
            stack.extend((_eager(arg.value), known) for arg in node.args)
        elif isinstance(node, cst.Call) and last_name(node.func) in LAZY_CALLS:
            stack.extend((arg.value, known) for arg in node.args)
        elif plain.column_read(node):
            continue
        elif _chain_carries(node, known, plain):
            return True
    return False


def _eager(value: cst.BaseExpression) -> cst.BaseExpression:
    """A generator expression a constructor consumes at once, as the list
    comprehension it amounts to there."""
    if isinstance(value, cst.GeneratorExp):
        return cst.ListComp(elt=value.elt, for_in=value.for_in)
    return value


def _is_constructor(call: cst.Call) -> bool:
    func = call.func
    last = func.attr.value if isinstance(func, cst.Attribute) else ""
    if isinstance(func, cst.Name):
        last = func.value
    return is_class_name(last)


def _chain_carries(node: cst.BaseExpression, names: frozenset[str], plain: Plain) -> bool:
    """``user``, ``user.orders[0]``, ``db.query(User).first()``: a chain of
    attributes, items and method calls from one of ``names``, with no
    method of ``plain`` on the way. A session's results are plain rows too
    when its query is raw SQL (``db.execute(text(...)).scalar()``)."""
    methods: list[cst.Call] = []
    current: cst.BaseExpression = node
    while True:
        if isinstance(current, cst.Name):
            break
        if isinstance(current, cst.Await):
            current = current.expression
        elif isinstance(current, cst.Attribute | cst.Subscript):
            current = current.value
        elif isinstance(current, cst.Call) and isinstance(current.func, cst.Attribute):
            methods.append(current)
            current = current.func.value
        else:
            return False
    if current.value not in names:
        return False
    called = [_method(call) for call in methods]
    if any(method in plain.methods for method in called):
        return False
    if methods and _raw_sql(methods[-1], plain.statements):
        # Rows of a textual query hold no ORM object.
        return not (called[-1] in RAW_SQL_PLAIN or any(m in ROW_METHODS for m in called[:-1]))
    return True


RAW_SQL_METHODS = frozenset({"execute", "exec_driver_sql", "scalar", "scalars"})
"""A session's methods that run a statement given as their first argument."""
RAW_SQL_PLAIN = frozenset({"scalar"})
"""Of those, the ones whose result is itself a plain value."""


def _method(call: cst.Call) -> str:
    return call.func.attr.value if isinstance(call.func, cst.Attribute) else ""


def _raw_sql(call: cst.Call, statements: frozenset[str]) -> bool:
    """``db.execute(text("..."))``, ``conn.exec_driver_sql("...")``,
    ``db.execute(query)`` where ``query = text("...")``."""
    if _method(call) not in RAW_SQL_METHODS or not call.args:
        return False
    return _is_raw_sql(call.args[0].value, statements)


def _is_raw_sql(statement: cst.BaseExpression, statements: frozenset[str]) -> bool:
    if isinstance(statement, cst.SimpleString | cst.ConcatenatedString | cst.FormattedString):
        return True
    if isinstance(statement, cst.Name):
        return statement.value in statements
    return isinstance(statement, cst.Call) and last_name(statement.func) == "text"


def _root(expression: cst.BaseExpression) -> str | None:
    current: cst.BaseExpression = expression
    while isinstance(current, cst.Attribute | cst.Subscript):
        current = current.value
    return current.value if isinstance(current, cst.Name) else None


# -- uses -------------------------------------------------------------------------


def _is_scope(node: cst.CSTNode) -> bool:
    return isinstance(node, SCOPE_NODES)


def name_nodes(node: cst.CSTNode) -> Iterator[cst.Name]:
    """The names a node uses or binds: not attribute names, keywords of
    arguments, nor the names of imported modules."""
    skipped: set[int] = set()
    for sub in walk(node):
        if isinstance(sub, cst.Attribute):
            skipped.add(id(sub.attr))
        elif isinstance(sub, cst.Arg) and sub.keyword is not None:
            skipped.add(id(sub.keyword))
        elif isinstance(sub, cst.ImportAlias):
            skipped.update(id(n) for n in walk(sub.name))
        elif isinstance(sub, cst.Name) and id(sub) not in skipped:
            yield sub


def mentions(node: cst.CSTNode, names: set[str]) -> bool:
    return any(name.value in names for name in name_nodes(node))


_TARGETED = (cst.AssignTarget, cst.AnnAssign, cst.For, cst.CompFor, cst.NamedExpr)
"""Nodes whose ``target`` binds names."""


def _stores(root: cst.CSTNode) -> set[int]:
    """``id`` of the names in ``root`` that are only bound, never read."""
    stored: set[int] = set()

    def bind(target: cst.CSTNode) -> None:
        if isinstance(target, cst.Name):
            stored.add(id(target))
        elif isinstance(target, cst.Tuple | cst.List):
            for element in target.elements:
                bind(element.value)
        elif isinstance(target, cst.StarredElement):
            bind(target.value)

    for node in walk(root):
        if isinstance(node, _TARGETED):
            bind(node.target)
        elif isinstance(node, cst.AsName | cst.Del):
            bind(node.name if isinstance(node, cst.AsName) else node.target)
        elif isinstance(node, cst.Param | cst.FunctionDef | cst.ClassDef):
            stored.add(id(node.name))
        elif isinstance(node, cst.Global | cst.Nonlocal):
            stored.update(id(item.name) for item in node.names)
    return stored


def _used_outside(
    function: cst.FunctionDef,
    acquisition: cst.CSTNode,
    region: set[int],
    names: set[str],
    parents: dict[int, cst.CSTNode],
) -> tuple[str, cst.BaseStatement] | None:
    """A read of one of ``names`` outside the region that may see the
    released resource: after the acquisition, or anywhere in a loop around
    it (the next turn)."""
    order = {id(node): position for position, node in enumerate(walk(function))}
    start = order[id(acquisition)]
    loops = _enclosing_loops(acquisition, parents)
    stored = _stores(function)
    for node in name_nodes(function):
        if node.value not in names or id(node) in region or id(node) in stored:
            continue
        if order[id(node)] > start or any(id(node) in loop for loop in loops):
            return node.value, _statement_of(node, parents)
    return None


def _enclosing_loops(statement: cst.CSTNode, parents: dict[int, cst.CSTNode]) -> list[set[int]]:
    loops = []
    current = parents.get(id(statement))
    while current is not None and not isinstance(current, SCOPE_NODES):
        if isinstance(current, cst.For | cst.While):
            loops.append({id(node) for node in walk(current)})
        current = parents.get(id(current))
    return loops


def _statement_of(node: cst.CSTNode, parents: dict[int, cst.CSTNode]) -> cst.BaseStatement:
    current: cst.CSTNode | None = node
    while current is not None and not isinstance(
        current, cst.SimpleStatementLine | cst.BaseCompoundStatement
    ):
        current = parents.get(id(current))
    assert isinstance(current, cst.SimpleStatementLine | cst.BaseCompoundStatement)
    return current


# -- escapes ----------------------------------------------------------------------


def _rebinding(statement: cst.BaseStatement, name: str) -> cst.CSTNode | None:
    """The node in ``statement`` that binds ``name`` to something else."""
    for node in walk(statement, prune=_is_scope):
        targets: list[cst.CSTNode] = []
        if isinstance(node, cst.Assign):
            targets = [target.target for target in node.targets]
        elif isinstance(node, cst.AnnAssign | cst.AugAssign | cst.For | cst.NamedExpr):
            targets = [node.target]
        elif isinstance(node, cst.AsName):
            targets = [node.name]
        elif isinstance(node, cst.Del):
            targets = [node.target]
        elif isinstance(node, cst.Global | cst.Nonlocal) and any(
            item.name.value == name for item in node.names
        ):
            return node
        if any(name in assigned_names(target) for target in targets):
            return node
    return None


def _escape(
    body: Sequence[cst.BaseStatement],
    watched: set[str],
    plain: Plain,
    name: str,
    kind: Kind,
    callees: dict[str, cst.FunctionDef],
) -> Unfixable | None:
    """Why something loaded through the resource (or the resource itself)
    would leave the function, or outlive the block, while the block runs."""
    closed = "closing the session detaches it" if kind is Kind.SESSION else "it is closed there"
    locals_ = _local_names(body)
    for statement in body:
        # A lambda given to a function that calls it at once
        # (``sorted(users, key=lambda u: u.name)``) runs there.
        arguments = {
            id(arg.value)
            for node in walk(statement, prune=_is_scope)
            if isinstance(node, cst.Call) and last_name(node.func) in CALLS_AT_ONCE
            for arg in node.args
            if isinstance(arg.value, cst.Lambda)
        }
        for node in walk(statement, prune=_is_scope):
            if isinstance(node, cst.Return | cst.Yield) and isinstance(
                node.value, cst.BaseExpression
            ):
                verb = "returned" if isinstance(node, cst.Return) else "yielded"
                if carries(node.value, watched, plain):
                    return Unfixable(
                        f"a value loaded through `{name}` is {verb} by "
                        f"`{_first_line(_line_of(statement, node))}`, and {closed}"
                    )
                if kind is Kind.POOL and _hands_on(node.value, name):
                    # ``return sessionmaker(bind=engine)()``: what is handed
                    # out draws its connections from the pool later.
                    return Unfixable(
                        f"`{name}` goes out with the value {verb} by "
                        f"`{_first_line(_line_of(statement, node))}`, which may use it later"
                    )
            elif isinstance(node, cst.Assign | cst.AnnAssign | cst.AugAssign):
                targets = (
                    [target.target for target in node.targets]
                    if isinstance(node, cst.Assign)
                    else [node.target]
                )
                value = node.value
                for target in targets:
                    root = _root(target)
                    kept_elsewhere = isinstance(target, cst.Attribute | cst.Subscript) and (
                        root is None or root not in locals_
                    )
                    if kept_elsewhere and value is not None and carries(value, watched, plain):
                        return Unfixable(
                            f"a value loaded through `{name}` is stored by "
                            f"`{_first_line(statement)}`, where {closed}"
                        )
            elif isinstance(node, cst.Call):
                reason = _kept_by_call(node, watched, plain, name, locals_, callees)
                if reason is not None:
                    return Unfixable(reason)
            elif isinstance(node, cst.FunctionDef | cst.ClassDef):
                if mentions(node, watched):
                    return Unfixable(
                        f"`{_first_line(node)}` captures {_captured(node, name)}, "
                        "and may run after the block"
                    )
            elif (
                isinstance(node, cst.Lambda)
                and id(node) not in arguments
                and mentions(node.body, watched)
            ):
                return Unfixable(
                    f"a lambda captures {_captured(node.body, name)}, and may run after the block"
                )
    return None


def _hands_on(value: cst.BaseExpression, name: str) -> bool:
    """Whether a returned or yielded value keeps the pool ``name``: it is the
    value (or held by it), or it is given to a call inside it
    (``sessionmaker(bind=engine)()``, ``Repository(engine)``). Data read
    through it (``await pool.fetchval(...)``) does not keep it."""
    if name in escaping(value):
        return True
    return any(
        name in escaping(arg.value)
        for node in walk(value, prune=_is_scope)
        if isinstance(node, cst.Call)
        for arg in node.args
    )


def _captured(node: cst.CSTNode, name: str) -> str:
    return f"`{name}`" if mentions(node, {name}) else f"what `{name}` loaded"


def _kept_by_call(
    call: cst.Call,
    watched: set[str],
    plain: Plain,
    name: str,
    locals_: set[str],
    callees: dict[str, cst.FunctionDef],
) -> str | None:
    func = call.func
    if isinstance(func, cst.Attribute) and func.attr.value in CONTAINER_METHODS:
        root = _root(func.value)
        if (root is None or root not in locals_) and any(
            carries(arg.value, watched, plain) for arg in call.args
        ):
            return f"a value loaded through `{name}` is kept by `{code(call)}`"
    callee = _callee(call, callees)
    if callee is None:
        return None
    for parameter, arg in _bound_arguments(callee, call):
        kept = isinstance(arg.value, cst.Name) and arg.value.value in watched
        if kept and _keeps(callee, parameter):
            return f"`{callee.name.value}` keeps `{code(arg.value)}` (it stores or returns it)"
    return None


def _callee(call: cst.Call, callees: dict[str, cst.FunctionDef]) -> cst.FunctionDef | None:
    func = call.func
    if isinstance(func, cst.Name):
        return callees.get(func.value)
    receiver = func.value if isinstance(func, cst.Attribute) else None
    if isinstance(func, cst.Attribute) and isinstance(receiver, cst.Name):
        return callees.get(f".{func.attr.value}") if receiver.value in ("self", "cls") else None
    return None


def _bound_arguments(function: cst.FunctionDef, call: cst.Call) -> Iterator[tuple[str, cst.Arg]]:
    params = [*function.params.posonly_params, *function.params.params]
    positional = [p.name.value for p in params]
    if positional and positional[0] in ("self", "cls"):
        positional = positional[1:]
    position = 0
    for arg in call.args:
        if arg.keyword is not None:
            yield arg.keyword.value, arg
        elif arg.star:
            return
        elif position < len(positional):
            yield positional[position], arg
            position += 1


def _keeps(function: cst.FunctionDef, parameter: str) -> bool:
    """Whether a function returns, yields or stores its parameter."""
    for node in walk(function.body):
        if isinstance(node, cst.Return | cst.Yield) and isinstance(node.value, cst.BaseExpression):
            if parameter in escaping(node.value):
                return True
        elif isinstance(node, cst.Assign):
            if parameter in escaping(node.value) and any(
                not _local_target(target.target) for target in node.targets
            ):
                return True
        elif isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
            if node.func.attr.value in CONTAINER_METHODS | SELF_RETURNING_METHODS and any(
                parameter in escaping(arg.value) for arg in node.args
            ):
                return True
        elif isinstance(node, cst.Lambda | cst.FunctionDef) and node is not function:
            return parameter in {n.value for n in name_nodes(node)}
    return False


def _local_target(target: cst.BaseAssignTargetExpression) -> bool:
    """A name, or names unpacked from the value (``conn, cur = pair``): the
    value stays in the function."""
    if isinstance(target, cst.Tuple | cst.List):
        # ``*rest`` included: a starred element's value is its name.
        return all(isinstance(element.value, cst.Name) for element in target.elements)
    return isinstance(target, cst.Name)


def _local_names(body: Iterable[cst.BaseStatement]) -> set[str]:
    """Names the statements bind (not declared global)."""
    bound: set[str] = set()
    declared: set[str] = set()
    for statement in body:
        for node in walk(statement, prune=_is_scope):
            if isinstance(node, _TARGETED):
                bound |= set(assigned_names(node.target))
            elif isinstance(node, cst.AsName):
                bound |= set(assigned_names(node.name))
            elif isinstance(node, cst.Global | cst.Nonlocal):
                declared |= {item.name.value for item in node.names}
    return bound - declared


def _line_of(statement: cst.BaseStatement, node: cst.CSTNode) -> cst.CSTNode:
    """The simple statement holding ``node`` inside ``statement``."""
    for sub in walk(statement):
        if isinstance(sub, cst.SimpleStatementLine) and any(n is node for n in walk(sub)):
            return sub
    return statement


def _first_line(node: cst.CSTNode, limit: int = 60) -> str:
    """The first line of a statement (a compound statement's header)."""
    if isinstance(node, cst.SimpleStatementLine | cst.BaseCompoundStatement):
        node = node.with_changes(leading_lines=())
    line = cst.Module(body=[]).code_for_node(node).strip().split("\n")[0].rstrip()
    return line if len(line) <= limit else line[: limit - 3] + "..."


def endless_loop(statements: Sequence[cst.CSTNode]) -> cst.While | None:
    """A ``while True:`` among ``statements`` (or in their blocks) that no
    ``break`` or ``return`` leaves: a block around it ends only with an
    exception, so entering the resource there still holds it for the loop."""
    for statement in statements:
        for node in walk_scope(statement):
            if (
                isinstance(node, cst.While)
                and always_true(node.test)
                and not any(True for _ in _own_exits(node.body))
            ):
                return node
    return None


def _own_exits(node: cst.CSTNode) -> Iterator[cst.Break | cst.Return]:
    """The ``break`` and ``return`` statements that leave the loop whose body
    is ``node``."""
    for child in children(node):
        if isinstance(child, cst.Return | cst.Break):
            yield child
        elif isinstance(child, cst.For | cst.While):
            yield from (each for each in _own_exits(child) if isinstance(each, cst.Return))
        elif not isinstance(child, cst.FunctionDef | cst.ClassDef | cst.Lambda):
            yield from _own_exits(child)
