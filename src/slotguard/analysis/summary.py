"""Summarising an analysed module into what it tells the project
(``slotguard.analysis.index``)."""

from __future__ import annotations

from slotguard.analysis.index import ModuleSummary, Symbol, SymbolKind
from slotguard.analysis.infer import ClassInfo, ModuleInfo
from slotguard.analysis.raising import raising
from slotguard.analysis.releasers import releasing_parameters


def summarise(module: ModuleInfo) -> ModuleSummary | None:
    """The summary of an analysed module, or None if it exports nothing."""

    if module.module_name is None:
        return None
    symbols: dict[str, Symbol] = {}
    for name, resource in module.global_types.items():
        symbols[name] = Symbol(SymbolKind.VALUE, resource.name)
    releasers = releasing_parameters(module)
    raises = raising(module)
    for name, definition in module.definitions.items():
        if isinstance(definition, ClassInfo):
            symbols[name] = Symbol(SymbolKind.FUNCTION, raises=raises.class_raises(definition))
            for method_name, method in definition.methods.items():
                symbols[f"{name}.{method_name}"] = Symbol(
                    SymbolKind.FUNCTION, raises=raises.function_raises(method)
                )
            continue
        yielded = definition.yielded_type()
        if yielded is not None:
            symbols[name] = Symbol(SymbolKind.PROVIDER, yielded.name, awaited=definition.is_async)
            continue
        raising_call = raises.function_raises(definition)
        returned = module.returned_acquisition(definition)
        if returned is not None:
            symbols[name] = Symbol(
                SymbolKind.ACQUIRER,
                returned.name,
                awaited=definition.is_async,
                element=definition.returned_element(),
                raises=True,
            )
        elif name in releasers:
            symbols[name] = Symbol(
                SymbolKind.RELEASER, parameter=releasers[name], raises=raising_call
            )
        else:
            symbols[name] = Symbol(SymbolKind.FUNCTION, raises=raising_call)
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
