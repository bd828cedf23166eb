"""Where a module's pools live and die: what the SG5 rules ask of a module.

A pool or engine is created once and lives as long as the application or the
process; what matters is *where* it is kept, because that decides who can
close it: a function's local name (only that function), ``self.<name>`` (the
class), a module global (any module that imports it), or the application's
state (any module of the application). This module finds, in one module:

- the pools it creates, with where each is kept (``PoolSite``, ``Storage``);
- the storages it closes: ``engine.dispose()``, ``atexit.register(engine.dispose)``,
  ``stack.push_async_callback(pool.close)``, ``async with pool:``, a helper
  that closes its argument (``Lifecycle.closes``);
- the functions registered as startup, shutdown or lifespan hooks, and on
  which application (``Hook``), from the framework shapes in
  ``slotguard.model.lifecycle``.

A close in another module is matched through a key both sides compute
(``Storage.key``): the qualified name of a module global, the name of an
application-state attribute, the name of an instance attribute.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field

import libcst as cst

from slotguard.analysis.escapes import escaping
from slotguard.analysis.index import SymbolKind
from slotguard.analysis.infer import FunctionInfo, ModuleInfo, Scope
from slotguard.analysis.releasers import releasing_parameters
from slotguard.model.lifecycle import (
    APPLICATION_STATE,
    EVENTS,
    HOOK_LISTS,
    HOOK_METHODS,
    LIST_METHODS,
    PROCESS_HOOKS,
    SAME_POOL_ATTRIBUTES,
    HookMethod,
    Phase,
    SizeTerm,
    sizing,
)
from slotguard.model.vocabulary import Kind, ResourceType
from slotguard.syntax import (
    assigned_names,
    dotted_name,
    keyword_argument,
    string_value,
    unwrap_await,
    walk,
)

_EMPTY = cst.Module([])
_EXIT_STACK_METHODS = ("enter_context", "enter_async_context")
_CLOSING_FUNCTIONS = ("closing", "aclosing")
_CONTAINER_METHODS = frozenset({"append", "appendleft", "extend", "add", "insert", "put", "push"})
_MAX_ALIAS_DEPTH = 4
_CASTS = ("typing.cast", "typing_extensions.cast", "cast")
_HOOK_METHODS = {method.name: method for method in HOOK_METHODS}
_PROCESS_HOOK_NAMES = frozenset(name.rsplit(".", 1)[-1] for name in PROCESS_HOOKS)
_READ = (cst.Attribute, cst.Call, cst.WithItem, cst.Assign, cst.AnnAssign, cst.Global, cst.Lambda)
"""The nodes a module's lifecycle is read from."""
_REBINDING = (cst.Assign, cst.AugAssign, cst.For, cst.WithItem, cst.NamedExpr)


class StorageKind(enum.Enum):
    LOCAL = "local"
    """A name local to the function that created it."""
    GLOBAL = "global"
    """A module global, or an attribute of one (``app.pool``)."""
    STATE = "state"
    """Application state: ``app.state.pool``, ``app.ctx.pool``, ``app["pool"]``."""
    ATTRIBUTE = "attribute"
    """An attribute of some object: ``self.pool``, ``app.pool`` of a parameter."""


@dataclass(frozen=True, slots=True)
class Storage:
    kind: StorageKind
    name: str
    """GLOBAL: the qualified name; STATE and ATTRIBUTE: the attribute or key;
    LOCAL: the local name."""

    @property
    def key(self) -> str:
        """What a module that closes this storage settles (``Context.settle``)."""
        return f"close:{self.kind.value}:{self.name}"


@dataclass(frozen=True, slots=True)
class Hook:
    """A function the application runs at startup, at shutdown, or around
    its whole life."""

    phase: Phase
    application: str | None
    """The qualified name of the application (or router) it is registered
    on, when it is a module global; None for the process (``atexit``) or an
    application the module cannot name."""
    node: cst.CSTNode
    """The registration: a decorator, a call or a keyword argument."""


@dataclass(eq=False, slots=True)
class PoolSite:
    """A pool created and kept somewhere."""

    node: cst.BaseExpression
    """The creating expression (the ``await`` when awaited)."""
    call: cst.Call
    type: ResourceType
    function: FunctionInfo | None
    """The function that creates it; None at module level."""
    target: cst.BaseExpression
    """Where it is kept, as the code spells it."""
    storage: Storage
    keeps_connections: bool = True
    """False for a pool that closes each connection when it is returned."""
    closed_locally: bool = False
    """The function that created it closes it through a local name (or
    registers its close)."""
    handed_off: bool = False
    """LOCAL: the function gives it to someone else to keep or close."""

    @property
    def shown(self) -> str:
        """Where it is kept, as the code spells it: ``app.state.pool``."""
        return " ".join(_EMPTY.code_for_node(self.target).split())

    @property
    def release_call(self) -> str:
        """How the code would close it: ``engine.dispose()``."""
        return f"{self.shown}.{self.type.release_methods[0]}()"


@dataclass(slots=True)
class Lifecycle:
    """The pools, closes and hooks of one module."""

    sites: list[PoolSite] = field(default_factory=list)
    closes: dict[str, list[cst.CSTNode]] = field(default_factory=dict)
    """Storage key → the nodes that close it."""
    hooks: dict[int, list[Hook]] = field(default_factory=dict)
    """``id(FunctionInfo)`` → how it is registered."""
    shutdown_closes: set[tuple[str, str]] = field(default_factory=set)
    """(application, storage key) for closes inside shutdown or lifespan
    hooks of a named application."""

    def hooks_of(self, function: FunctionInfo | None) -> list[Hook]:
        return self.hooks.get(id(function), []) if function is not None else []

    def phase_of(self, function: FunctionInfo | None) -> Phase | None:
        """The phase of the hook the function is, or is nested in."""
        while function is not None:
            hooks = self.hooks_of(function)
            if hooks:
                return hooks[0].phase
            function = function.parent
        return None

    def is_closed(self, site: PoolSite) -> bool:
        """Closed by the function that created it, or anywhere in the module."""
        return site.closed_locally or site.storage.key in self.closes


def shutdown_key(application: str, storage_key: str) -> str:
    """What a module settles when a shutdown or lifespan hook of
    ``application`` closes ``storage``: application state is closed for one
    application, not for every application that uses the same attribute name."""
    return f"shutdown:{application}:{storage_key}"


def settled_keys(found: Lifecycle) -> set[str]:
    """Every key a module settles for the run (``Context.settle``): what it
    closes, and what the shutdown hooks of each named application close."""
    keys = set(found.closes)
    for application, key in found.shutdown_closes:
        keys.add(shutdown_key(application, key))
    return keys


def closing_key(found: Lifecycle, site: PoolSite, application: str | None) -> str | None:
    """None when the module itself closes the pool; otherwise the key another
    module of the run settles by closing it.

    State kept on a named application is closed only by that application's
    shutdown or lifespan hooks: two services of a project each keep their own
    ``app.state.pool``. A close in a hook whose application the module cannot
    name counts, unless the module shows it closing another application's."""
    storage = site.storage
    if site.closed_locally or site.handed_off:
        return None
    if storage.kind is StorageKind.STATE and application is not None:
        if (application, storage.key) in found.shutdown_closes:
            return None
        others = {app for app, key in found.shutdown_closes if key == storage.key}
        if storage.key in found.closes and not others:
            return None
        return shutdown_key(application, storage.key)
    if storage.key in found.closes:
        return None
    return storage.key


def lifecycle(module: ModuleInfo) -> Lifecycle:
    """The lifecycle facts of a module, computed once for the SG5 rules."""
    return module.cached("pool-lifecycle", lambda: _Reader(module).read())


class _Reader:
    def __init__(self, module: ModuleInfo) -> None:
        self.module = module
        self.model = module.model
        self.result = Lifecycle()
        self.release_methods = frozenset(
            m for t in self.model.types() if t.kind is Kind.POOL for m in t.release_methods
        )
        self.pool_constructors = frozenset(
            c.callee
            for c in self.model.catalog.constructors
            if self.model.type(c.produces).kind is Kind.POOL
        )
        self.releasers = releasing_parameters(module)
        self.releaser_names = {
            name.rsplit(".", 1)[-1] for name in module.model.catalog.releasing_functions
        }
        self.releaser_names.update(self.releasers)
        for local, qualified in module.imports.items():
            symbol = module.index.symbol(qualified)
            if symbol is not None and symbol.kind is SymbolKind.RELEASER:
                self.releaser_names.add(local)
        self.module_names = set(module.module_scope.local_names)
        self._aliases: dict[int, dict[str, cst.BaseExpression]] = {}

    def read(self) -> Lifecycle:
        """One walk over each scope collects hook registrations, candidate
        closes and candidate creations; they are resolved once every module
        global (including those assigned through ``global``) is known."""
        module = self.module
        for defined in module.functions:
            for decorator in defined.node.decorators:
                hook = self._decorator_hook(decorator.decorator, defined.parent)
                if hook is not None:
                    self.result.hooks.setdefault(id(defined), []).append(hook)
        closes: list[tuple[cst.BaseExpression, cst.CSTNode, FunctionInfo | None]] = []
        creations: list[tuple[cst.Assign | cst.AnnAssign, FunctionInfo | None]] = []
        scopes: list[FunctionInfo | None] = [None, *module.functions]
        for function in scopes:
            nodes = self.scope(function).of_type(*_READ)
            for node in _with_lambda_bodies(nodes):
                kind = type(node)
                if kind is cst.Attribute:
                    assert isinstance(node, cst.Attribute)
                    if node.attr.value in self.release_methods:
                        closes.append((node.value, node, function))
                elif kind is cst.Call:
                    assert isinstance(node, cst.Call)
                    self._call(node, function, closes)
                elif kind is cst.WithItem:
                    assert isinstance(node, cst.WithItem)
                    closes.append((node.item, node, function))
                elif kind is cst.Assign or kind is cst.AnnAssign:
                    assert isinstance(node, cst.Assign | cst.AnnAssign)
                    if node.value is not None and self._may_create_pool(node.value):
                        creations.append((node, function))
                elif kind is cst.Global:
                    assert isinstance(node, cst.Global)
                    self.module_names.update(name.name.value for name in node.names)
        for closed, closing, where in closes:
            self._close(closed, closing, where)
        for assignment, where in creations:
            self._site(assignment, where)
        return self.result

    def _call(
        self,
        call: cst.Call,
        function: FunctionInfo | None,
        closes: list[tuple[cst.BaseExpression, cst.CSTNode, FunctionInfo | None]],
    ) -> None:
        for target, hook in self._call_hooks(call, function):
            for registered in self._functions_named(target, function):
                self.result.hooks.setdefault(id(registered), []).append(hook)
        for closed in self._closed_by_call(call):
            closes.append((closed, call, function))

    def _may_create_pool(self, value: cst.BaseExpression) -> bool:
        """A cheap test before asking the scope what the value is: a call of
        a pool constructor, of another module's function that returns a
        pool, or of a function of this module (which may)."""
        inner, _ = unwrap_await(value)
        if not isinstance(inner, cst.Call):
            return False
        name = dotted_name(inner.func)
        if name is None:
            return False
        module = self.module
        if module.qualify(name) in self.pool_constructors:
            return True
        if name.split(".", 1)[0] in module.definitions:
            return True
        symbol = module.imported_symbol(name)
        return symbol is not None and symbol.kind is SymbolKind.ACQUIRER

    # -- where a name or an expression lives ---------------------------------

    def scope(self, function: FunctionInfo | None) -> Scope:
        return function.scope if function is not None else self.module.module_scope

    def aliases(self, function: FunctionInfo) -> dict[str, cst.BaseExpression]:
        """Names assigned exactly once in the function, to what."""
        key = id(function)
        found = self._aliases.get(key)
        if found is None:
            counts: dict[str, int] = {}
            values: dict[str, cst.BaseExpression] = {}
            for node in function.scope.of_type(*_REBINDING):
                if isinstance(node, cst.Assign) and len(node.targets) == 1:
                    target = node.targets[0].target
                    if isinstance(target, cst.Name):
                        counts[target.value] = counts.get(target.value, 0) + 1
                        values[target.value] = node.value
                else:
                    for name in _bound_names(node):
                        counts[name] = counts.get(name, 0) + 2
            found = {name: values[name] for name, count in counts.items() if count == 1}
            self._aliases[key] = found
        return found

    def storage_of(
        self, expr: cst.BaseExpression, function: FunctionInfo | None, depth: int = 0
    ) -> Storage | None:
        """Where the value of ``expr`` is kept, seen from ``function``."""
        expr, _ = unwrap_await(expr)
        if depth > _MAX_ALIAS_DEPTH:
            return None
        module = self.module
        state = self._state_key(expr)
        if state is not None:
            return Storage(StorageKind.STATE, state)
        if isinstance(expr, cst.Name):
            return self._name_storage(expr.value, function, depth)
        if isinstance(expr, cst.Call):
            return self._call_storage(expr, function, depth)
        if not isinstance(expr, cst.Attribute):
            return None
        if expr.attr.value in SAME_POOL_ATTRIBUTES:
            return self.storage_of(expr.value, function, depth + 1)
        dotted = dotted_name(expr)
        if dotted is not None:
            head = dotted.split(".", 1)[0]
            local = function is not None and _is_local(head, function)
            qualified = None if local else module.imports.resolve(dotted)
            qualified = qualified or (None if local else self._module_global(dotted))
            if qualified is not None:
                return Storage(StorageKind.GLOBAL, qualified)
        # ``self.pool``, ``app.pool`` of a parameter, ``get_app().pool``: an
        # attribute of some object; a close of any ``.pool`` may be its.
        return Storage(StorageKind.ATTRIBUTE, expr.attr.value)

    def _state_key(self, expr: cst.BaseExpression) -> str | None:
        """``pool`` for ``app.state.pool``, ``request.app.ctx.pool`` and
        ``app["pool"]``; the qualified name of the key for ``app[pool_key]``."""
        if isinstance(expr, cst.Attribute):
            inner = expr.value
            if isinstance(inner, cst.Attribute) and inner.attr.value in APPLICATION_STATE:
                return expr.attr.value
            return None
        if isinstance(expr, cst.Subscript) and len(expr.slice) == 1:
            index = expr.slice[0].slice
            if not isinstance(index, cst.Index):
                return None
            literal = string_value(index.value)
            if literal is not None:
                return literal
            name = dotted_name(index.value)
            if name is not None:
                return self.module.qualify(name) or self._module_global(name)
        return None

    def _module_global(self, dotted: str) -> str | None:
        """The qualified name of a dotted name whose head is a module global."""
        module_name = self.module.module_name
        if module_name and dotted.split(".", 1)[0] in self.module_names:
            return f"{module_name}.{dotted}"
        return None

    def _name_storage(self, name: str, function: FunctionInfo | None, depth: int) -> Storage | None:
        current = function
        while current is not None:
            if name in current.scope.global_assignments:
                break
            if _is_local(name, current):
                alias = self.aliases(current).get(name)
                if alias is not None:
                    stored = self.storage_of(alias, current, depth + 1)
                    if stored is not None and stored.kind is not StorageKind.LOCAL:
                        return stored
                return Storage(StorageKind.LOCAL, name) if current is function else None
            current = current.parent
        if name in self.module_names and self.module.module_name:
            return Storage(StorageKind.GLOBAL, f"{self.module.module_name}.{name}")
        qualified = self.module.imports.resolve(name)
        return Storage(StorageKind.GLOBAL, qualified) if qualified is not None else None

    def _call_storage(
        self, call: cst.Call, function: FunctionInfo | None, depth: int
    ) -> Storage | None:
        """``cast(AsyncEngine, app.state.engine)`` is ``app.state.engine``;
        ``getattr(app.state, "engine", None)`` is too."""
        name = dotted_name(call.func)
        qualified = (self.module.qualify(name) or name) if name is not None else None
        args = [arg.value for arg in call.args]
        if qualified in _CASTS and len(args) == 2:
            return self.storage_of(args[1], function, depth + 1)
        if qualified == "getattr" and len(args) >= 2:
            holder, attribute = args[0], string_value(args[1])
            if (
                attribute is not None
                and isinstance(holder, cst.Attribute)
                and holder.attr.value in APPLICATION_STATE
            ):
                return Storage(StorageKind.STATE, attribute)
        return None

    # -- hooks ---------------------------------------------------------------

    def _decorator_hook(self, expr: cst.BaseExpression, scope: FunctionInfo | None) -> Hook | None:
        """The hook a decorator registers, evaluated in ``scope``."""
        call = expr if isinstance(expr, cst.Call) else None
        func = call.func if call is not None else expr
        name = dotted_name(func)
        if name is not None:
            qualified = self.module.qualify(name)
            if qualified in PROCESS_HOOKS:
                return Hook(PROCESS_HOOKS[qualified], None, expr)
        if not isinstance(func, cst.Attribute):
            return None
        method = _HOOK_METHODS.get(func.attr.value)
        if method is None:
            return None
        phase = method.phase
        if phase is None:
            if call is None or not call.args:
                return None
            phase = EVENTS.get(string_value(call.args[0].value) or "")
            if phase is None:
                return None
        return Hook(phase, self._application(func.value, scope), expr)

    def _call_hooks(
        self, call: cst.Call, function: FunctionInfo | None
    ) -> Iterator[tuple[cst.BaseExpression, Hook]]:
        func = call.func
        last = func.attr.value if isinstance(func, cst.Attribute) else None
        if isinstance(func, cst.Name):
            last = func.value
        if last in _PROCESS_HOOK_NAMES and call.args:
            name = dotted_name(func)
            phase = PROCESS_HOOKS.get(self.module.qualify(name) or "") if name else None
            if phase is not None:
                yield call.args[0].value, Hook(phase, None, call)
                return
        if isinstance(func, cst.Call) and call.args:
            # The decorator called by hand: ``app.on_event("startup")(init_db)``.
            hook = self._decorator_hook(func, function)
            if hook is not None:
                yield call.args[0].value, hook
            return
        if isinstance(func, cst.Attribute):
            method = _HOOK_METHODS.get(func.attr.value)
            if method is not None:
                registered = _method_registration(call, method)
                if registered is not None:
                    target, phase = registered
                    yield target, Hook(phase, self._application(func.value, function), call)
                return
            receiver = func.value
            if (
                func.attr.value in LIST_METHODS
                and isinstance(receiver, cst.Attribute)
                and receiver.attr.value in HOOK_LISTS
            ):
                phase = HOOK_LISTS[receiver.attr.value]
                hook = Hook(phase, self._application(receiver.value, function), call)
                arguments = call.args[1:] if func.attr.value == "insert" else call.args[:1]
                for arg in arguments:
                    for target in _elements(arg.value):
                        yield target, hook
                return
        for arg in call.args:
            if arg.keyword is not None and arg.keyword.value in HOOK_LISTS:
                phase = HOOK_LISTS[arg.keyword.value]
                hook = Hook(phase, self._constructed_application(call, function), arg)
                for target in _elements(arg.value):
                    yield target, hook

    def _application(
        self, receiver: cst.BaseExpression, function: FunctionInfo | None
    ) -> str | None:
        """The qualified name of the application a hook is registered on
        (``app.router.on_startup`` is ``app``'s)."""
        if isinstance(receiver, cst.Attribute) and receiver.attr.value == "router":
            receiver = receiver.value
        storage = self.storage_of(receiver, function)
        if storage is not None and storage.kind is StorageKind.GLOBAL:
            return storage.name
        return None

    def _constructed_application(self, call: cst.Call, function: FunctionInfo | None) -> str | None:
        """``app`` in ``app = FastAPI(lifespan=...)`` at module level."""
        for node in self.scope(function).of_type(cst.Assign):
            if isinstance(node, cst.Assign) and node.value is call and len(node.targets) == 1:
                return self._application(node.targets[0].target, function)
        return None

    def _functions_named(
        self, expr: cst.BaseExpression, function: FunctionInfo | None
    ) -> list[FunctionInfo]:
        if not isinstance(expr, cst.Name):
            return []
        name = expr.value
        found = [f for f in self.module.functions if f.name == name and f.parent is function]
        if found or function is None:
            return found
        return [f for f in self.module.functions if f.name == name and f.parent is None]

    # -- closes --------------------------------------------------------------

    def _closed_by_call(self, call: cst.Call) -> Iterator[cst.BaseExpression]:
        """What a call closes by taking it as an argument: ``closing(pool)``,
        ``stack.enter_async_context(pool)``, a function that closes its argument."""
        if not call.args:
            return
        func = call.func
        if isinstance(func, cst.Attribute):
            last = func.attr.value
        elif isinstance(func, cst.Name):
            last = func.value
        else:
            return
        if last in _EXIT_STACK_METHODS or last in _CLOSING_FUNCTIONS:
            yield call.args[0].value
            return
        if last not in self.releaser_names:
            return
        index = self._releasing_index(dotted_name(func))
        if index is not None and len(call.args) > index:
            yield call.args[index].value

    def _closed_by(
        self, node: cst.CSTNode, function: FunctionInfo | None
    ) -> Iterator[cst.BaseExpression]:
        if isinstance(node, cst.Attribute) and node.attr.value in self.release_methods:
            yield node.value
        elif isinstance(node, cst.WithItem):
            if self._entering_closes(node.item, function):
                yield node.item
        elif isinstance(node, cst.Call):
            yield from self._closed_by_call(node)

    def _entering_closes(self, item: cst.BaseExpression, function: FunctionInfo | None) -> bool:
        """``with pool:`` closes the pool when its type says so (or is unknown)."""
        inner, _ = unwrap_await(item)
        typed = self.scope(function).type_of(inner)
        return typed is None or typed.with_releases

    def _releasing_index(self, name: str | None) -> int | None:
        if name is None:
            return None
        module = self.module
        qualified = module.qualify(name)
        if qualified is not None and self.model.releases_argument(qualified):
            return 0
        symbol = module.imported_symbol(name)
        if symbol is not None and symbol.kind is SymbolKind.RELEASER:
            return symbol.parameter
        return self.releasers.get(name)

    def _close(
        self, closed: cst.BaseExpression, node: cst.CSTNode, function: FunctionInfo | None
    ) -> None:
        for element in self._loop_elements(closed, function):
            self._close(element, node, function)
        keys = set()
        storage = self.storage_of(closed, function)
        if storage is None or storage.kind is StorageKind.LOCAL:
            storage = None
        elif isinstance(node, cst.WithItem) and not self._entering_closes(closed, function):
            return
        else:
            keys.add(storage.key)
        inner, _ = unwrap_await(closed)
        while isinstance(inner, cst.Attribute) and inner.attr.value in SAME_POOL_ATTRIBUTES:
            inner = inner.value
        if isinstance(inner, cst.Attribute):
            # Someone's ``.pool`` closed: an instance attribute of that name
            # may be the one (``service.pool.close()``, a subclass's ``self.pool``).
            keys.add(Storage(StorageKind.ATTRIBUTE, inner.attr.value).key)
        for key in keys:
            self.result.closes.setdefault(key, []).append(node)
        if storage is None or storage.kind is not StorageKind.STATE:
            return
        current = function
        while current is not None:
            for hook in self.result.hooks_of(current):
                if hook.phase is not Phase.STARTUP and hook.application is not None:
                    self.result.shutdown_closes.add((hook.application, storage.key))
            current = current.parent

    def _loop_elements(
        self, closed: cst.BaseExpression, function: FunctionInfo | None
    ) -> list[cst.BaseExpression]:
        """``for engine in (sync_engine, async_engine): engine.dispose()``
        closes each element of the literal it loops over."""
        if not isinstance(closed, cst.Name):
            return []
        elements: list[cst.BaseExpression] = []
        for loop in self.scope(function).of_type(cst.For):
            assert isinstance(loop, cst.For)
            target, values = loop.target, loop.iter
            if (
                isinstance(target, cst.Name)
                and target.value == closed.value
                and isinstance(values, cst.List | cst.Tuple | cst.Set)
            ):
                elements.extend(element.value for element in values.elements)
        return elements

    # -- pools created -------------------------------------------------------

    def _site(self, node: cst.Assign | cst.AnnAssign, function: FunctionInfo | None) -> None:
        assert node.value is not None
        produced = self.scope(function).produced(node.value)
        if produced is None or not produced.acquires or produced.type.kind is not Kind.POOL:
            return
        for target in _targets(node):
            storage = self._target_storage(target, function)
            if storage is None:
                continue
            site = PoolSite(
                produced.expression, produced.call, produced.type, function, target, storage
            )
            size = size_of(produced.call, self.module)
            site.keeps_connections = size is None or size.keeps_connections
            self.result.sites.append(site)
            if function is not None and storage.kind is StorageKind.LOCAL:
                self._follow_local(site, function)

    def _target_storage(
        self, target: cst.BaseExpression, function: FunctionInfo | None
    ) -> Storage | None:
        if isinstance(target, cst.Name):
            if function is None or target.value in function.scope.global_assignments:
                name = f"{self.module.module_name}.{target.value}"
                return Storage(StorageKind.GLOBAL, name) if self.module.module_name else None
            return Storage(StorageKind.LOCAL, target.value)
        return self.storage_of(target, function)

    def _follow_local(self, site: PoolSite, function: FunctionInfo) -> None:
        """Whether the function closes a pool it keeps in a local name, hands
        it on, or stores it somewhere longer-lived (then that is its storage)."""
        names = {site.storage.name}
        assignments = [
            node
            for node in function.scope.of_type(cst.Assign, cst.AnnAssign)
            if isinstance(node, cst.Assign | cst.AnnAssign) and node.value is not None
        ]
        changed = True
        while changed:
            changed = False
            for node in assignments:
                assert node.value is not None
                if not isinstance(node.value, cst.Name) or node.value.value not in names:
                    continue
                for target in _targets(node):
                    if isinstance(target, cst.Name) and target.value not in names:
                        if target.value in function.scope.global_assignments:
                            continue
                        names.add(target.value)
                        changed = True
        for node in assignments:
            assert node.value is not None
            if node.value is site.node or not escaping(node.value) & names:
                continue
            for target in _targets(node):
                stored = self._target_storage(target, function)
                if stored is None:
                    site.handed_off = True
                elif stored.kind is not StorageKind.LOCAL:
                    if isinstance(node.value, cst.Name):
                        site.storage = stored
                        site.target = target
                    else:
                        site.handed_off = True
        site.closed_locally = self._closes_names(function, names)
        if site.storage.kind is StorageKind.LOCAL:
            site.handed_off = site.handed_off or self._hands_on(function, names)

    def _closes_names(self, function: FunctionInfo, names: set[str]) -> bool:
        # Nested functions and lambdas count: a cleanup registered as a hook
        # or callback closes it.
        for node in walk(function.node.body):
            for closed in self._closed_by(node, function):
                inner, _ = unwrap_await(closed)
                if isinstance(inner, cst.Name) and inner.value in names:
                    return True
        return False

    def _hands_on(self, function: FunctionInfo, names: set[str]) -> bool:
        """Returned, yielded to a consumer, put in a container, or passed to
        a call whose result is kept (an object that may own it)."""
        lends = function.lends_what_it_yields
        scope = function.scope
        discarded = set()
        for node in scope.of_type(cst.Expr):
            assert isinstance(node, cst.Expr)
            call = _top_call(node.value)
            if call is not None and not _container_call(call):
                discarded.add(id(call))
        for node in scope.of_type(cst.Return, cst.Yield, cst.Call):
            if isinstance(node, cst.Return) and node.value is not None:
                # What a fixture returns goes to the test, and nobody closes it.
                if escaping(node.value) & names and not function.is_fixture:
                    return True
            elif isinstance(node, cst.Yield) and not lends:
                if isinstance(node.value, cst.BaseExpression) and escaping(node.value) & names:
                    return True
            elif (
                isinstance(node, cst.Call)
                and id(node) not in discarded
                and scope.produced(node) is None
                and any(escaping(arg.value) & names for arg in node.args)
            ):
                # ``make_app(pool)``, ``Repository(pool)``, ``pools.append(pool)``:
                # whatever keeps it may close it. A call the model knows
                # (``sessionmaker(engine)``) does not.
                return True
        return False


def _method_registration(
    call: cst.Call, method: HookMethod
) -> tuple[cst.BaseExpression, Phase] | None:
    """The function and phase of ``app.add_event_handler("shutdown", f)``,
    ``app.register_listener(f, "after_server_stop")``, ``app.before_serving(f)``."""
    args = call.args
    phase = method.phase
    if phase is None:
        if len(args) <= max(method.event_index, method.function_index):
            return None
        phase = EVENTS.get(string_value(args[method.event_index].value) or "")
        if phase is None:
            return None
    if len(args) <= method.function_index:
        return None
    return args[method.function_index].value, phase


def _elements(expr: cst.BaseExpression) -> Iterator[cst.BaseExpression]:
    if isinstance(expr, cst.List | cst.Tuple):
        for element in expr.elements:
            yield element.value
    else:
        yield expr


def _targets(node: cst.Assign | cst.AnnAssign) -> list[cst.BaseExpression]:
    if isinstance(node, cst.Assign):
        return [t.target for t in node.targets]
    return [node.target]


def _bound_names(node: cst.CSTNode) -> Iterator[str]:
    if isinstance(node, cst.AugAssign | cst.For | cst.NamedExpr):
        yield from assigned_names(node.target)
    elif isinstance(node, cst.WithItem) and node.asname is not None:
        yield from assigned_names(node.asname.name)


def _is_local(name: str, function: FunctionInfo) -> bool:
    if name in function.scope.global_assignments:
        return False
    if name in function.scope.local_names or name in function.scope.bindings:
        return True
    params = function.node.params
    every = [*params.posonly_params, *params.params, *params.kwonly_params]
    if isinstance(params.star_arg, cst.Param):
        every.append(params.star_arg)
    if params.star_kwarg is not None:
        every.append(params.star_kwarg)
    return any(param.name.value == name for param in every)


def _with_lambda_bodies(nodes: list[cst.CSTNode]) -> Iterator[cst.CSTNode]:
    """The nodes, and the attributes and calls inside their lambdas: a close
    registered as ``lambda app: pool.close()`` belongs to the enclosing scope."""
    for node in nodes:
        if type(node) is cst.Lambda:
            assert isinstance(node, cst.Lambda)
            for inner in walk(node.body):
                if type(inner) in (cst.Attribute, cst.Call):
                    yield inner
        else:
            yield node


def _top_call(expr: cst.BaseExpression) -> cst.Call | None:
    inner, _ = unwrap_await(expr)
    return inner if isinstance(inner, cst.Call) else None


def _container_call(call: cst.Call) -> bool:
    return isinstance(call.func, cst.Attribute) and call.func.attr.value in _CONTAINER_METHODS


# -- how many connections a pool can open ---------------------------------------


@dataclass(frozen=True, slots=True)
class PoolSize:
    """The largest number of connections a pool can open, as far as its
    constructor call tells."""

    connections: int | None
    """None: no static bound (a value that is not a constant, or a setting
    that lifts the limit)."""
    detail: str
    """The arithmetic or the reason: "pool_size 20 + max_overflow default 10"."""
    keeps_connections: bool = True


def size_of(call: cst.Call, module: ModuleInfo) -> PoolSize | None:
    """The size of the pool a call creates, or None if the call creates no
    pool whose size the model knows how to read."""
    name = dotted_name(call.func)
    qualified = module.qualify(name) if name is not None else None
    entry = sizing(qualified) if qualified is not None else None
    if entry is None:
        return None
    if entry.class_keyword is not None:
        chosen = keyword_argument(call, entry.class_keyword)
        class_name = dotted_name(chosen.value) if chosen is not None else None
        qualified_class = module.qualify(class_name) if class_name is not None else None
        for pool_class in entry.classes:
            if qualified_class in pool_class.names:
                return PoolSize(pool_class.size, pool_class.note, pool_class.keeps_connections)
    if entry.elsewhere:
        return PoolSize(None, entry.elsewhere)
    total = 0
    parts = []
    unknown = []
    for term in entry.terms:
        value, text = _term_value(call, term, module)
        parts.append(text)
        if value is None:
            unknown.append(text)
        else:
            total += value
    if unknown:
        return PoolSize(None, ", ".join(unknown))
    return PoolSize(total, " + ".join(parts))


def _term_value(call: cst.Call, term: SizeTerm, module: ModuleInfo) -> tuple[int | None, str]:
    arg = keyword_argument(call, term.keyword)
    if arg is None and term.position is not None:
        positional = [a for a in call.args if a.keyword is None]
        if all(not a.star for a in positional[: term.position + 1]) and len(positional) > (
            term.position
        ):
            arg = positional[term.position]
    if arg is None:
        if any(a.star == "**" for a in call.args):
            return None, f"{term.keyword} may come from `**` arguments"
        if term.otherwise is not None:
            value, text = _term_value(call, term.otherwise, module)
            return value, f"{term.keyword} unset, so {text}"
        if term.default is None:
            return None, f"{term.keyword} not given"
        return term.default, f"{term.keyword} default {term.default}"
    value = _constant(arg.value, module)
    shown = " ".join(_EMPTY.code_for_node(arg.value).split())
    if value is None:
        return None, f"{term.keyword}={shown} is not a constant"
    if value in term.unbounded:
        return None, f"{term.keyword}={value} lifts the limit"
    return value, f"{term.keyword} {value}"


def _constant(expr: cst.BaseExpression, module: ModuleInfo) -> int | None:
    """An integer literal, possibly negated, or a module constant bound to one."""
    if isinstance(expr, cst.Integer):
        value = expr.evaluated_value
        return value if isinstance(value, int) else None
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
        inner = _constant(expr.expression, module)
        return -inner if inner is not None else None
    if isinstance(expr, cst.Name):
        bound = _module_constants(module).get(expr.value)
        return _constant(bound, module) if isinstance(bound, cst.Integer) else None
    return None


def _module_constants(module: ModuleInfo) -> dict[str, cst.BaseExpression]:
    """Names assigned once at module level, to what."""
    return module.cached("module-constants", lambda: _constants(module))


def _constants(module: ModuleInfo) -> dict[str, cst.BaseExpression]:
    counts: dict[str, int] = {}
    values: dict[str, cst.BaseExpression] = {}
    for statement in module.tree.body:
        if not isinstance(statement, cst.SimpleStatementLine):
            continue
        for small in statement.body:
            if isinstance(small, cst.Assign) and len(small.targets) == 1:
                target = small.targets[0].target
                if isinstance(target, cst.Name):
                    counts[target.value] = counts.get(target.value, 0) + 1
                    values[target.value] = small.value
            elif isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name):
                counts[small.target.value] = counts.get(small.target.value, 0) + 1
                if small.value is not None:
                    values[small.target.value] = small.value
    return {name: values[name] for name, count in counts.items() if count == 1 and name in values}
