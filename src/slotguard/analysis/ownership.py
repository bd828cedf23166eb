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

from slotguard.analysis.infer import FunctionInfo, ModuleInfo
from slotguard.model import Model
from slotguard.model.catalog import BUILTIN, RECLAIMING_HARNESSES
from slotguard.model.vocabulary import Kind

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
    """Whether the function is a test (``test*``), a pytest fixture, or
    nested in one: what it creates ends with the test, and an exception in it
    fails the test rather than a request."""
    while function is not None:
        if function.name.startswith("test") or function.is_fixture:
            return True
        function = function.parent
    return False


def builds_a_context_manager(function: FunctionInfo) -> bool:
    """Code that a context manager, a dependency provider, a fixture or a pool
    is made of: it acquires by hand because it *is* the managed form."""
    if function.is_context_manager or function.lends_what_it_yields or function.is_fixture:
        return True
    if function.is_generator and function.yielded_type() is not None:
        return True
    return function.cls is not None and bool(set(function.cls.methods) & _RELEASING_METHOD_NAMES)
