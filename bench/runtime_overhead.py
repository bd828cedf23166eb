"""What slotguard.runtime adds to a checkout and its return, against a real PostgreSQL.

    python bench/runtime_overhead.py [--iterations N] [--rounds R] [--json FILE]

Starts a throwaway server with the proof harness (``tests/proof/postgres.py``;
PostgreSQL 15 binaries, ``SLOTGUARD_PG_BINDIR`` to point elsewhere) and runs,
for asyncpg, psycopg_pool and SQLAlchemy (over psycopg), the tightest loop
that checks a connection out, runs ``SELECT 1`` and gives it back:

    async with pool.acquire() as c: await c.fetchval("SELECT 1")
    with pool.connection() as c: c.execute("SELECT 1").fetchone()
    with engine.connect() as c: c.execute(text("SELECT 1")).scalar()

in three modes, in the same process, interleaved round by round so that load
on the shared machine hits every mode alike:

- ``untracked``: nothing installed;
- ``tracked``: ``slotguard.runtime.track()``, checkouts only (the pytest plugin's default);
- ``installed``: ``slotguard.runtime.install(threshold=30)``, the production
  form: checkouts, the per-statement hooks of idle-transaction detection, and
  the watchdog thread.

Each figure is the time per iteration, wall clock and this process's CPU time
(the server's work is in another process, so CPU shows what the client side
costs), as the median over the rounds and as the fastest round: other
processes' load only ever adds time, so the fastest round is the least
disturbed, and a median far from it says the run was disturbed. The wall
ratio to ``untracked`` is what the target (<= 1.10) is about; the difference,
in microseconds, is the added time per checkout and return. Not a test:
figures on a shared machine move, ratios measured in one run much less.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from proof.postgres import DEFAULT_BINDIR, PostgresInfo, PostgresServer  # noqa: E402

import slotguard.runtime as runtime  # noqa: E402

MODES = ("untracked", "tracked", "installed")
TARGET = 1.10


DEPTH = runtime.DEFAULT_DEPTH


def mode_context(mode: str) -> AbstractContextManager[Any]:
    if mode == "tracked":
        return runtime.track(depth=DEPTH)
    if mode == "installed":
        return _Installed()
    return nullcontext()


class _Installed:
    def __enter__(self) -> None:
        runtime.install(threshold=30, depth=DEPTH)

    def __exit__(self, *exc: object) -> None:
        runtime.uninstall()


Loop = Callable[[int], None]


def asyncpg_loop(server: PostgresInfo) -> tuple[Loop, Callable[[], None]]:
    import asyncpg

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    pool = loop.run_until_complete(asyncpg.create_pool(server.dsn, min_size=1, max_size=1))

    async def run(iterations: int) -> None:
        for _ in range(iterations):
            async with pool.acquire() as connection:
                await connection.fetchval("SELECT 1")

    def close() -> None:
        loop.run_until_complete(pool.close())
        loop.close()

    return (lambda iterations: loop.run_until_complete(run(iterations))), close


def psycopg_pool_loop(server: PostgresInfo) -> tuple[Loop, Callable[[], None]]:
    from psycopg_pool import ConnectionPool

    pool = ConnectionPool(server.dsn, min_size=1, max_size=1, open=True)
    pool.wait()

    def run(iterations: int) -> None:
        for _ in range(iterations):
            with pool.connection() as connection:
                connection.execute("SELECT 1").fetchone()

    return run, pool.close


def sqlalchemy_loop(server: PostgresInfo) -> tuple[Loop, Callable[[], None]]:
    from sqlalchemy import create_engine, text

    engine = create_engine(server.sqlalchemy_url("psycopg"), pool_size=1, max_overflow=0)
    select = text("SELECT 1")

    def run(iterations: int) -> None:
        for _ in range(iterations):
            with engine.connect() as connection:
                connection.execute(select).scalar()

    return run, engine.dispose


LIBRARIES: dict[str, Callable[[PostgresInfo], tuple[Loop, Callable[[], None]]]] = {
    "asyncpg": asyncpg_loop,
    "psycopg_pool": psycopg_pool_loop,
    "sqlalchemy": sqlalchemy_loop,
}


def measure(run: Loop, mode: str, iterations: int) -> tuple[float, float]:
    """Seconds per iteration, wall and CPU."""
    with mode_context(mode):
        wall, cpu = time.perf_counter(), time.process_time()
        run(iterations)
        return (time.perf_counter() - wall) / iterations, (time.process_time() - cpu) / iterations


def bench(server: PostgresInfo, iterations: int, rounds: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for library, make in LIBRARIES.items():
        run, close = make(server)
        try:
            for mode in MODES:  # warm up every path once: imports, prepared statements, caches
                measure(run, mode, iterations // 10 or 1)
            samples: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
            for round_number in range(rounds):
                order = MODES if round_number % 2 == 0 else tuple(reversed(MODES))
                for mode in order:
                    samples[mode].append(measure(run, mode, iterations))
        finally:
            close()
        results[library] = {"samples": samples} | {
            mode: _figures(samples[mode], samples["untracked"]) for mode in MODES
        }
    return results


def _figures(
    values: list[tuple[float, float]], base: list[tuple[float, float]]
) -> dict[str, float]:
    """Per-iteration figures of one mode, as the median over the rounds and as
    the fastest round: load from other processes only ever adds time, so the
    fastest round is the cost with the least interference, and the median says
    how typical it is."""
    figures: dict[str, float] = {}
    for clock, index in (("wall", 0), ("cpu", 1)):
        for statistic, pick in (("median", statistics.median), ("min", min)):
            mine = pick(value[index] for value in values)
            reference = pick(value[index] for value in base)
            figures[f"{clock}_{statistic}_us"] = mine * 1e6
            figures[f"{clock}_{statistic}_ratio"] = mine / reference
            figures[f"{clock}_{statistic}_added_us"] = (mine - reference) * 1e6
    return figures


def report(results: dict[str, Any]) -> str:
    lines = [
        "| library | mode | wall µs | wall ratio | wall added µs "
        "| CPU µs | CPU ratio | CPU added µs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for library, modes in results.items():
        for mode in MODES:
            f = modes[mode]
            lines.append(
                f"| {library} | {mode} "
                + "".join(
                    f"| {f[f'{clock}_median_us']:.1f} / {f[f'{clock}_min_us']:.1f} "
                    f"| {f[f'{clock}_median_ratio']:.3f} / {f[f'{clock}_min_ratio']:.3f} "
                    f"| {f[f'{clock}_median_added_us']:+.1f} / {f[f'{clock}_min_added_us']:+.1f} "
                    for clock in ("wall", "cpu")
                )
                + "|"
            )
    lines.append("\n(each cell: median over the rounds / fastest round; per checkout and return)")
    for mode in MODES[1:]:
        worst = {
            statistic: max(modes[mode][f"wall_{statistic}_ratio"] for modes in results.values())
            for statistic in ("median", "min")
        }
        verdict = "met" if min(worst.values()) <= TARGET else "missed"
        lines.append(
            f"{mode}: worst wall ratio {worst['median']:.3f} (median), {worst['min']:.3f} "
            f"(fastest round); target <= {TARGET:.2f}: {verdict}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=500, help="per round (default 500)")
    parser.add_argument("--rounds", type=int, default=30, help="per mode (default 30)")
    parser.add_argument(
        "--depth", type=int, default=runtime.DEFAULT_DEPTH, help="project frames per stack"
    )
    parser.add_argument("--json", type=Path, help="write the figures and samples here")
    args = parser.parse_args()
    global DEPTH
    DEPTH = args.depth
    bindir = Path(os.environ.get("SLOTGUARD_PG_BINDIR", DEFAULT_BINDIR))
    load_before = os.getloadavg()[0]
    with PostgresServer(bindir=bindir, port=5499, max_connections=20) as server:
        results = bench(server, args.iterations, args.rounds)
    load_after = os.getloadavg()[0]
    print(report(results))
    print(f"load average {load_before:.1f} before, {load_after:.1f} after")
    if args.json is not None:
        payload = {
            "depth": args.depth,
            "iterations": args.iterations,
            "rounds": args.rounds,
            "load": [load_before, load_after],
            "results": results,
        }
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
