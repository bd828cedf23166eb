"""Who owns what a function acquires, beyond the function's own code.

A function owns what it acquires, unless something outside it takes the
resource back: the library that implements the resource type (its own
modules manage connections through internal bookkeeping), a test harness that
reclaims every connection after each test, pytest (which resumes a fixture's
generator after the test, whatever the test did), or the code a context
manager or a pool is made of (which acquires by hand because it *is* the
managed form, SPEC section 1).
"""

from __future__ import annotations

import functools
from pathlib import Path

import libcst as cst

from slotguard.analysis.infer import FunctionInfo, ModuleInfo
from slotguard.model import Model
from slotguard.model.catalog import BUILTIN, PATCHERS, PATCHING_FIXTURES, RECLAIMING_HARNESSES
from slotguard.model.lifecycle import (
    COMMAND_DECORATORS,
    MANAGEMENT_COMMAND_BASES,
    MIGRATION_RUNNERS,
    SERVING_CALLS,
)
from slotguard.model.vocabulary import Kind
from slotguard.syntax import always_true, dotted_name, last_name, walk, walk_scope

# Only the libraries of the built-in table: a wrapper the configuration adds
# lives in the user's own package, which is exactly the code to check.
_BUILT_IN_LIBRARIES = Model(BUILTIN).libraries()

_RELEASING_METHOD_NAMES = frozenset(
    {"__exit__", "__aexit__", "release", "putconn", "close", "aclose"}
)
"""A class with one of these implements a managed form or a pool."""


def reclaimed_kinds(module: ModuleInfo) -> frozenset[Kind]:
    """The kinds of resource something outside the module's own code takes
    back: every kind in a module of a built-in library's own package, and
    what a reclaiming test harness the module imports reclaims."""
    return module.cached("reclaimed-kinds", lambda: _reclaimed_kinds(module))


def _reclaimed_kinds(module: ModuleInfo) -> frozenset[Kind]:
    name = module.module_name
    if name is not None and name.split(".", 1)[0] in _BUILT_IN_LIBRARIES:
        return frozenset(Kind)
    imported = module.imports.qualified_names()
    kinds: set[Kind] = set()
    for harness, reclaimed in RECLAIMING_HARNESSES:
        prefix = harness + "."
        if any(q == harness or q.startswith(prefix) for q in imported):
            kinds |= reclaimed
    return frozenset(kinds)


def in_a_test(function: FunctionInfo | None) -> bool:
    """Whether the function is test code: in a test module (its helpers,
    fixtures and classes too), a pytest fixture anywhere, or nested in one.
    What it creates ends with the test run, and an exception in it fails a
    test rather than a request."""
    if function is None:
        return False
    if function.module.is_test:
        return True
    while function is not None:
        if function.is_fixture:
            return True
        function = function.parent
    return False


def mocked_by_the_test(function: FunctionInfo, callee: str, call: cst.CSTNode) -> bool:
    """Whether test code acquires, by ``call``, through a project function
    ``callee`` (as spelled there) while it patches what the function builds
    the connection with: a name of the function's module that the model
    knows (``@patch("app.db.sessionmaker")``, ``with patch("app.db.create_engine"):``
    around the call, ``mocker.patch("app.db.psycopg2.connect")`` before it), or
    the function itself where the test uses it (``@patch("tests.test_x.open_db")``).
    What the function returns is then made of mocks, not a connection.
    Patching its settings, its logger, or the function where it is defined
    (the test imported it before) changes nothing of that."""
    if not in_a_test(function):
        return False
    module = function.module
    qualified = module.qualify(callee)
    if qualified is None or "." not in qualified:
        return False
    home = qualified.rsplit(".", 1)[0] + "."
    used_here = f"{module.module_name}.{callee}"
    known = _known_names(module.model)
    for target in _patch_targets(function, call):
        if target == used_here:
            return True
        if target.startswith(home) and target.removeprefix(home).split(".", 1)[0] in known:
            return True
    return False


@functools.cache
def _known_names(model: Model) -> frozenset[str]:
    """The names a module may import from the model's libraries: their top
    packages, and the last part of every name the model gives a meaning to."""
    return model.libraries() | {name.rsplit(".", 1)[-1] for name in model.qualified_names()}


def _patch_targets(function: FunctionInfo, call: cst.CSTNode) -> set[str]:
    """The dotted names patched where ``call`` runs: by a decorator of the
    test function, its class or a function around it; by a ``with`` around
    the call; by a call of the function's own body before it."""
    module = function.module
    targets: set[str] = set()
    current: FunctionInfo | None = function
    while current is not None:
        for decorator in current.node.decorators:
            targets |= _patched(module, decorator.decorator)
        if current.cls is not None:
            for decorator in current.cls.node.decorators:
                targets |= _patched(module, decorator.decorator)
        current = current.parent
    order = {id(node): position for position, node in enumerate(walk(function.node.body))}
    at = order.get(id(call), -1)
    entered: set[int] = set()
    for node in walk_scope(function.node.body):
        if isinstance(node, cst.With):
            entered.update(id(item.item) for item in node.items)
            if any(each is call for each in walk(node.body)):
                for item in node.items:
                    targets |= _patched(module, item.item)
        elif (
            isinstance(node, cst.Call) and id(node) not in entered and order.get(id(node), at) < at
        ):
            targets |= _patched(module, node, directly=True)
    return targets


def _patched(module: ModuleInfo, node: cst.CSTNode, *, directly: bool = False) -> set[str]:
    """The targets of the patch calls in ``node`` (only ``node`` itself where
    ``directly``)."""
    found: set[str] = set()
    for each in [node] if directly else walk(node):
        if not isinstance(each, cst.Call) or not each.args:
            continue
        func = each.func
        patcher = module.qualify(dotted_name(func) or "") in PATCHERS or (
            isinstance(func, cst.Attribute)
            and func.attr.value == "patch"
            and last_name(func.value) in PATCHING_FIXTURES
        )
        first = each.args[0].value
        if patcher and isinstance(first, cst.SimpleString):
            value = first.evaluated_value
            if isinstance(value, str):
                found.add(value)
    return found


_TEST_DIRECTORIES = frozenset({"test", "tests", "testing"})


def is_test_path(path: Path, module_name: str | None) -> bool:
    """``test_x.py``, ``x_test.py``, ``conftest.py``, behave's
    ``features/environment.py`` and ``features/steps/``, or a file in a
    ``tests`` directory: the one it sits in, or a package it belongs to
    (directories above the project's packages say nothing about it)."""
    stem = path.stem
    if stem == "conftest" or stem.startswith("test_") or stem.endswith("_test"):
        return True
    if _behave_file(path):
        return True
    packages = module_name.split(".")[:-1] if module_name else []
    return any(part in _TEST_DIRECTORIES for part in (*packages, path.parent.name))


def _behave_file(path: Path) -> bool:
    """behave's acceptance tests: ``features/environment.py`` (its hooks)
    and the step modules under ``features/steps/``."""
    parent = path.parent
    if parent.name == "features":
        return path.stem == "environment"
    return parent.name == "steps" and parent.parent.name == "features"


def builds_a_context_manager(function: FunctionInfo) -> bool:
    """Code that a context manager, a dependency provider, a fixture or a pool
    is made of: it acquires by hand because it *is* the managed form."""
    if function.is_context_manager or function.lends_what_it_yields or function.is_fixture:
        return True
    if function.is_generator and function.yielded_type() is not None:
        return True
    return function.cls is not None and bool(set(function.cls.methods) & _RELEASING_METHOD_NAMES)


def runs_once_per_process(function: FunctionInfo) -> bool:
    """A command-line command, the ``main`` a script's ``__main__`` block
    calls, a migration environment's function or a Django management
    command's ``handle``, that does not go on serving: what it leaves open
    is closed when the process ends, right after it returns.

    A function that loops forever or serves (``while True``, a server's
    ``serve_forever``) is a long-running process: what it leaves open stays
    held for as long as it runs."""
    outer = function
    while outer.parent is not None:
        outer = outer.parent
    module = outer.module
    if not _is_entry_point(outer, module):
        return False
    return not _keeps_running(outer)


def _is_entry_point(function: FunctionInfo, module: ModuleInfo) -> bool:
    if any(name.rsplit(".", 1)[-1] in COMMAND_DECORATORS for name in function.decorators):
        return True
    if function.cls is None and function.name in _called_from_main(module):
        return True
    imported = module.imports.qualified_names()
    if any(
        q == runner or q.startswith(runner + ".") for q in imported for runner in MIGRATION_RUNNERS
    ):
        return True
    cls = function.cls
    if cls is not None and function.name == "handle":
        bases = {last_name(base.value) for base in cls.node.bases}
        return bool(bases & MANAGEMENT_COMMAND_BASES)
    return False


def _called_from_main(module: ModuleInfo) -> frozenset[str]:
    """Names of the functions an ``if __name__ == "__main__":`` block calls."""

    def compute() -> frozenset[str]:
        found: set[str] = set()
        for statement in module.tree.body:
            if not isinstance(statement, cst.If) or not _tests_main(statement.test):
                continue
            for node in walk(statement.body):
                if isinstance(node, cst.Call):
                    found.add(last_name(node.func))
                    found.update(
                        last_name(arg.value.func)
                        for arg in node.args
                        if isinstance(arg.value, cst.Call)
                    )
        return frozenset(found)

    return module.cached("called-from-main", compute)


def _tests_main(test: cst.BaseExpression) -> bool:
    if not isinstance(test, cst.Comparison) or len(test.comparisons) != 1:
        return False
    left, right = test.left, test.comparisons[0].comparator
    names = {dotted_name(left), dotted_name(right)}
    strings = {part.evaluated_value for part in (left, right) if isinstance(part, cst.SimpleString)}
    return "__name__" in names and "__main__" in strings


def _keeps_running(function: FunctionInfo) -> bool:
    for node in function.scope.of_type(cst.While, cst.Call):
        if isinstance(node, cst.While) and always_true(node.test):
            return True
        if isinstance(node, cst.Call) and last_name(node.func) in SERVING_CALLS:
            return True
    return False
