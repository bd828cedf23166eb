"""
## What it does
Finds a session or connection stored where it outlives the request or unit of
work it belongs to:

- application state: `app.state.db = ...`, `request.app.state.db`, Sanic's
  `app.ctx.db`, `app["db"]`;
- module globals, module-level containers and objects (`_SESSIONS[key] = db`,
  `global _session`, `_local.session = ...` on a module-level
  `threading.local()`), and class attributes (`cls.session`, `Repo.session`);
- a process cache: a function decorated with `@lru_cache` or `@cache` that
  returns a new session;
- `self` of an object whose class never releases it: a session created and
  kept in `self.session` (or by a `@cached_property`) that no method closes.

Pools and engines are meant to live as long as the application and are not
reported; neither is a `scoped_session` registry, nor a connection dedicated
to `LISTEN` (`add_listener`), nor per-request state (`request.state`,
`request.ctx`), nor an object that stores a session it was given (a
repository) or one it creates and closes in its own `close`, `__exit__`,
`__aexit__` or `on_finish` (itself or through a function that closes what it
is given), nor a module global or collection whose sessions a function of
the module closes (a session kept for an advisory lock and closed at
shutdown, a test fixture's registry of open sessions; a cache closed only at
shutdown looks the same and is not reported either), nor test code.

## Why is this bad?
A session or connection holds a slot of the pool for as long as it lives. Kept
on the application or in a global, it is never given back: the pool is one
connection short for good, and every request that uses it shares one session,
which is not safe across threads or tasks, keeps its transaction (and the
locks it took) open between requests, and, once its connection drops, fails
every request that touches it. A session injected into a request and kept
after the request is worse: the dependency closes it when the request ends,
and the next use checks a connection out again that nobody will return.

The message says where the resource's scope ends (the request, the `with`
block, the caller) and where it is stored.

## Example
```python
@asynccontextmanager
async def lifespan(app: FastAPI):
    app.state.db = Session(engine)
    yield
```

## Use instead
```python
@asynccontextmanager
async def lifespan(app: FastAPI):
    app.state.sessions = sessionmaker(engine)
    yield


def get_db(request: Request):
    with request.app.state.sessions() as session:
        yield session
```

## Fix safety
There is no automatic fix: where the session should be opened instead is a
decision about the unit of work.

## At runtime
`pytest --slotguard-leaks=fail` fails the test after which the stored session
still holds its connection, naming where the session was created and the
statement that took the connection.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from slotguard.analysis import lifetimes
from slotguard.analysis.infer import ClassInfo, FunctionInfo, Origin
from slotguard.analysis.lifetimes import (
    Held,
    Resources,
    Stored,
    is_local,
    last_statement,
    module_level_names,
    module_resources,
)
from slotguard.analysis.ownership import in_a_test
from slotguard.model.vocabulary import Kind, ResourceType
from slotguard.rules.base import Context, Rule
from slotguard.rules.common import code
from slotguard.syntax import dotted_name, root_name


class StoredOnLongLivedObject(Rule):
    code = "SG301"
    name = "stored-on-long-lived-object"
    summary = "A session or connection is stored where it outlives its request or unit of work."

    def check(self, context: Context) -> None:
        module = context.module
        lookup = module_resources(module)
        module_names = module_level_names(module)
        for function in module.functions:
            if in_a_test(function):
                # A test's objects and globals live as long as the test run.
                continue
            self._check_stores(context, function, lookup, module_names)
            self._check_cached(context, function, lookup)

    def _check_stores(
        self,
        context: Context,
        function: FunctionInfo,
        lookup: Resources,
        module_names: frozenset[str],
    ) -> None:
        for node in function.scope.of_type(cst.Assign, cst.AnnAssign, cst.Call):
            if isinstance(node, cst.Assign):
                for target in node.targets:
                    self._check_store(context, function, lookup, module_names, target.target, node)
            elif isinstance(node, cst.AnnAssign) and node.value is not None:
                self._check_store(context, function, lookup, module_names, node.target, node)
            elif isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
                if node.func.attr.value not in lifetimes.STORING_METHODS:
                    continue
                place = self._place(function, lookup, module_names, node.func.value, whole=True)
                if place is None:
                    continue
                stored = next(
                    (s for arg in node.args for s in lookup.stored(function, arg.value)), None
                )
                if stored is not None:
                    self._report(context, lookup, place, stored, node, node)

    def _check_store(
        self,
        context: Context,
        function: FunctionInfo,
        lookup: Resources,
        module_names: frozenset[str],
        target: cst.BaseExpression,
        statement: cst.Assign | cst.AnnAssign,
    ) -> None:
        value = statement.value
        assert value is not None
        place: Place | None
        if isinstance(target, cst.Name):
            if target.value not in function.scope.global_assignments:
                return
            place = Place(f"the module global `{target.value}`", target.value, "global")
        elif isinstance(target, cst.Attribute | cst.Subscript):
            place = self._place(function, lookup, module_names, target, whole=False)
        else:
            return
        if place is None:
            return
        for stored in lookup.stored(function, value):
            self._report(context, lookup, place, stored, target, statement)

    def _place(
        self,
        function: FunctionInfo,
        lookup: Resources,
        module_names: frozenset[str],
        target: cst.BaseExpression,
        *,
        whole: bool,
    ) -> Place | None:
        """Where a store through ``target`` keeps the value, if it outlives the
        unit of work. ``whole``: ``target`` is the container itself (the
        receiver of ``append``), not the attribute or item being assigned."""
        container = target if whole else _container(target)
        if container is None:
            return None
        shown = code(target)
        holder = dotted_name(container) or ""
        root = root_name(container)
        if root is None:
            return None
        if lifetimes.is_application_path(holder) or lookup.is_application(function, root):
            return Place(f"application state `{shown}`", shown, "application")
        method = _method_of(function)
        if method is not None and _is_class_object(container, method):
            return Place(f"the class attribute `{shown}`", shown, "class")
        if method is not None and root == method.self_name:
            attribute = _self_attribute(target, root)
            if attribute is None:
                return None
            direct = not whole and isinstance(target, cst.Attribute) and holder == root
            kind = "self" if direct else "self-container"
            return Place(f"`{shown}`", attribute, kind, method.cls)
        if is_local(function, root) or root not in module_names:
            return None
        if isinstance(lookup.module.definitions.get(root), ClassInfo):
            return Place(f"the class attribute `{shown}`", shown, "class")
        if whole or isinstance(target, cst.Subscript):
            return Place(f"the module-level `{shown}`", holder, "global-container")
        return Place(f"the module-level `{shown}`", shown, "global")

    def _report(
        self,
        context: Context,
        lookup: Resources,
        place: Place,
        stored: Stored,
        node: cst.CSTNode,
        statement: cst.CSTNode,
    ) -> None:
        if place.kind in ("self", "self-container"):
            if stored.held is not None and stored.held.origin is not Origin.ACQUIRED:
                return
            assert place.cls is not None
            if lookup.class_releases(place.cls, place.key, stored.type, place.kind == "self"):
                return
            context.report(
                node,
                f"{place.description} keeps {describe(stored, context)}; "
                f"`{place.cls.name}` never releases it",
                related=[
                    (stored.node, "acquired here"),
                    (
                        node,
                        "kept here: it holds its connection as long as the object lives; "
                        "release it in `close()` or `__exit__`, or open one per unit of work",
                    ),
                ],
            )
            return
        if lookup.is_dedicated(stored, place.key):
            return
        if place.kind in ("global", "global-container") and lookup.module_releases(
            place.key, stored.type
        ):
            # Kept on purpose (a lock's session, a shutdown-closed cache) and
            # released by a function of the module.
            return
        lasts = "the application" if place.kind == "application" else "the process"
        noun = _noun(stored.type)
        if stored.held is not None and stored.held.origin is not Origin.ACQUIRED:
            scope, related = scope_end(lookup, stored.held, context)
            message = f"`{stored.held.name}` is stored in {place.description} ({scope})"
            advice = f"store IDs or the session factory there, open a {noun} per unit of work"
            related.append((node, f"stored here, for the life of {lasts}; {advice}"))
        else:
            message = f"{describe(stored, context)} is stored in {place.description}"
            related = [
                (stored.node, "acquired here"),
                (
                    node,
                    f"stored here: everything that reaches it for the life of {lasts} shares "
                    f"{_one(stored.type)}; keep the engine, pool or session factory there "
                    f"and open a {noun} per unit of work",
                ),
            ]
        context.report(node, message, related=related)

    def _check_cached(self, context: Context, function: FunctionInfo, lookup: Resources) -> None:
        process = [d for d in function.decorators if d in lifetimes.PROCESS_CACHES]
        instance = [d for d in function.decorators if d in lifetimes.INSTANCE_CACHES]
        if not process and not instance:
            return
        for node in function.scope.of_type(cst.Return):
            if not isinstance(node, cst.Return) or node.value is None:
                continue
            for stored in lookup.stored(function, node.value):
                if stored.held is not None and stored.held.origin is not Origin.ACQUIRED:
                    continue
                decorator = (process or instance)[0].rsplit(".", 1)[-1]
                if instance:
                    cls = function.cls
                    if cls is None or lookup.class_releases(
                        cls, function.name, stored.type, direct=True
                    ):
                        continue
                    context.report(
                        node,
                        f"`@{decorator}` keeps {describe(stored, context)} on the instance; "
                        f"`{cls.name}` never releases it",
                        related=[
                            (
                                stored.node,
                                "acquired here: it holds its connection as long as the object "
                                "lives; close it in `close()` or `__exit__`, or open one per "
                                "unit of work",
                            )
                        ],
                    )
                else:
                    context.report(
                        node,
                        f"`{function.name}` is cached by `@{decorator}`: every caller shares "
                        f"the {_noun(stored.type)} it returns",
                        related=[
                            (
                                stored.node,
                                "acquired here, once for the life of the process; return a new "
                                "one per call, or cache the engine or session factory instead",
                            )
                        ],
                    )


@dataclass(frozen=True, slots=True)
class Place:
    """Where a store keeps a value."""

    description: str
    key: str
    """The attribute name for ``self``, the container for a container, else
    the source of the target."""
    kind: str
    """``application``, ``global``, ``global-container``, ``class``, ``self``
    or ``self-container``."""
    cls: ClassInfo | None = None


def scope_end(
    resources: Resources, held: Held, context: Context, escape: cst.CSTNode | None = None
) -> tuple[str, list[tuple[cst.CSTNode, str]]]:
    """Where the resource's scope ends, in a few words for a message, and the
    places to show; ``escape``: where it escapes, to name the release that
    follows it."""
    if held.origin is Origin.INJECTED:
        marker = f"the dependency `{held.provider}`" if held.provider else "a dependency"
        return (
            "closed when the request ends",
            [(held.node, f"injected by {marker}: closed when the request ends")],
        )
    if held.origin is Origin.ENTERED:
        assert held.block is not None
        keyword = "async with" if held.block.asynchronous is not None else "with"
        last = last_statement(held.block.body)
        return (
            f"its `{keyword}` block ends at line {context.line(last)}",
            [(held.node, "bound here"), (last, "the block ends here and releases it")],
        )
    if held.origin is Origin.PARAMETER:
        function = held.function.name
        return (
            "borrowed from the caller",
            [(held.node, f"borrowed here: the caller may close it when `{function}` returns")],
        )
    release = resources.release_of(held, after=escape)
    if release is not None:
        return (
            f"released at line {context.line(release)}",
            [(held.node, "acquired here"), (release, "released here")],
        )
    return f"acquired at line {context.line(held.node)}", [(held.node, "acquired here")]


def _noun(resource: ResourceType) -> str:
    return "session" if resource.kind is Kind.SESSION else "connection"


def _one(resource: ResourceType) -> str:
    if resource.kind is Kind.SESSION:
        return "one session, which keeps a connection checked out"
    return "one connection, which stays checked out"


def describe(stored: Stored, context: Context) -> str:
    """How a stored resource reads in a message."""
    if stored.held is not None:
        return f"`{stored.held.name}` (from `{code(stored.held.node, 30)}`)"
    return f"the {stored.type.kind.value} from `{code(stored.node, 30)}`"


def _container(target: cst.BaseExpression) -> cst.BaseExpression | None:
    """The object an attribute or item assignment stores into."""
    if isinstance(target, cst.Attribute):
        return target.value
    if isinstance(target, cst.Subscript):
        return target.value
    return None


def _method_of(function: FunctionInfo) -> FunctionInfo | None:
    """The method a function is, or is nested in."""
    outer: FunctionInfo | None = function
    while outer is not None and outer.parent is not None:
        outer = outer.parent
    return outer if outer is not None and outer.is_method else None


def _is_class_object(container: cst.BaseExpression, method: FunctionInfo) -> bool:
    """``cls`` in a classmethod, ``type(self)``, ``self.__class__``."""
    self_name = method.self_name
    if isinstance(container, cst.Name) and "classmethod" in method.decorators:
        params = method.node.params.params
        return bool(params) and params[0].name.value == container.value
    if self_name is None:
        return False
    if isinstance(container, cst.Attribute) and container.attr.value == "__class__":
        return isinstance(container.value, cst.Name) and container.value.value == self_name
    if isinstance(container, cst.Call) and dotted_name(container.func) == "type":
        args = container.args
        return len(args) == 1 and dotted_name(args[0].value) == self_name
    return False


def _self_attribute(target: cst.BaseExpression, self_name: str) -> str | None:
    """``session`` for ``self.session``, ``self.session[k]`` or
    ``self.sessions.append``'s receiver ``self.sessions``."""
    node = target
    while isinstance(node, cst.Subscript | cst.Attribute):
        inner = node.value
        if isinstance(node, cst.Attribute) and isinstance(inner, cst.Name):
            return node.attr.value if inner.value == self_name else None
        node = inner
    return None
