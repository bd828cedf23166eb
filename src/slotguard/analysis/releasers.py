"""Functions of a module that release what they are given.

``def cleanup(conn): conn.close()`` releases its first argument: a call
``cleanup(conn)`` is a release wherever it is written, in this module or in
a module that imports it (through the module's summary).
"""

from __future__ import annotations

import libcst as cst

from slotguard.analysis.infer import FunctionInfo, ModuleInfo


def releasing_parameters(module: ModuleInfo) -> dict[str, int]:
    """Functions of the module that release one of their parameters:
    ``def cleanup(conn): conn.close()`` → ``{"cleanup": 0}``."""
    return module.cached("releasing-parameters", lambda: _releasing_parameters(module))


def _releasing_parameters(module: ModuleInfo) -> dict[str, int]:
    release_methods = {m for t in module.model.types() for m in t.release_methods}
    returning_methods = {m for t in module.model.types() for m in t.returned_by}
    found: dict[str, int] = {}
    for name, definition in module.definitions.items():
        if not isinstance(definition, FunctionInfo):
            continue
        params = [p.name.value for p in definition.node.params.params]
        if not params:
            continue
        for node in definition.scope.of_type(cst.Call):
            if not isinstance(node, cst.Call) or type(node.func) is not cst.Attribute:
                continue
            receiver = node.func.value
            method = node.func.attr.value
            if (
                isinstance(receiver, cst.Name)
                and receiver.value in params
                and (method in release_methods)
            ):
                found[name] = params.index(receiver.value)
            elif method in returning_methods and node.args:
                first = node.args[0].value
                if isinstance(first, cst.Name) and first.value in params:
                    found[name] = params.index(first.value)
    return found
