"""Functions of a module that release what they are given.

``def cleanup(conn): conn.close()`` releases its first argument: a call
``cleanup(conn)`` is a release wherever it is written, in this module or in
a module that imports it (through the module's summary).
"""

from __future__ import annotations

import libcst as cst

from slotguard.analysis.infer import FunctionInfo, ModuleInfo


def released_parameter(function: FunctionInfo) -> int | None:
    """The position, among the arguments a caller passes, of the parameter
    the function releases (``self`` of a method is not passed)."""
    module = function.module
    return module.cached(
        f"released-parameter:{id(function.node)}", lambda: _released_parameter(function)
    )


def _released_parameter(function: FunctionInfo) -> int | None:
    release_methods = {m for t in function.module.model.types() for m in t.release_methods}
    returning_methods = {m for t in function.module.model.types() for m in t.returned_by}
    params = [p.name.value for p in function.node.params.params]
    if function.self_name is not None and params and params[0] == function.self_name:
        params = params[1:]
    if not params:
        return None
    for node in function.scope.of_type(cst.Call):
        if not isinstance(node, cst.Call) or type(node.func) is not cst.Attribute:
            continue
        receiver = node.func.value
        method = node.func.attr.value
        if (
            isinstance(receiver, cst.Name)
            and receiver.value in params
            and method in release_methods
        ):
            return params.index(receiver.value)
        if method in returning_methods and node.args:
            first = node.args[0].value
            if isinstance(first, cst.Name) and first.value in params:
                return params.index(first.value)
    return None


def releasing_parameters(module: ModuleInfo) -> dict[str, int]:
    """Functions of the module that release one of their parameters:
    ``def cleanup(conn): conn.close()`` → ``{"cleanup": 0}``."""
    return module.cached("releasing-parameters", lambda: _releasing_parameters(module))


def _releasing_parameters(module: ModuleInfo) -> dict[str, int]:
    found: dict[str, int] = {}
    for name, definition in module.definitions.items():
        if isinstance(definition, FunctionInfo):
            position = released_parameter(definition)
            if position is not None:
                found[name] = position
    return found
