"""Which operations can realistically raise, for the exception paths of SG2.

Every Python call can raise in theory; a finding that names `typing.cast` or
a dict insert as the place a connection leaks is one nobody fixes. An
exception path counts when the unprotected window holds an operation that
realistically raises (SPEC section 2): an ``await`` (which can also be
cancelled), an explicit ``raise`` or ``assert``, a database call, network or
file I/O, or a project function that does one of those. These tables say
which calls those are, beyond what the resource model already knows (a call
on a session or connection is a database call).
"""

from __future__ import annotations

RAISING_FUNCTIONS = frozenset({"open", "input", "io.open", "os.open", "pathlib.Path.open"})
"""Builtins and standard functions that do I/O."""

RAISING_NAME_PREFIXES = ("raise_", "validate", "check_", "assert_", "ensure_")
"""Calls named to raise when something is wrong (``response.raise_for_status()``,
``validate(payload)``, ``check_permissions(user)``), whoever defines them."""

NON_RAISING_FUNCTIONS = frozenset(
    {
        "typing.cast",
        "typing_extensions.cast",
        "contextvars.copy_context",
        "alembic.context.configure",
        "alembic.context.is_offline_mode",
        "alembic.context.get_context",
        "alembic.op.get_bind",
        "uuid.uuid4",
        "time.time",
        "time.monotonic",
        "time.perf_counter",
        "datetime.datetime.now",
        "datetime.datetime.utcnow",
    }
)
"""Calls that do no I/O even when a database object is passed to them:
Alembic's ``context.configure(connection=conn)`` stores it for the migration
run that follows."""

NON_RAISING_BUILTINS = frozenset(
    {
        "id",
        "str",
        "repr",
        "hash",
        "type",
        "isinstance",
        "issubclass",
        "callable",
        "len",
        "bool",
        "getattr",
        "hasattr",
        "setattr",
        "print",
        "dict",
        "list",
        "tuple",
        "set",
        "frozenset",
        "sorted",
        "reversed",
        "enumerate",
        "zip",
        "iter",
        "vars",
        "super",
    }
)
"""Builtins that do no I/O, whatever they are given (``id(session)``)."""

LOCAL_METHODS = frozenset(
    {
        # SQLAlchemy sessions: bookkeeping in memory, no statement until a flush.
        "add",
        "add_all",
        "expunge",
        "expunge_all",
        "expire",
        "expire_all",
        "is_modified",
        "get_bind",
        "in_transaction",
        "in_nested_transaction",
        "get_transaction",
        "enable_relationship_loading",
        # Connections: objects created without a round trip.
        "cursor",
        "execution_options",
        "get_execution_options",
        "is_closed",
        "closed",
        "get_server_pid",
        "get_settings",
    }
)
"""Methods of a database object that do no I/O: calling them cannot fail the
way a query can."""

NON_RAISING_METHODS_ON_ANY = frozenset(
    {
        "set",
        "reset",
        "get",
        "setdefault",
        "update",
        "append",
        "extend",
        "pop",
        "popleft",
        "appendleft",
        "insert",
        "remove",
        "discard",
        "clear",
        "copy",
        "items",
        "keys",
        "values",
        "format",
        "join",
        "split",
        "strip",
        "startswith",
        "endswith",
    }
)
"""Container, string and context-variable methods: called on anything that
is not a database object, they do no I/O (``token = ctx.set(value)``,
``cache.pop(key)``)."""

DATABASE_METHODS = frozenset(
    {
        "execute",
        "executemany",
        "executescript",
        "fetchone",
        "fetchall",
        "fetchmany",
        "fetchval",
        "fetchrow",
        "callproc",
        "commit",
        "rollback",
        "copy_expert",
        "copy_from",
        "copy_to",
    }
)
"""DB-API and driver methods: called on anything (a cursor the model cannot
type, ``cur.execute(...)``), they talk to the server and can fail."""
