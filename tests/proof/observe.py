"""Watch connections leak: from the server, from the pools, and from scenario programs.

A leak shows in two places. The server counts the sessions it holds for the
test database (``pg_stat_activity``), observed by :class:`Observer` through a
superuser connection of its own that it leaves out of the count. Each driver's
pool counts the connections it has handed out, read by the ``*_pool_counts``
functions into one :class:`PoolCounts` shape. Closing is asynchronous on the
server side, so :meth:`Observer.settle` waits for counts to get where they are
going instead of sleeping a guessed amount.

Scenario protocol
-----------------
A leak is exercised in a separate process, so that whatever it leaks dies with
that process instead of leaking into the next test. A scenario program is a
small Python file that:

1. under ``if __name__ == "__main__":``, reads its arguments with
   :func:`parse_scenario_args`: ``--dsn`` (a libpq URI for the application
   role; asyncpg, psycopg and psycopg2 take it as is, SQLAlchemy after
   ``make_url(dsn).set(drivername="postgresql+asyncpg")``), ``--iterations N``
   and ``--pool-size K``;
2. opens a pool of size K and runs its leaking (or fixed) path N times, with
   acquisition timeouts short enough that an exhausted pool shows as a
   timeout, not a hang;
3. may pause at named checkpoints (:meth:`ScenarioArgs.checkpoint`), where it
   prints ``{"checkpoint": name, ...}`` with what it sees at that moment and
   waits until the test has looked at the server: a connection left idle in
   transaction during a slow call can only be seen while the call waits;
4. prints exactly one JSON object (its report) on stdout, while its pool is
   still open, with what it observed, e.g. ``{"checked_out": 3, "results":
   [...], "timed_out": false}``; the ``*_pool_counts`` functions here are
   importable from it (``from proof.observe import ...``);
5. exits promptly. Where closing the pool would wait for the leaked
   connections (asyncpg's ``Pool.close``), it terminates the pool instead or
   simply exits: the server drops the connections of a dead process.

:func:`run_scenario` runs one with this interpreter and returns the report,
calling back at each checkpoint. ``example_scenario.py`` beside this module is
the harness's own example.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

import psycopg

from proof.postgres import PostgresInfo

if TYPE_CHECKING:
    import asyncpg
    import psycopg2.pool
    import psycopg_pool
    import sqlalchemy.pool

_TESTS_DIR = Path(__file__).resolve().parent.parent
_CLIENT_CONNECTIONS_BY_STATE = """
    SELECT coalesce(state, 'unknown'), count(*)
    FROM pg_stat_activity
    WHERE datname = %s AND backend_type = 'client backend' AND pid <> pg_backend_pid()
    GROUP BY 1
"""


@dataclass(frozen=True)
class ServerConnections:
    """The server's client sessions on the test database, by ``pg_stat_activity.state``."""

    by_state: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_state.values())

    @property
    def idle(self) -> int:
        return self.by_state.get("idle", 0)

    @property
    def active(self) -> int:
        return self.by_state.get("active", 0)

    @property
    def idle_in_transaction(self) -> int:
        """Sessions holding a transaction open while doing nothing: the costliest leak."""
        return self.by_state.get("idle in transaction", 0)


class Observer:
    """Counts the test database's client connections, as the superuser.

    Connecting as the superuser keeps the observer off the application's
    slots and lets it see the state of every role's sessions.
    """

    def __init__(self, server: PostgresInfo) -> None:
        self._dbname = server.dbname
        self._connection = psycopg.connect(server.superuser_dsn, autocommit=True)

    def __enter__(self) -> Observer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._connection.close()

    def connections(self) -> ServerConnections:
        """The counts right now (each autocommit query sees a fresh pg_stat_activity)."""
        rows = self._connection.execute(_CLIENT_CONNECTIONS_BY_STATE, (self._dbname,)).fetchall()
        return ServerConnections(by_state={state: count for state, count in rows})

    def settle(
        self,
        until: Callable[[ServerConnections], bool] | None = None,
        *,
        timeout: float = 5.0,
        quiet: float = 0.2,
    ) -> ServerConnections:
        """Wait for the counts to settle and return them.

        With ``until``, settled means the predicate holds; without, that the
        counts stayed the same for ``quiet`` seconds. At ``timeout`` the last
        counts are returned anyway, so that the caller's assertion shows them.
        """
        deadline = time.monotonic() + timeout
        seen = self.connections()
        unchanged_since = time.monotonic()
        while True:
            now = time.monotonic()
            if until is not None and until(seen):
                return seen
            if until is None and now - unchanged_since >= quiet:
                return seen
            if now >= deadline:
                return seen
            time.sleep(0.02)
            current = self.connections()
            if current != seen:
                seen, unchanged_since = current, time.monotonic()


@dataclass(frozen=True)
class PoolCounts:
    """One pool's view: connections it holds open, idle among them, and handed out."""

    open: int
    idle: int
    checked_out: int


def asyncpg_pool_counts(pool: asyncpg.Pool) -> PoolCounts:
    size, idle = pool.get_size(), pool.get_idle_size()
    return PoolCounts(open=size, idle=idle, checked_out=size - idle)


def psycopg_pool_counts(
    pool: psycopg_pool.ConnectionPool[Any] | psycopg_pool.AsyncConnectionPool[Any],
) -> PoolCounts:
    """Counts of a psycopg 3 pool; ``open`` includes connections being opened or returned."""
    stats = pool.get_stats()
    size, idle = stats["pool_size"], stats["pool_available"]
    return PoolCounts(open=size, idle=idle, checked_out=size - idle)


def sqlalchemy_pool_counts(pool: sqlalchemy.pool.QueuePool) -> PoolCounts:
    """Counts of a QueuePool (``engine.pool``; async engines use a subclass of it)."""
    idle, checked_out = pool.checkedin(), pool.checkedout()
    return PoolCounts(open=idle + checked_out, idle=idle, checked_out=checked_out)


def psycopg2_pool_counts(pool: psycopg2.pool.AbstractConnectionPool) -> PoolCounts:
    """Counts of a psycopg2 pool, which has no public counters: read its private lists."""
    idle, checked_out = len(pool._pool), len(pool._used)
    return PoolCounts(open=idle + checked_out, idle=idle, checked_out=checked_out)


_PAUSE_FLAG = "--pause-at-checkpoints"


@dataclass(frozen=True)
class ScenarioArgs:
    dsn: str
    iterations: int
    pool_size: int
    pause_at_checkpoints: bool = False

    def checkpoint(self, name: str, **seen: Any) -> None:
        """Print ``{"checkpoint": name, **seen}`` and, when run by :func:`run_scenario`,
        wait until the test has looked at the server.

        A blocking wait, also from a coroutine: stopping the event loop stops
        the scenario's clients, not the server's view of what they hold.
        """
        if not self.pause_at_checkpoints:
            return
        print(json.dumps({"checkpoint": name, **seen}), flush=True)
        sys.stdin.readline()


def parse_scenario_args(argv: Sequence[str] | None = None) -> ScenarioArgs:
    """The arguments every scenario program takes; see the protocol above."""
    parser = argparse.ArgumentParser(description="Exercise a path N times against a pool of K.")
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--iterations", type=int, required=True)
    parser.add_argument("--pool-size", type=int, required=True)
    parser.add_argument(_PAUSE_FLAG, action="store_true", help="wait on stdin at checkpoints")
    parsed = parser.parse_args(argv)
    return ScenarioArgs(
        dsn=parsed.dsn,
        iterations=parsed.iterations,
        pool_size=parsed.pool_size,
        pause_at_checkpoints=parsed.pause_at_checkpoints,
    )


class ScenarioError(RuntimeError):
    """A scenario program failed, hung, or broke the protocol; the message has its output."""


Checkpoint = Callable[[str, dict[str, Any]], None]
"""Called with a checkpoint's name and what the scenario saw there, while it waits."""


def run_scenario(
    script: Path,
    dsn: str,
    *,
    iterations: int,
    pool_size: int,
    timeout: float = 30.0,
    at_checkpoint: Checkpoint | None = None,
) -> dict[str, Any]:
    """Run a scenario program in a subprocess and return the JSON report it printed.

    At each checkpoint the program waits while ``at_checkpoint`` runs (when
    given), then goes on. ``timeout`` bounds the whole run, callbacks included.
    """
    command = [
        sys.executable,
        str(script),
        f"--dsn={dsn}",
        f"--iterations={iterations}",
        f"--pool-size={pool_size}",
        _PAUSE_FLAG,
    ]
    python_path = os.pathsep.join(filter(None, [str(_TESTS_DIR), os.environ.get("PYTHONPATH")]))
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": python_path},
    )
    stdout = _LineReader(process.stdout)
    stderr = _LineReader(process.stderr)
    deadline = time.monotonic() + timeout
    printed: list[str] = []
    try:
        while (line := stdout.next_line(deadline)) is not None:
            checkpoint = _checkpoint(line)
            if checkpoint is None:
                printed.append(line)
                continue
            name, seen = checkpoint
            if at_checkpoint is not None:
                at_checkpoint(name, seen)
            _answer(process)
        process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except (subprocess.TimeoutExpired, _Timeout):
        process.kill()
        process.wait()
        raise ScenarioError(
            f"{script.name} did not exit within {timeout} s\n"
            f"stdout: {''.join(printed)}\nstderr: {stderr.rest(time.monotonic() + 1)}"
        ) from None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = f"stdout: {''.join(printed)}\nstderr: {stderr.rest(time.monotonic() + 5)}"
    if process.returncode != 0:
        raise ScenarioError(f"{script.name} exited with code {process.returncode}\n{output}")
    try:
        report = json.loads("".join(printed))
    except json.JSONDecodeError as exc:
        raise ScenarioError(
            f"{script.name} did not print one JSON object: {exc}\n{output}"
        ) from None
    if not isinstance(report, dict):
        raise ScenarioError(f"{script.name} printed JSON that is not an object\n{output}")
    return report


def _checkpoint(line: str) -> tuple[str, dict[str, Any]] | None:
    """The name and the rest of a checkpoint line; None for any other line."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("checkpoint"), str):
        return None
    seen = dict(value)
    return seen.pop("checkpoint"), seen


def _answer(process: subprocess.Popen[str]) -> None:
    """Let a paused scenario go on; one that exited meanwhile has nothing to read it."""
    assert process.stdin is not None
    try:
        process.stdin.write("\n")
        process.stdin.flush()
    except BrokenPipeError:
        pass


class _Timeout(Exception):
    pass


class _LineReader:
    """Lines of a pipe, read by a thread so that waiting for one can time out."""

    def __init__(self, pipe: IO[str] | None) -> None:
        assert pipe is not None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[str]) -> None:
        with pipe:
            for line in pipe:
                self._lines.put(line)
        self._lines.put(None)

    def next_line(self, deadline: float) -> str | None:
        """The next line, or None at the end of the output; _Timeout at the deadline."""
        try:
            return self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise _Timeout from None

    def rest(self, deadline: float) -> str:
        """What is left to read, as far as it comes before the deadline."""
        lines = []
        try:
            while (line := self.next_line(deadline)) is not None:
                lines.append(line)
        except _Timeout:
            pass
        return "".join(lines)
