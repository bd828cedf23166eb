"""SG104: a ``with`` that does not release becomes one that does, keeping
what the old one did.

    with psycopg2.connect(dsn) as conn:      with contextlib.closing(connect(dsn)) as conn, conn:
        BODY                          →          BODY

``closing`` closes the connection at the end of the block; the second item
still enters the connection itself, so its transaction is committed or
rolled back as before, and before the close.

    with pool.getconn() as conn:             conn = pool.getconn()
        BODY                          →      try:
                                                 with conn:
                                                     BODY
                                             finally:
                                                 pool.putconn(conn)

    with Session(engine).no_autoflush as session:
        BODY                          →      with Session(engine) as session, session.no_autoflush:
                                                 BODY

A session created inline and used only for one of its context managers
(``no_autoflush``, ``begin()``) is entered itself, first; that is unsafe,
because closing the session detaches the objects it loaded, which code
after the block may still read.

The fix declines when the name bound by ``as`` is read after the block (the
new code would close it under that reader), or an object loaded through it
in the block is (closing the session detaches it: a lazy attribute read
after the block raises ``DetachedInstanceError``), when the connection is not
bound to a name, for asynchronous connections (``contextlib.closing`` calls
``close()`` without awaiting it), and for types whose release the model
cannot spell as one of these shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import libcst as cst

from slotguard.analysis.infer import Produced, Scope
from slotguard.diagnostic import Applicability
from slotguard.fixes.base import Fixer, Plan, Unfixable
from slotguard.fixes.context_manager import needs_closing, reindent_continuations
from slotguard.fixes.imports import usable_spelling
from slotguard.fixes.lifetime import loaded_through
from slotguard.model.vocabulary import Kind
from slotguard.rules.base import Context, RawFinding
from slotguard.rules.common import code
from slotguard.syntax import children, unwrap_await, walk

_YIELDS_ITSELF = frozenset({"no_autoflush"})
"""Context managers of a session that give the session itself to ``as``."""


class WithDoesNotReleaseFix(Fixer):
    code = "SG104"
    summary = (
        "Close the connection with `contextlib.closing(...)`, give it back in a `finally`, "
        "or enter the inline session itself (unsafe)."
    )

    def plan(self, context: Context, finding: RawFinding) -> Plan | Unfixable:
        located = _locate(context.tree, finding.node)
        if located is None:
            return Unfixable("the `with` is not a statement of a block")
        statement, position, block, parents = located
        scope = _scope_of(context, statement, parents)
        item = statement.items[position]
        entered, _ = unwrap_await(item.item)
        produced = scope.produced(entered)
        if produced is not None:
            return _own_resource(context, finding, statement, position, block, parents, produced)
        if not isinstance(entered, cst.Attribute | cst.Call):
            return Unfixable("the `with` item is not one the fix recognises")
        return _inline_resource(context, finding, statement, position, block, parents, scope)


def is_with_item(context: Context, node: cst.CSTNode) -> bool:
    """Whether ``node`` is what a ``with`` statement of a block enters."""
    return _locate(context.tree, node) is not None


def _locate(
    tree: cst.Module, node: cst.CSTNode
) -> tuple[cst.With, int, cst.IndentedBlock | cst.Module, dict[int, cst.CSTNode]] | None:
    parents: dict[int, cst.CSTNode] = {}
    for parent in walk(tree):
        for child in children(parent):
            parents[id(child)] = parent
    item = parents.get(id(node))
    statement = parents.get(id(item)) if item is not None else None
    block = parents.get(id(statement)) if statement is not None else None
    if not isinstance(statement, cst.With) or not isinstance(block, cst.IndentedBlock | cst.Module):
        return None
    for position, candidate in enumerate(statement.items):
        if candidate is item:
            return statement, position, block, parents
    return None


def _scope_of(context: Context, node: cst.CSTNode, parents: dict[int, cst.CSTNode]) -> Scope:
    functions = {id(function.node): function for function in context.module.functions}
    current = parents.get(id(node))
    while current is not None:
        function = functions.get(id(current))
        if function is not None:
            return function.scope
        current = parents.get(id(current))
    return context.module.module_scope


def _own_resource(
    context: Context,
    finding: RawFinding,
    statement: cst.With,
    position: int,
    block: cst.IndentedBlock | cst.Module,
    parents: dict[int, cst.CSTNode],
    produced: Produced,
) -> Plan | Unfixable:
    """``with <acquisition> as name`` whose context manager does not release."""
    resource = produced.type
    item = statement.items[position]
    name = _bound_name(item)
    if resource.is_async or statement.asynchronous is not None:
        return Unfixable(
            "an asynchronous connection has no closing context manager: close it in a `finally`"
        )
    if name is None:
        return Unfixable(f"the {resource.kind.value} is not bound to a name with `as`")
    if _read_after(statement, name, parents):
        return Unfixable(f"`{name}` is used after the block, where it would be released")
    call = produced.call
    if resource.returned_by and isinstance(call.func, cst.Attribute):
        if position != 0:
            return Unfixable("the connection is not the first item of the `with`")
        return _given_back(
            finding, statement, block, context.tree, name, call.func.value, resource.returned_by[0]
        )
    if resource.kind is Kind.CONNECTION and "close" in resource.release_methods:
        return _closing(context, finding, statement, position, block, name)
    return Unfixable(resource.with_note)


def _closing(
    context: Context,
    finding: RawFinding,
    statement: cst.With,
    position: int,
    block: cst.IndentedBlock | cst.Module,
    name: str,
) -> Plan:
    item = statement.items[position]
    spelled, imports = usable_spelling(context.tree, "contextlib.closing")
    wrapped = cst.Call(cst.parse_expression(spelled), [cst.Arg(item.item)])
    closing = item.with_changes(
        item=wrapped, comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    )
    entered = cst.WithItem(cst.Name(name), comma=item.comma)
    items = [*statement.items[:position], closing, entered, *statement.items[position + 1 :]]
    header = f"with {spelled}({code(item.item)}) as {name}, {name}"
    return _replacing(
        finding,
        block,
        statement,
        lambda: [statement.with_changes(items=items)],
        Applicability.SAFE,
        f"rewrite as `{header}:`",
        imports,
    )


def _given_back(
    finding: RawFinding,
    statement: cst.With,
    block: cst.IndentedBlock | cst.Module,
    tree: cst.Module,
    name: str,
    pool: cst.BaseExpression,
    method: str,
) -> Plan | Unfixable:
    if not isinstance(statement.body, cst.IndentedBlock):
        return Unfixable("a one-line `with` body")
    body = statement.body
    # The new ``try`` body is indented by the module's default indentation.
    indent = tree.default_indent

    def build() -> list[cst.BaseStatement]:
        first = statement.items[0]
        acquire = cst.SimpleStatementLine(
            [cst.Assign([cst.AssignTarget(cst.Name(name))], first.item)],
            leading_lines=statement.leading_lines,
        )
        entered = first.with_changes(item=cst.Name(name), asname=None)
        # The body, and the comment on the ``with`` line, stay with the ``with``.
        deeper = body.with_changes(
            body=[reindent_continuations(part, indent) for part in body.body]
        )
        inner = statement.with_changes(
            items=[entered, *statement.items[1:]], body=deeper, leading_lines=()
        )
        returned = cst.Call(
            cst.Attribute(pool.deep_clone(), cst.Name(method)), [cst.Arg(cst.Name(name))]
        )
        protected = cst.Try(
            body=cst.IndentedBlock([inner]),
            finalbody=cst.Finally(
                body=cst.IndentedBlock([cst.SimpleStatementLine([cst.Expr(returned)])])
            ),
        )
        return [acquire, protected]

    return _replacing(
        finding,
        block,
        statement,
        build,
        Applicability.SAFE,
        f"give `{name}` back with `{code(pool)}.{method}({name})` in a `finally`",
        [],
    )


def _inline_resource(
    context: Context,
    finding: RawFinding,
    statement: cst.With,
    position: int,
    block: cst.IndentedBlock | cst.Module,
    parents: dict[int, cst.CSTNode],
    scope: Scope,
) -> Plan | Unfixable:
    """``with Session(engine).no_autoflush as s``: the session is created
    inline and never entered."""
    item = statement.items[position]
    entered, _ = unwrap_await(item.item)
    attribute = entered.func if isinstance(entered, cst.Call) else entered
    if not isinstance(attribute, cst.Attribute):
        return Unfixable("the `with` item is not one the fix recognises")
    produced = scope.produced(attribute.value)
    if produced is None:
        return Unfixable("the `with` item is not one the fix recognises")
    resource = produced.type
    if not resource.with_releases:
        return Unfixable(resource.with_note)
    if resource.is_async and statement.asynchronous is None:
        return Unfixable("the session is asynchronous but the `with` is not")
    name = _bound_name(item)
    if name is not None and isinstance(statement.body, cst.IndentedBlock):
        # What the block loads through the session is detached once it is
        # closed: a lazy attribute read after the block would raise.
        for loaded in sorted(loaded_through(statement.body.body, name, resource.kind)):
            if _read_after(statement, loaded, parents):
                return Unfixable(
                    f"`{loaded}`, loaded through `{name}`, is used after the block, "
                    "where closing the session detaches it"
                )
    if name is not None and entered is attribute and attribute.attr.value in _YIELDS_ITSELF:
        if _read_after(statement, name, parents):
            return Unfixable(f"`{name}` is used after the block, where it would be closed")
        session = name
        inner = item.with_changes(item=attribute.with_changes(value=cst.Name(session)), asname=None)
    else:
        base = "session" if resource.kind is Kind.SESSION else "conn"
        session = _fresh_name(_scope_node(statement, parents, context.tree), base)
        renamed = attribute.with_changes(value=cst.Name(session))
        value = entered.with_changes(func=renamed) if isinstance(entered, cst.Call) else renamed
        inner = item.with_changes(item=value)
    created: cst.BaseExpression = produced.expression
    imports: list[cst.SimpleStatementLine] = []
    if needs_closing(context, resource):
        spelled, imports = usable_spelling(context.tree, "contextlib.closing")
        created = cst.Call(cst.parse_expression(spelled), [cst.Arg(created)])
    outer = cst.WithItem(
        created,
        asname=cst.AsName(cst.Name(session)),
        comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")),
    )
    items = [*statement.items[:position], outer, inner, *statement.items[position + 1 :]]
    keyword = "async with" if statement.asynchronous is not None else "with"
    header = f"{keyword} {code(created)} as {session}, ..."
    return _replacing(
        finding,
        block,
        statement,
        lambda: [statement.with_changes(items=items)],
        Applicability.UNSAFE,
        f"rewrite as `{header}:` (unsafe: closing the session detaches what it loaded)",
        imports,
    )


def _replacing(
    finding: RawFinding,
    block: cst.IndentedBlock | cst.Module,
    statement: cst.With,
    replacement: Callable[[], list[cst.BaseStatement]],
    applicability: Applicability,
    description: str,
    imports: list[cst.SimpleStatementLine],
) -> Plan:
    index = next(i for i, candidate in enumerate(block.body) if candidate is statement)
    return Plan(
        code=finding.rule.code,
        applicability=applicability,
        description=description,
        block=block,
        start=index,
        end=index + 1,
        build=replacement,
        imports=imports,
    )


def _bound_name(item: cst.WithItem) -> str | None:
    if item.asname is not None and isinstance(item.asname.name, cst.Name):
        return item.asname.name.value
    return None


def _scope_node(
    statement: cst.CSTNode, parents: dict[int, cst.CSTNode], tree: cst.Module
) -> cst.CSTNode:
    current = parents.get(id(statement))
    while current is not None and not isinstance(current, cst.FunctionDef):
        current = parents.get(id(current))
    return current if current is not None else tree


def _fresh_name(scope: cst.CSTNode, base: str) -> str:
    """A name nothing in the function (or module) uses."""
    taken = {node.value for node in walk(scope) if isinstance(node, cst.Name)}
    candidate, number = base, 1
    while candidate in taken:
        number += 1
        candidate = f"{base}_{number}"
    return candidate


def _read_after(statement: cst.With, name: str, parents: dict[int, cst.CSTNode]) -> bool:
    """Whether ``name`` may be read after ``statement`` in its function,
    before it is bound again; in a loop, anywhere else in the loop too."""
    inside = {id(node) for node in walk(statement)}
    for following in _following(statement, parents):
        if _rebinds_first(following, name):
            return False
        if _reads(following, name, inside):
            return True
    return False


def _following(statement: cst.CSTNode, parents: dict[int, cst.CSTNode]) -> Iterator[cst.CSTNode]:
    """The statements after ``statement`` in source order, up to the end of
    its function; a loop around it contributes its whole body again."""
    current: cst.CSTNode = statement
    while True:
        parent = parents.get(id(current))
        if parent is None or isinstance(parent, cst.FunctionDef | cst.Lambda | cst.ClassDef):
            return
        if isinstance(parent, cst.IndentedBlock | cst.Module):
            body = list(parent.body)
            position = next(i for i, part in enumerate(body) if part is current)
            yield from body[position + 1 :]
        elif isinstance(parent, cst.For | cst.While):
            yield parent
        current = parent


def _rebinds_first(statement: cst.CSTNode, name: str) -> bool:
    """``name = <expression without name>``: a fresh binding before any read."""
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return False
    small = statement.body[0]
    if not isinstance(small, cst.Assign):
        return False
    targets = [target.target for target in small.targets]
    return any(
        isinstance(target, cst.Name) and target.value == name for target in targets
    ) and not _reads(small.value, name)


def _reads(node: cst.CSTNode, name: str, skipped: frozenset[int] | set[int] = frozenset()) -> bool:
    """Whether ``name`` is used in ``node``, outside the nodes ``skipped``
    (attribute names and keywords are not uses)."""
    nodes = list(walk(node))
    skipped = {
        *skipped,
        *(id(n.attr) for n in nodes if isinstance(n, cst.Attribute)),
        *(id(n.keyword) for n in nodes if isinstance(n, cst.Arg) and n.keyword),
    }
    return any(isinstance(n, cst.Name) and n.value == name and id(n) not in skipped for n in nodes)
