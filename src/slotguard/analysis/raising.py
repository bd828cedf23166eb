"""Which operations of a module can realistically raise (SPEC section 2).

An exception path is a leak worth reporting only when something in the
unprotected window can realistically raise: an ``await``, an explicit
``raise`` or ``assert``, a database call (a method of a session, connection,
pool or cursor, or a call that is handed one), network or file I/O, or a
project function that does one of those. Attribute and container operations,
``typing.cast``, ``ContextVar.set``, logging, constructing a session or an
engine, and calls the model knows nothing about do not count.

The control-flow graph asks this analysis, point by point, whether to draw an
exception edge (``slotguard.flow.cfg.RaisePolicy``).
"""

from __future__ import annotations

import libcst as cst

from slotguard.analysis.infer import ClassInfo, FunctionInfo, ModuleInfo, Scope
from slotguard.analysis.slow_work import Classes
from slotguard.model.catalog import CLOSED_STATE, LOGGER_NAMES, LOGGING_METHODS
from slotguard.model.external import slow_calls
from slotguard.model.raising import (
    DATABASE_METHODS,
    LOCAL_METHODS,
    NON_RAISING_BUILTINS,
    NON_RAISING_FUNCTIONS,
    NON_RAISING_METHODS_ON_ANY,
    RAISING_FUNCTIONS,
    RAISING_NAME_PREFIXES,
)
from slotguard.model.vocabulary import Kind
from slotguard.syntax import assigned_names, dotted_name, last_name, unwrap_await

_CONNECTING = frozenset({Kind.POOLED_CONNECTION, Kind.CONNECTION, Kind.ENGINE_CONNECTION})
"""Acquisitions that talk to the server (or wait for a pool) when called;
creating a session, a factory or an engine does not."""


def raising(module: ModuleInfo) -> Raising:
    """The analysis of a module, computed once."""
    return module.cached("raising", lambda: Raising(module))


class Raising:
    def __init__(self, module: ModuleInfo) -> None:
        self.module = module
        self._raises: dict[int, bool] = {}
        self._working: set[int] = set()
        self._derived: dict[int, frozenset[str]] = {}
        self._classes: Classes | None = None

    def policy(self, function: FunctionInfo) -> FunctionPolicy:
        return FunctionPolicy(self, function)

    # -- functions ----------------------------------------------------------

    def function_raises(self, function: FunctionInfo) -> bool:
        """Whether calling the function can realistically raise; a function
        met again while its own answer is worked out (recursion) is taken not
        to, and the answer is not kept until the outermost one is done."""
        key = id(function.node)
        if key in self._raises:
            return self._raises[key]
        if key in self._working:
            return False
        self._working.add(key)
        try:
            found = self._body_raises(function)
        finally:
            self._working.discard(key)
        if not self._working:
            self._raises[key] = found
        return found

    def _body_raises(self, function: FunctionInfo) -> bool:
        scope = function.scope
        if scope.of_type(cst.Raise, cst.Assert):
            return True
        if function.is_async and scope.of_type(cst.Await):
            return True
        for node in scope.of_type(cst.Call):
            assert isinstance(node, cst.Call)
            if self.call_raises(node, function):
                return True
        for node in scope.of_type(cst.For):
            assert isinstance(node, cst.For)
            if self.iterating_raises(node, function):
                return True
        for node in scope.of_type(cst.WithItem):
            assert isinstance(node, cst.WithItem)
            if self.leaving_raises(node, function):
                return True
        return False

    def class_raises(self, cls: ClassInfo) -> bool:
        init = cls.methods.get("__init__")
        return init is not None and self.function_raises(init)

    # -- calls --------------------------------------------------------------

    def call_raises(self, call: cst.Call, function: FunctionInfo | None) -> bool:
        module = self.module
        func = call.func
        name = dotted_name(func)
        qualified = module.qualify(name) if name is not None else None
        if qualified in NON_RAISING_FUNCTIONS or (
            qualified is None and name in NON_RAISING_BUILTINS
        ):
            return False
        last = last_name(func)
        scope = self._scope(function)
        if isinstance(func, cst.Attribute):
            if _logging_call(func) or (last in CLOSED_STATE and not call.args):
                return False
            if self.is_database_object(func.value, function):
                return last not in LOCAL_METHODS
            if last in DATABASE_METHODS:
                return True
        produced = scope.produced(call)
        if produced is not None:
            return produced.type.kind in _CONNECTING and produced.complete
        if (qualified or name) in RAISING_FUNCTIONS or last.startswith(RAISING_NAME_PREFIXES):
            return True
        if self._external(func, function):
            return True
        callee = self._project_callee(func, function)
        if callee is not None:
            return callee
        if isinstance(func, cst.Attribute) and last in NON_RAISING_METHODS_ON_ANY:
            return False
        # Handed a database object, a function uses it: ``pd.read_sql(q, conn)``.
        return any(self.is_database_object(arg.value, function) for arg in call.args)

    def _external(self, func: cst.BaseExpression, function: FunctionInfo | None) -> bool:
        if self._classes is None:
            self._classes = Classes(self.module, slow_calls(()))
        called = self._classes.call_name(func, function)
        return called is not None and slow_calls(()).external(called) is not None

    def _project_callee(
        self, func: cst.BaseExpression, function: FunctionInfo | None
    ) -> bool | None:
        """Whether a call of a function or class of the project raises; None
        when the callee is not the project's."""
        module = self.module
        name = dotted_name(func)
        if name is None:
            return None
        if "." not in name:
            definition = module.definitions.get(name)
            if isinstance(definition, FunctionInfo):
                return self.function_raises(definition)
            if isinstance(definition, ClassInfo):
                return self.class_raises(definition)
            nested = _nested_function(function, name)
            if nested is not None:
                return self.function_raises(nested)
        method = _self_method(function, name) or _class_method(module, name)
        if method is not None:
            return self.function_raises(method)
        called = self._scope(function).method_called(func)
        if isinstance(called, FunctionInfo):
            return self.function_raises(called)
        if called is not None:
            return called.raises
        symbol = module.imported_symbol(name)
        if symbol is not None:
            return symbol.raises
        return None

    # -- database objects ---------------------------------------------------

    def is_database_object(self, expr: cst.BaseExpression, function: FunctionInfo | None) -> bool:
        """A session, connection, pool, engine, factory or transaction, or a
        value a method of one returned (a cursor, a result)."""
        expr, _ = unwrap_await(expr)
        if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute):
            return self.is_database_object(expr.func.value, function)
        if not isinstance(expr, cst.Name | cst.Attribute):
            return False
        if self._scope(function).type_of(expr) is not None:
            return True
        return (
            isinstance(expr, cst.Name)
            and function is not None
            and expr.value in self._derived_names(function)
        )

    def _derived_names(self, function: FunctionInfo) -> frozenset[str]:
        """Names bound to what a method of a database object returned
        (``cur = conn.cursor()``, ``with conn.cursor() as cur``)."""
        key = id(function.node)
        found = self._derived.get(key)
        if found is not None:
            return found
        names: set[str] = set()
        self._derived[key] = frozenset()
        scope = function.scope
        for _ in range(2):  # a derived value's own methods derive too
            for node in scope.of_type(cst.Assign, cst.WithItem):
                if isinstance(node, cst.Assign):
                    value: cst.BaseExpression = node.value
                    targets = [name for t in node.targets for name in assigned_names(t.target)]
                else:
                    assert isinstance(node, cst.WithItem)
                    if node.asname is None:
                        continue
                    value = node.item
                    targets = list(assigned_names(node.asname.name))
                inner, _ = unwrap_await(value)
                if (
                    isinstance(inner, cst.Call)
                    and isinstance(inner.func, cst.Attribute)
                    and self.is_database_object(inner.func.value, function)
                ):
                    names.update(targets)
            self._derived[key] = frozenset(names)
        return self._derived[key]

    # -- statements ---------------------------------------------------------

    def entering_raises(self, item: cst.WithItem, function: FunctionInfo | None) -> bool:
        """``with x:`` enters without I/O when ``x`` is a value, or a
        transaction (which begins implicitly at its first statement)."""
        inner, _ = unwrap_await(item.item)
        if not isinstance(inner, cst.Call):
            return False
        if self._scope(function).transaction_of(inner) is not None:
            return False
        return self.call_raises(inner, function)

    def leaving_raises(self, item: cst.WithItem, function: FunctionInfo | None) -> bool:
        """Leaving a transaction commits; leaving a connection's or a
        session's block gives it back; both talk to the server."""
        inner, _ = unwrap_await(item.item)
        if not isinstance(inner, cst.Call):
            return False
        scope = self._scope(function)
        if scope.transaction_of(inner) is not None or scope.produced(inner) is not None:
            return True
        return self.call_raises(inner, function)

    def iterating_raises(self, loop: cst.For, function: FunctionInfo | None) -> bool:
        """Iterating a cursor or a result fetches rows."""
        return self.is_database_object(loop.iter, function)

    def _scope(self, function: FunctionInfo | None) -> Scope:
        return function.scope if function is not None else self.module.module_scope


class FunctionPolicy:
    """What the control-flow graph of one function asks (``RaisePolicy``)."""

    def __init__(self, raising: Raising, function: FunctionInfo) -> None:
        self.raising = raising
        self.function = function

    def call(self, call: cst.Call) -> bool:
        return self.raising.call_raises(call, self.function)

    def with_enter(self, item: cst.WithItem) -> bool:
        return self.raising.entering_raises(item, self.function)

    def with_exit(self, item: cst.WithItem) -> bool:
        return self.raising.leaving_raises(item, self.function)

    def loop_step(self, loop: cst.For) -> bool:
        return self.raising.iterating_raises(loop, self.function)

    def pattern(self, pattern: cst.MatchPattern) -> bool:
        # Matching compares and checks types: nothing realistic raises.
        return False


def _logging_call(func: cst.Attribute) -> bool:
    if func.attr.value not in LOGGING_METHODS:
        return False
    receiver = func.value
    if isinstance(receiver, cst.Attribute):
        return receiver.attr.value in LOGGER_NAMES
    return isinstance(receiver, cst.Name) and receiver.value in LOGGER_NAMES


def _nested_function(function: FunctionInfo | None, name: str) -> FunctionInfo | None:
    """A function defined in an enclosing function, called by its name."""
    while function is not None:
        for inner in function.module.functions:
            if inner.parent is function and inner.name == name:
                return inner
        function = function.parent
    return None


def _class_method(module: ModuleInfo, name: str) -> FunctionInfo | None:
    """``Tracker.track`` for a class of the module that defines ``track``."""
    head, _, rest = name.partition(".")
    definition = module.definitions.get(head)
    if not isinstance(definition, ClassInfo) or not rest or "." in rest:
        return None
    return definition.methods.get(rest)


def _self_method(function: FunctionInfo | None, name: str) -> FunctionInfo | None:
    """``self.helper`` inside a method of the class that defines ``helper``."""
    head, _, rest = name.partition(".")
    if not rest or "." in rest:
        return None
    outer = function
    while outer is not None and outer.parent is not None:
        outer = outer.parent
    if outer is None or outer.cls is None or head != outer.self_name:
        return None
    return outer.cls.methods.get(rest)


__all__ = ["FunctionPolicy", "Raising", "raising"]
