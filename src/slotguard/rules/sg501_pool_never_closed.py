"""
## What it does
Finds a pool or engine that nothing closes: no `close()`/`dispose()` on a
shutdown path of the application, process or object that owns it. Shutdown
paths are a FastAPI/Starlette/Litestar lifespan (after its `yield`) or
shutdown handler, aiohttp `on_cleanup` and `cleanup_ctx`, Sanic
`after_server_stop`, Litestar `on_shutdown`, `atexit.register(engine.dispose)`,
an exit stack (`stack.push_async_callback(engine.dispose)`), `async with pool:`,
a `finally` in the function that created it, or a release method
(`close`/`aclose`/`__exit__`/`__aexit__`/`shutdown`/`dispose`...) of the
class that keeps it.

A pool is judged by who owns it:

- **A function's local name**: the function must close it (in a `finally`),
  or hand it on (return it, yield it to a caller, pass it to an object that
  keeps it). A pool made on every call and dropped leaks a whole pool each
  time.
- **`self.<name>`**: the class whose methods store it owns it, and must
  close it in one of its own methods, on every path of that method. Another
  class's `self.engine.dispose()` does not settle it; a `close()` that sets
  `self.engine = None`, closes only the connection it opened on the engine,
  or disposes only after a `commit()` that can raise, does not either. The
  finding is reported once, at the assignment, and names the release method.
  A class that hands the pool to an object that keeps it
  (`return EngineConfig(engine=self.engine)`) passes the duty on.
- **A module global, a class attribute or a cache** (a pool kept by a
  *cached getter*: a function that stores the pool it creates in a global, a
  module-level dict, `cls._engine` or an `lru_cache` before returning it):
  the cache owns it, not the callers, who borrow it. It is reported when the
  long-lived application that uses it (a module that registers startup,
  shutdown or lifespan hooks, or module-level `atexit` hooks, and imports
  the pool's module directly or through other modules of the project)
  closes it on no shutdown path. A stand-alone script, a library module, or
  a `db.py` checked on its own shows no such application and is left alone.
- **Application state** (`app.state.pool`, `app["pool"]`, `app.ctx.pool`):
  the application's shutdown hooks must close it.

A close counts where it runs: in a registered hook, in a function that
something calls or registers, in a method, or at module level. A closer
that exists but is not what the module registers does not count
(registration, not existence, settles the pool): when `on_cleanup`
registers `init_db` where `close_db` was meant, the finding says so. A
lifespan built by a factory (`FastAPI(lifespan=make_lifespan(settings))`)
registers what the factory returns.

Not reported: pools created in a startup handler (SG502's), pools of test
code (test modules, `conftest.py`, fixtures, test helpers: they end with
the test session), pools of a one-shot process (a command-line command, a
script's `main`, a migration environment, a Django management command; the
process ends right after), pools that keep no connections (SQLAlchemy
`NullPool`), and the internals of the database libraries.

One pool gives one finding: `self.engine = A if c else B`, or two branches
assigning the same name, are one pool; the other creations are listed as
related places.

## Why is this bad?
An unclosed pool keeps its connections open until the process dies. Every
reload, rolling deploy, worker restart and test session leaves them behind
until PostgreSQL notices the peer is gone; queries in flight are cut off
instead of finishing; and a server near `max_connections` runs out of slots
while old and new processes overlap. A pool created per call or per object
and never closed leaks a whole pool each time: SQLAlchemy engines sit in
reference cycles, so their connections stay checked in and open until the
cyclic garbage collector runs.

## Example
```python
@asynccontextmanager
async def lifespan(app):
    app.state.engine = create_async_engine(URL)
    worker = asyncio.create_task(poll_jobs())
    yield
    worker.cancel()


class Store:
    def __init__(self):
        self.engine = create_engine(URL)
        self.conn = self.engine.connect()

    def close(self):
        self.conn.commit()
        self.conn.close()
        self.engine = None
```

## Use instead
```python
@asynccontextmanager
async def lifespan(app):
    app.state.engine = create_async_engine(URL)
    worker = asyncio.create_task(poll_jobs())
    try:
        yield
    finally:
        worker.cancel()
        await app.state.engine.dispose()


class Store:
    def __init__(self):
        self.engine = create_engine(URL)
        self.conn = self.engine.connect()

    def close(self):
        try:
            self.conn.commit()
            self.conn.close()
        finally:
            self.engine.dispose()
```

## Fix safety
There is no automatic fix: where the pool should be closed depends on how
the application shuts down.

## At runtime
No runtime check: `slotguard.runtime` follows checkouts, and a pool left open
holds none; its idle connections show on the server (`pg_stat_activity`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import libcst as cst

from slotguard.analysis.infer import FunctionInfo, ModuleInfo
from slotguard.analysis.ownership import (
    in_a_test,
    reclaimed_kinds,
    runs_once_per_process,
)
from slotguard.analysis.pools import (
    Lifecycle,
    Ownership,
    PoolSite,
    StorageKind,
    class_bases,
    closing_key,
    counted_instance_closes,
    instance_close_keys,
    lifecycle,
    method_of,
    missed_close,
    ownership,
    qualified_function,
    references,
    registered_targets,
    registration_near,
    release_method,
    settled_keys,
)
from slotguard.diagnostic import Diagnostic, Related
from slotguard.facts import Fact
from slotguard.model.lifecycle import Phase
from slotguard.rules.base import Context, Rule
from slotguard.rules.common import code
from slotguard.rules.sg502_startup_without_shutdown import (
    closed_word,
    missed_message,
    startup_hook,
)

if TYPE_CHECKING:
    from slotguard.settings import Settings

_MODULE = "module"
"""(module name, what it imports and reaches through imports, whether it registers hooks)."""
_CLOSED = "closed"
"""(keys the module's closes settle, ...)."""
_MISSED = "missed"
"""(key, closer's qualified name, closer, how the module registers, what it registers)."""
_GETTER = "getter"
"""(qualified name of a cached getter,)."""
_DELEGATE = "delegate"
"""(qualified name, the other module's function whose pool it returns)."""
_POOL = "pool"
"""(number, mode, keys, shown, closed word, message, getter, holder class) at the pool."""
_CLASS = "class"
"""(qualified name of a class, its bases' qualified names, its release method
or ""): whose closes run for an object of the class made elsewhere."""
_RELATED = "related"
"""(number of the pool, label) at the related place."""

_OWNED = "owned"
"""Reported unless a module of the run closes it."""
_MODULE_POOL = "module-pool"
"""Kept in a module global or cache: reported when a module that registers
hooks imports its module (directly or through the project) and no module of
the run closes it."""
_BORROWED = "borrowed"
"""A local pool from another module's function: reported unless that
function is a cached getter."""


class PoolNeverClosed(Rule):
    code = "SG501"
    name = "pool-never-closed"
    summary = "A pool or engine is never closed on the shutdown path of what created it."

    def check(self, context: Context) -> None:
        module = context.module
        found = lifecycle(module)
        _note_module(context, module, found)
        sites = [site for site in found.sites if _judged(module, found, site)]
        for number, group in enumerate(_groups(sites)):
            _judge(context, module, found, group, number)

    @classmethod
    def check_run(cls, facts: Sequence[Fact], settings: Settings) -> list[Diagnostic]:
        return _Run(facts).findings(cls.code, cls.name)


def _judged(module: ModuleInfo, found: Lifecycle, site: PoolSite) -> bool:
    """Pools the rule has a say on: not SG502's (created in a startup
    hook), not a test's, not a one-shot process's, and keeping connections."""
    if not site.keeps_connections or startup_hook(found.hooks_of(site.function)):
        return False
    if site.type.kind in reclaimed_kinds(module):
        return False
    if module.is_test or in_a_test(site.function):
        return False
    return site.function is None or not runs_once_per_process(site.function)


def _groups(sites: Iterable[PoolSite]) -> list[list[PoolSite]]:
    """One pool per place it is kept: ``self.engine = A if c else B``, or two
    branches assigning the same storage, are one pool."""
    groups: dict[tuple[object, ...], list[PoolSite]] = {}
    for site in sites:
        storage = site.storage
        key: tuple[object, ...]
        if storage.kind is StorageKind.LOCAL:
            key = (storage.key, id(site.function))
        elif storage.kind is StorageKind.INSTANCE:
            key = (storage.key,)
        else:
            key = (storage.key, _application(site.function))
        groups.setdefault(key, []).append(site)
    return list(groups.values())


def _judge(
    context: Context, module: ModuleInfo, found: Lifecycle, group: list[PoolSite], number: int
) -> None:
    site = group[0]
    if any(other.closed_locally or other.handed_off for other in group):
        return
    also: list[tuple[cst.CSTNode, str]] = [(other.node, "also created here") for other in group[1:]]
    kind = site.storage.kind
    if kind is StorageKind.LOCAL:
        if site.borrowed_from is not None:
            _note_pool(context, number, _BORROWED, site, (), also, site.borrowed_from)
            return
        related = [(site.node, f"created here; call `{site.release_call}` in a `finally`")]
        context.report(site.node, _message(found, site), related=[*related, *also])
        return
    if kind is StorageKind.INSTANCE:
        owned = ownership(module, found, site)
        assert owned is not None
        _judge_owned(context, found, owned, group, number, also)
        return
    application = _application(site.function)
    key = closing_key(found, site, application)
    if key is None:
        return
    keys = list(dict.fromkeys([key, *_getter_keys(module, found, site)]))
    if kind is StorageKind.ATTRIBUTE and site.holder is None:
        # Some class's ``self.pool`` may be this object's.
        keys.append(f"close:self-attribute:{site.storage.attribute}")
    if any(k in found.closes for k in keys[1:]):
        return
    mode = _MODULE_POOL if kind is StorageKind.GLOBAL else _OWNED
    _note_pool(context, number, mode, site, keys, [(site.node, _advice(found, site)), *also])


def _judge_owned(
    context: Context,
    found: Lifecycle,
    owned: Ownership,
    group: list[PoolSite],
    number: int,
    also: Sequence[tuple[cst.CSTNode, str]],
) -> None:
    """A pool kept on ``self``: its class must close it, on every path of the
    method that does."""
    site = group[0]
    if owned.released or owned.handed_on:
        return
    if any(key in found.closes for key in owned.keys):
        return
    closed = closed_word(site)
    shown = site.shown
    owner = owned.owner.name
    release = site.type.release_methods[0]
    skipped = owned.skipped
    if skipped is not None:
        method = f"{owner}.{skipped.method.name}"
        message = f"`{shown}` is not {closed} if `{code(skipped.raising, 30)}` raises in `{method}`"
        skipping = [
            (skipped.raising, f"if this raises, `{site.release_call}` below is skipped"),
            (skipped.close, f"not reached then: call `{release}()` in a `finally`"),
        ]
        context.report(site.target, message, related=[*skipping, *also])
        return
    related: list[tuple[cst.CSTNode, str]] = []
    method_info = owned.release_method
    if method_info is None:
        message = f"`{shown}` is never {closed}: `{owner}` has no close method"
    elif owned.dropped is not None:
        method = f"{owner}.{method_info.name}"
        message = f"`{shown}` is never {closed}: `{method}` drops it without `{release}()`"
        related.append((owned.dropped, f"sets it to `None` without calling `{release}()`"))
    else:
        method = f"{owner}.{method_info.name}"
        message = f"`{shown}` is never {closed}: `{method}` does not {release} it"
        related.append((method_info.node.name, f"does not call `{site.release_call}`"))
    _note_pool(
        context,
        number,
        _OWNED,
        site,
        owned.keys,
        [*related, *also],
        message=message,
        at=site.target,
    )


def _note_pool(
    context: Context,
    number: int,
    mode: str,
    site: PoolSite,
    keys: Sequence[str],
    related: Sequence[tuple[cst.CSTNode, str]],
    getter: str | None = None,
    message: str | None = None,
    at: cst.CSTNode | None = None,
) -> None:
    """A pool the run judges, at ``at`` (the creating expression unless said)."""
    found = lifecycle(context.module)
    text = message if message is not None else _message(found, site)
    local_missed = next(
        (missed for key in keys if (missed := missed_close(found, key)) is not None), None
    )
    if local_missed is not None:
        registered = registration_near(found, local_missed, site)
        targets = registered_targets(found, registered)
        related = [
            *related,
            (local_missed.closer.node.name, "closes it, but nothing registers or calls it"),
            (registered.node, f"registers `{targets}`"),
        ]
        text = missed_message(
            site.shown, closed_word(site), local_missed.closer.name, registered.via, targets
        )
    closed = closed_word(site)
    place = at if at is not None else site.node
    holder = site.holder if site.storage.kind is StorageKind.ATTRIBUTE else None
    context.note(_POOL, place, number, mode, tuple(keys), site.shown, closed, text, getter, holder)
    for node, label in related:
        context.note(_RELATED, node, number, label)


def _note_module(context: Context, module: ModuleInfo, found: Lifecycle) -> None:
    """What the module tells the run: its name, imports and hooks; what it
    closes; its cached getters."""
    if module.module_name is not None:
        reached = tuple(sorted(references(module)))
        # A test's application (a test client's app, a fixture's lifespan)
        # is not the long-lived one whose pools must be closed at shutdown.
        entry = found.entry and not module.is_test
        context.note(_MODULE, None, module.module_name, reached, entry)
    keys = set(settled_keys(found))
    for close in counted_instance_closes(module, found):
        keys.update(instance_close_keys(module, close))
    if keys:
        context.note(_CLOSED, None, *sorted(keys))
    for missed in found.missed:
        hook = missed.registered
        closer = missed.closer
        context.note(
            _MISSED,
            None,
            missed.key,
            qualified_function(closer),
            closer.name,
            hook.via,
            registered_targets(found, hook),
        )
    for cls in module.classes if module.module_name is not None else ():
        release = release_method(cls.methods.values())
        bases = class_bases(module, cls)
        name = release.name if release is not None else ""
        context.note(_CLASS, None, f"{module.module_name}.{cls.name}", bases, name)
    for function in module.functions:
        if id(function) in found.caches:
            context.note(_GETTER, None, qualified_function(function))
        delegate = found.delegates.get(id(function))
        if delegate is not None:
            context.note(_DELEGATE, None, qualified_function(function), delegate)


def _getter_keys(module: ModuleInfo, found: Lifecycle, site: PoolSite) -> list[str]:
    """``close:global:app.db.get_engine()`` for each cached getter that keeps
    the pool: closing what the getter returns closes it."""
    return [
        f"close:global:{qualified_function(function)}()"
        for function in module.functions
        if found.caches.get(id(function)) == site.storage
    ]


def _application(function: FunctionInfo | None) -> str | None:
    """The named application whose hook the function is, or is nested in."""
    if function is None:
        return None
    found = lifecycle(function.module)
    while function is not None:
        for hook in found.hooks_of(function):
            if hook.application is not None:
                return hook.application
        function = function.parent
    return None


def _advice(found: Lifecycle, site: PoolSite) -> str:
    if found.phase_of(site.function) is Phase.LIFESPAN:
        return f"created here; call `{site.release_call}` after `yield`, in a `finally`"
    if site.storage.kind is StorageKind.ATTRIBUTE:
        return f"created here; call `{site.release_call}` where its owner shuts down"
    return f"created here; call `{site.release_call}` in a shutdown hook, lifespan or `atexit`"


def _message(found: Lifecycle, site: PoolSite) -> str:
    """What leaks and where, in one short line."""
    closed = closed_word(site)
    shown = site.shown
    function = site.function
    kind = site.storage.kind
    if function is None:
        return f"module-level `{shown}` is never {closed} at shutdown"
    if site.label is not None:
        return f"the pool cached by `{shown}` is never {closed} at shutdown"
    if found.phase_of(function) is Phase.LIFESPAN:
        return f"`{shown}` is never {closed} after the lifespan `{function.name}` yields"
    name = function.name
    method = method_of(function)
    if method is not None and method.cls is not None and method is function:
        name = f"{method.cls.name}.{function.name}"
    if kind in (StorageKind.GLOBAL, StorageKind.STATE):
        return f"`{shown}` created in `{name}` is never {closed} at shutdown"
    return f"`{shown}` created in `{name}` is never {closed}"


# -- the run ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Missed:
    path: str
    key: str
    closer: str
    name: str
    via: str
    target: str


class _Run:
    """The facts of every module of the run, judged together."""

    def __init__(self, facts: Sequence[Fact]) -> None:
        self.modules: dict[str, tuple[frozenset[str], bool]] = {}
        self.module_of: dict[str, str] = {}
        self.closed: set[str] = set()
        self.missed: list[_Missed] = []
        self.cached: set[str] = set()
        self.delegates: dict[str, str] = {}
        self.pools: list[Fact] = []
        self.classes: dict[str, tuple[tuple[str, ...], str]] = {}
        self.related: dict[tuple[str, object], list[Related]] = defaultdict(list)
        for fact in facts:
            value = fact.value
            if fact.topic == _MODULE:
                name, reached, entry = value
                assert isinstance(name, str) and isinstance(reached, tuple)
                self.modules[name] = (frozenset(str(r) for r in reached), bool(entry))
                self.module_of[fact.path] = name
            elif fact.topic == _CLOSED:
                self.closed.update(str(key) for key in value)
            elif fact.topic == _MISSED:
                self.missed.append(_Missed(fact.path, *(str(part) for part in value)))
            elif fact.topic == _GETTER:
                self.cached.add(str(value[0]))
            elif fact.topic == _DELEGATE:
                self.delegates[str(value[0])] = str(value[1])
            elif fact.topic == _POOL:
                self.pools.append(fact)
            elif fact.topic == _CLASS:
                name, bases, release = value
                assert isinstance(bases, tuple)
                self.classes[str(name)] = (tuple(str(base) for base in bases), str(release))
            elif fact.topic == _RELATED:
                self.related[(fact.path, value[0])].append(Related(fact.span, str(value[1])))
        # A closer another module imports or calls may be registered there.
        referenced = set().union(*(reached for reached, _ in self.modules.values()))
        self.closed.update(missed.key for missed in self.missed if missed.closer in referenced)
        self.missed = [missed for missed in self.missed if missed.closer not in referenced]
        self.closed = {self._normal(key) for key in self.closed}

    def findings(self, code: str, name: str) -> list[Diagnostic]:
        reached = self._reached_from_entries()
        found = []
        for fact in self.pools:
            number, mode, keys, shown, closed, message, getter, holder = fact.value
            assert isinstance(keys, tuple)
            if fact.suppressed:
                continue
            normal = {self._normal(str(key)) for key in keys}
            if holder is not None:
                attribute = str(shown).rsplit(".", 1)[-1]
                normal.update(f"close:own:{cls}.{attribute}" for cls in self._lineage(str(holder)))
            if normal & self.closed:
                continue
            if mode == _MODULE_POOL and self.module_of.get(fact.path) not in reached:
                continue
            if mode == _BORROWED and self._is_cached(str(getter)):
                continue
            # A closer of the pool's own module is named in the noted message.
            missed = next(
                (m for m in self.missed if m.path != fact.path and self._normal(m.key) in normal),
                None,
            )
            if missed is not None:
                message = missed_message(
                    str(shown), str(closed), missed.name, missed.via, missed.target
                )
            elif holder is not None and self.classes.get(str(holder), ((), ""))[1]:
                # ``bot.pool = pool`` on a ``Bot()``: the object's own release
                # method is where it should be closed.
                owner = str(holder).rsplit(".", 1)[-1]
                method = f"{owner}.{self.classes[str(holder)][1]}"
                message = f"`{shown}` is never {closed}: `{method}` leaves it open"
            related = tuple(self.related.get((fact.path, number), ()))
            found.append(
                Diagnostic(code, name, str(message), fact.path, fact.span, related=related)
            )
        return found

    def _lineage(self, cls: str) -> list[str]:
        """A class and its bases, through the classes the run defines."""
        found = [cls]
        for current in found:
            for base in self.classes.get(current, ((), ""))[0]:
                if base not in found:
                    found.append(base)
        return found

    def _normal(self, key: str) -> str:
        """What a cached getter keeps, named by the getter at the end of its
        chain of delegations."""
        prefix = "close:global:"
        if key.startswith(prefix) and key.endswith("()"):
            return f"{prefix}{self._final(key[len(prefix) : -2])}()"
        return key

    def _final(self, function: str) -> str:
        seen = {function}
        while function in self.delegates and function not in self.cached:
            function = self.delegates[function]
            if function in seen:
                break
            seen.add(function)
        return function

    def _is_cached(self, function: str) -> bool:
        return self._final(function) in self.cached

    def _reached_from_entries(self) -> set[str]:
        """The modules a module that registers hooks imports, directly or
        through other modules of the run, and those modules themselves."""
        imports: dict[str, set[str]] = {}
        for module, (reached, _) in self.modules.items():
            targets = set()
            for name in reached:
                if name in self.modules:
                    targets.add(name)
                else:
                    parent = name.rsplit(".", 1)[0]
                    if parent in self.modules:
                        targets.add(parent)
            targets.discard(module)
            imports[module] = targets
        pending = [module for module, (_, entry) in self.modules.items() if entry]
        seen = set(pending)
        while pending:
            for target in imports.get(pending.pop(), ()):
                if target not in seen:
                    seen.add(target)
                    pending.append(target)
        return seen
