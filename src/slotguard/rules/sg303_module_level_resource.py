"""
## What it does
Finds a session or connection created at import time: assigned at module
level (`db = SessionLocal()`, `conn = psycopg.connect(DSN)`,
`conn = engine.connect()`), in a class body (`class Repo: session =
Session(engine)`), or as a parameter's default value
(`def handler(db=SessionLocal()):`, evaluated once when the `def` runs).

Pools, engines and session factories at module level are the intended design
and are not reported. Neither is a `scoped_session(...)` registry: it holds no
connection itself, each thread gets its own session from it, and the
`remove()` that closes that session at teardown usually sits in another
module (Flask's `teardown_appcontext`, a middleware). Nor is code under
`if __name__ == "__main__":`, a module-level `with` block, a script-style
module that closes the connection at module level itself, nor a script that
parses its command line at module level (`args = parser.parse_args()`).

## Why is this bad?
A session or connection created on import holds a slot of the pool (or a
server connection) for the life of the process, in every process that imports
the module: each web worker, each test run, each migration. Everything that
imports it shares it, across threads and requests, which neither sessions
nor connections support, and when the connection drops (a server restart, an
idle timeout) nothing reopens it. A default argument is the same thing in
disguise: one session, created once, shared by every call that does not pass
its own.

## Example
```python
engine = create_engine(DATABASE_URL)
SessionLocal = sessionmaker(engine)
db = SessionLocal()


def count_users():
    return db.scalar(select(func.count(User.id)))
```

## Use instead
```python
engine = create_engine(DATABASE_URL)
SessionLocal = sessionmaker(engine)


def count_users():
    with SessionLocal() as db:
        return db.scalar(select(func.count(User.id)))
```

## Fix safety
There is no automatic fix: the session has to move to where it is used.

## At runtime
`pytest --slotguard-leaks=fail` reports the import-time session's connection,
naming the line at the module's top level that created the session.
"""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from slotguard.analysis import lifetimes
from slotguard.analysis.infer import Produced, Scope
from slotguard.analysis.lifetimes import Resources, module_resources
from slotguard.rules.base import Context, Rule
from slotguard.rules.common import code
from slotguard.syntax import assigned_names, dotted_name, is_nested_scope, string_value, walk


class ModuleLevelResource(Rule):
    code = "SG303"
    name = "module-level-resource"
    summary = "A session or connection is created at import time."

    def check(self, context: Context) -> None:
        module = context.module
        if _reads_its_command_line(module.tree):
            # A script: what it creates on import lives for its one run.
            return
        scope = module.module_scope
        resources = module_resources(module)
        released = _released_at_module_level(scope, module.tree)
        for statement, where in _import_time_statements(module.tree):
            if isinstance(statement, cst.FunctionDef):
                self._check_defaults(context, scope, resources, statement, where)
                continue
            for produced in _acquisitions(scope, resources, statement):
                kept = _kept_as(statement, produced)
                if kept is not None and kept in released:
                    continue
                self._report(context, produced, kept, where)

    def _report(
        self, context: Context, produced: Produced, kept: str | None, where: str | None
    ) -> None:
        resource = produced.type
        made = f"`{code(produced.expression, 30)}`"
        what = f"`{kept}` from {made}" if kept else f"the {resource.kind.value} from {made}"
        if where is not None:
            message = f"{what} is created when class `{where}` is defined, at import time"
            shared = "shared by every instance"
        else:
            message = f"{what} is created when the module is imported"
            shared = "shared by everything that imports it"
        context.report(
            produced.expression,
            message,
            related=[
                (
                    produced.expression,
                    f"{shared}, it holds a connection for the life of the process; "
                    f"{_advice(produced)}",
                )
            ],
        )

    def _check_defaults(
        self,
        context: Context,
        scope: Scope,
        resources: Resources,
        function: cst.FunctionDef,
        where: str | None,
    ) -> None:
        params = function.params
        for param in (*params.posonly_params, *params.params, *params.kwonly_params):
            if param.default is None:
                continue
            for produced in _acquisitions(scope, resources, param.default):
                owner = f"{where}.{function.name.value}" if where else function.name.value
                context.report(
                    produced.expression,
                    f"the default `{code(produced.expression, 30)}` of `{param.name.value}` "
                    f"in `{owner}` is created once, at import time",
                    related=[
                        (
                            produced.expression,
                            "shared by every call that does not pass its own; default to "
                            f"`None` and create the {produced.type.kind.value} inside the "
                            "function, or inject it",
                        )
                    ],
                )


def _advice(produced: Produced) -> str:
    resource = produced.type
    keep = "and keep only the engine, pool or session factory at module level"
    if not resource.with_releases:
        return f"open it where it is used, close it in a `finally`, {keep}"
    call = produced.call
    method = produced.method
    if method is not None and method.context_manager and isinstance(call.func, cst.Attribute):
        call = call.with_changes(func=call.func.with_changes(attr=cst.Name(method.context_manager)))
    keyword = "async with" if resource.is_async else "with"
    return f"open it where it is used, `{keyword} {code(call)} as ...`, {keep}"


_COMMAND_LINE_PARSERS = frozenset({"parse_args", "parse_known_args"})


def _reads_its_command_line(tree: cst.Module) -> bool:
    """Whether the module parses its command line at module level
    (``args = parser.parse_args()``): a script, run rather than imported,
    whose import-time session is the run's own."""
    for statement, where in _import_time_statements(tree):
        if where is not None or isinstance(statement, cst.FunctionDef):
            continue
        for node in walk(statement):
            if (
                isinstance(node, cst.Call)
                and isinstance(node.func, cst.Attribute)
                and node.func.attr.value in _COMMAND_LINE_PARSERS
            ):
                return True
    return False


def _import_time_statements(
    tree: cst.Module,
) -> Iterator[tuple[cst.CSTNode, str | None]]:
    """Statements that run when the module is imported, with the class whose
    body they are in: module level (inside ``if``/``try``/``for`` too), and
    class bodies; ``def`` statements are yielded for their default values.
    ``if __name__ == "__main__":`` and ``with`` blocks are left out: the
    first runs only as a script, the second releases what it enters."""
    stack: list[tuple[cst.CSTNode, str | None]] = [(s, None) for s in reversed(tree.body)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, cst.SimpleStatementLine):
            for small in node.body:
                yield small, where
        elif isinstance(node, cst.FunctionDef):
            yield node, where
        elif isinstance(node, cst.ClassDef):
            name = f"{where}.{node.name.value}" if where else node.name.value
            stack.extend((s, name) for s in reversed(node.body.body))
        elif isinstance(node, cst.If) and _is_main_guard(node.test):
            if isinstance(node.orelse, cst.Else | cst.If):
                stack.append((node.orelse, where))
        elif isinstance(node, cst.With | cst.Match):
            continue
        elif isinstance(node, cst.BaseCompoundStatement | cst.Else):
            if isinstance(node, cst.If | cst.While | cst.For):
                yield node.test if isinstance(node, cst.If | cst.While) else node.iter, where
            inner: list[cst.CSTNode] = list(node.body.body)
            for part in ("orelse", "handlers", "finalbody"):
                value = getattr(node, part, None)
                if isinstance(value, cst.CSTNode):
                    inner.append(value)
                elif isinstance(value, tuple | list):
                    inner.extend(value)
            stack.extend((s, where) for s in reversed(inner))
        elif isinstance(node, cst.ExceptHandler | cst.Finally):
            stack.extend((s, where) for s in reversed(node.body.body))


def _is_main_guard(test: cst.BaseExpression) -> bool:
    if not isinstance(test, cst.Comparison) or len(test.comparisons) != 1:
        return False
    right = test.comparisons[0].comparator
    return dotted_name(test.left) == "__name__" and string_value(right) == "__main__"


def _acquisitions(scope: Scope, resources: Resources, node: cst.CSTNode) -> Iterator[Produced]:
    """Short-lived resources acquired when ``node`` runs (lambdas and nested
    definitions run later, if ever)."""
    inside: set[int] = set()
    for sub in walk(node, prune=is_nested_scope):
        if id(sub) in inside or not isinstance(sub, cst.Call | cst.Await):
            continue
        produced = scope.produced(sub)
        if produced is None or not produced.acquires:
            ran = _run_at_import(scope, sub) if isinstance(sub, cst.Call) else None
            produced = _completed(ran, sub) if ran is not None else None
        if produced is not None and resources.is_short_lived(produced.type):
            inside.update(id(n) for n in walk(sub))
            yield produced


def _run_at_import(scope: Scope, call: cst.Call) -> Produced | None:
    """``loop.run_until_complete(asyncpg.connect(...))``: what the coroutine
    run to completion produces."""
    callee = dotted_name(call.func)
    qualified = scope.module.qualify(callee) if callee else None
    method = call.func.attr.value if isinstance(call.func, cst.Attribute) else None
    runs = qualified in lifetimes.IMPORT_TIME_RUNNERS or (
        method in lifetimes.IMPORT_TIME_RUNNER_METHODS
    )
    if not runs or not call.args:
        return None
    produced = scope.produced(call.args[0].value)
    if produced is None or (produced.method is not None and produced.method.context_manager_only):
        return None
    return produced if produced.type.kind.is_resource else None


def _completed(produced: Produced, runner: cst.BaseExpression) -> Produced:
    return Produced(produced.type, runner, produced.call, True, produced.callee, produced.method)


def _kept_as(statement: cst.CSTNode, produced: Produced) -> str | None:
    """The module-level name an assignment keeps the acquisition in."""
    if isinstance(statement, cst.Assign | cst.AnnAssign) and statement.value is produced.expression:
        targets = (
            [t.target for t in statement.targets]
            if isinstance(statement, cst.Assign)
            else [statement.target]
        )
        for target in targets:
            names = list(assigned_names(target))
            if names:
                return names[0]
            name = dotted_name(target)
            if name is not None:
                return name
    return None


def _released_at_module_level(scope: Scope, tree: cst.Module) -> set[str]:
    """Names a script-style module releases itself at module level."""
    release_methods = {m for t in scope.module.model.types() for m in t.release_methods}
    released: set[str] = set()
    for statement, where in _import_time_statements(tree):
        if where is not None or isinstance(statement, cst.FunctionDef):
            continue
        for node in walk(statement, prune=is_nested_scope):
            if (
                isinstance(node, cst.Call)
                and isinstance(node.func, cst.Attribute)
                and node.func.attr.value in release_methods
            ):
                name = dotted_name(node.func.value)
                if name is not None:
                    released.add(name)
    return released
