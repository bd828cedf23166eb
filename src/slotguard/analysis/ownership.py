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

import libcst as cst

from slotguard.analysis.infer import FunctionInfo, ModuleInfo
from slotguard.model import Model
from slotguard.model.catalog import BUILTIN, RECLAIMING_HARNESSES
from slotguard.model.lifecycle import (
    COMMAND_DECORATORS,
    MANAGEMENT_COMMAND_BASES,
    MIGRATION_RUNNERS,
    SERVING_CALLS,
)
from slotguard.model.vocabulary import Kind
from slotguard.syntax import always_true, dotted_name, last_name, walk

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
    """Whether the function is test code: a pytest fixture, or, in a test
    module, a ``test*`` function or a method of a test class (``Test*``, a
    ``TestCase``), or nested in one. What it creates ends with the test, and
    an exception in it fails the test rather than a request."""
    while function is not None:
        if function.is_fixture:
            return True
        if is_test_module(function.module):
            if function.name.startswith("test"):
                return True
            cls = function.cls
            if cls is not None and (
                cls.name.startswith("Test")
                or any(last_name(base.value).endswith("TestCase") for base in cls.node.bases)
            ):
                return True
        function = function.parent
    return False


def is_test_module(module: ModuleInfo) -> bool:
    """``tests/...``, ``test_x.py``, ``x_test.py``, ``conftest.py``."""
    name = module.module_name
    if name is None:
        return False
    return any(
        part.startswith("test") or part.endswith("_test") or part == "conftest"
        for part in name.split(".")
    )


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
