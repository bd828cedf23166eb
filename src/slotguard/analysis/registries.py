"""Scoped-session registries, the units of work that use them, and the hooks
that remove them (SG106).

A registry is a module-level ``scoped_session``/``async_scoped_session`` of
the project. A unit of work (``slotguard.model.units``) *uses* it when it
calls it for the current session or calls one of the session's methods on
it; it *removes* it when ``registry.remove()`` runs in a ``finally``. A hook
removes it for every unit of its kind: a request teardown, a task's
post-run signal or base-class method, or a decorator whose wrapper removes
it in a ``finally``.

What each module tells the run is plain data, so that a hook in one module
settles the uses of another (``Rule.check_run``).
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from slotguard.analysis.infer import FunctionInfo, ModuleInfo
from slotguard.model.units import (
    TEARDOWN_DECORATORS,
    TEARDOWN_METHODS,
    TEARDOWN_SIGNALS,
    UNIT_DECORATORS,
    UNIT_REGISTRATIONS,
    Unit,
)
from slotguard.model.vocabulary import ResourceType
from slotguard.syntax import always_true, dotted_name, last_name, walk, walk_scope

_NOT_USES = frozenset({"remove", "configure", "query_property", "registry", "session_factory"})
"""Registry attributes that do not open the current session."""


@dataclass(frozen=True, slots=True)
class Use:
    """A unit of work that uses a registry and does not remove it itself."""

    registry: str
    """The registry's qualified name."""
    shown: str
    """How the unit names it."""
    function: FunctionInfo
    unit: Unit
    node: cst.CSTNode
    """Its first use."""
    decorators: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Remover:
    registry: str
    by: str
    """``hook`` (for every request or task), or the qualified name of a
    decorator that removes it for the functions it decorates."""


@dataclass(frozen=True, slots=True)
class Registries:
    uses: tuple[Use, ...]
    removers: tuple[Remover, ...]


def registries(module: ModuleInfo) -> Registries:
    return module.cached("registries", lambda: _registries(module))


def is_registry(resource: ResourceType) -> bool:
    """A scoped-session registry (``ResourceType.is_registry``)."""
    return resource.is_registry


def _registries(module: ModuleInfo) -> Registries:
    registered = _registered_units(module)
    uses: list[Use] = []
    removers: list[Remover] = []
    hooks = [f for f in module.functions if _is_teardown_hook(f)]
    for function in [*hooks, *_registered_teardowns(module)]:
        removers.extend(Remover(r, "hook") for r in sorted(_removed_anywhere(module, function)))
    enclosing = {id(f.parent) for f in module.functions if f.parent is not None}
    removes = any(_is_removal(node) for node in module.tree_nodes.of_type(cst.Call))
    for function in module.functions:
        removed = _removed_in_finally(module, function) if removes else set()
        decorator = _decorator_name(module, function, enclosing)
        if decorator is not None:
            removers.extend(Remover(registry, decorator) for registry in sorted(removed))
        for registry, (shown, node) in _used_registries(module, function).items():
            if registry in removed:
                continue
            unit = _unit_of(function, registered, node)
            if unit is not None:
                decorators = tuple(function.decorators)
                uses.append(Use(registry, shown, function, unit, node, decorators))
    return Registries(tuple(uses), tuple(removers))


def _registry_name(module: ModuleInfo, function: FunctionInfo, name: str) -> str | None:
    """The qualified name of the module-level registry ``name`` denotes."""
    scope = function.scope
    typed = scope.lookup(name)
    if typed is None or not is_registry(typed):
        return None
    if name in module.global_types and module.module_name is not None:
        return f"{module.module_name}.{name}"
    return module.imports.resolve(name)


def _used_registries(
    module: ModuleInfo, function: FunctionInfo
) -> dict[str, tuple[str, cst.CSTNode]]:
    """Registry → (its name here, its first use)."""
    found: dict[str, tuple[str, cst.CSTNode]] = {}
    for call in function.scope.of_type(cst.Call):
        assert isinstance(call, cst.Call)
        func = call.func
        if isinstance(func, cst.Name):
            name = func.value
        elif (
            isinstance(func, cst.Attribute)
            and isinstance(func.value, cst.Name)
            and func.attr.value not in _NOT_USES
        ):
            name = func.value.value
        else:
            continue
        registry = _registry_name(module, function, name)
        if registry is not None and registry not in found:
            found[registry] = (name, call)
    return found


def _removal_calls(
    module: ModuleInfo, function: FunctionInfo, nodes: list[cst.CSTNode]
) -> set[str]:
    found: set[str] = set()
    for node in nodes:
        if _is_removal(node):
            assert isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute)
            assert isinstance(node.func.value, cst.Name)
            registry = _registry_name(module, function, node.func.value.value)
            if registry is not None:
                found.add(registry)
    return found


def _is_removal(node: cst.CSTNode) -> bool:
    """``name.remove()``: how a registry is removed. A module without one
    (most) has no function to look into for it."""
    return (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and node.func.attr.value == "remove"
        and isinstance(node.func.value, cst.Name)
    )


def _removed_in_finally(module: ModuleInfo, function: FunctionInfo) -> set[str]:
    """Registries ``remove()``d in a ``finally`` of the function (or of a
    function nested in it: a decorator's wrapper)."""
    found: set[str] = set()
    for node in walk(function.node.body):
        if isinstance(node, cst.Try) and node.finalbody is not None:
            found |= _removal_calls(module, function, list(walk(node.finalbody.body)))
    return found


def _removed_anywhere(module: ModuleInfo, function: FunctionInfo) -> set[str]:
    return _removal_calls(module, function, list(walk_scope(function.node.body)))


def _is_teardown_hook(function: FunctionInfo) -> bool:
    for name in function.decorators:
        parts = name.split(".")
        if parts[-1] in TEARDOWN_DECORATORS:
            return True
        if len(parts) >= 2 and parts[-1] == "connect" and parts[-2] in TEARDOWN_SIGNALS:
            return True
    return function.is_method and function.name in TEARDOWN_METHODS


def _registered_teardowns(module: ModuleInfo) -> list[FunctionInfo]:
    """Functions registered as teardowns by a call: ``app.teardown_appcontext(f)``,
    ``task_postrun.connect(f)``."""
    found = []
    for scope in (module.module_scope, *(f.scope for f in module.functions)):
        for call in scope.of_type(cst.Call):
            assert isinstance(call, cst.Call)
            callee = dotted_name(call.func) or ""
            parts = callee.split(".")
            hooking = parts[-1] in TEARDOWN_DECORATORS or (
                len(parts) >= 2 and parts[-1] == "connect" and parts[-2] in TEARDOWN_SIGNALS
            )
            if not hooking or not call.args:
                continue
            target = dotted_name(call.args[0].value)
            function = module.function_named(target) if target is not None else None
            if function is not None:
                found.append(function)
    return found


def _decorator_name(module: ModuleInfo, function: FunctionInfo, enclosing: set[int]) -> str | None:
    """A top-level function whose nested wrapper does the work: a decorator,
    known by its qualified name. ``enclosing``: the ids of the functions
    that have a function nested in them."""
    if function.parent is not None or function.cls is not None or module.module_name is None:
        return None
    return f"{module.module_name}.{function.name}" if id(function) in enclosing else None


def _registered_units(module: ModuleInfo) -> dict[str, Unit]:
    """Functions of the module registered as units of work by a call
    (``scheduler.add_job(sync)``, ``Thread(target=poll)``)."""
    found: dict[str, Unit] = {}
    for scope in (module.module_scope, *(f.scope for f in module.functions)):
        for call in scope.of_type(cst.Call):
            assert isinstance(call, cst.Call)
            entry = UNIT_REGISTRATIONS.get(last_name(call.func))
            if entry is None:
                continue
            unit, position, keyword = entry
            for index, arg in enumerate(call.args):
                named = arg.keyword.value if arg.keyword is not None else None
                if (named is None and index == position) or (
                    keyword is not None and named == keyword
                ):
                    target = dotted_name(arg.value)
                    if target is not None:
                        found.setdefault(target.rsplit(".", 1)[-1], unit)
    return found


def _unit_of(function: FunctionInfo, registered: dict[str, Unit], use: cst.CSTNode) -> Unit | None:
    for name in function.decorators:
        unit = UNIT_DECORATORS.get(name.rsplit(".", 1)[-1].split("(")[0])
        if unit is not None:
            return unit
    unit = registered.get(function.name)
    if unit is not None:
        return unit
    for loop in function.scope.of_type(cst.While):
        assert isinstance(loop, cst.While)
        if always_true(loop.test) and any(node is use for node in walk(loop.body)):
            return Unit.LOOP
    return None


__all__ = ["Registries", "Remover", "Use", "is_registry", "registries"]
