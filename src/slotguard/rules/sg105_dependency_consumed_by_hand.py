"""
## What it does
Finds a cleanup generator, such as a FastAPI dependency `get_db` that yields
a session and closes it afterwards, driven by hand so that its cleanup never
runs, or runs late:

- `db = next(get_db())`, `db = await anext(get_db())`,
  `get_db().__next__()`, or the same through a variable holding `get_db()`;
- `for db in get_db():` / `async for db in get_db():` left with `break`,
  `return` or `raise`.

## Why is this bad?
The code after a generator's `yield` (its `finally`, its `with` exit) runs
only when the generator is resumed or closed. Driven by hand, nobody resumes
it: the cleanup waits for the garbage collector, or, for an async generator,
for the event loop's finaliser. Until then the session keeps its connection
checked out. With `next(get_db())` the generator may even be collected at
once, closing the session while the caller still uses it, and the session's
next query checks out a connection nobody will return.

## Example
```python
def nightly_report():
    db = next(get_db())
    return db.scalars(select(Order)).all()
```

## Use instead
```python
from contextlib import contextmanager

def nightly_report():
    with contextmanager(get_db)() as db:
        return db.scalars(select(Order)).all()
```

or create the session directly: `with SessionLocal() as db:`.

## Fix safety
The fix is unsafe: it enters the generator with
`contextlib.contextmanager(get_db)()` (`asynccontextmanager` for an async
generator, with the same arguments) from the call to the last statement of
its block that uses what it gave; a loop left by its trailing `break`
becomes that block. The generator's cleanup then runs at the end of the
block, and an exception raised in the block is thrown into it at its
`yield`, as the framework would. The fix declines when what the generator
gave, or what was loaded through it, is used after the block or leaves the
function, when the generator object is kept in a variable, and when the
generator yields more than once or swallows what is thrown into it at its
`yield`; the `fix` summary says which. Whether the generator should be
used outside the framework at all is still the author's decision.

## At runtime
`pytest --slotguard-leaks=fail` fails a test that ends with the dependency's
session still holding its connection, naming the line that created the session
inside the dependency and the statement that took the connection.
"""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from slotguard.analysis.index import SymbolKind
from slotguard.analysis.infer import ModuleInfo, Scope
from slotguard.analysis.ownership import in_a_test
from slotguard.rules.base import Context, Rule
from slotguard.rules.common import code
from slotguard.syntax import children, dotted_name, unwrap_await, walk_scope

_ADVANCE_FUNCTIONS = ("next", "anext")
_ADVANCE_METHODS = ("__next__", "__anext__", "send", "asend")
_FINISH_METHODS = ("close", "aclose")


class DependencyConsumedByHand(Rule):
    code = "SG105"
    name = "dependency-consumed-by-hand"
    summary = "A cleanup generator (a dependency like `get_db`) is driven by hand."

    def check(self, context: Context) -> None:
        module = context.module
        functions = [f for f in module.functions if not in_a_test(f)]
        for scope in (module.module_scope, *(f.scope for f in functions)):
            generators = _generator_variables(scope, module)
            for node in scope.of_type(cst.Call, cst.For):
                if isinstance(node, cst.Call):
                    driven = _driven_generator(node, generators, module)
                    if driven is not None:
                        context.report(
                            node,
                            f"`{driven}()` is driven by hand with `{code(node.func, 20)}`: "
                            "its cleanup waits for the garbage collector",
                            related=[
                                (
                                    node,
                                    f"use `with contextmanager({driven})() as ...`, "
                                    "or let the framework inject it",
                                )
                            ],
                        )
                elif isinstance(node, cst.For):
                    self._check_loop(node, module, context)

    def _check_loop(self, loop: cst.For, module: ModuleInfo, context: Context) -> None:
        generator = _generator_call(loop.iter, module)
        if generator is None:
            return
        for exit_statement in _loop_exits(loop.body):
            verb = type(exit_statement).__name__.lower()
            keyword = "async for" if loop.asynchronous else "for"
            context.report(
                loop.iter,
                f"`{verb}` at line {context.line(exit_statement)} leaves "
                f"`{keyword} ... in {generator}()`: its cleanup waits for the garbage collector",
                related=[(exit_statement, f"`{verb}` leaves the loop here, skipping the cleanup")],
            )
            return


def is_cleanup_generator(module: ModuleInfo, name: str) -> bool:
    """A generator that yields a resource, or a dependency provider (which
    is a generator if anyone drives it with ``next``)."""
    function = module.function_named(name)
    if function is not None:
        if not function.is_generator:
            return False
        return function.is_dependency_provider or function.yielded_type() is not None
    symbol = module.imported_symbol(name)
    if symbol is not None and symbol.kind is SymbolKind.PROVIDER:
        return True
    return name in module.dependency_targets


def _generator_call(expression: cst.BaseExpression, module: ModuleInfo) -> str | None:
    """``get_db`` when the expression is ``get_db(...)`` of a cleanup generator."""
    expression, _ = unwrap_await(expression)
    if not isinstance(expression, cst.Call):
        return None
    name = dotted_name(expression.func)
    if name is not None and is_cleanup_generator(module, name):
        return name
    return None


def _generator_variables(scope: Scope, module: ModuleInfo) -> dict[str, str]:
    """Local names bound to a cleanup generator object: ``gen = get_db()``;
    not those the scope finishes in a ``finally`` (their cleanup runs)."""
    found = {}
    for node in scope.of_type(cst.Assign):
        if isinstance(node, cst.Assign) and len(node.targets) == 1:
            target = node.targets[0].target
            generator = _generator_call(node.value, module)
            if isinstance(target, cst.Name) and generator is not None:
                found[target.value] = generator
    if found:
        for name in _finished_in_finally(scope):
            found.pop(name, None)
    return found


def _finished_in_finally(scope: Scope) -> set[str]:
    """Generators a ``finally`` of the scope closes (``gen.close()``,
    ``await gen.aclose()``) or runs to its end (``next(gen, None)``): what
    ``contextlib.contextmanager`` would do, written by hand."""
    finished: set[str] = set()
    for node in scope.of_type(cst.Try):
        if not isinstance(node, cst.Try) or node.finalbody is None:
            continue
        for call in walk_scope(node.finalbody):
            if not isinstance(call, cst.Call):
                continue
            func = call.func
            if isinstance(func, cst.Attribute) and func.attr.value in _FINISH_METHODS:
                target = func.value
            elif (
                isinstance(func, cst.Name)
                and func.value in _ADVANCE_FUNCTIONS
                and len(call.args) == 2
            ):
                target = call.args[0].value
            else:
                continue
            if isinstance(target, cst.Name):
                finished.add(target.value)
    return finished


def _driven_generator(call: cst.Call, variables: dict[str, str], module: ModuleInfo) -> str | None:
    func = call.func
    if isinstance(func, cst.Name) and func.value in _ADVANCE_FUNCTIONS and call.args:
        return _generator_of(call.args[0].value, variables, module)
    if isinstance(func, cst.Attribute) and func.attr.value in _ADVANCE_METHODS:
        return _generator_of(func.value, variables, module)
    return None


def _generator_of(
    expression: cst.BaseExpression, variables: dict[str, str], module: ModuleInfo
) -> str | None:
    if isinstance(expression, cst.Name):
        return variables.get(expression.value)
    return _generator_call(expression, module)


def _loop_exits(body: cst.BaseSuite) -> Iterator[cst.Break | cst.Return | cst.Raise]:
    """``return`` anywhere in the loop body, ``raise`` that no ``try`` of the
    body catches (one with ``except`` clauses is taken to), and ``break``
    that belongs to this loop rather than to a nested one."""
    stack: list[tuple[cst.CSTNode, bool, bool]] = [(body, False, False)]
    while stack:
        node, nested_loop, caught = stack.pop()
        if (
            isinstance(node, cst.Return)
            or (isinstance(node, cst.Raise) and not caught)
            or (isinstance(node, cst.Break) and not nested_loop)
        ):
            yield node
        if isinstance(node, cst.FunctionDef | cst.ClassDef | cst.Lambda):
            continue
        inner = nested_loop or isinstance(node, cst.For | cst.While)
        guarded = isinstance(node, cst.Try | cst.TryStar) and bool(node.handlers)
        stack.extend(
            (child, inner, caught or (guarded and child is getattr(node, "body", None)))
            for child in reversed(list(children(node)))
        )
