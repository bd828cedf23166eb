"""
## What it does
Finds a pool or engine created in a startup handler
(`@app.on_event("startup")`, `app.add_event_handler("startup", ...)`,
`Starlette(on_startup=[...])`, aiohttp `app.on_startup`, Sanic
`before_server_start`, Litestar `on_startup`) that no shutdown handler of the
same application closes.

A close counts wherever the run can see it: in a shutdown handler of the
same application (`on_event("shutdown")`, `on_cleanup`, `after_server_stop`,
`on_shutdown`, a lifespan), through a cleanup registered in the startup
handler itself (`app.on_cleanup.append(lambda app: pool.close())`), or in
another module of the files checked together. A closer that exists but is
not what the module registers does not count: when `on_cleanup` registers
`init_db` again where `close_db` was meant, the finding names both. Each module settles the pools
it closes (`app.state.<name>` for the application whose shutdown hook closes
it, module globals by qualified name); a finding stands only if no module of
the run settled its pool. A pool the handler gives away (returns, passes to
an object that keeps it) is its new owner's to close.

## Why is this bad?
Without a close on shutdown, the pool's connections stay open until the
process dies. Every restart, reload (`uvicorn --reload`), rolling deploy and
test run that starts the application leaves its connections behind until
PostgreSQL notices the peer is gone, and in-flight queries are cut off
instead of finishing. A server near `max_connections` runs out of slots
during deploys, when old and new processes overlap.

## Example
```python
@app.on_event("startup")
async def open_pool():
    app.state.pool = await asyncpg.create_pool(DSN)
```

## Use instead
```python
@asynccontextmanager
async def lifespan(app):
    app.state.pool = await asyncpg.create_pool(DSN)
    try:
        yield
    finally:
        await app.state.pool.close()


app = FastAPI(lifespan=lifespan)
```

## Fix safety
The fix is unsafe: it moves every `@app.on_event` handler of the
application into one lifespan context manager (startup bodies before
`yield`; shutdown bodies, then the missing close, in its `finally`) and
passes it as `lifespan=`. A lifespan replaces the application's `on_event`
handlers, so handlers other modules register on it (an included router's)
stop running, and code that calls a handler by name breaks. It declines when
the application is not created by `FastAPI(...)` or `Starlette(...)` in the
same module, already has `lifespan`, `on_startup` or `on_shutdown` (or `**`
arguments), registers hooks in another way, or when merging the handlers
would change what a name means.

## At runtime
No runtime check: `slotguard.runtime` follows checkouts, and a pool left open
holds none; its idle connections show on the server (`pg_stat_activity`).
"""

from __future__ import annotations

from slotguard.analysis.pools import (
    Hook,
    PoolSite,
    closing_key,
    lifecycle,
    missed_close,
    registered_targets,
    registration_near,
    settled_keys,
)
from slotguard.model.lifecycle import Phase
from slotguard.rules.base import Context, Rule

_PAST = {"close": "closed", "dispose": "disposed", "disconnect": "disconnected"}
_MESSAGE_LENGTH = 110
"""About 100 characters: a name or two longer is still one line to read."""


class StartupWithoutShutdown(Rule):
    code = "SG502"
    name = "startup-without-shutdown"
    summary = "A pool created in a startup handler is closed by no shutdown handler."

    def check(self, context: Context) -> None:
        found = lifecycle(context.module)
        for settled in settled_keys(found):
            context.settle(settled)
        for site in found.sites:
            hook = startup_hook(found.hooks_of(site.function))
            if hook is None or not site.keeps_connections:
                continue
            key = closing_key(found, site, hook.application)
            if key is None:
                continue
            assert site.function is not None
            closed = closed_word(site)
            message = (
                f"`{site.shown}` created in the startup handler `{site.function.name}` "
                f"is never {closed} on shutdown"
            )
            related = []
            missed = missed_close(found, site.storage.key)
            if missed is not None:
                registered = registration_near(found, missed, site)
                targets = registered_targets(found, registered)
                message = missed_message(
                    site.shown, closed, missed.closer.name, registered.via, targets
                )
                related = [
                    (missed.closer.node.name, "closes it, but nothing registers or calls it"),
                    (registered.node, f"registers `{targets}`"),
                ]
            context.report(site.call, message, related=related, pending=key)


def startup_hook(hooks: list[Hook]) -> Hook | None:
    """The startup registration of a hook function, if it is one."""
    return next((hook for hook in hooks if hook.phase is Phase.STARTUP), None)


def missed_message(shown: str, closed: str, closer: str, via: str, targets: str) -> str:
    """``close_db`` closes it but ``on_cleanup`` registers ``init_db``, kept
    to about 100 characters (the related places name what is registered)."""
    message = f"`{shown}` is never {closed}: `{closer}` closes it but `{via}` registers `{targets}`"
    if len(message) <= _MESSAGE_LENGTH:
        return message
    return f"`{shown}` is never {closed}: `{closer}` closes it but `{via}` does not register it"


def closed_word(site: PoolSite) -> str:
    """``disposed`` for an engine, ``closed`` for a pool."""
    method = site.type.release_methods[0]
    return _PAST.get(method, f"released with `{method}()`")
