"""How long the language server takes from an edit to its diagnostics.

    python bench/lsp_latency.py [--rounds N] [--lines N] [--json FILE] [--commit REV]

Writes a small FastAPI project into a temporary directory: ``app/db.py`` (a
session factory), ``app/main.py`` (an asyncpg pool on ``app.state``, closed in
the lifespan) and ``app/heavy.py``, a generated, session-heavy module of about
``--lines`` lines (500 by default) in which every function opens a session or
takes a connection, about a third of them leaking it (SG101, SG102, SG201,
SG202, SG401), so that every rule family has work and the pool's type comes
from another module. The generator is deterministic: the same options give
the same file.

It starts ``slotguard server`` as an editor does (pygls's client over
standard input and output), opens the module, waits until the diagnostics
seen with the project have arrived, and then, round by round, changes one
line (a leak added at the end of the module, then removed again: an
incremental change, as editors send them) and times, from sending
``didChange`` to receiving the ``publishDiagnostics`` of that version:

- the wall time, which includes the server's debounce (``DEBOUNCE``, a quarter
  of a second: diagnostics wait for typing to pause);
- the wall time less the debounce: the work and the messages;
- the server's CPU time over the same interval (``/proc/<pid>/stat``, in
  clock ticks of 10 ms);
- and, in the same round, the reference: the same check of the same text in
  this process through the server's adapter (``Checker.check``, with the
  project read), wall and CPU. The ratio of the server's time less the
  debounce to the reference is what the protocol, the threads and the
  event loop add.

Each figure is the median over the rounds and the fastest round (load only
adds time). Not a test: it measures, and fails only if the server does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import checkout

REPO = Path(__file__).resolve().parent.parent

DB = """\
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

engine = create_engine("postgresql://localhost/app", pool_size=5)
SessionLocal = sessionmaker(bind=engine)
"""

MAIN = """\
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI

from app.db import engine


@asynccontextmanager
async def lifespan(app: FastAPI):
    app.state.pool = await asyncpg.create_pool("postgresql://localhost/app")
    try:
        yield
    finally:
        await app.state.pool.close()
        engine.dispose()


app = FastAPI(lifespan=lifespan)
"""

HEADER = '''\
"""A generated, session-heavy module (bench/lsp_latency.py)."""
import asyncio

import httpx
from fastapi import Request
from sqlalchemy import text

from app.db import SessionLocal
'''

TEMPLATES: tuple[Callable[[int], str], ...] = (
    lambda n: (
        f"""

def closes_{n}(user_id):
    with SessionLocal() as db:
        row = db.execute(text("select {n}"), {{"id": user_id}}).first()
        if row is None:
            return None
        db.execute(text("update users set seen = now() where id = :id"), {{"id": user_id}})
        db.commit()
    return row
"""
    ),
    lambda n: (
        f"""

def returns_early_{n}(user_id):
    db = SessionLocal()
    if user_id is None:
        return []
    rows = db.execute(text("select {n}")).all()
    db.close()
    return rows
"""
    ),
    lambda n: (
        f"""

async def state_pool_{n}(request: Request, key: int):
    conn = await request.app.state.pool.acquire()
    total = await conn.fetchval("select count(*) from t{n} where k = $1", key)
    return {{"key": key, "total": total}}
"""
    ),
    lambda n: (
        f"""

async def released_{n}(request: Request, key: int):
    async with request.app.state.pool.acquire() as conn:
        rows = await conn.fetch("select * from t{n} where k = $1", key)
        await asyncio.sleep(0)
    return [dict(row) for row in rows]
"""
    ),
    lambda n: (
        f"""

def raises_between_{n}(user_id):
    db = SessionLocal()
    db.execute(text("delete from t{n} where id = :id"), {{"id": user_id}})
    db.commit()
    db.close()
"""
    ),
    lambda n: (
        f"""

async def calls_out_{n}(user_id):
    with SessionLocal() as db:
        with db.begin():
            db.execute(text("update t{n} set paid = true where id = :id"), {{"id": user_id}})
            async with httpx.AsyncClient() as client:
                await client.post("https://payments.example/{n}", json={{"id": user_id}})
"""
    ),
    lambda n: (
        f"""

def never_closed_{n}(user_id):
    db = SessionLocal()
    return db.execute(text("select {n}")).scalar()
"""
    ),
)

EXTRA = """
def edited_leak():
    db = SessionLocal()
    return db.execute(text("select 0")).scalar()
"""


def heavy_module(lines: int) -> str:
    """The generated module: templates in turn until about ``lines`` lines."""
    parts = [HEADER]
    count = HEADER.count("\n")
    number = 0
    while count < lines:
        part = TEMPLATES[number % len(TEMPLATES)](number)
        parts.append(part)
        count += part.count("\n")
        number += 1
    return "".join(parts)


def write_project(root: Path, lines: int) -> Path:
    (root / "app").mkdir(parents=True)
    (root / "slotguard.toml").write_text("")
    (root / "app/__init__.py").write_text("")
    (root / "app/db.py").write_text(DB)
    (root / "app/main.py").write_text(MAIN)
    heavy = root / "app/heavy.py"
    heavy.write_text(heavy_module(lines))
    return heavy


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process, from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "fastest": min(values)}


async def measure(rounds: int, lines: int, root: Path) -> dict[str, Any]:
    from lsprotocol import types
    from pygls.lsp.client import LanguageClient

    from slotguard.server.checking import Checker
    from slotguard.server.lsp import DEBOUNCE

    heavy = write_project(root, lines)
    text = heavy.read_text()
    reference = Checker()
    reference.refresh(heavy)
    expected = len(reference.check(text, heavy).diagnostics)

    published: dict[int | None, tuple[float, int]] = {}
    arrived = asyncio.Event()
    client = LanguageClient("lsp-latency", "1")

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: types.PublishDiagnosticsParams) -> None:
        published[params.version] = (time.perf_counter(), len(params.diagnostics))
        arrived.set()

    @client.feature(types.WINDOW_LOG_MESSAGE)
    def on_log(params: types.LogMessageParams) -> None:
        if params.type == types.MessageType.Error:
            sys.stderr.write(f"server: {params.message}\n")

    await client.start_io(sys.executable, "-m", "slotguard", "server")
    server = client._server
    assert server is not None
    await client.initialize_async(
        types.InitializeParams(capabilities=types.ClientCapabilities(), root_uri=root.as_uri())
    )
    client.initialized(types.InitializedParams())
    uri = heavy.as_uri()
    opened = time.perf_counter()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)
        )
    )

    async def until(condition: Callable[[], bool]) -> None:
        while not condition():
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), 300)

    async def published_for(version: int) -> tuple[float, int]:
        await until(lambda: version in published)
        return published[version]

    first: list[float] = []

    def with_project() -> bool:
        if 1 in published and not first:
            first.append(published[1][0] - opened)
        return published.get(1, (0.0, -1))[1] == expected

    await until(with_project)
    ready = published[1][0] - opened

    last_line = text.count("\n")
    rows: list[dict[str, float]] = []
    version = 1
    for number in range(rounds):
        adding = number % 2 == 0
        version += 1
        if adding:
            start = end = types.Position(line=last_line, character=0)
            new_text = EXTRA
            current = text + EXTRA
        else:
            start = types.Position(line=last_line, character=0)
            end = types.Position(line=last_line + EXTRA.count("\n"), character=0)
            new_text = ""
            current = text
        change = types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=start, end=end), text=new_text
                )
            ],
        )
        cpu_before, client_before = cpu_seconds(server.pid), time.process_time()
        sent = time.perf_counter()
        client.text_document_did_change(change)
        received, count = await published_for(version)
        cpu_after, client_after = cpu_seconds(server.pid), time.process_time()
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        check = reference.check(current, heavy)
        reference_wall = time.perf_counter() - wall_start
        reference_cpu = time.process_time() - cpu_start
        if count != len(check.diagnostics):
            raise AssertionError(
                f"round {number}: the server found {count}, the same check in process "
                f"{len(check.diagnostics)}"
            )
        rows.append(
            {
                "wall": received - sent,
                "after_debounce": received - sent - DEBOUNCE,
                "server_cpu": cpu_after - cpu_before,
                "client_cpu": client_after - client_before,
                "reference_wall": reference_wall,
                "reference_cpu": reference_cpu,
            }
        )

    await client.shutdown_async(None)
    client.exit(None)
    await asyncio.wait_for(server.wait(), 60)
    await client.stop()

    columns = (
        "wall",
        "after_debounce",
        "server_cpu",
        "client_cpu",
        "reference_wall",
        "reference_cpu",
    )
    figures = {column: summary([row[column] for row in rows]) for column in columns}
    ratio = {
        kind: figures["after_debounce"][kind] / figures["reference_wall"][kind]
        for kind in ("median", "fastest")
    }
    return {
        "lines": text.count("\n"),
        "findings": expected,
        "rounds": rounds,
        "debounce": DEBOUNCE,
        "open_to_first_diagnostics": first[0] if first else None,
        "open_to_diagnostics_with_project": ready,
        "figures": figures,
        "ratio_after_debounce_to_reference": ratio,
        "load_average": os.getloadavg(),
    }


def report(result: dict[str, Any]) -> str:
    figures = result["figures"]

    def cell(column: str) -> str:
        value = figures[column]
        return f"{value['median'] * 1000:.0f} / {value['fastest'] * 1000:.0f}"

    ratio = result["ratio_after_debounce_to_reference"]
    lines = [
        f"app/heavy.py: {result['lines']} lines, {result['findings']} findings, "
        f"{result['rounds']} rounds, debounce {result['debounce'] * 1000:.0f} ms",
        f"open -> first diagnostics: {result['open_to_first_diagnostics'] * 1000:.0f} ms; "
        f"-> with the project: {result['open_to_diagnostics_with_project'] * 1000:.0f} ms",
        "",
        "| didChange -> publishDiagnostics (median / fastest) | ms |",
        "|---|---|",
        f"| wall | {cell('wall')} |",
        f"| wall less the debounce | {cell('after_debounce')} |",
        f"| server CPU | {cell('server_cpu')} |",
        f"| client CPU (pygls reading the message) | {cell('client_cpu')} |",
        f"| reference: the same check in process, wall | {cell('reference_wall')} |",
        f"| reference: the same check in process, CPU | {cell('reference_cpu')} |",
        f"| ratio, wall less the debounce / reference wall | "
        f"{ratio['median']:.2f} / {ratio['fastest']:.2f} |",
        "",
        "load average: " + ", ".join(f"{load:.1f}" for load in result["load_average"]),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--lines", type=int, default=500)
    parser.add_argument("--json", type=Path, help="write the figures to this file too")
    parser.add_argument("--commit", help="measure the slotguard of this commit")
    args = parser.parse_args(argv)
    with checkout.slotguard_at(args.commit):
        if args.commit is not None:
            sys.path.insert(0, os.environ["PYTHONPATH"].split(os.pathsep)[0])
        with tempfile.TemporaryDirectory(prefix="slotguard-lsp-") as scratch:
            result = asyncio.run(measure(args.rounds, args.lines, Path(scratch)))
    result["source"] = checkout.describe(args.commit)
    result["command"] = "python bench/lsp_latency.py " + " ".join(argv or sys.argv[1:])
    sys.stdout.write(report(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
