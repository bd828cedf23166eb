"""Executable evidence: each scenario under ``fixtures/proof`` leaks on a real
PostgreSQL server, slotguard reports it, and the fixed program does not leak.

For every scenario, four claims, each its own test so that a failure names
the scenario and the claim:

(a) slotguard reports exactly the codes marked on its lines (``# error:``),
    with the default rules, as users run it;
(b) run N times against a pool of K, it leaves connections held where the
    pool's counters and the server's ``pg_stat_activity`` both show them
    (idle in transaction where the rule is about transactions), and the pool
    is exhausted when the leak is permanent;
(c) ``slotguard fix`` (``--unsafe-fixes`` where the fix is unsafe) rewrites a
    copy of it, and slotguard reports nothing on the result; for a rule with
    no fix, slotguard has none to offer, and a hand-written correct version
    (``<name>_correct.py``) is what gets proven instead, with nothing reported;
(d) the fixed (or correct) program, run the same way, leaves the pool at its
    baseline (nothing checked out, nothing exhausted), the server with only the
    pool's idle connections, and returns the same results as the original.

A claim that does not hold is kept as a strict ``xfail`` with the reason: a
discrepancy between what slotguard says and what the server shows is the
finding these tests exist for.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from fixture_harness import FIXTURES, compare, run

from proof.observe import Observer, PoolCounts, ServerConnections, run_scenario
from proof.postgres import PostgresInfo
from slotguard.rules import all_rules

pytestmark = pytest.mark.proof

PROOF = FIXTURES / "proof"
SLOTGUARD = Path(sys.executable).with_name("slotguard")
ITERATIONS = 3
POOL_SIZE = 3
"""Every scenario leaks at most one connection per iteration, so N = K leaks the
whole pool without any call having to wait for a connection."""
SERVER_TIMEOUT_SECONDS = 3.0
"""How long the server may take to show what a scenario did, before the
assertion looks at what it shows."""


@dataclass(frozen=True)
class Scenario:
    """One program under ``fixtures/proof`` and what it must show.

    ``held`` connections are what the leaking program holds at the checkpoint
    ``at`` ("end": after its N iterations; "during": while its slow external
    call or its sleep waits). ``on_server`` is False where the driver closes a connection
    its pool lost track of once nothing references it: the pool's counters
    still miss it, the server no longer has it.
    """

    name: str
    codes: frozenset[str]
    fix: Literal["safe", "unsafe"] | None
    """None: slotguard has no fix; ``<name>_correct.py`` is proven instead."""
    held: int
    at: str = "end"
    pooled: bool = True
    in_transaction: bool = False
    on_server: bool = True
    exhausts: bool = True
    remaining: frozenset[str] = frozenset()
    """Codes slotguard still reports after the fix, by design (their own fix is unsafe)."""
    leak_xfail: str | None = None
    """Why the original does not leak although slotguard says it does."""
    opt_in: tuple[str, ...] = ()
    """Opt-in rules the scenario is about, selected beside the default ones."""
    fix_xfail: str | None = None
    """Why the fixed program still leaks or behaves differently."""

    @property
    def path(self) -> Path:
        return PROOF / f"{self.name}.py"

    @property
    def correct_path(self) -> Path:
        return PROOF / f"{self.name}_correct.py"


def _scenario(name: str, codes: str, fix: Literal["safe", "unsafe"] | None, **kw: Any) -> Any:
    scenario = Scenario(name, frozenset(codes.split()), fix, **kw)
    return pytest.param(scenario, id=name)


CPYTHON_CLOSES_UNREFERENCED = (
    "not a leak under CPython: the connection's reference count drops to zero when the "
    "function returns and the driver closes it then; it leaks only where something keeps "
    "it referenced (a kept exception's traceback, a cycle, another interpreter)"
)

SCENARIOS = [
    _scenario(
        "sg101_psycopg_pool_never_returned", "SG101", "unsafe", held=ITERATIONS, on_server=False
    ),
    _scenario("sg101_asyncpg_pool_never_released", "SG101", "unsafe", held=ITERATIONS),
    _scenario(
        "sg102_sqlalchemy_session_never_closed",
        "SG102",
        "unsafe",
        held=ITERATIONS,
        in_transaction=True,
    ),
    _scenario(
        "sg102_sqlalchemy_session_created_inline",
        "SG102",
        "unsafe",
        held=ITERATIONS,
        in_transaction=True,
    ),
    _scenario(
        "sg102_sqlalchemy_orm_column_values",
        "SG102",
        "unsafe",
        held=ITERATIONS,
        in_transaction=True,
    ),
    _scenario(
        "sg201_sqlalchemy_session_or_file_pair",
        "SG201",
        "unsafe",
        held=ITERATIONS,
        in_transaction=True,
    ),
    _scenario(
        "sg102_sqlalchemy_async_session_on_error",
        "SG202",
        "safe",
        held=ITERATIONS,
        in_transaction=True,
    ),
    _scenario(
        "sg103_aiopg_connect_never_closed",
        "SG103",
        "unsafe",
        held=ITERATIONS,
        pooled=False,
        exhausts=False,
    ),
    _scenario(
        "sg108_asyncpg_connect_never_closed",
        "SG108",
        None,
        held=ITERATIONS,
        pooled=False,
        exhausts=False,
        opt_in=("SG108",),
    ),
    _scenario(
        "sg108_asyncpg_connect_closed_on_success_only",
        "SG108",
        None,
        held=ITERATIONS,
        pooled=False,
        exhausts=False,
        opt_in=("SG108",),
    ),
    _scenario(
        "sg108_psycopg2_connect_never_closed",
        "SG108",
        None,
        held=ITERATIONS,
        pooled=False,
        exhausts=False,
        leak_xfail=CPYTHON_CLOSES_UNREFERENCED,
        opt_in=("SG108",),
    ),
    _scenario("sg104_psycopg2_pool_with_getconn", "SG104", "safe", held=ITERATIONS),
    _scenario(
        "sg108_psycopg2_connect_with",
        "SG108",
        "safe",
        held=ITERATIONS,
        pooled=False,
        exhausts=False,
        leak_xfail=CPYTHON_CLOSES_UNREFERENCED,
        opt_in=("SG108",),
    ),
    _scenario(
        "sg104_sqlalchemy_session_no_autoflush",
        "SG104",
        "unsafe",
        held=ITERATIONS,
        in_transaction=True,
    ),
    _scenario("sg105_next_on_get_db", "SG105", "unsafe", held=ITERATIONS, in_transaction=True),
    _scenario(
        "sg106_sqlalchemy_scoped_session_in_threads",
        "SG106",
        "unsafe",
        held=ITERATIONS,
        in_transaction=True,
    ),
    _scenario(
        "sg107_sqlalchemy_session_used_after_its_block",
        "SG107",
        None,
        held=ITERATIONS,
        in_transaction=True,
    ),
    _scenario("sg201_asyncpg_early_return", "SG201", "safe", held=ITERATIONS),
    _scenario("sg201_psycopg2_pool_continue", "SG201", "safe", held=ITERATIONS),
    _scenario(
        "sg202_psycopg_async_pool_exception",
        "SG202",
        "safe",
        held=ITERATIONS,
        on_server=False,
    ),
    _scenario("sg202_sqlalchemy_connection_exception", "SG202", "safe", held=ITERATIONS),
    _scenario("sg202_psycopg2_pool_released_before_each_exit", "SG202", "unsafe", held=ITERATIONS),
    _scenario("sg203_asyncpg_asynccontextmanager", "SG203", "safe", held=ITERATIONS),
    _scenario("sg203_psycopg2_pool_stream_released_each_way", "SG203", "safe", held=ITERATIONS),
    _scenario(
        "sg203_sqlalchemy_generator_dependency",
        "SG203",
        "safe",
        held=ITERATIONS,
        in_transaction=True,
    ),
    _scenario(
        "sg301_sqlalchemy_session_cached_per_tenant",
        "SG301",
        None,
        held=ITERATIONS,
        in_transaction=True,
    ),
    _scenario(
        "sg302_sqlalchemy_async_session_in_background_task",
        "SG302",
        None,
        held=ITERATIONS,
        in_transaction=True,
    ),
    _scenario(
        "sg303_sqlalchemy_session_at_import",
        "SG303",
        None,
        # One session for the process, however many calls share it.
        held=1,
        in_transaction=True,
        exhausts=False,
    ),
    _scenario(
        "sg401_psycopg_pool_http_in_transaction",
        "SG401",
        None,
        held=ITERATIONS,
        at="during",
        in_transaction=True,
    ),
    _scenario("sg402_asyncpg_poll_while_holding", "SG402", None, held=ITERATIONS, at="during"),
    _scenario(
        "sg403_psycopg2_cursor_http_before_commit",
        "SG403",
        None,
        held=ITERATIONS,
        at="during",
        in_transaction=True,
    ),
    _scenario(
        "sg403_sqlalchemy_session_http_before_commit",
        "SG403",
        None,
        held=ITERATIONS,
        at="during",
        in_transaction=True,
    ),
    _scenario(
        "sg501_asyncpg_pool_per_job_never_closed",
        "SG501",
        "unsafe",
        held=ITERATIONS,
        pooled=False,
        exhausts=False,
    ),
    _scenario(
        "sg501_starlette_lifespan_never_closes_pool",
        "SG501",
        "unsafe",
        held=ITERATIONS,
        pooled=False,
        exhausts=False,
    ),
    _scenario(
        "sg501_starlette_engine_without_shutdown",
        "SG501",
        "unsafe",
        held=1,
        pooled=False,
        exhausts=False,
    ),
    _scenario(
        "sg501_sqlalchemy_engine_per_call_never_disposed",
        "SG501",
        "unsafe",
        held=ITERATIONS,
        pooled=False,
        exhausts=False,
    ),
    _scenario(
        "sg502_starlette_pool_opened_on_startup",
        "SG502",
        "unsafe",
        held=ITERATIONS,
        pooled=False,
        exhausts=False,
    ),
]


@dataclass(frozen=True)
class Observation:
    """What a checkpoint showed: the scenario's own view of its pool, and the server's."""

    pool: PoolCounts | None
    server: ServerConnections


Expectation = Callable[[PoolCounts | None, ServerConnections], bool]


def run_observed(
    script: Path, postgres: PostgresInfo, observer: Observer, expect: Expectation
) -> tuple[dict[str, Any], dict[str, list[Observation]]]:
    """Run a scenario; at each checkpoint wait (boundedly) for the server to
    show what ``expect`` wants, and record what it shows."""
    seen: dict[str, list[Observation]] = {}

    def look(name: str, data: dict[str, Any]) -> None:
        pool = PoolCounts(**data["pool"]) if data.get("pool") is not None else None
        server = observer.settle(
            until=lambda connections: expect(pool, connections), timeout=SERVER_TIMEOUT_SECONDS
        )
        seen.setdefault(name, []).append(Observation(pool, server))

    report = run_scenario(
        script, postgres.dsn, iterations=ITERATIONS, pool_size=POOL_SIZE, at_checkpoint=look
    )
    return report, seen


def leaked(scenario: Scenario) -> Expectation:
    """The leak as both the pool and the server must show it."""

    def holds(pool: PoolCounts | None, server: ServerConnections) -> bool:
        if scenario.pooled and (pool is None or pool.checked_out < scenario.held):
            return False
        if not scenario.on_server:
            return True
        pooled_idle = pool.idle if pool is not None else 0
        if server.total - pooled_idle < scenario.held:
            return False
        return not scenario.in_transaction or server.idle_in_transaction >= scenario.held

    return holds


def clean(pool: PoolCounts | None, server: ServerConnections) -> bool:
    """Nothing checked out, and the server holds only the pool's idle connections."""
    open_in_pool = pool.open if pool is not None else 0
    checked_out = pool.checked_out if pool is not None else 0
    return checked_out == 0 and server.total == server.idle == open_in_pool


def default_codes() -> list[str]:
    return [rule.code for rule in all_rules() if rule.default]


def slotguard(*arguments: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(SLOTGUARD), *arguments, "--no-cache"], capture_output=True, text=True, check=False
    )
    assert result.returncode in (0, 1), f"slotguard {arguments}: {result.stderr}"
    return result


@dataclass(frozen=True)
class FixRun:
    """What ``slotguard fix`` made of every scenario, and what ``check`` says afterwards."""

    programs: dict[str, Path]
    """Scenario name -> the program to prove: the fixed copy, or the correct version."""
    findings: dict[Path, list[str]]
    """Resolved program path -> the codes slotguard reports on it."""
    offered: str
    """``fix --diff --unsafe-fixes`` over the scenarios slotguard has no fix for."""


@pytest.fixture(scope="session")
def fix_run(tmp_path_factory: pytest.TempPathFactory) -> FixRun:
    """One ``slotguard fix`` per applicability over copies of all the scenarios,
    and one ``check`` over the results: the command line takes a second or two
    to start, so the scenarios share each run (they do not import each other)."""
    base = tmp_path_factory.mktemp("fixed")
    scenarios: list[Scenario] = [parameter.values[0] for parameter in SCENARIOS]
    programs: dict[str, Path] = {}
    groups: dict[tuple[str | None, tuple[str, ...]], list[Path]] = {}
    for scenario in scenarios:
        if scenario.fix is None:
            program = scenario.correct_path
        else:
            program = base / "-".join((scenario.fix, *scenario.opt_in)) / scenario.path.name
            program.parent.mkdir(exist_ok=True)
            shutil.copyfile(scenario.path, program)
        programs[scenario.name] = program
        groups.setdefault((scenario.fix, scenario.opt_in), []).append(program)
    offered = ""
    findings: dict[Path, list[str]] = {program.resolve(): [] for program in programs.values()}
    for (fix, opt_in), members in groups.items():
        selection = ["--extend-select", ",".join(opt_in)] if opt_in else []
        if fix is not None:
            unsafe = ["--unsafe-fixes"] if fix == "unsafe" else []
            slotguard("fix", *unsafe, *selection, str(members[0].parent))
        else:
            originals = [str(s.path) for s in scenarios if s.fix is None and s.opt_in == opt_in]
            offered += slotguard("fix", "--diff", "--unsafe-fixes", *selection, *originals).stdout
        checked = slotguard("check", "--output-format=json", *selection, *map(str, members))
        for finding in json.loads(checked.stdout):
            findings[Path(finding["path"]).resolve()].append(finding["code"])
    return FixRun(programs, findings, offered)


_original_reports: dict[str, dict[str, Any]] = {}
"""The leaking runs' reports, for comparing results with the fixed runs'."""


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_slotguard_reports_the_leak(scenario: Scenario) -> None:
    diagnostics = run(scenario.path, select=[*default_codes(), *scenario.opt_in])
    problems = compare(scenario.path, diagnostics)
    assert not problems, "\n".join(problems)
    assert {diagnostic.code for diagnostic in diagnostics} == scenario.codes


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_original_leaks(
    scenario: Scenario,
    postgres: PostgresInfo,
    observer: Observer,
    request: pytest.FixtureRequest,
) -> None:
    if scenario.leak_xfail:
        request.applymarker(pytest.mark.xfail(strict=True, reason=scenario.leak_xfail))
    report, seen = run_observed(scenario.path, postgres, observer, leaked(scenario))
    _original_reports[scenario.name] = report
    assert scenario.at in seen, f"no checkpoint {scenario.at!r}: {seen}"
    last = seen[scenario.at][-1]
    assert leaked(scenario)(last.pool, last.server), (
        f"no leak of {scenario.held} at {scenario.at!r}: {last}; report {report}"
    )
    if scenario.exhausts:
        assert report["exhausted"] is True, report


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_fix_removes_the_findings(scenario: Scenario, fix_run: FixRun) -> None:
    program = fix_run.programs[scenario.name]
    if scenario.fix is None:
        assert scenario.path.name not in fix_run.offered, (
            f"slotguard now has a fix for {scenario.name}:\n{fix_run.offered}"
        )
    else:
        assert program.read_text() != scenario.path.read_text(), "slotguard fix changed nothing"
    assert sorted(fix_run.findings[program.resolve()]) == sorted(scenario.remaining)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_fixed_program_does_not_leak(
    scenario: Scenario,
    postgres: PostgresInfo,
    observer: Observer,
    fix_run: FixRun,
    request: pytest.FixtureRequest,
) -> None:
    if scenario.fix_xfail:
        request.applymarker(pytest.mark.xfail(strict=True, reason=scenario.fix_xfail))
    report, seen = run_observed(fix_run.programs[scenario.name], postgres, observer, clean)
    assert "end" in seen, f"no checkpoint 'end': {seen}"
    for name, observations in seen.items():
        for observation in observations:
            assert clean(observation.pool, observation.server), f"at {name!r}: {observation}"
    assert report["exhausted"] in (False, None), report
    original = _original_reports.get(scenario.name)
    if original is None:
        original = run_scenario(
            scenario.path, postgres.dsn, iterations=ITERATIONS, pool_size=POOL_SIZE
        )
        observer.settle(until=lambda connections: connections.total == 0)
    assert report["results"] == original["results"]
