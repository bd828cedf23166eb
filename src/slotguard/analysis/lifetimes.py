"""How long things live: what the SG3 rules know and ask about lifetimes.

The tables say which calls hand work to something that runs it later (a task,
a thread, an executor, the framework after the response); which objects live
as long as the application (its state, module globals, caches); which
resource types are registries meant to live at module level; which frameworks
inject a request-scoped dependency by parameter name. Rules read these tables
and do not spell out a library's names themselves.

``Resources`` answers the questions the rules share about one module: which
short-lived resource a name holds and how its scope is bounded (injected for
a request, bound by ``with``, borrowed from the caller, acquired here), what a
store keeps, and whether a class or the module releases what it keeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import libcst as cst

from slotguard.analysis.index import SymbolKind
from slotguard.analysis.infer import ClassInfo, FunctionInfo, ModuleInfo, Origin, Produced
from slotguard.analysis.releasers import releasing_parameters
from slotguard.model.catalog import DEPENDENCY_MARKERS
from slotguard.model.vocabulary import ResourceType
from slotguard.syntax import dotted_name, walk, walk_scope


@dataclass(frozen=True, slots=True)
class Scheduler:
    """A call that hands work to something that runs it later, elsewhere."""

    name: str
    """A qualified function or class name (``asyncio.create_task``), or, for
    ``method``, the method name alone: receivers such as ``background_tasks``,
    ``loop`` or ``executor`` are rarely typed, and these names are specific."""
    runs: str
    """What runs the work, for messages: "a background task"."""
    method: bool = False
    joined_when_awaited: bool = False
    """Awaiting the call's result waits for the work itself
    (``await asyncio.create_task(...)``, ``await loop.run_in_executor(...)``)."""
    joined_by_its_block: bool = False
    """Called on a receiver bound by ``with``/``async with`` (a task group, a
    nursery, an executor), the work is waited for when that block ends."""
    after_response: bool = False
    """The framework runs the work once the response is sent, after the
    request's dependencies are closed."""
    work_index: int = 0
    """The positional argument that is the work itself (the coroutine or the
    callable); ``call_later(delay, callback)`` has it second."""


SCHEDULERS: tuple[Scheduler, ...] = (
    Scheduler("asyncio.create_task", "a task", joined_when_awaited=True),
    Scheduler("asyncio.ensure_future", "a task", joined_when_awaited=True),
    Scheduler("asyncio.tasks.create_task", "a task", joined_when_awaited=True),
    Scheduler("asyncio.tasks.ensure_future", "a task", joined_when_awaited=True),
    Scheduler("asyncio.run_coroutine_threadsafe", "a task on another event loop"),
    Scheduler("threading.Thread", "a thread"),
    Scheduler("threading.Timer", "a timer thread", work_index=1),
    Scheduler("starlette.background.BackgroundTask", "a background task", after_response=True),
    Scheduler("litestar.background_tasks.BackgroundTask", "a background task", after_response=True),
    Scheduler("litestar.BackgroundTask", "a background task", after_response=True),
    Scheduler("add_task", "a background task", method=True, after_response=True),
    Scheduler(
        "create_task",
        "a task",
        method=True,
        joined_when_awaited=True,
        joined_by_its_block=True,
    ),
    Scheduler("start_soon", "a task", method=True, joined_by_its_block=True),
    Scheduler("spawn", "a background job", method=True, joined_by_its_block=True),
    Scheduler("submit", "an executor", method=True, joined_by_its_block=True),
    Scheduler(
        "run_in_executor", "an executor", method=True, joined_when_awaited=True, work_index=1
    ),
    Scheduler("call_soon", "an event-loop callback", method=True),
    Scheduler("call_soon_threadsafe", "an event-loop callback", method=True),
    Scheduler("call_later", "an event-loop callback", method=True, work_index=1),
    Scheduler("call_at", "an event-loop callback", method=True, work_index=1),
)

WORK_KEYWORDS = ("target", "func", "fn", "function", "coro", "callback")
"""Keyword arguments that name the work itself (``Thread(target=...)``)."""

JOIN_FUNCTIONS = (
    "asyncio.gather",
    "asyncio.wait",
    "asyncio.wait_for",
    "asyncio.as_completed",
    "asyncio.wrap_future",
    "concurrent.futures.wait",
    "concurrent.futures.as_completed",
)
"""Wait for the tasks or futures passed to them."""

JOIN_METHODS = ("join", "result", "exception")
"""Called on a thread, task or future, wait for it to finish."""

APPLICATION_CLASSES = (
    "fastapi.FastAPI",
    "fastapi.applications.FastAPI",
    "starlette.applications.Starlette",
    "litestar.Litestar",
    "litestar.app.Litestar",
    "sanic.Sanic",
    "sanic.app.Sanic",
    "aiohttp.web.Application",
    "quart.Quart",
    "flask.Flask",
)
"""Application objects: whatever is stored on them (``app.state.x``,
``app.ctx.x``, ``app["x"]``) lives as long as the application."""

APPLICATION_NAMES = ("app", "application")
"""Names that denote the application when nothing types them: ``app``,
``request.app``, ``self.app``. ``request.state`` and Sanic's ``request.ctx``
are per request and do not match."""

STORING_METHODS = (
    "append",
    "appendleft",
    "extend",
    "add",
    "insert",
    "setdefault",
    "update",
    "put",
    "put_nowait",
    "__setitem__",
)
"""Container methods that keep what they are given."""

PROCESS_CACHES = (
    "functools.cache",
    "functools.lru_cache",
    "async_lru.alru_cache",
    "cachetools.cached",
    "cachetools.func.lru_cache",
    "cachetools.func.ttl_cache",
    "aiocache.cached",
)
"""Decorators that keep what the function returns for the life of the process."""

INSTANCE_CACHES = ("functools.cached_property",)
"""Decorators that keep what the method returns on the instance, under the
method's name."""

REGISTRIES = ("sqlalchemy.scoped_session", "sqlalchemy.async_scoped_session")
"""Resource types that are registries: module-level by design. A registry
holds no connection itself; each thread or task gets its own session from
it, which ``remove()`` closes at the end of the request (a teardown that
usually lives in another module than the registry)."""

DEDICATED_CONNECTION_METHODS = ("add_listener", "notifies")
"""A connection used for these (``LISTEN``/``NOTIFY``) is dedicated and meant
to live as long as its listener: it is not a leak to keep it on the
application."""

CLOSE_ALL_FUNCTIONS = (
    "sqlalchemy.orm.close_all_sessions",
    "sqlalchemy.orm.session.close_all_sessions",
)
"""Close every session of the process."""

EXIT_STACK_METHODS = ("enter_context", "enter_async_context")
"""Exit-stack methods that take over releasing what they are given."""

IMPORT_TIME_RUNNERS = ("asyncio.run",)
IMPORT_TIME_RUNNER_METHODS = ("run_until_complete",)
"""Run a coroutine to completion where they are called: at module level,
``loop.run_until_complete(asyncpg.connect(...))`` connects at import time."""

INJECTING_MARKERS = ("litestar.Provide", "litestar.di.Provide")
"""Litestar injects ``dependencies={"db": Provide(provide_db)}`` into the
handler parameter named ``db``, with no marker on the parameter itself..."""

INJECTING_HANDLERS = ("litestar.",)
"""...of the handlers its route decorators (``@get``, ``@post``) declare."""


def scheduler_for_function(qualified: str) -> Scheduler | None:
    for scheduler in SCHEDULERS:
        if not scheduler.method and scheduler.name == qualified:
            return scheduler
    return None


def scheduler_for_method(name: str) -> Scheduler | None:
    for scheduler in SCHEDULERS:
        if scheduler.method and scheduler.name == name:
            return scheduler
    return None


def is_application_path(dotted: str) -> bool:
    """Whether ``dotted`` (the object something is stored on) is, or is
    reached through, the application: ``app.state``, ``request.app.state``,
    ``self.app``."""
    return any(part in APPLICATION_NAMES for part in dotted.split("."))


# -- queries over a module ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Held:
    """A short-lived resource a name holds, and how its scope is bounded."""

    name: str
    type: ResourceType
    origin: Origin
    node: cst.CSTNode
    """The parameter, ``with`` item or acquisition that bound it."""
    function: FunctionInfo
    """The function whose scope bound it."""
    provider: str | None = None
    """For an injected resource: the dependency provider (``get_db``), when
    the code names it."""
    block: cst.With | None = None
    """For a resource bound by ``with``: the statement."""


@dataclass(frozen=True, slots=True)
class Stored:
    """A resource that an expression hands over: a name, or an acquisition."""

    node: cst.CSTNode
    type: ResourceType
    held: Held | None
    """None for an acquisition written inline (``Session(engine)``)."""


def module_resources(module: ModuleInfo) -> Resources:
    """The module's ``Resources``, built once for the SG3 rules."""
    return module.cached("sg3-resources", lambda: Resources(module))


class Resources:
    """What the names of a module hold, as the SG3 rules see it: short-lived
    resources, where their scope ends, and which objects outlive them."""

    def __init__(self, module: ModuleInfo) -> None:
        self.module = module
        self._injected: dict[str, cst.Call] | None = None
        self._application_names: frozenset[str] | None = None
        self._with_statements: dict[int, cst.With] = {}

    # -- names -------------------------------------------------------------

    def held_by(self, function: FunctionInfo, name: str) -> Held | None:
        """The short-lived resource ``name`` holds in ``function``, following
        aliases and closures, if its scope is one slotguard can bound."""
        owner: FunctionInfo | None = function
        while owner is not None:
            found = self._held_in(owner, name)
            if found is not None:
                return found
            if is_local(owner, name):
                return None
            owner = owner.parent
        return None

    def _held_in(self, function: FunctionInfo, name: str) -> Held | None:
        scope = function.scope
        binding = scope.bindings.get(name)
        seen = {name}
        while (
            binding is not None
            and binding.origin is Origin.ALIAS
            and isinstance(binding.node, cst.Name)
            and binding.node.value not in seen
        ):
            seen.add(binding.node.value)
            binding = scope.bindings.get(binding.node.value)
        if binding is None:
            return self._injected_by_name(function, name)
        resource = binding.type
        if not self.is_short_lived(resource):
            return None
        origin = binding.origin
        if origin is Origin.PARAMETER and isinstance(binding.node, cst.Param):
            marker = self.injected().get(binding.name) if _is_handler(function) else None
            if marker is not None:
                provider = dotted_name(marker.args[0].value) if marker.args else None
                return Held(
                    binding.name, resource, Origin.INJECTED, binding.node, function, provider
                )
            return Held(binding.name, resource, origin, binding.node, function)
        if origin is Origin.INJECTED and isinstance(binding.node, cst.Param):
            provider = self._provider(binding.node)
            return Held(binding.name, resource, origin, binding.node, function, provider)
        if origin is Origin.ENTERED and isinstance(binding.node, cst.WithItem):
            block = self.with_statement(function, binding.node)
            if block is None or not resource.with_releases:
                return None
            return Held(binding.name, resource, origin, binding.node, function, block=block)
        if origin is Origin.ACQUIRED:
            return Held(binding.name, resource, origin, binding.node, function)
        return None

    def _injected_by_name(self, function: FunctionInfo, name: str) -> Held | None:
        """An unannotated handler parameter that Litestar injects by name."""
        marker = self.injected().get(name) if _is_handler(function) else None
        if marker is None:
            return None
        param = next((p for p in parameters(function) if p.name.value == name), None)
        if param is None or not marker.args:
            return None
        provider = dotted_name(marker.args[0].value)
        providing = self.module.function_named(provider) if provider else None
        resource = providing.yielded_type() if providing is not None else None
        if resource is None or not self.is_short_lived(resource):
            return None
        return Held(name, resource, Origin.INJECTED, param, function, provider)

    def _provider(self, param: cst.Param) -> str | None:
        """``get_db`` in ``db: Session = Depends(get_db)`` or in
        ``db: Annotated[Session, Depends(get_db)]`` (also through an alias)."""
        if param.annotation is not None:
            provider = self.module.annotation_provider(param.annotation.annotation)
            if provider is not None:
                return provider
        if isinstance(param.default, cst.Call) and param.default.args:
            callee = dotted_name(param.default.func)
            if callee and callee.rsplit(".", 1)[-1] in DEPENDENCY_MARKERS:
                return dotted_name(param.default.args[0].value)
        return None

    def injected(self) -> dict[str, cst.Call]:
        """Parameter names Litestar injects in this module: the keys of
        ``dependencies={"db": Provide(provide_db)}``."""
        if self._injected is None:
            found: dict[str, cst.Call] = {}
            module = self.module
            for node in module.tree_nodes.of_type(cst.Dict):
                if not isinstance(node, cst.Dict):
                    continue
                for element in node.elements:
                    if not isinstance(element, cst.DictElement):
                        continue
                    key = element.key
                    value = element.value
                    if not isinstance(key, cst.SimpleString) or not isinstance(value, cst.Call):
                        continue
                    callee = dotted_name(value.func)
                    qualified = module.qualify(callee) if callee else None
                    if qualified in INJECTING_MARKERS and isinstance(key.evaluated_value, str):
                        found.setdefault(key.evaluated_value, value)
            self._injected = found
        return self._injected

    def with_statement(self, function: FunctionInfo, item: cst.WithItem) -> cst.With | None:
        if id(item) not in self._with_statements:
            for node in walk_scope(function.node.body):
                if isinstance(node, cst.With):
                    for each in node.items:
                        self._with_statements[id(each)] = node
        return self._with_statements.get(id(item))

    def is_short_lived(self, resource: ResourceType) -> bool:
        return resource.kind.is_short_lived and resource.name not in REGISTRIES

    def stored(self, function: FunctionInfo, value: cst.BaseExpression) -> Iterator[Stored]:
        """The short-lived resources that keeping ``value`` keeps."""
        scope = function.scope
        for leaf in _kept_leaves(value):
            if isinstance(leaf, cst.Name):
                held = self.held_by(function, leaf.value)
                if held is not None:
                    yield Stored(leaf, held.type, held)
            elif isinstance(leaf, cst.Call | cst.Await):
                produced: Produced | None = scope.produced(leaf)
                if (
                    produced is not None
                    and produced.acquires
                    and self.is_short_lived(produced.type)
                ):
                    yield Stored(produced.expression, produced.type, None)

    def release_of(self, held: Held, after: cst.CSTNode | None = None) -> cst.Call | None:
        """A call in the acquiring function that releases ``held``: the first
        one after ``after`` if there is one, else the first."""
        found: list[cst.Call] = []
        passed = after is None
        first_after: cst.Call | None = None
        for node in walk_scope(held.function.node.body):
            if node is after:
                passed = True
            if not isinstance(node, cst.Call) or not isinstance(node.func, cst.Attribute):
                continue
            method = node.func.attr.value
            receiver = node.func.value
            releases = (
                isinstance(receiver, cst.Name)
                and receiver.value == held.name
                and method in held.type.release_methods
            ) or (
                method in held.type.returned_by
                and bool(node.args)
                and isinstance(node.args[0].value, cst.Name)
                and node.args[0].value.value == held.name
            )
            if releases:
                found.append(node)
                if passed and first_after is None and node is not after:
                    first_after = node
        return first_after or (found[0] if found else None)

    # -- objects -----------------------------------------------------------

    def is_application(self, function: FunctionInfo, root: str) -> bool:
        """Whether the name ``root`` holds the application object: a parameter
        annotated with an application class, or a module-level instance."""
        module = self.module
        for param in parameters(function):
            if param.name.value == root and param.annotation is not None:
                annotation = dotted_name(param.annotation.annotation)
                if annotation and module.qualify(annotation) in APPLICATION_CLASSES:
                    return True
        return not is_local(function, root) and root in self._applications()

    def _applications(self) -> frozenset[str]:
        """Module-level names assigned an application: ``api = FastAPI()``."""
        if self._application_names is None:
            found: set[str] = set()
            module = self.module
            for node in walk_scope(module.tree):
                if not isinstance(node, cst.Assign) or not isinstance(node.value, cst.Call):
                    continue
                callee = dotted_name(node.value.func)
                if callee and module.qualify(callee) in APPLICATION_CLASSES:
                    found.update(
                        t.target.value for t in node.targets if isinstance(t.target, cst.Name)
                    )
            self._application_names = frozenset(found)
        return self._application_names

    def is_dedicated(self, stored: Stored, place: str) -> bool:
        """A connection used for ``LISTEN``: meant to live as long as its
        listener. ``place``: where it is stored (``app.state.listener``)."""
        names = {place.rsplit(".", 1)[-1]}
        if stored.held is not None:
            names.add(stored.held.name)
        for node in self.module.tree_nodes.of_type(cst.Call):
            if (
                isinstance(node, cst.Call)
                and isinstance(node.func, cst.Attribute)
                and node.func.attr.value in DEDICATED_CONNECTION_METHODS
            ):
                receiver = dotted_name(node.func.value) or ""
                if receiver.rsplit(".", 1)[-1] in names:
                    return True
        return False

    def class_releases(
        self, cls: ClassInfo, attribute: str, resource: ResourceType, direct: bool
    ) -> bool:
        """Whether some method of ``cls`` (or of a base class defined in the
        module) releases what it keeps in ``self.<attribute>``.

        ``direct``: the attribute holds the resource itself; otherwise it is a
        container of resources, released if a method that reads it releases
        anything of that type.
        """
        for method in self._methods(cls, set()):
            self_name = method.self_name or "self"
            kept = f"{self_name}.{attribute}"
            if direct and _releases_attribute(self.module, method.node, kept, resource):
                return True
            if not direct and _releases_some(self.module, method.node, kept, resource):
                return True
        return False

    def module_releases(self, container: str, resource: ResourceType) -> bool:
        """Whether a function of the module releases what the module-level
        container ``container`` holds: it tracks resources to close them
        (a test fixture's registry of open sessions), not to keep them."""
        return any(
            _releases_some(self.module, function.node, container, resource)
            for function in self.module.functions
        )

    def _methods(self, cls: ClassInfo, seen: set[int]) -> Iterator[FunctionInfo]:
        if id(cls) in seen:
            return
        seen.add(id(cls))
        yield from cls.methods.values()
        for base in cls.node.bases:
            name = dotted_name(base.value)
            definition = self.module.definitions.get(name) if name else None
            if isinstance(definition, ClassInfo):
                yield from self._methods(definition, seen)


def module_level_names(module: ModuleInfo) -> frozenset[str]:
    """Names the module itself binds at top level (not imports): its globals,
    functions and classes."""
    names: set[str] = set(module.definitions)
    for node in walk_scope(module.tree):
        if isinstance(node, cst.Assign):
            for target in node.targets:
                if isinstance(target.target, cst.Name):
                    names.add(target.target.value)
        elif isinstance(node, cst.AnnAssign) and isinstance(node.target, cst.Name):
            names.add(node.target.value)
    return frozenset(names)


def last_statement(block: cst.BaseSuite) -> cst.CSTNode:
    """The last simple statement of a block, descending into compound ones."""
    last: cst.CSTNode = block
    while True:
        if isinstance(last, cst.IndentedBlock | cst.SimpleStatementSuite):
            if not last.body:
                return last
            last = last.body[-1]
        elif isinstance(last, cst.SimpleStatementLine):
            return last.body[-1]
        elif isinstance(last, cst.FunctionDef | cst.ClassDef):
            return last
        elif isinstance(last, cst.BaseCompoundStatement):
            last = last.body
        else:
            return last


def parameters(function: FunctionInfo) -> Iterator[cst.Param]:
    params = function.node.params
    yield from params.posonly_params
    yield from params.params
    yield from params.kwonly_params


def is_local(function: FunctionInfo, name: str) -> bool:
    """Whether ``name`` is bound in the function itself (a parameter, an
    assignment, a ``with`` target), so it does not refer to an outer one."""
    scope = function.scope
    if name in scope.local_names or name in scope.bindings:
        return True
    return any(p.name.value == name for p in parameters(function))


def _is_handler(function: FunctionInfo) -> bool:
    """A route handler of a framework that injects dependencies by name."""
    return any(d.startswith(INJECTING_HANDLERS) for d in function.decorators)


def _kept_leaves(expression: cst.BaseExpression) -> Iterator[cst.BaseExpression]:
    """The sub-expressions whose values storing ``expression`` keeps:
    ``db``, the elements of ``(db, 1)`` and ``{"k": db}``, both branches of a
    conditional, and an acquisition written inline."""
    stack = [expression]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.Tuple | cst.List | cst.Set):
            stack.extend(element.value for element in node.elements)
        elif isinstance(node, cst.Dict):
            for element in node.elements:
                stack.append(element.value)
        elif isinstance(node, cst.IfExp):
            stack.extend((node.body, node.orelse))
        elif isinstance(node, cst.BooleanOperation):
            stack.extend((node.left, node.right))
        elif isinstance(node, cst.NamedExpr):
            stack.append(node.value)
        else:
            yield node


def _releases_attribute(
    module: ModuleInfo, method: cst.FunctionDef, kept: str, resource: ResourceType
) -> bool:
    """Whether ``method`` releases the resource kept in ``kept``
    (``self.session``), directly or through a local alias of it."""
    names = {kept}
    for node in walk(method.body):
        if isinstance(node, cst.Assign) and dotted_name(node.value) == kept:
            names.update(t.target.value for t in node.targets if isinstance(t.target, cst.Name))
        elif (
            isinstance(node, cst.NamedExpr)
            and dotted_name(node.value) == kept
            and isinstance(node.target, cst.Name)
        ):
            names.add(node.target.value)
    for node in walk(method.body):
        if isinstance(node, cst.Attribute):
            if node.attr.value in resource.release_methods and dotted_name(node.value) in names:
                return True
        elif isinstance(node, cst.Call) and node.args:
            if _releasing_call(module, node, names):
                return True
            first = dotted_name(node.args[0].value)
            if first not in names:
                continue
            func = node.func
            if isinstance(func, cst.Attribute) and func.attr.value in resource.returned_by:
                return True
            callee = dotted_name(func)
            last = callee.rsplit(".", 1)[-1] if callee else ""
            if last in EXIT_STACK_METHODS or last in ("closing", "aclosing"):
                return True
            qualified = module.qualify(callee) if callee else None
            if qualified is not None and module.model.releases_argument(qualified):
                return True
        elif (
            isinstance(node, cst.WithItem)
            and resource.with_releases
            and dotted_name(node.item) in names
        ):
            return True
    return False


def _releasing_call(module: ModuleInfo, call: cst.Call, names: set[str]) -> bool:
    """A call of a project function that releases the argument it is given
    in the place where ``names`` are passed (``drop_database(self.conn, n)``)."""
    callee = dotted_name(call.func)
    if callee is None:
        return False
    position = releasing_parameters(module).get(callee)
    if position is None:
        symbol = module.imported_symbol(callee)
        if symbol is not None and symbol.kind is SymbolKind.RELEASER:
            position = symbol.parameter
    return (
        position is not None
        and len(call.args) > position
        and dotted_name(call.args[position].value) in names
    )


def _releases_some(
    module: ModuleInfo, function: cst.FunctionDef, kept: str, resource: ResourceType
) -> bool:
    """Whether ``function`` reads the container ``kept`` and releases something
    of the resource's type: ``for s in self.sessions.values(): s.close()``,
    or closes every session of the process."""
    reads = False
    releases = False
    for node in walk(function.body):
        if isinstance(node, cst.Attribute | cst.Name) and dotted_name(node) == kept:
            reads = True
        elif isinstance(node, cst.Call):
            func = node.func
            if isinstance(func, cst.Attribute) and (
                func.attr.value in resource.release_methods
                or func.attr.value in resource.returned_by
            ):
                releases = True
            callee = dotted_name(func)
            if callee is not None and module.qualify(callee) in CLOSE_ALL_FUNCTIONS:
                releases = True
    return reads and releases
