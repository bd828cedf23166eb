"""What scenario programs under ``fixtures/proof`` share: probes of a pool's
exhaustion, a slow external service on loopback, and the report they end with.

A scenario's report (see the protocol in :mod:`proof.observe`) is
``{"results": [...], "pool": {"open", "idle", "checked_out"} or null,
"exhausted": bool or null}``: what its calls returned, in order (the leaking
path's too, so a fix that changes behaviour shows); the pool's own counts at
the end; and whether one more acquisition, with a short timeout, failed. Before
printing it, the program pauses at the checkpoint ``"end"`` with the same
counts, so that the test sees the server at that moment.

The probes acquire in the context-manager form and time out quickly: they are
the scenario's instruments, not part of the code under test.

A connection held only while something waits (SG4: a slow call, a sleep) is
seen at the checkpoint ``"during"``, with the pool's counts and whether one
more acquisition failed at that moment (``during``); such a scenario's report
gives that probe's answer as ``exhausted``, since at its end every connection
is back.

:class:`SlowService` stands in for the slow external API that SG4 is about: a
stdlib HTTP server on loopback whose every request waits while the test looks
at the server (the checkpoint ``"during"``), so "idle in transaction while the
call waits" is observed at the moment it happens, without guessing a delay.

:func:`serve_once` stands in for an ASGI server (SG5 is about what an
application opens at startup and closes, or not, at shutdown): it runs one
lifetime of an application, from its lifespan's startup through a few requests
to its shutdown, in the running event loop, as a test client does.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any

from proof.observe import PoolCounts, ScenarioArgs

if TYPE_CHECKING:
    import asyncpg
    import psycopg2.pool
    import psycopg_pool
    from sqlalchemy import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

PROBE_TIMEOUT_SECONDS = 0.2
"""How long a probe waits for a connection before it calls the pool exhausted."""
RENDEZVOUS_TIMEOUT_SECONDS = 10.0
"""How long concurrent requests to a :class:`SlowService` wait for each other."""


def finish(
    args: ScenarioArgs,
    *,
    results: list[Any],
    pool: PoolCounts | None,
    exhausted: bool | None,
) -> None:
    """Pause at ``"end"``, then print the report."""
    counts = asdict(pool) if pool is not None else None
    args.checkpoint("end", pool=counts)
    report = {"results": results, "pool": counts, "exhausted": exhausted}
    print(json.dumps(report), flush=True)


AsgiMessage = MutableMapping[str, Any]
AsgiApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[AsgiMessage]],
        Callable[[AsgiMessage], Awaitable[None]],
    ],
    Awaitable[None],
]


async def serve_once(app: AsgiApp, paths: Sequence[str]) -> list[Any]:
    """Start ``app`` (ASGI lifespan), GET each path, shut it down; the JSON bodies."""
    state: dict[str, Any] = {}
    to_app: asyncio.Queue[AsgiMessage] = asyncio.Queue()
    from_app: asyncio.Queue[AsgiMessage] = asyncio.Queue()
    lifespan_scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": state}
    lifespan = asyncio.create_task(app(lifespan_scope, to_app.get, from_app.put))
    await to_app.put({"type": "lifespan.startup"})
    await _expect(from_app, "lifespan.startup.complete")
    bodies = [json.loads(await _get(app, path, state)) for path in paths]
    await to_app.put({"type": "lifespan.shutdown"})
    await _expect(from_app, "lifespan.shutdown.complete")
    await lifespan
    return bodies


async def _expect(messages: asyncio.Queue[AsgiMessage], kind: str) -> None:
    message = await messages.get()
    if message["type"] != kind:
        raise RuntimeError(f"expected {kind}, the application sent {message}")


async def _get(app: AsgiApp, path: str, state: dict[str, Any]) -> bytes:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 0),
        "server": ("scenario", 80),
        "state": dict(state),
    }
    body = bytearray()

    async def receive() -> AsgiMessage:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: AsgiMessage) -> None:
        if message["type"] == "http.response.body":
            body.extend(message.get("body", b""))

    await app(scope, receive, send)
    return bytes(body)


def during(args: ScenarioArgs, *, pool: PoolCounts, exhausted: bool) -> None:
    """Pause at ``"during"`` with the pool's counts and the result of a probe, taken
    while the calls under test wait."""
    args.checkpoint("during", pool=asdict(pool), exhausted=exhausted)


def outcome(error: BaseException) -> str:
    """How a call that raised shows in the results: its exception's class name."""
    return f"raised {type(error).__name__}"


async def asyncpg_exhausted(pool: asyncpg.Pool) -> bool:
    try:
        async with pool.acquire(timeout=PROBE_TIMEOUT_SECONDS):
            return False
    except asyncio.TimeoutError:
        return True


def psycopg_pool_exhausted(pool: psycopg_pool.ConnectionPool[Any]) -> bool:
    from psycopg_pool import PoolTimeout

    try:
        with pool.connection(timeout=PROBE_TIMEOUT_SECONDS):
            return False
    except PoolTimeout:
        return True


async def async_psycopg_pool_exhausted(pool: psycopg_pool.AsyncConnectionPool[Any]) -> bool:
    from psycopg_pool import PoolTimeout

    try:
        async with pool.connection(timeout=PROBE_TIMEOUT_SECONDS):
            return False
    except PoolTimeout:
        return True


def psycopg2_pool_exhausted(pool: psycopg2.pool.AbstractConnectionPool) -> bool:
    """psycopg2 pools do not wait: a full one raises at once."""
    from psycopg2.pool import PoolError

    try:
        connection = pool.getconn()
    except PoolError:
        return True
    pool.putconn(connection)
    return False


def sqlalchemy_exhausted(engine: Engine) -> bool:
    """Needs an engine made with a short ``pool_timeout``; see :func:`sqlalchemy_options`."""
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    try:
        with engine.connect():
            return False
    except PoolTimeout:
        return True


async def async_sqlalchemy_exhausted(engine: AsyncEngine) -> bool:
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    try:
        async with engine.connect():
            return False
    except PoolTimeout:
        return True


def sqlalchemy_options(args: ScenarioArgs) -> dict[str, Any]:
    """A fixed pool of K that gives up on a checkout after the probe's timeout."""
    return {"pool_size": args.pool_size, "max_overflow": 0, "pool_timeout": PROBE_TIMEOUT_SECONDS}


def sqlalchemy_url(args: ScenarioArgs, driver: str) -> str:
    from sqlalchemy import make_url

    url = make_url(args.dsn).set(drivername=f"postgresql+{driver}")
    return url.render_as_string(hide_password=False)


class SlowService:
    """An HTTP service on 127.0.0.1 that runs ``while_waiting`` before it answers
    each request with ``{"ok": true, "path": ...}``.

    ``with SlowService(...) as url:`` serves until the block ends.
    """

    def __init__(self, while_waiting: Callable[[], None]) -> None:
        self._while_waiting = while_waiting
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        while_waiting = self._while_waiting

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer()

            def _answer(self) -> None:
                while_waiting()
                body = json.dumps({"ok": True, "path": self.path}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: stderr is for the scenario's own errors."""

        return Handler


class WhenAllWaiting:
    """A :class:`SlowService`'s ``while_waiting`` for N concurrent requests: once
    all N wait, ``look`` runs once, then every request is answered.

    So the checkpoint sees the N callers at once, each at its slow call, which is
    when a pool held through the call is exhausted.
    """

    def __init__(self, parties: int, look: Callable[[], None]) -> None:
        self._barrier = threading.Barrier(parties, action=look, timeout=RENDEZVOUS_TIMEOUT_SECONDS)

    def __call__(self) -> None:
        self._barrier.wait()
