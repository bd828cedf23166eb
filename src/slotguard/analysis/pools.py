"""Where a module's pools live and die: what the SG5 rules ask of a module.

A pool or engine is created once and lives as long as the application or the
process; what matters is *where* it is kept, because that decides who can
close it: a function's local name (only that function), ``self.<name>`` (the
class whose methods store it), a module global or a cache (any module of the
application), or the application's state (the application's shutdown hooks).
This module finds, in one module:

- the pools it creates, with where each is kept (``PoolSite``, ``Storage``);
  a function that keeps the pool it returns in a module-level cache, a class
  attribute or ``self`` (a *cached getter*) hands its callers nothing to
  close: the pool is the cache's, and so is a pool made by a function
  decorated with ``functools.lru_cache``;
- the storages it closes: ``engine.dispose()``, ``atexit.register(engine.dispose)``,
  ``stack.push_async_callback(pool.close)``, ``async with pool:``, a helper
  that closes its argument, a loop over a cache's values (``Lifecycle.closes``),
  and the closes that do not count because their function is not what the
  module registers (``Lifecycle.missed``);
- the functions registered as startup, shutdown or lifespan hooks, and on
  which application (``Hook``), from the framework shapes in
  ``slotguard.model.lifecycle``, including a lifespan made by a factory;
- for a pool kept on ``self``, how its class gives it back (``ownership``):
  which of its methods close it, whether on every path, and whether the class
  hands it to another object that keeps it.

A close in another module is matched through keys both sides compute
(``Storage.key``, ``ownership_keys``): the qualified name of a module global
or cache, the name of an application-state attribute, the qualified name of
the class that keeps an attribute on ``self``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

import libcst as cst

from slotguard.analysis.escapes import escaping
from slotguard.analysis.index import SymbolKind
from slotguard.analysis.infer import ClassInfo, FunctionInfo, ModuleInfo, Scope
from slotguard.analysis.names import ImportMap
from slotguard.analysis.raising import Raising, raising
from slotguard.analysis.releasers import releasing_parameters
from slotguard.model.lifecycle import (
    APPLICATION_STATE,
    CACHING_DECORATORS,
    CONTAINER_ANNOTATIONS,
    CONTAINER_CONSTRUCTORS,
    EVENTS,
    HOOK_LISTS,
    HOOK_METHODS,
    LIST_METHODS,
    PROCESS_HOOKS,
    SAME_POOL_ATTRIBUTES,
    HookMethod,
    Phase,
    SizeTerm,
    is_release_method,
    sizing,
)
from slotguard.model.vocabulary import Kind, ResourceType
from slotguard.syntax import (
    assigned_names,
    children,
    dotted_name,
    is_class_name,
    is_nested_scope,
    keyword_argument,
    last_name,
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
_COPYING_CALLS = frozenset({"list", "tuple", "sorted", "set", "reversed"})
"""``list(cache.values())``: the same pools, in another container."""
_VIEW_METHODS = frozenset({"values", "copy"})
_CATCH_ALL = frozenset({"Exception", "BaseException"})


class StorageKind(enum.Enum):
    LOCAL = "local"
    """A name local to the function that created it."""
    GLOBAL = "global"
    """A module global, an attribute of one (``app.pool``), a class attribute
    (``cls._engine``), a module-level cache (``_ENGINES[key]``) or what a
    cached getter keeps (``get_engine()``)."""
    STATE = "state"
    """Application state: ``app.state.pool``, ``app.ctx.pool``, ``app["pool"]``."""
    ATTRIBUTE = "attribute"
    """An attribute of some object other than ``self``: ``bot.pool``, ``app.pool``
    of a parameter."""
    INSTANCE = "instance"
    """``self.<name>`` set in a method: the class owns it (``module.Class.name``)."""


@dataclass(frozen=True, slots=True)
class Storage:
    kind: StorageKind
    name: str
    """GLOBAL: the qualified name (``app.db.get_engine()`` for what a cached
    getter keeps); INSTANCE: ``module.Class.attribute``; STATE and ATTRIBUTE:
    the attribute or key; LOCAL: the local name."""

    @property
    def key(self) -> str:
        """What a module that closes this storage settles (``Context.settle``)."""
        return f"close:{self.kind.value}:{self.name}"

    @property
    def attribute(self) -> str:
        return self.name.rsplit(".", 1)[-1]


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
    via: str = ""
    """How it is registered, for messages: ``on_cleanup``, ``lifespan``,
    ``atexit.register``, ``app.on_event("shutdown")``."""
    target: str = ""
    """What is registered, as the code spells it: ``init_db``, ``make_lifespan(settings)``."""
    process: bool = False
    """A hook of the process (``atexit``), not of an application."""
    scope: FunctionInfo | None = field(default=None, compare=False)
    """The function the registration is made in (None: module level)."""


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
    borrowed_from: str | None = None
    """The qualified name of the project function that made it, when that
    function may be a cached getter of another module (then the caller
    borrows the pool, and the run decides)."""
    label: str | None = None
    """How to name it when no assignment spells it (``get_engine()``)."""
    holder: str | None = None
    """ATTRIBUTE: the qualified name of the class of the object it is kept
    on, when the function made that object (``bot = Bot()``, ``async with
    Bot() as bot``)."""

    @property
    def shown(self) -> str:
        """Where it is kept, as the code spells it: ``app.state.pool``."""
        if self.label is not None:
            return self.label
        return " ".join(_EMPTY.code_for_node(self.target).split())

    @property
    def release_call(self) -> str:
        """How the code would close it: ``engine.dispose()``."""
        return f"{self.shown}.{self.type.release_methods[0]}()"


@dataclass(frozen=True, slots=True)
class MissedClose:
    """A close in a function the module does not register or call, while it
    registers other shutdown hooks: ``close_db`` closes the pool, but
    ``app.on_cleanup.append(init_db)`` is what runs."""

    key: str
    closer: FunctionInfo
    node: cst.CSTNode
    registered: Hook
    """A shutdown registration of the module, for the message."""


@dataclass(frozen=True, slots=True)
class InstanceClose:
    """``self.<attribute>`` closed in a method of a class."""

    owner: ClassInfo
    attribute: str
    method: FunctionInfo
    node: cst.CSTNode


@dataclass(slots=True)
class Lifecycle:
    """The pools, closes and hooks of one module."""

    sites: list[PoolSite] = field(default_factory=list)
    closes: dict[str, list[cst.CSTNode]] = field(default_factory=dict)
    """Storage key → the nodes that close it (where they run: in a hook, a
    method, at module level, or in a function something calls)."""
    missed: list[MissedClose] = field(default_factory=list)
    hooks: dict[int, list[Hook]] = field(default_factory=dict)
    """``id(FunctionInfo)`` → how it is registered."""
    registrations: list[Hook] = field(default_factory=list)
    """Every hook registration, resolved to a function of the module or not."""
    shutdown_closes: set[tuple[str, str]] = field(default_factory=set)
    """(application, storage key) for closes inside shutdown or lifespan
    hooks of a named application."""
    instance_closes: list[InstanceClose] = field(default_factory=list)
    caches: dict[int, Storage] = field(default_factory=dict)
    """``id(FunctionInfo)`` of a cached getter → where it keeps what it returns."""
    delegates: dict[int, str] = field(default_factory=dict)
    """``id(FunctionInfo)`` → the qualified name of another module's function
    whose pool it returns (it is a cached getter if that one is)."""

    entry: bool = False
    """Whether the module shows a long-lived application or process with a
    shutdown path: it registers an application's hooks, or ``atexit`` hooks
    at module level (unlike a library module, a plain script, or a command
    that registers an ``atexit`` hook for its own run)."""

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


def registered_targets(found: Lifecycle, hook: Hook) -> str:
    """What one registration registers, for messages: ``init_db``, or
    ``flush_metrics`, `dispose_orders`` for a list."""
    targets = [other.target for other in found.registrations if other.node is hook.node]
    return "`, `".join(dict.fromkeys(targets))


def missed_close(found: Lifecycle, key: str) -> MissedClose | None:
    """A close of ``key`` that does not count because its function is not
    what the module registers."""
    return next((missed for missed in found.missed if missed.key == key), None)


def registration_near(found: Lifecycle, missed: MissedClose, site: PoolSite) -> Hook:
    """The shutdown registration the closer should have been part of: one on
    the application the pool's function is registered on, else one made in
    the same function as the pool or its registration."""
    hooks = found.hooks_of(site.function)
    applications = {hook.application for hook in hooks if hook.application is not None}
    scopes = {id(hook.scope) for hook in hooks} | {id(site.function)}
    candidates = [
        hook for hook in found.registrations if hook.phase is not Phase.STARTUP and not hook.process
    ]
    for hook in candidates:
        if hook.application is not None and hook.application in applications:
            return hook
    for hook in candidates:
        if id(hook.scope) in scopes:
            return hook
    return missed.registered


def lifecycle(module: ModuleInfo) -> Lifecycle:
    """The lifecycle facts of a module, computed once for the SG5 rules."""
    return module.cached("pool-lifecycle", lambda: _Reader(module).read())


def qualified_function(function: FunctionInfo) -> str:
    """``app.db.get_engine``, ``app.db.Store.close``."""
    parts = [function.name]
    current = function.parent
    while current is not None:
        parts.append(current.name)
        current = current.parent
    outer = function
    while outer.parent is not None:
        outer = outer.parent
    if outer.cls is not None:
        parts.append(outer.cls.name)
    prefix = function.module.module_name
    return ".".join([prefix, *reversed(parts)] if prefix else list(reversed(parts)))


def qualified_class(module: ModuleInfo, cls: ClassInfo) -> str:
    return f"{module.module_name}.{cls.name}" if module.module_name else cls.name


def method_of(function: FunctionInfo | None) -> FunctionInfo | None:
    """The method a function is, or is nested in."""
    while function is not None and not function.is_method:
        function = function.parent
    return function


def outermost(function: FunctionInfo) -> FunctionInfo:
    while function.parent is not None:
        function = function.parent
    return function


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
        self._caches: dict[int, Storage | None] = {}
        self._containers: frozenset[str] | None = None
        self._referenced: frozenset[str] | None = None
        self._creations: list[tuple[cst.Assign | cst.AnnAssign, FunctionInfo | None]] = []
        self._kept: set[Storage] | None = None
        self._nested = {(id(f.parent), f.name): f for f in module.functions if f.parent is not None}

    def read(self) -> Lifecycle:
        """One walk over each scope collects hook registrations, candidate
        closes and candidate creations; they are resolved once every module
        global (including those assigned through ``global``) is known."""
        module = self.module
        for defined in module.functions:
            for decorator in defined.node.decorators:
                hook = self._decorator_hook(decorator.decorator, defined.parent)
                if hook is not None:
                    hook = self._register(_registering(hook, defined.node.name), defined.parent)
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
                    if node.value is not None and any(
                        self._may_create_pool(value) for value in _branches(node.value)
                    ):
                        creations.append((node, function))
                elif kind is cst.Global:
                    assert isinstance(node, cst.Global)
                    self.module_names.update(name.name.value for name in node.names)
        self._creations = creations
        for function in module.functions:
            self._cache(function)
        for closed, closing, where in closes:
            self._close(closed, closing, where)
        for assignment, where in creations:
            self._site(assignment, where)
        for function in module.functions:
            self._cached_site(function)
        return self.result

    def _call(
        self,
        call: cst.Call,
        function: FunctionInfo | None,
        closes: list[tuple[cst.BaseExpression, cst.CSTNode, FunctionInfo | None]],
    ) -> None:
        for target, found in self._call_hooks(call, function):
            hook = self._register(found, function)
            for registered in self._registered_functions(target, function):
                self.result.hooks.setdefault(id(registered), []).append(hook)
        for closed in self._closed_by_call(call):
            closes.append((closed, call, function))

    def _register(self, hook: Hook, function: FunctionInfo | None) -> Hook:
        hook = replace(hook, scope=function)
        self.result.registrations.append(hook)
        if not hook.process or function is None:
            self.result.entry = True
        return hook

    def _may_create_pool(self, value: cst.BaseExpression) -> bool:
        """A cheap test before asking the scope what the value is: a call of
        a pool constructor, of another module's function that returns a
        pool, or of a function or method of this module (which may)."""
        inner, _ = unwrap_await(value)
        if not isinstance(inner, cst.Call):
            return False
        name = dotted_name(inner.func)
        if name is None:
            return False
        module = self.module
        if module.qualify(name) in self.pool_constructors:
            return True
        head = name.split(".", 1)[0]
        if head in module.definitions or (head in ("self", "cls") and "." in name):
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
        if isinstance(expr, cst.Subscript):
            container = self._container_storage(expr, function, depth)
            if container is not None:
                return container
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
        owned = self._self_storage(expr, function)
        if owned is not None:
            return owned
        dotted = dotted_name(expr)
        if dotted is not None:
            head = dotted.split(".", 1)[0]
            local = function is not None and _is_local(head, function)
            qualified = None if local else module.imports.resolve(dotted)
            qualified = qualified or (None if local else self._module_global(dotted))
            if qualified is not None:
                return Storage(StorageKind.GLOBAL, qualified)
        # ``app.pool`` of a parameter, ``get_app().pool``: an attribute of
        # some object; a close of any ``.pool`` may be its.
        return Storage(StorageKind.ATTRIBUTE, expr.attr.value)

    def _self_storage(self, expr: cst.Attribute, function: FunctionInfo | None) -> Storage | None:
        """``self.pool`` in a method (or a function nested in one): the
        class's; ``cls._engine`` in a class method: the class attribute."""
        if not isinstance(expr.value, cst.Name):
            return None
        method = method_of(function)
        if method is None or method.cls is None:
            return None
        owner = qualified_class(self.module, method.cls)
        name = expr.value.value
        if name == method.self_name:
            return Storage(StorageKind.INSTANCE, f"{owner}.{expr.attr.value}")
        if "classmethod" in method.decorators and name == _first_parameter(method):
            return Storage(StorageKind.GLOBAL, f"{owner}.{expr.attr.value}")
        return None

    def _container_storage(
        self, expr: cst.Subscript, function: FunctionInfo | None, depth: int
    ) -> Storage | None:
        """``_ENGINES[shard]``: a pool kept in a module-level mapping is the
        mapping's. (``app["pool"]`` on an application is application state.)"""
        holder = self.storage_of(expr.value, function, depth + 1)
        if holder is None or holder.kind is not StorageKind.GLOBAL:
            return None
        if holder.name.rsplit(".", 1)[-1] in self._module_containers():
            return holder
        return holder if self._state_key(expr) is None else None

    def _module_containers(self) -> frozenset[str]:
        """Module globals bound to a mapping: ``{}``, ``dict()``, ``defaultdict(...)``,
        or annotated ``dict[...]``."""
        if self._containers is None:
            found = set()
            for statement in self.module.tree.body:
                if not isinstance(statement, cst.SimpleStatementLine):
                    continue
                for small in statement.body:
                    target, value, annotation = _assignment_parts(small)
                    if not isinstance(target, cst.Name):
                        continue
                    if isinstance(value, cst.Dict | cst.DictComp):
                        found.add(target.value)
                    elif isinstance(value, cst.Call):
                        name = dotted_name(value.func) or ""
                        if (self.module.qualify(name) or name) in CONTAINER_CONSTRUCTORS:
                            found.add(target.value)
                    if annotation is not None and _annotation_head(annotation) in (
                        CONTAINER_ANNOTATIONS
                    ):
                        found.add(target.value)
            self._containers = frozenset(found)
        return self._containers

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
        ``getattr(app.state, "engine", None)`` is too; ``get_engine()`` of a
        cached getter is what it keeps."""
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
        callee = self.callee(call.func, function)
        if callee is not None:
            return self._cache(callee)
        if name is not None:
            symbol = self.module.imported_symbol(name)
            if symbol is not None and symbol.kind is SymbolKind.ACQUIRER and qualified:
                return Storage(StorageKind.GLOBAL, f"{qualified}()")
        return None

    # -- cached getters ----------------------------------------------------

    def callee(
        self, func: cst.BaseExpression, function: FunctionInfo | None
    ) -> FunctionInfo | None:
        """The function of this module a call calls: ``helper``, a nested
        function, ``self.method``, ``cls.method``, ``Class.method``."""
        if isinstance(func, cst.Name):
            current = function
            while current is not None:
                nested = self._nested.get((id(current), func.value))
                if nested is not None:
                    return nested
                current = current.parent
            return self.module.function_named(func.value)
        if not isinstance(func, cst.Attribute) or not isinstance(func.value, cst.Name):
            return None
        receiver = func.value.value
        method = method_of(function)
        cls: ClassInfo | None = None
        if method is not None and receiver in ("self", "cls", method.self_name):
            cls = method.cls
        else:
            definition = self.module.definitions.get(receiver)
            cls = definition if isinstance(definition, ClassInfo) else None
        return cls.methods.get(func.attr.value) if cls is not None else None

    def _cache(self, function: FunctionInfo) -> Storage | None:
        """Where a cached getter keeps the pool it returns, or None if the
        function hands its callers a pool of their own (or none)."""
        key = id(function)
        if key in self._caches:
            return self._caches[key]
        self._caches[key] = None
        found = self._find_cache(function)
        self._caches[key] = found
        if found is not None:
            self.result.caches[key] = found
        return found

    def _find_cache(self, function: FunctionInfo) -> Storage | None:
        module = self.module
        returned = module.returned_acquisition(function)
        returns_a_pool = returned is not None and returned.kind is Kind.POOL
        if returns_a_pool and _caching_decorator(function):
            return self._decorated_cache(function)
        scope = function.scope
        for node in scope.of_type(cst.Return):
            assert isinstance(node, cst.Return)
            if node.value is None:
                continue
            value, _ = unwrap_await(node.value)
            typed = scope.type_of(value)
            stored = self.storage_of(value, function)
            pool = returns_a_pool or (typed is not None and typed.kind is Kind.POOL)
            if not pool and stored not in self._pool_storages():
                continue
            if stored is not None and stored.kind in (
                StorageKind.GLOBAL,
                StorageKind.INSTANCE,
                StorageKind.STATE,
            ):
                if stored.kind is not StorageKind.GLOBAL or not stored.name.endswith("()"):
                    return stored
                if self.callee(_call_of(value), function) is not None:
                    return stored
            if isinstance(value, cst.Name):
                kept = self._stored_elsewhere(value.value, function)
                if kept is not None:
                    return kept
            if isinstance(value, cst.Call) and self.callee(value.func, function) is None:
                name = dotted_name(value.func)
                symbol = module.imported_symbol(name) if name is not None else None
                qualified = module.imports.resolve(name) if name is not None else None
                if symbol is not None and symbol.kind is SymbolKind.ACQUIRER and qualified:
                    self.result.delegates[id(function)] = qualified
        return None

    def _pool_storages(self) -> set[Storage]:
        """Where the module's assignments keep the pools they create
        (``cls._engine = create_engine(...)``), before any is followed."""
        if self._kept is None:
            self._kept = set()
            for node, function in self._creations:
                assert node.value is not None
                scope = self.scope(function)
                made = any(
                    (produced := scope.produced(value)) is not None
                    and produced.type.kind is Kind.POOL
                    for value in _branches(node.value)
                )
                if not made:
                    continue
                for target in _targets(node):
                    stored = self._target_storage(target, function)
                    if stored is not None and stored.kind is not StorageKind.LOCAL:
                        self._kept.add(stored)
        return self._kept

    def _decorated_cache(self, function: FunctionInfo) -> Storage:
        method = method_of(function)
        if method is function and method.cls is not None and method.self_name is not None:
            owner = qualified_class(self.module, method.cls)
            return Storage(StorageKind.INSTANCE, f"{owner}.{function.name}")
        return Storage(StorageKind.GLOBAL, f"{qualified_function(function)}()")

    def _stored_elsewhere(self, name: str, function: FunctionInfo) -> Storage | None:
        """``_ENGINES[key] = engine`` before ``return engine``."""
        for node in function.scope.of_type(cst.Assign):
            assert isinstance(node, cst.Assign)
            if not isinstance(node.value, cst.Name) or node.value.value != name:
                continue
            for target in node.targets:
                stored = self._target_storage(target.target, function)
                if stored is not None and stored.kind is not StorageKind.LOCAL:
                    return stored
        return None

    # -- hooks ---------------------------------------------------------------

    def _decorator_hook(self, expr: cst.BaseExpression, scope: FunctionInfo | None) -> Hook | None:
        """The hook a decorator registers, evaluated in ``scope``."""
        call = expr if isinstance(expr, cst.Call) else None
        func = call.func if call is not None else expr
        name = dotted_name(func)
        shown = _shown(expr)
        if name is not None:
            qualified = self.module.qualify(name)
            if qualified in PROCESS_HOOKS:
                return Hook(PROCESS_HOOKS[qualified], None, expr, shown, process=True)
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
        return Hook(phase, self._application(func.value, scope), expr, shown)

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
                target = call.args[0].value
                yield target, Hook(phase, None, call, name or "", _shown(target), process=True)
                return
        if isinstance(func, cst.Call) and call.args:
            # The decorator called by hand: ``app.on_event("startup")(init_db)``.
            hook = self._decorator_hook(func, function)
            if hook is not None:
                target = call.args[0].value
                yield target, _registering(hook, target)
            return
        if isinstance(func, cst.Attribute):
            method = _HOOK_METHODS.get(func.attr.value)
            if method is not None:
                registered = _method_registration(call, method)
                if registered is not None:
                    target, phase = registered
                    application = self._application(func.value, function)
                    yield target, Hook(phase, application, call, method.name, _shown(target))
                return
            receiver = func.value
            if (
                func.attr.value in LIST_METHODS
                and isinstance(receiver, cst.Attribute)
                and receiver.attr.value in HOOK_LISTS
            ):
                phase = HOOK_LISTS[receiver.attr.value]
                application = self._application(receiver.value, function)
                arguments = call.args[1:] if func.attr.value == "insert" else call.args[:1]
                for arg in arguments:
                    for target in _elements(arg.value):
                        hook = Hook(phase, application, call, receiver.attr.value, _shown(target))
                        yield target, hook
                return
        for arg in call.args:
            if arg.keyword is not None and arg.keyword.value in HOOK_LISTS:
                phase = HOOK_LISTS[arg.keyword.value]
                application = self._constructed_application(call, function)
                for target in _elements(arg.value):
                    yield target, Hook(phase, application, arg, arg.keyword.value, _shown(target))

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

    def _registered_functions(
        self, expr: cst.BaseExpression, function: FunctionInfo | None
    ) -> list[FunctionInfo]:
        """The functions of this module a registration names: ``init_db``,
        ``self.close``, or what a factory returns (``make_lifespan(settings)``
        registers the lifespan ``make_lifespan`` defines and returns)."""
        if isinstance(expr, cst.Call):
            factory = self.callee(expr.func, function)
            return _returned_functions(factory) if factory is not None else []
        if isinstance(expr, cst.Attribute):
            method = self.callee(expr, function)
            return [method] if method is not None else []
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
        if storage is not None and storage.kind is StorageKind.INSTANCE:
            method = method_of(function)
            if method is not None and method.cls is not None:
                self.result.instance_closes.append(
                    InstanceClose(method.cls, storage.attribute, method, node)
                )
            # Some object's ``.pool`` kept by a function that cannot name its
            # class (``bot.pool = pool``) may be this class's.
            keys.add(f"close:self-attribute:{storage.attribute}")
        elif isinstance(inner, cst.Attribute):
            # Someone's ``.pool`` closed: an instance attribute of that name
            # may be the one (``service.pool.close()``).
            keys.add(Storage(StorageKind.ATTRIBUTE, inner.attr.value).key)
        missed = self._missed_registration(function)
        for key in keys:
            if missed is not None:
                closer, hook = missed
                self.result.missed.append(MissedClose(key, closer, node, hook))
            else:
                self.result.closes.setdefault(key, []).append(node)
        if missed is not None or storage is None or storage.kind is not StorageKind.STATE:
            return
        current = function
        while current is not None:
            for hook in self.result.hooks_of(current):
                if hook.phase is not Phase.STARTUP and hook.application is not None:
                    self.result.shutdown_closes.add((hook.application, storage.key))
            current = current.parent

    def _missed_registration(
        self, function: FunctionInfo | None
    ) -> tuple[FunctionInfo, Hook] | None:
        """The closing function and a shutdown registration of the module,
        when the module registers an application's shutdown hooks but neither
        registers nor calls this function: the close never runs at shutdown. A method, a
        decorated function (or one nested in a decorated function, or holding
        the decorated function that closes), a function the module names
        anywhere (calls, passes, exports) and a close at module level all count."""
        if function is None:
            return None
        current: FunctionInfo | None = function
        while current is not None:
            # A decorated function nested in the closer is registered when
            # the closer runs (``@app.on_event("shutdown")`` inside the
            # function that the application factory calls).
            if current.cls is not None or current.node.decorators or self.result.hooks_of(current):
                return None
            current = current.parent
        closer = outermost(function)
        if closer.name in self._referenced_names():
            return None
        shutdown = next(
            (
                hook
                for hook in self.result.registrations
                if hook.phase is not Phase.STARTUP and not hook.process
            ),
            None,
        )
        return (closer, shutdown) if shutdown is not None else None

    def _referenced_names(self) -> frozenset[str]:
        """Names the module uses anywhere but in their own ``def``, and the
        names its ``__all__`` exports."""
        if self._referenced is None:
            definitions = {id(function.node.name) for function in self.module.functions}
            found: set[str] = set()
            for node in self.module.tree_nodes.of_type(cst.Name, cst.SimpleString):
                if type(node) is cst.Name and id(node) not in definitions:
                    assert isinstance(node, cst.Name)
                    found.add(node.value)
                elif type(node) is cst.SimpleString:
                    assert isinstance(node, cst.SimpleString)
                    text = string_value(node)
                    if text is not None and text.isidentifier():
                        found.add(text)
            self._referenced = frozenset(found)
        return self._referenced

    def _loop_elements(
        self, closed: cst.BaseExpression, function: FunctionInfo | None
    ) -> list[cst.BaseExpression]:
        """``for engine in (sync_engine, async_engine): engine.dispose()``
        closes each element of the literal it loops over, and
        ``for engine in list(_ENGINES.values()): engine.dispose()`` the cache."""
        if not isinstance(closed, cst.Name):
            return []
        elements: list[cst.BaseExpression] = []
        for loop in self.scope(function).of_type(cst.For):
            assert isinstance(loop, cst.For)
            target, values = loop.target, loop.iter
            if isinstance(target, cst.Tuple) and len(target.elements) == 2:
                # ``for key, engine in _ENGINES.items()``
                second = target.elements[1].value
                if not isinstance(second, cst.Name) or second.value != closed.value:
                    continue
                container = self._iterated_container(values, function, "items")
                if container is not None:
                    elements.append(container)
                continue
            if not isinstance(target, cst.Name) or target.value != closed.value:
                continue
            if isinstance(values, cst.List | cst.Tuple | cst.Set):
                elements.extend(element.value for element in values.elements)
                continue
            container = self._iterated_container(values, function, "values")
            if container is not None:
                elements.append(container)
        return elements

    def _iterated_container(
        self, values: cst.BaseExpression, function: FunctionInfo | None, view: str
    ) -> cst.BaseExpression | None:
        """The mapping a loop walks the pools of: ``engines`` bound once to
        ``list(_ENGINES.values())``, ``_ENGINES.values()``, ``_ENGINES``."""
        for _ in range(_MAX_ALIAS_DEPTH):
            if (
                isinstance(values, cst.Name)
                and function is not None
                and _is_local(values.value, function)
            ):
                alias = self.aliases(function).get(values.value)
                if alias is None:
                    break
                values = alias
            elif (
                isinstance(values, cst.Call)
                and isinstance(values.func, cst.Name)
                and values.func.value in _COPYING_CALLS
                and values.args
            ):
                values = values.args[0].value
            elif (
                isinstance(values, cst.Call)
                and isinstance(values.func, cst.Attribute)
                and values.func.attr.value in (*_VIEW_METHODS, view)
            ):
                values = values.func.value
            else:
                break
        stored = self.storage_of(values, function)
        if stored is not None and stored.kind is StorageKind.GLOBAL:
            return values
        return None

    # -- pools created -------------------------------------------------------

    def _site(self, node: cst.Assign | cst.AnnAssign, function: FunctionInfo | None) -> None:
        assert node.value is not None
        scope = self.scope(function)
        for value in _branches(node.value):
            produced = scope.produced(value)
            if produced is None or not produced.acquires or produced.type.kind is not Kind.POOL:
                continue
            callee = self.callee(produced.call.func, function)
            borrowed_from = None
            if callee is not None:
                if self._cache(callee) is not None:
                    # The caller borrows what a cached getter keeps.
                    continue
                if id(callee) in self.result.delegates:
                    borrowed_from = qualified_function(callee)
            else:
                name = dotted_name(produced.call.func)
                symbol = self.module.imported_symbol(name) if name is not None else None
                if symbol is not None and symbol.kind is SymbolKind.ACQUIRER and name:
                    borrowed_from = self.module.imports.resolve(name)
            for target in _targets(node):
                storage = self._target_storage(target, function)
                if storage is None:
                    continue
                site = PoolSite(
                    produced.expression, produced.call, produced.type, function, target, storage
                )
                site.borrowed_from = borrowed_from
                size = size_of(produced.call, self.module)
                site.keeps_connections = size is None or size.keeps_connections
                self.result.sites.append(site)
                if function is not None and storage.kind is StorageKind.LOCAL:
                    self._follow_local(site, function)

    def _cached_site(self, function: FunctionInfo) -> None:
        """The pool a function decorated with a cache creates in its ``return``."""
        storage = self.result.caches.get(id(function))
        if storage is None or not _caching_decorator(function):
            return
        scope = function.scope
        for node in scope.of_type(cst.Return):
            assert isinstance(node, cst.Return)
            if node.value is None:
                continue
            produced = scope.produced(node.value)
            if produced is None or not produced.acquires or produced.type.kind is not Kind.POOL:
                continue
            label = f"{function.name}()"
            if storage.kind is StorageKind.INSTANCE:
                label = f"self.{function.name}"
            site = PoolSite(
                produced.expression,
                produced.call,
                produced.type,
                function,
                function.node.name,
                storage,
                label=label,
            )
            size = size_of(produced.call, self.module)
            site.keeps_connections = size is None or size.keeps_connections
            self.result.sites.append(site)

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
                        if stored.kind is StorageKind.ATTRIBUTE:
                            site.holder = self._holder_class(target, function)
                    else:
                        site.handed_off = True
        site.closed_locally = self._closes_names(function, names)
        if site.storage.kind is StorageKind.LOCAL:
            site.handed_off = site.handed_off or self._hands_on(function, names)

    def _holder_class(self, target: cst.BaseExpression, function: FunctionInfo) -> str | None:
        """``bot.RoboBot`` for ``bot.pool`` when ``bot`` is bound to
        ``RoboBot()`` in the function, directly or by ``with``."""
        if not isinstance(target, cst.Attribute) or not isinstance(target.value, cst.Name):
            return None
        name = target.value.value
        made: cst.BaseExpression | None = self.aliases(function).get(name)
        if made is None:
            for item in function.scope.of_type(cst.WithItem):
                assert isinstance(item, cst.WithItem)
                bound = item.asname.name if item.asname is not None else None
                if isinstance(bound, cst.Name) and bound.value == name:
                    made = item.item
        if made is None:
            return None
        made, _ = unwrap_await(made)
        if not isinstance(made, cst.Call):
            return None
        dotted = dotted_name(made.func)
        if dotted is None or not is_class_name(dotted.rsplit(".", 1)[-1]):
            return None
        return self.module.qualify(dotted)

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


# -- owner classes ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Skip:
    """A release method that reaches the close only if an earlier call does
    not raise: ``close()`` commits, then disposes."""

    method: FunctionInfo
    raising: cst.Call
    close: cst.CSTNode


@dataclass(slots=True)
class Ownership:
    """How the class that keeps a pool on ``self`` gives it back."""

    owner: ClassInfo
    attribute: str
    closes: list[InstanceClose]
    """Closes of ``self.<attribute>`` in methods of the class (its bases and
    subclasses in the module) that do not create it again."""
    skipped: Skip | None
    """Set when every close can be skipped by an exception."""
    release_method: FunctionInfo | None
    """The method that should release it (``close``, ``__aexit__``...), if the class has one."""
    dropped: cst.CSTNode | None
    """``self.engine = None`` in a release method (then ``release_method``),
    without a close."""
    handed_on: bool
    """The class gives the pool to an object that keeps it (returns or
    stores what it builds around it)."""
    keys: tuple[str, ...]
    """What a module that closes it settles: the class and its bases by
    qualified name, and some object's attribute of that name."""

    @property
    def released(self) -> bool:
        return bool(self.closes) and self.skipped is None


def ownership(module: ModuleInfo, found: Lifecycle, site: PoolSite) -> Ownership | None:
    """How the class of a pool kept on ``self`` releases it."""
    method = method_of(site.function)
    if site.storage.kind is not StorageKind.INSTANCE or method is None or method.cls is None:
        return None
    owner = method.cls
    attribute = site.storage.attribute
    family = _family(module, owner)
    creators = {
        id(method_of(other.function))
        for other in found.sites
        if other.storage.kind is StorageKind.INSTANCE
        and other.storage.attribute == attribute
        and method_of(other.function) is not None
    }
    closes = [
        close
        for close in found.instance_closes
        if close.attribute == attribute
        and any(close.owner is member for member in family)
        and (id(close.method) not in creators or _closes_what_it_created(close))
    ]
    database = _database_attributes(family)
    skips = [_skip(module, close, database) for close in closes]
    skipped = skips[0] if skips and all(skip is not None for skip in skips) else None
    methods = [m for member in family for m in member.methods.values()]
    release = release_method(methods) or next((m for m in methods if found.hooks_of(m)), None)
    dropped = None
    for candidate in methods:
        drop = _dropped(candidate, attribute) if is_release_method(candidate.name) else None
        if drop is not None and dropped is None:
            dropped = drop
            release = candidate
    return Ownership(
        owner,
        attribute,
        closes,
        skipped,
        release,
        dropped,
        _handed_on(module, found, family, site.storage),
        ownership_keys(module, owner, attribute),
    )


def release_method(methods: Iterable[FunctionInfo]) -> FunctionInfo | None:
    """The method by which an object gives back what it owns: ``close``
    rather than ``__aexit__`` (which usually calls it)."""
    candidates = [method for method in methods if is_release_method(method.name)]
    plain = [method for method in candidates if not method.name.startswith("__")]
    chosen = plain or candidates
    return chosen[0] if chosen else None


def ownership_keys(module: ModuleInfo, owner: ClassInfo, attribute: str) -> tuple[str, ...]:
    """The keys that settle ``self.<attribute>`` of ``owner``: a close in the
    class or in one of its bases, by qualified name, or a close of that
    attribute of some object (``service.engine.dispose()``)."""
    return (
        *(f"close:self:{name}.{attribute}" for name in _lineage(module, owner)),
        Storage(StorageKind.ATTRIBUTE, attribute).key,
    )


def instance_close_keys(module: ModuleInfo, close: InstanceClose) -> tuple[str, ...]:
    """What a class's close of ``self.<attribute>`` settles in the run: the
    attribute of the class and of its bases (a subclass may close what its
    base stores), and, for instances of exactly this class made elsewhere,
    ``close:own:``."""
    lineage = _lineage(module, close.owner)
    return (
        *(f"close:self:{name}.{close.attribute}" for name in lineage),
        f"close:own:{lineage[0]}.{close.attribute}",
    )


def class_bases(module: ModuleInfo, cls: ClassInfo) -> tuple[str, ...]:
    """The qualified names of a class's direct bases, as far as the module can name them."""
    found = []
    for base in cls.node.bases:
        dotted = dotted_name(base.value)
        qualified = module.qualify(dotted) if dotted is not None else None
        if qualified is not None:
            found.append(qualified)
    return tuple(found)


def counted_instance_closes(module: ModuleInfo, found: Lifecycle) -> list[InstanceClose]:
    """Closes of ``self.<attribute>`` in methods that do not create it again."""
    creators = {
        (id(method_of(site.function)), site.storage.attribute)
        for site in found.sites
        if site.storage.kind is StorageKind.INSTANCE
    }
    return [
        close
        for close in found.instance_closes
        if (id(close.method), close.attribute) not in creators or _closes_what_it_created(close)
    ]


def _closes_what_it_created(close: InstanceClose) -> bool:
    """In the method that creates the pool, a close that is registered for
    later (``stack.push_async_callback(self.pool.close)``,
    ``atexit.register(self.engine.dispose)``) or runs in a ``finally``
    closes the new pool; a close called before it is created again
    (``reconnect()``) closes the old one."""
    parents = _parents(close.method.node)
    parent = parents.get(id(close.node))
    if not (isinstance(parent, cst.Call) and parent.func is close.node):
        return True
    current: cst.CSTNode | None = close.node
    while current is not None and current is not close.method.node:
        if isinstance(current, cst.Finally):
            return True
        current = parents.get(id(current))
    return False


def _parents(node: cst.CSTNode) -> dict[int, cst.CSTNode]:
    found: dict[int, cst.CSTNode] = {}
    for parent in walk(node):
        for child in children(parent):
            found[id(child)] = parent
    return found


def _lineage(module: ModuleInfo, cls: ClassInfo) -> list[str]:
    """The qualified names of a class and of its bases, as far as the
    module can name them."""
    by_name = {candidate.name: candidate for candidate in module.classes}
    names: list[str] = []
    pending = [cls]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        names.append(qualified_class(module, current))
        for base in current.node.bases:
            dotted = dotted_name(base.value)
            if dotted is None:
                continue
            local = by_name.get(dotted)
            if local is not None:
                pending.append(local)
                continue
            qualified = module.imports.resolve(dotted)
            if qualified is not None and qualified not in names:
                names.append(qualified)
    return names


def _family(module: ModuleInfo, cls: ClassInfo) -> list[ClassInfo]:
    """The class, its bases and its subclasses defined in the module."""
    by_name = {candidate.name: candidate for candidate in module.classes}

    def bases(of: ClassInfo) -> set[int]:
        found: set[int] = set()
        pending = [of]
        while pending:
            current = pending.pop()
            for base in current.node.bases:
                parent = by_name.get(last_name(base.value))
                if parent is not None and id(parent) not in found and parent is not of:
                    found.add(id(parent))
                    pending.append(parent)
        return found

    own = bases(cls)
    return [
        candidate
        for candidate in module.classes
        if candidate is cls or id(candidate) in own or id(cls) in bases(candidate)
    ]


def _dropped(method: FunctionInfo, attribute: str) -> cst.CSTNode | None:
    """``self.<attribute> = None`` in the method."""
    for node in method.scope.of_type(cst.Assign):
        assert isinstance(node, cst.Assign)
        if not (isinstance(node.value, cst.Name) and node.value.value == "None"):
            continue
        for target in node.targets:
            expr = target.target
            if (
                isinstance(expr, cst.Attribute)
                and isinstance(expr.value, cst.Name)
                and expr.value.value == method.self_name
                and expr.attr.value == attribute
            ):
                return node
    return None


def _database_attributes(family: list[ClassInfo]) -> frozenset[str]:
    """Attributes of ``self`` that hold a database object: what the model
    knows a call produces (``self.engine.connect()``), and what a method of
    one of those returns (``self.connection.transaction()``)."""
    assignments: list[tuple[str, cst.BaseExpression, FunctionInfo]] = []
    for member in family:
        for method in member.methods.values():
            for name, value in method.scope.attribute_assignments():
                head, _, attribute = name.partition(".")
                if head == method.self_name and attribute and "." not in attribute:
                    assignments.append((attribute, value, method))
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for attribute, value, method in assignments:
            if attribute in found:
                continue
            inner, _ = unwrap_await(value)
            produced = method.scope.produced(value) is not None
            derived = (
                isinstance(inner, cst.Call)
                and isinstance(inner.func, cst.Attribute)
                and _self_attribute(inner.func.value, method) in found
            )
            if produced or derived:
                found.add(attribute)
                changed = True
    return frozenset(found)


def _self_attribute(expr: cst.BaseExpression, method: FunctionInfo) -> str | None:
    """``engine`` for ``self.engine``."""
    if (
        isinstance(expr, cst.Attribute)
        and isinstance(expr.value, cst.Name)
        and expr.value.value == method.self_name
    ):
        return expr.attr.value
    return None


def _skip(module: ModuleInfo, close: InstanceClose, database: frozenset[str]) -> Skip | None:
    """The call that, by raising, skips a close in its method: a statement
    before it (in its block or an enclosing one) that can raise, when the
    close is not in a ``finally`` and the exception is not caught before it."""
    method = close.method
    parents = _parents(method.node)
    policy = raising(module)
    current: cst.CSTNode = close.node
    while current is not method.node:
        parent = parents.get(id(current))
        if parent is None:
            return None
        if isinstance(parent, cst.Finally):
            return None
        siblings: list[cst.CSTNode] = []
        if isinstance(
            parent, cst.IndentedBlock | cst.SimpleStatementSuite | cst.SimpleStatementLine
        ):
            siblings = list(parent.body)
        if siblings:
            index = next(i for i, sibling in enumerate(siblings) if sibling is current)
            for earlier in siblings[:index]:
                found = _raising_call(policy, earlier, method, database)
                if found is not None:
                    return Skip(method, found, close.node)
        current = parent
    return None


def _raising_call(
    policy: Raising, statement: cst.CSTNode, method: FunctionInfo, database: frozenset[str]
) -> cst.Call | None:
    """The first call of a statement that can raise out of it: one the
    may-raise model says can, or a method of a database object the class
    keeps (``self.connection.commit()``). Releases, and calls whose exception
    the statement itself catches, do not count."""
    if isinstance(statement, cst.Try) and any(_catches_all(h) for h in statement.handlers):
        return None
    for node in walk(statement, prune=is_nested_scope):
        if type(node) is not cst.Call:
            continue
        assert isinstance(node, cst.Call)
        if is_release_method(last_name(node.func)):
            continue
        func = node.func
        if isinstance(func, cst.Attribute) and _self_attribute(func.value, method) in database:
            return node
        if policy.call_raises(node, method):
            return node
    return None


def _catches_all(handler: cst.ExceptHandler) -> bool:
    """``except:`` or ``except Exception:`` that does not raise again."""
    if handler.type is not None and last_name(handler.type) not in _CATCH_ALL:
        return False
    return not any(isinstance(node, cst.Raise) for node in walk(handler.body))


def _handed_on(
    module: ModuleInfo, found: Lifecycle, family: list[ClassInfo], storage: Storage
) -> bool:
    """Whether a method passes the pool (``self.engine``, or a getter or
    property that returns it) to a call the model does not know whose result
    it returns or keeps: ``return EngineConfig(engine=self.engine)`` gives
    it to an object that owns it from then on."""
    methods = [m for member in family for m in member.methods.values()]
    getters = {m.name for m in methods if found.caches.get(id(m)) == storage}
    attribute = storage.attribute
    for method in methods:
        self_name = method.self_name
        if self_name is None:
            continue
        scope = method.scope
        kept = {
            id(unwrap_await(node.value)[0])
            for node in scope.of_type(cst.Return, cst.Assign)
            if isinstance(node, cst.Return | cst.Assign)
            and node.value is not None
            and _keeps_its_value(node)
        }
        for node in scope.of_type(cst.Call):
            assert isinstance(node, cst.Call)
            if id(node) not in kept or scope.produced(node) is not None:
                continue
            for arg in node.args:
                if _denotes(arg.value, self_name, attribute, getters):
                    return True
    return False


def _keeps_its_value(node: cst.Return | cst.Assign) -> bool:
    """A ``return``, or an assignment to something other than a local name."""
    return isinstance(node, cst.Return) or all(
        not isinstance(target.target, cst.Name) for target in node.targets
    )


def _denotes(expr: cst.BaseExpression, self_name: str, attribute: str, getters: set[str]) -> bool:
    """``self.engine``, ``self.get_engine()`` or ``self.engine_property``."""
    expr, _ = unwrap_await(expr)
    if isinstance(expr, cst.Call) and not expr.args:
        expr = expr.func
    return (
        isinstance(expr, cst.Attribute)
        and isinstance(expr.value, cst.Name)
        and expr.value.value == self_name
        and (expr.attr.value == attribute or expr.attr.value in getters)
    )


# -- what a module tells the run ---------------------------------------------


def references(module: ModuleInfo) -> frozenset[str]:
    """The qualified names a module imports or reaches through an import
    (``app.db``, ``app.db.close_db`` for ``from app import db`` and
    ``db.close_db()``): whom it imports, and which of their functions it may
    call or register."""
    return module.cached("pool-references", lambda: _references(module))


def _references(module: ModuleInfo) -> frozenset[str]:
    found: set[str] = set()
    name = module.module_name
    package = module.imports.is_package
    for node in module.tree_nodes.of_type(cst.Import, cst.ImportFrom, cst.Attribute):
        kind = type(node)
        if kind is cst.Import:
            assert isinstance(node, cst.Import)
            for alias in node.names:
                full = dotted_name(alias.name)
                if full is not None:
                    found.add(full)
        elif kind is cst.ImportFrom:
            assert isinstance(node, cst.ImportFrom)
            single = ImportMap(name, is_package=package)
            single.add(node)
            for _, qualified in single.items():
                found.add(qualified)
                found.add(qualified.rsplit(".", 1)[0])
        elif kind is cst.Attribute:
            dotted = dotted_name(node)
            if dotted is not None and dotted.split(".", 1)[0] in module.imports:
                resolved = module.imports.resolve(dotted)
                if resolved is not None:
                    found.add(resolved)
    return frozenset(found)


# -- helpers -----------------------------------------------------------------


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


def _registering(hook: Hook, target: cst.BaseExpression) -> Hook:
    return Hook(hook.phase, hook.application, hook.node, hook.via, _shown(target), hook.process)


def _returned_functions(factory: FunctionInfo) -> list[FunctionInfo]:
    """The nested functions a factory returns (a lifespan it builds)."""
    nested = {f.name: f for f in factory.module.functions if f.parent is factory}
    found = []
    for node in factory.scope.of_type(cst.Return):
        assert isinstance(node, cst.Return)
        if isinstance(node.value, cst.Name) and node.value.value in nested:
            found.append(nested[node.value.value])
    return found


def _caching_decorator(function: FunctionInfo) -> bool:
    return any(
        decorator in CACHING_DECORATORS or decorator.rsplit(".", 1)[-1] in CACHING_DECORATORS
        for decorator in function.decorators
    )


def _call_of(expr: cst.BaseExpression) -> cst.BaseExpression:
    return expr.func if isinstance(expr, cst.Call) else expr


def _first_parameter(function: FunctionInfo) -> str | None:
    params = function.node.params
    positional = [*params.posonly_params, *params.params]
    return positional[0].name.value if positional else None


def _assignment_parts(
    small: cst.BaseSmallStatement,
) -> tuple[cst.BaseExpression | None, cst.BaseExpression | None, cst.BaseExpression | None]:
    """(target, value, annotation) of a one-target assignment."""
    if isinstance(small, cst.Assign) and len(small.targets) == 1:
        return small.targets[0].target, small.value, None
    if isinstance(small, cst.AnnAssign):
        return small.target, small.value, small.annotation.annotation
    return None, None, None


def _annotation_head(annotation: cst.BaseExpression) -> str:
    if isinstance(annotation, cst.Subscript):
        annotation = annotation.value
    return last_name(annotation)


def _branches(value: cst.BaseExpression) -> list[cst.BaseExpression]:
    """``a if c else b`` may be either: one pool kept in one place."""
    if isinstance(value, cst.IfExp):
        return [*_branches(value.body), *_branches(value.orelse)]
    return [value]


def _shown(node: cst.CSTNode) -> str:
    return " ".join(_EMPTY.code_for_node(node).split())


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
