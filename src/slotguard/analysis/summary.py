"""Summarising an analysed module into what it tells the project
(``slotguard.analysis.index``)."""

from __future__ import annotations

from slotguard.analysis.columns import column_names
from slotguard.analysis.index import ModuleSummary, Symbol, SymbolKind
from slotguard.analysis.infer import ClassInfo, FunctionInfo, ModuleInfo
from slotguard.analysis.raising import Raising, raising
from slotguard.analysis.releasers import released_parameter
from slotguard.analysis.slow_work import SlowKind, SlowWork, slow_work
from slotguard.model.external import SLOW_LIBRARIES, SlowCalls

COLUMN = Symbol(SymbolKind.COLUMN)


def summarise(module: ModuleInfo, calls: SlowCalls | None = None) -> ModuleSummary | None:
    """The summary of an analysed module, or None if it exports nothing;
    with ``calls``, which of its functions make slow external calls."""
    if module.module_name is None:
        return None
    slow = _slow_work(module, calls)
    symbols: dict[str, Symbol] = {}
    for name, resource in module.global_types.items():
        symbols[name] = Symbol(SymbolKind.VALUE, resource.name)
    for name, instance in module.module_scope.instances.items():
        symbols.setdefault(name, Symbol(SymbolKind.INSTANCE, instance))
    raises = raising(module)
    for name, definition in module.definitions.items():
        if isinstance(definition, ClassInfo):
            symbols[name] = Symbol(SymbolKind.CLASS, raises=raises.class_raises(definition))
            for column in column_names(definition.node):
                symbols.setdefault(f"{name}.{column}", COLUMN)
            for method_name, method in definition.methods.items():
                symbols[f"{name}.{method_name}"] = _function_symbol(module, method, raises, slow)
            continue
        symbols[name] = _function_symbol(module, definition, raises, slow)
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


def _slow_work(module: ModuleInfo, calls: SlowCalls | None) -> SlowWork | None:
    """The module's slow work, where it may have some: it imports a library
    whose calls are slow, a project function that makes one, or the
    configuration names calls of its own."""
    if calls is None:
        return None
    if not calls.configured:
        index = module.index
        qualified = module.imports.qualified_names()
        if not any(name.split(".", 1)[0] in SLOW_LIBRARIES for name in qualified) and not any(
            _slow_symbol(index.symbol(name)) for name in qualified
        ):
            return None
    return slow_work(module, calls)


def _slow_symbol(symbol: Symbol | None) -> bool:
    """A function that makes a slow call, or a class (whose methods may)."""
    return symbol is not None and (symbol.slow is not None or symbol.kind is SymbolKind.CLASS)


def _function_symbol(
    module: ModuleInfo, function: FunctionInfo, raises: Raising, slow: SlowWork | None
) -> Symbol:
    """What a function or method is to its callers: a provider of what it
    yields, an acquirer of what it returns, a releaser of an argument, or a
    function that may raise or not; and whether it makes a slow call."""
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
            mixed=function.returns_something_else(),
            raises=True,
        )
    raising_call = raises.function_raises(function)
    released = released_parameter(function)
    if released is not None:
        return Symbol(SymbolKind.RELEASER, parameter=released, raises=raising_call)
    external = slow.summary(function).get(SlowKind.EXTERNAL) if slow is not None else None
    if external is not None:
        return Symbol(
            SymbolKind.FUNCTION, awaited=function.is_async, raises=True, slow=external.what
        )
    return Symbol(SymbolKind.FUNCTION, raises=raising_call)
