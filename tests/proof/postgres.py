"""A throwaway PostgreSQL server for one test session.

slotguard's findings are claims about connection slots on a real server, so the
proof tests start one: ``initdb`` into a temporary directory, listen only on a
Unix socket inside that directory (no TCP port to collide with other runs),
trust authentication, ``fsync=off``, and a small ``max_connections`` so that
exhausting the server is cheap. Standard library only, so it works before any
database driver is installed.

Applications connect as an unprivileged role, as they do in production: only
then does a full server answer with the very error slotguard exists to prevent
("remaining connection slots are reserved for ... superuser connections").
Observers connect as the superuser, who keeps the reserved slots and sees every
session's state in ``pg_stat_activity``.

PostgreSQL refuses to run as root. Under root (containers, CI) the server runs
as an unprivileged OS user, ``postgres`` by default, who owns the temporary
directory. The postmaster is a direct child of this process, so stopping it
also reaps it (no zombie is left for an init that may not reap), and on Linux
it is told to shut down if this process dies without stopping it.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import urlencode

DEFAULT_BINDIR = Path("/usr/lib/postgresql/15/bin")
SUPERUSER = "postgres"
APP_ROLE = "slotguard"
_REQUIRED_BINARIES = ("initdb", "postgres", "psql")
_START_TIMEOUT_SECONDS = 30.0
_STOP_TIMEOUT_SECONDS = 10.0
# Line 8 (index 7) of postmaster.pid holds the postmaster's status; pg_ctl -w polls it too.
_PIDFILE_STATUS_LINE = 7
_PR_SET_PDEATHSIG = 1


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot run on this machine: binaries or an unprivileged user are missing.

    Kept apart from start failures so that callers may skip on this one only.
    """


class PostgresStartError(RuntimeError):
    """The binaries are there but the server could not be initialised or started."""


@dataclass(frozen=True)
class PostgresInfo:
    """How to reach a running throwaway server.

    ``host`` is the Unix socket directory; libpq, asyncpg and SQLAlchemy all
    read a host that starts with ``/`` as one.
    """

    host: str
    port: int
    user: str
    dbname: str
    superuser: str
    max_connections: int

    @property
    def dsn(self) -> str:
        """URI for the application role; asyncpg, psycopg 3 and psycopg2 accept it as is."""
        return self._uri("postgresql", self.user)

    @property
    def superuser_dsn(self) -> str:
        """URI for the superuser, for observers that must not take an application slot."""
        return self._uri("postgresql", self.superuser)

    def sqlalchemy_url(self, driver: str) -> str:
        """SQLAlchemy URL for the application role, e.g. ``driver="asyncpg"``."""
        return self._uri(f"postgresql+{driver}", self.user)

    def _uri(self, scheme: str, user: str) -> str:
        query = urlencode({"host": self.host, "port": self.port}, safe="/")
        return f"{scheme}://{user}@/{self.dbname}?{query}"


@dataclass(frozen=True)
class _Identity:
    """Who the server binaries run as; all None means as this process.

    ``extra_groups`` is empty rather than None when switching, so that root's
    supplementary groups do not follow.
    """

    user: int | None = None
    group: int | None = None
    extra_groups: tuple[int, ...] | None = None


class PostgresServer:
    """A PostgreSQL server living in a temporary directory until :meth:`stop`.

    Use it as ``with PostgresServer() as info:``; afterwards no server process
    and no file of it remain. ``port`` only names the socket file
    (``.s.PGSQL.<port>``): with no TCP listener, servers cannot collide on it.
    """

    def __init__(
        self,
        *,
        bindir: Path = DEFAULT_BINDIR,
        max_connections: int = 30,
        port: int = 5432,
        os_user: str = "postgres",
    ) -> None:
        self.bindir = bindir
        self.max_connections = max_connections
        self.port = port
        self.os_user = os_user
        self._base: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PostgresInfo:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> PostgresInfo:
        """Initialise, start and provision the server; raise PostgresUnavailable or
        PostgresStartError, leaving nothing behind, when that is not possible."""
        if self._base is not None:
            raise RuntimeError("this PostgresServer is already started")
        identity = self._identity()
        self._base = base = Path(tempfile.mkdtemp(prefix="slotguard-pg-"))
        try:
            if identity.user is not None:
                shutil.chown(base, identity.user, identity.group)
            self._initdb(identity)
            self._launch(identity)
            self._provision(identity)
        except BaseException:
            self.stop()
            raise
        return PostgresInfo(
            host=str(base),
            port=self.port,
            user=APP_ROLE,
            dbname=APP_ROLE,
            superuser=SUPERUSER,
            max_connections=self.max_connections,
        )

    def stop(self) -> None:
        """Stop the server at once and delete its files; safe to call at any point, twice too.

        SIGQUIT is PostgreSQL's immediate shutdown (what ``pg_ctl stop -m
        immediate`` sends): backends are ended without waiting for clients,
        which is what a throwaway server full of deliberately leaked
        connections needs.
        """
        process, base = self._process, self._base
        self._process = self._base = None
        try:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGQUIT)
                try:
                    process.wait(timeout=_STOP_TIMEOUT_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        finally:
            if base is not None:
                shutil.rmtree(base, ignore_errors=True)

    def _identity(self) -> _Identity:
        """Check the binaries, and when we are root pick the unprivileged user to run them as."""
        missing = [name for name in _REQUIRED_BINARIES if not (self.bindir / name).is_file()]
        if missing:
            raise PostgresUnavailable(
                f"PostgreSQL binaries {', '.join(missing)} not found in {self.bindir}; "
                "install PostgreSQL 15 (Debian: apt-get install postgresql-15) "
                "or point bindir at another version's bin directory"
            )
        if os.geteuid() != 0:
            return _Identity()
        try:
            entry = pwd.getpwnam(self.os_user)
        except KeyError:
            raise PostgresUnavailable(
                f"PostgreSQL refuses to run as root, and the OS user {self.os_user!r} to run "
                f"it as instead does not exist (create it: useradd --system {self.os_user})"
            ) from None
        return _Identity(user=entry.pw_uid, group=entry.pw_gid, extra_groups=())

    def _initdb(self, identity: _Identity) -> None:
        data = self._data_dir()
        self._run(
            identity,
            "initdb",
            f"--pgdata={data}",
            f"--username={SUPERUSER}",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        settings = {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self._base}'",
            "port": str(self.port),
            "max_connections": str(self.max_connections),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        with (data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def _launch(self, identity: _Identity) -> None:
        """Start the postmaster as our own child and wait until it accepts connections."""
        data = self._data_dir()
        with self._log_path().open("wb") as log:
            self._process = subprocess.Popen(
                [str(self.bindir / "postgres"), "-D", str(data)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._base,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
                user=identity.user,
                group=identity.group,
                extra_groups=identity.extra_groups,
            )
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while not self._is_ready():
            if self._process.poll() is not None:
                raise PostgresStartError(f"postgres exited at startup\n{self._log_tail()}")
            if time.monotonic() > deadline:
                raise PostgresStartError(
                    f"postgres not ready after {_START_TIMEOUT_SECONDS:.0f} s\n{self._log_tail()}"
                )
            time.sleep(0.02)

    def _provision(self, identity: _Identity) -> None:
        """Create the unprivileged application role and its database."""
        self._run(
            identity,
            "psql",
            "--no-psqlrc",
            f"--host={self._base}",
            f"--port={self.port}",
            f"--username={SUPERUSER}",
            "--dbname=postgres",
            "--set=ON_ERROR_STOP=1",
            f"--command=CREATE ROLE {APP_ROLE} LOGIN",
            f"--command=CREATE DATABASE {APP_ROLE} OWNER {APP_ROLE}",
        )

    def _is_ready(self) -> bool:
        try:
            lines = (self._data_dir() / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return False
        return len(lines) > _PIDFILE_STATUS_LINE and lines[_PIDFILE_STATUS_LINE].strip() == "ready"

    def _run(self, identity: _Identity, binary: str, *args: str) -> None:
        result = subprocess.run(
            [str(self.bindir / binary), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=self._base,
            timeout=_START_TIMEOUT_SECONDS,
            check=False,
            user=identity.user,
            group=identity.group,
            extra_groups=identity.extra_groups,
        )
        if result.returncode != 0:
            raise PostgresStartError(
                f"{binary} failed with exit code {result.returncode}\n"
                f"{result.stdout}{result.stderr}{self._log_tail()}"
            )

    def _data_dir(self) -> Path:
        assert self._base is not None, "the server has no directory before start()"
        return self._base / "data"

    def _log_path(self) -> Path:
        assert self._base is not None, "the server has no directory before start()"
        return self._base / "postgres.log"

    def _log_tail(self) -> str:
        try:
            return self._log_path().read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""


def _die_with_parent() -> None:
    """Have the kernel send the postmaster SIGQUIT (immediate shutdown) if we die first.

    Runs in the child between fork and exec, after the switch of user, which
    would otherwise clear the setting.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGQUIT)
