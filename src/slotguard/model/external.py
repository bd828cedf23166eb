"""Slow work, as data: what waits on the world outside the database (SG4).

A call is named by what it calls: through imports (``httpx.get``,
``time.sleep``) or through the class of the object it is called on
(``httpx.AsyncClient.post`` for ``client.post(...)`` after
``client = httpx.AsyncClient()``; ``openai.AsyncOpenAI.chat.completions.create``
for ``llm.chat.completions.create(...)``). The tables below are patterns over
those names, in the syntax of ``[tool.slotguard.transactions] external-calls``
(``fnmatch``: ``*`` matches any run of characters, dots included), so the
configuration extends the same table the defaults live in.

Nothing else in slotguard spells out these libraries' names.
"""

from __future__ import annotations

import enum
import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

_HTTP_VERBS = ("get", "post", "put", "patch", "delete", "head", "options", "request")
_OPENAI_CLIENTS = (
    "openai.OpenAI",
    "openai.AsyncOpenAI",
    "openai.AzureOpenAI",
    "openai.AsyncAzureOpenAI",
)
_ANTHROPIC_CLIENTS = (
    "anthropic.Anthropic",
    "anthropic.AsyncAnthropic",
    "anthropic.AnthropicBedrock",
    "anthropic.AsyncAnthropicBedrock",
    "anthropic.AnthropicVertex",
    "anthropic.AsyncAnthropicVertex",
)


def _each(prefixes: Iterable[str], names: Iterable[str]) -> tuple[str, ...]:
    names = tuple(names)
    return tuple(f"{prefix}.{name}" for prefix in prefixes for name in names)


@dataclass(frozen=True, slots=True)
class Family:
    """A library (or a group of them) whose calls are slow external I/O."""

    library: str
    what: str
    """The call, as a message names it: "an HTTP request"."""
    calls: tuple[str, ...]
    """Patterns of the qualified call names that do I/O."""


FAMILIES: tuple[Family, ...] = (
    Family(
        "httpx",
        "an HTTP request",
        (
            *_each(["httpx"], [*_HTTP_VERBS, "stream"]),
            *_each(["httpx.Client", "httpx.AsyncClient"], [*_HTTP_VERBS, "send", "stream"]),
        ),
    ),
    Family(
        "aiohttp",
        "an HTTP request",
        (
            "aiohttp.request",
            *_each(
                ["aiohttp.ClientSession", "aiohttp.client.ClientSession"],
                [*_HTTP_VERBS, "ws_connect"],
            ),
        ),
    ),
    Family(
        "requests",
        "an HTTP request",
        (
            *_each(["requests", "requests.api"], _HTTP_VERBS),
            *_each(["requests.Session", "requests.sessions.Session"], [*_HTTP_VERBS, "send"]),
        ),
    ),
    Family(
        "urllib",
        "an HTTP request",
        (
            "urllib.request.urlopen",
            "urllib.request.urlretrieve",
            "urllib.request.OpenerDirector.open",
            *_each(
                ["http.client.HTTPConnection", "http.client.HTTPSConnection"],
                ["request", "getresponse"],
            ),
        ),
    ),
    Family(
        "urllib3",
        "an HTTP request",
        (
            "urllib3.request",
            *_each(
                [
                    "urllib3.PoolManager",
                    "urllib3.poolmanager.PoolManager",
                    "urllib3.HTTPConnectionPool",
                    "urllib3.HTTPSConnectionPool",
                    "urllib3.connectionpool.HTTPConnectionPool",
                    "urllib3.connectionpool.HTTPSConnectionPool",
                ],
                ["request", "urlopen", "request_encode_url", "request_encode_body"],
            ),
        ),
    ),
    Family(
        "boto3",
        "an AWS call",
        (
            "botocore.client.BaseClient.*",
            "aiobotocore.client.AioBaseClient.*",
            # Methods of a resource's sub-objects (``s3.Bucket(name).upload_file``);
            # creating the sub-object itself is local.
            "boto3.resources.base.ServiceResource.*.*",
            "aioboto3.resources.base.AIOBoto3ServiceResource.*.*",
        ),
    ),
    Family(
        "smtplib",
        "an SMTP exchange",
        (
            "smtplib.SMTP.*",
            "smtplib.SMTP_SSL.*",
            "smtplib.LMTP.*",
            "aiosmtplib.send",
            "aiosmtplib.SMTP.*",
            "aiosmtplib.smtp.SMTP.*",
        ),
    ),
    Family(
        "subprocess",
        "a subprocess",
        (
            *_each(
                ["subprocess"],
                ["run", "call", "check_call", "check_output", "getoutput", "getstatusoutput"],
            ),
            "subprocess.Popen.wait",
            "subprocess.Popen.communicate",
            "asyncio.create_subprocess_exec",
            "asyncio.create_subprocess_shell",
            "asyncio.subprocess.create_subprocess_exec",
            "asyncio.subprocess.create_subprocess_shell",
            "asyncio.subprocess.Process.wait",
            "asyncio.subprocess.Process.communicate",
            "os.system",
        ),
    ),
    Family("grpc", "a gRPC call", ("grpc.Stub.*",)),
    Family(
        "openai",
        "an LLM call",
        (
            *_each(_OPENAI_CLIENTS, ["*"]),
            # The module-level client of openai 1.x and the resources of 0.x.
            *_each(
                ["openai"],
                [
                    "chat.*",
                    "completions.*",
                    "embeddings.*",
                    "images.*",
                    "audio.*",
                    "moderations.*",
                    "responses.*",
                    "files.*",
                    "batches.*",
                    "beta.*",
                    "ChatCompletion.*",
                    "Completion.*",
                    "Embedding.*",
                    "Image.*",
                    "Moderation.*",
                ],
            ),
        ),
    ),
    Family(
        "anthropic",
        "an LLM call",
        _each(_ANTHROPIC_CLIENTS, ["*"]),
    ),
)

CONFIGURED_WHAT = "an external call"
"""How a message names a call matched by the user's ``external-calls``."""

LOCAL_METHODS = frozenset(
    {
        "close",
        "aclose",
        "copy",
        "with_options",
        "build_request",
        "get_paginator",
        "get_waiter",
        "can_paginate",
        "generate_presigned_url",
        "generate_presigned_post",
        "set_debuglevel",
    }
)
"""Methods of the clients above that do no I/O of their own; a built-in
pattern ending in ``*`` does not cover them."""

RETURNS: dict[str, str] = {
    # What a call returns, when it is not an instance of the callee itself
    # (``httpx.AsyncClient(...)`` is an ``httpx.AsyncClient``; no entry needed).
    "requests.session": "requests.Session",
    "urllib.request.build_opener": "urllib.request.OpenerDirector",
    "urllib3.connection_from_url": "urllib3.HTTPConnectionPool",
    "boto3.client": "botocore.client.BaseClient",
    "boto3.resource": "boto3.resources.base.ServiceResource",
    **{
        f"{session}.client": "botocore.client.BaseClient"
        for session in ("boto3.Session", "boto3.session.Session")
    },
    **{
        f"{session}.resource": "boto3.resources.base.ServiceResource"
        for session in ("boto3.Session", "boto3.session.Session")
    },
    "botocore.session.get_session": "botocore.session.Session",
    "botocore.session.Session.create_client": "botocore.client.BaseClient",
    **{
        f"{session}.client": "aiobotocore.client.AioBaseClient"
        for session in ("aioboto3.Session", "aioboto3.session.Session")
    },
    **{
        f"{session}.resource": "aioboto3.resources.base.AIOBoto3ServiceResource"
        for session in ("aioboto3.Session", "aioboto3.session.Session")
    },
    "grpc.insecure_channel": "grpc.Channel",
    "grpc.secure_channel": "grpc.Channel",
    "grpc.aio.insecure_channel": "grpc.aio.Channel",
    "grpc.aio.secure_channel": "grpc.aio.Channel",
    "asyncio.create_subprocess_exec": "asyncio.subprocess.Process",
    "asyncio.create_subprocess_shell": "asyncio.subprocess.Process",
    "asyncio.subprocess.create_subprocess_exec": "asyncio.subprocess.Process",
    "asyncio.subprocess.create_subprocess_shell": "asyncio.subprocess.Process",
    "asyncio.get_running_loop": "asyncio.AbstractEventLoop",
    "asyncio.get_event_loop": "asyncio.AbstractEventLoop",
    "asyncio.new_event_loop": "asyncio.AbstractEventLoop",
    "asyncio.AbstractEventLoop.create_future": "asyncio.Future",
    "concurrent.futures.ThreadPoolExecutor.submit": "concurrent.futures.Future",
    "concurrent.futures.ProcessPoolExecutor.submit": "concurrent.futures.Future",
    # ``client.with_options(timeout=5).chat.completions.create(...)``
    **{f"{client}.with_options": client for client in (*_OPENAI_CLIENTS, *_ANTHROPIC_CLIENTS)},
}

STUB_SUFFIX = "Stub"
STUB_CHANNELS = ("grpc.Channel", "grpc.aio.Channel")
STUB_CLASS = "grpc.Stub"
"""A generated gRPC stub, ``OrdersStub(channel)``, is an instance of
``grpc.Stub`` for the patterns above: its methods are remote calls."""


class WaitKind(enum.Enum):
    SLEEP = "sleep"
    """Sleeps on purpose: slow whatever its argument (but ``sleep(0)``)."""
    WAIT = "wait"
    """Waits for someone else, for as long as they take unless bounded."""


@dataclass(frozen=True, slots=True)
class Wait:
    call: str
    kind: WaitKind = WaitKind.WAIT
    timeout: tuple[int, str] | None = None
    """Position and keyword of the call's own timeout parameter, if it has one."""
    block: tuple[int, str] | None = None
    """Position and keyword of a ``block`` flag whose ``False`` makes it return at once."""


CONNECTING_CONSTRUCTORS: dict[str, tuple[tuple[int, str], str]] = {
    "smtplib.SMTP": ((0, "host"), "an SMTP connection"),
    "smtplib.SMTP_SSL": ((0, "host"), "an SMTP connection"),
    "smtplib.LMTP": ((0, "host"), "an SMTP connection"),
}
"""Classes whose constructor connects when it is given a host (position,
keyword): ``smtplib.SMTP("mail.example")`` opens the connection and reads the
greeting; ``smtplib.SMTP()`` does nothing until ``connect()``."""


def _waits(
    classes: Iterable[str],
    method: str,
    timeout: tuple[int, str] | None = None,
    block: tuple[int, str] | None = None,
) -> tuple[Wait, ...]:
    return tuple(Wait(f"{cls}.{method}", timeout=timeout, block=block) for cls in classes)


_ASYNC_QUEUES = ("asyncio.Queue", "asyncio.PriorityQueue", "asyncio.LifoQueue")
_THREAD_QUEUES = ("queue.Queue", "queue.PriorityQueue", "queue.LifoQueue", "queue.SimpleQueue")
_PROCESS_QUEUES = ("multiprocessing.Queue", "multiprocessing.JoinableQueue")

WAITS: tuple[Wait, ...] = (
    *(
        Wait(name, WaitKind.SLEEP)
        for name in ("asyncio.sleep", "time.sleep", "trio.sleep", "anyio.sleep", "gevent.sleep")
    ),
    Wait("asyncio.Event.wait"),
    Wait("asyncio.Condition.wait"),
    Wait("asyncio.Condition.wait_for"),
    Wait("asyncio.Barrier.wait"),
    *_waits(_ASYNC_QUEUES, "get"),
    *_waits(_ASYNC_QUEUES, "join"),
    Wait("threading.Event.wait", timeout=(0, "timeout")),
    Wait("threading.Condition.wait", timeout=(0, "timeout")),
    Wait("threading.Condition.wait_for", timeout=(1, "timeout")),
    Wait("threading.Barrier.wait", timeout=(0, "timeout")),
    Wait("threading.Thread.join", timeout=(0, "timeout")),
    Wait("multiprocessing.Process.join", timeout=(0, "timeout")),
    *_waits((*_THREAD_QUEUES, *_PROCESS_QUEUES), "get", timeout=(1, "timeout"), block=(0, "block")),
    *_waits(("queue.Queue", "queue.PriorityQueue", "queue.LifoQueue"), "join"),
    Wait("concurrent.futures.Future.result", timeout=(0, "timeout")),
    Wait("concurrent.futures.wait", timeout=(1, "timeout")),
)

AWAITED_WAITS = ("asyncio.Future",)
"""Classes whose instances, awaited, wait for whoever sets their result."""


@dataclass(frozen=True, slots=True)
class Bound:
    """A call or context manager that puts a deadline on the waits inside it."""

    call: str
    timeout: tuple[int, str]


BOUNDING_CALLS: tuple[Bound, ...] = (
    Bound("asyncio.wait_for", (1, "timeout")),
    Bound("asyncio.tasks.wait_for", (1, "timeout")),
)
"""``asyncio.wait_for(event.wait(), timeout)``: its first argument is bounded."""

BOUNDING_CONTEXTS: tuple[Bound, ...] = (
    Bound("asyncio.timeout", (0, "delay")),
    Bound("asyncio.timeouts.timeout", (0, "delay")),
    Bound("asyncio.timeout_at", (0, "when")),
    Bound("async_timeout.timeout", (0, "delay")),
    Bound("async_timeout.timeout_at", (0, "deadline")),
    Bound("anyio.fail_after", (0, "delay")),
    Bound("anyio.move_on_after", (0, "delay")),
    Bound("trio.fail_after", (0, "seconds")),
    Bound("trio.move_on_after", (0, "seconds")),
)
"""``async with asyncio.timeout(5):``: the waits of its body are bounded."""

STREAMING_RESPONSES = (
    "fastapi.responses.StreamingResponse",
    "starlette.responses.StreamingResponse",
    "sse_starlette.EventSourceResponse",
    "sse_starlette.sse.EventSourceResponse",
    "litestar.response.Stream",
    "litestar.response.ServerSentEvent",
    "django.http.StreamingHttpResponse",
)
"""Responses whose body a generator produces after the handler returns,
while the request's dependencies (its session) are still open."""

STREAMING_RESPONSE_NAMES = frozenset(name.rsplit(".", 1)[-1] for name in STREAMING_RESPONSES)


@dataclass(frozen=True, slots=True)
class Autobegin:
    """A type that begins a transaction on its first query and keeps its
    connection until the transaction ends (SQLAlchemy's autobegin)."""

    types: tuple[str, ...]
    """Resource type names of the catalog."""
    begins: tuple[str, ...]
    """Methods that begin the transaction if none is open (queries, ``begin()``)."""
    ends: tuple[str, ...]
    """Methods that end it."""
    ended_by_block: tuple[str, ...] = ("begin",)
    """Methods whose ``with`` block ends it when the block ends
    (``with session.begin():`` commits; ``begin_nested()`` only a savepoint)."""
    cursors: tuple[str, ...] = ()
    """Methods that make a DB-API cursor whose queries begin the connection's
    transaction (``conn.cursor()``)."""
    cursor_begins: tuple[str, ...] = ()
    """The cursor's methods that begin it."""
    only_by_sql: bool = False
    """The driver commits every statement by itself (asyncpg): only an
    ``execute("BEGIN")`` begins a transaction."""
    autocommit: tuple[str, ...] = ()
    """How the code turns the driver's implicit transactions off: an attribute
    assigned, a keyword of the connecting call, a method called."""


AUTOBEGIN: tuple[Autobegin, ...] = (
    Autobegin(
        types=(
            "sqlalchemy.Session",
            "sqlalchemy.AsyncSession",
            "sqlalchemy.scoped_session",
            "sqlalchemy.async_scoped_session",
        ),
        begins=(
            "execute",
            "exec",
            "scalars",
            "scalar",
            "get",
            "get_one",
            "query",
            "merge",
            "refresh",
            "flush",
            "stream",
            "stream_scalars",
            "connection",
            "begin",
        ),
        ends=("commit", "rollback", "close", "reset", "remove"),
    ),
    Autobegin(
        types=("sqlalchemy.Connection", "sqlalchemy.AsyncConnection"),
        begins=(
            "execute",
            "exec_driver_sql",
            "scalar",
            "scalars",
            "stream",
            "stream_scalars",
            "begin",
        ),
        ends=("commit", "rollback", "close", "invalidate"),
    ),
    # DB-API drivers begin a transaction on a connection's first statement
    # (psycopg2 and psycopg unless autocommit) and keep it until commit,
    # rollback or close; a pooled connection's ends when it goes back.
    Autobegin(
        types=("psycopg2.Connection", "psycopg2.PoolConnection"),
        begins=(),
        ends=("commit", "rollback", "close", "reset"),
        ended_by_block=(),
        cursors=("cursor",),
        cursor_begins=("execute", "executemany", "callproc", "copy_expert", "copy_from"),
        autocommit=("autocommit",),
    ),
    Autobegin(
        types=(
            "psycopg.Connection",
            "psycopg.AsyncConnection",
            "psycopg_pool.PoolConnection",
            "psycopg_pool.AsyncPoolConnection",
        ),
        begins=("execute",),
        ends=("commit", "rollback", "close"),
        ended_by_block=("transaction",),
        cursors=("cursor",),
        cursor_begins=("execute", "executemany", "copy", "stream"),
        autocommit=("autocommit", "set_autocommit"),
    ),
    Autobegin(
        types=("asyncpg.Connection", "asyncpg.PoolConnection"),
        begins=("execute",),
        ends=("close", "terminate"),
        ended_by_block=("transaction",),
        only_by_sql=True,
    ),
)


AUTOBEGIN_METHODS = frozenset(
    name for entry in AUTOBEGIN for name in (*entry.begins, *entry.cursor_begins)
)

AUTOBEGIN_ENDS = frozenset(name for entry in AUTOBEGIN for name in entry.ends)
"""Methods that end a session's or connection's transaction, of any driver."""

SQL_BEGINS = ("BEGIN", "START TRANSACTION")
SQL_ENDS = ("COMMIT", "ROLLBACK", "END", "ABORT")
"""Statements, passed to ``execute`` as a literal, that begin or end a
transaction on a driver's connection."""


def sql_effect(statement: str) -> bool | None:
    """True when the SQL text begins a transaction, False when it ends one,
    None when it is a query (or says nothing about transactions)."""
    words = statement.strip().rstrip(";").upper().split()
    first = " ".join(words[:2])
    if words and (words[0] in SQL_BEGINS or first in SQL_BEGINS):
        return True
    if words and words[0] in SQL_ENDS and "TO" not in words:  # ROLLBACK TO SAVEPOINT
        return False
    return None


def autobegin_of(type_name: str) -> Autobegin | None:
    for entry in AUTOBEGIN:
        if type_name in entry.types:
            return entry
    return None


# -- lookups -------------------------------------------------------------------


def _compile(patterns: Iterable[str]) -> re.Pattern[str] | None:
    translated = [fnmatch.translate(pattern) for pattern in patterns]
    return re.compile("|".join(translated)) if translated else None


@dataclass(frozen=True, slots=True)
class ExternalCall:
    what: str
    library: str | None
    """None for a call the configuration names."""


SLOW_LIBRARIES = frozenset(
    pattern.split(".", 1)[0] for family in FAMILIES for pattern in family.calls
)

WRAPPED_SLOW_LIBRARIES = SLOW_LIBRARIES - {"os", "asyncio", "http", "urllib", "subprocess"}
"""Libraries of slow calls a project wraps for its other modules (an LLM
client class, a webhook sender): a file importing one is read for its
summary, which says which of its functions are slow. ``os`` and ``asyncio``
are in nearly every file, and the standard library's ``http``, ``urllib``
and ``subprocess`` in most of a framework's: letting them through doubled the
files Django's cold run analyses. A project function that wraps only those
is not followed from another module (it is within its own)."""
"""The top-level packages whose calls may be slow: a module that imports
none of them makes no slow call of its own."""


class SlowCalls:
    """The tables above, extended by the configuration, indexed for lookups
    by qualified call name."""

    def __init__(self, configured: tuple[str, ...] = ()) -> None:
        self.configured = configured
        self._families = [(family, _compile(family.calls)) for family in FAMILIES]
        self._configured = _compile(configured)
        self._waits = {wait.call: wait for wait in WAITS}
        self._bounding_calls = {bound.call: bound for bound in BOUNDING_CALLS}
        self._bounding_contexts = {bound.call: bound for bound in BOUNDING_CONTEXTS}
        self._external: dict[str, ExternalCall | None] = {}

    def external(self, name: str) -> ExternalCall | None:
        """Whether a call of this qualified name is slow external I/O, and what it is."""
        if name in self._external:
            return self._external[name]
        found: ExternalCall | None = None
        if self._configured is not None and self._configured.fullmatch(name):
            found = ExternalCall(CONFIGURED_WHAT, None)
        elif name.rsplit(".", 1)[-1] not in LOCAL_METHODS:
            for family, pattern in self._families:
                if pattern is not None and pattern.fullmatch(name):
                    found = ExternalCall(family.what, family.library)
                    break
        self._external[name] = found
        return found

    def wait(self, name: str) -> Wait | None:
        return self._waits.get(name)

    def bounding_call(self, name: str) -> Bound | None:
        return self._bounding_calls.get(name)

    def bounding_context(self, name: str) -> Bound | None:
        return self._bounding_contexts.get(name)

    @staticmethod
    def returns(name: str) -> str | None:
        return RETURNS.get(name)

    @staticmethod
    def is_streaming_response(name: str) -> bool:
        return name in STREAMING_RESPONSES


@cache
def slow_calls(configured: tuple[str, ...]) -> SlowCalls:
    """The lookups for one configuration, built once per run."""
    return SlowCalls(configured)
