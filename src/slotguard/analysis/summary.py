"""Summarising an analysed module into what it tells the project
(``slotguard.analysis.index``)."""

from __future__ import annotations

from slotguard.analysis.index import ModuleSummary, Symbol, SymbolKind
from slotguard.analysis.infer import ClassInfo, FunctionInfo, ModuleInfo
from slotguard.analysis.raising import Raising, raising
from slotguard.analysis.releasers import released_parameter


def summarise(module: ModuleInfo) -> ModuleSummary | None:
    """The summary of an analysed module, or None if it exports nothing."""
    if module.module_name is None:
        return None
    symbols: dict[str, Symbol] = {}
    for name, resource in module.global_types.items():
        symbols[name] = Symbol(SymbolKind.VALUE, resource.name)
    for name, instance in module.module_scope.instances.items():
        symbols.setdefault(name, Symbol(SymbolKind.INSTANCE, instance))
    raises = raising(module)
    for name, definition in module.definitions.items():
        if isinstance(definition, ClassInfo):
            symbols[name] = Symbol(SymbolKind.CLASS, raises=raises.class_raises(definition))
            for method_name, method in definition.methods.items():
                symbols[f"{name}.{method_name}"] = _function_symbol(module, method, raises)
            continue
        symbols[name] = _function_symbol(module, definition, raises)
    for local, qualified in module.imports.items():
        symbol = module.index.symbol(qualified)
        if symbol is not None:
            symbols.setdefault(local, symbol)
    state = {name: resource.name for name, resource in module.own_state_types.items()}
    if not symbols and not state:
        return None
    return ModuleSummary(
        module=module.module_name,
        symbols=tuple(sorted(symbols.items())),
        state=tuple(sorted(state.items())),
    )


def _function_symbol(module: ModuleInfo, function: FunctionInfo, raises: Raising) -> Symbol:
    """What a function or method is to its callers: a provider of what it
    yields, an acquirer of what it returns, a releaser of an argument, or a
    function that may raise or not."""
    yielded = function.yielded_type()
    if yielded is not None:
        return Symbol(SymbolKind.PROVIDER, yielded.name, awaited=function.is_async)
    returned = module.returned_acquisition(function)
    if returned is not None:
        return Symbol(
            SymbolKind.ACQUIRER,
            returned.name,
            awaited=function.is_async,
            element=function.returned_element(),
            raises=True,
        )
    raising_call = raises.function_raises(function)
    released = released_parameter(function)
    if released is not None:
        return Symbol(SymbolKind.RELEASER, parameter=released, raises=raising_call)
    return Symbol(SymbolKind.FUNCTION, raises=raising_call)
