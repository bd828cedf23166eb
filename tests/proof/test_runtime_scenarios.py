"""The proof scenarios under slotguard.runtime: the runtime twin sees what the server sees.

Each scenario of ``fixtures/proof`` (the table in :mod:`proof.test_scenarios`)
runs under the tracker (``under_tracker.py``), followed in the same process by
its fixed form (``slotguard fix`` applied to a copy, or ``<name>_correct.py``
where slotguard has no fix). At the checkpoint where the scenario's leak shows
on the server ("end", or "during" the slow call for SG4), the tracker must
hold a connection or an idle transaction taken through the scenario, and name
the line marked ``# error:``: as a frame of the stacks (the one that took the
connection and, for a session, the one that created the session), or through
a finding ``slotguard check`` reports on them (the plugin's message shows
both). At every checkpoint of the fixed form it must hold nothing taken
through it.

Some leaks are not the tracker's to see, and the test says which and why
(``UNSEEN``): a direct psycopg2 connection that CPython closes as soon as
nothing refers to it is no leak at runtime (the server agrees, see
``CPYTHON_CLOSES_UNREFERENCED``); a pool left open holds no checkout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from proof.postgres import PostgresInfo
from proof.test_scenarios import SCENARIOS, Scenario
from slotguard.runtime.stack import Frame
from slotguard.runtime.static import StaticCheck

pytestmark = pytest.mark.proof

TESTS = Path(__file__).resolve().parent.parent
RUNNER = Path(__file__).resolve().parent / "under_tracker.py"
ITERATIONS = 2
POOL_SIZE = 2
TIMEOUT_SECONDS = 60

UNSEEN = {
    "sg108_psycopg2_connect_never_closed": "CPython closes it when nothing refers to it",
    "sg108_psycopg2_connect_with": "CPython closes it when nothing refers to it",
    "sg501_asyncpg_pool_per_job_never_closed": "a pool left open holds no checkout",
    "sg501_sqlalchemy_engine_per_call_never_disposed": "a pool left open holds no checkout",
    "sg501_starlette_lifespan_never_closes_pool": "a pool left open holds no checkout",
    "sg501_starlette_engine_without_shutdown": "a pool left open holds no checkout",
    "sg502_starlette_pool_opened_on_startup": "a pool left open holds no checkout",
}


@dataclass(frozen=True)
class Held:
    """A connection out, or a transaction idle, at a checkpoint, with its stack."""

    what: str
    frames: tuple[Frame, ...]


def scenarios() -> list[Any]:
    return [pytest.param(param.values[0], id=param.id) for param in SCENARIOS]


@pytest.fixture(scope="module")
def fixed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each scenario's fixed form: ``slotguard fix`` on a copy, in this process
    (the scenarios' proof runs the command line; here only the result matters)."""
    from slotguard.config import Config
    from slotguard.engine import check_paths
    from slotguard.fix_command import run_fixes
    from slotguard.settings import Settings

    base = tmp_path_factory.mktemp("runtime-fixed")
    programs: dict[str, Path] = {}
    for applicability in ("safe", "unsafe"):
        chosen = [s for p in SCENARIOS if (s := p.values[0]).fix == applicability]
        copies = []
        for scenario in chosen:
            copy = base / applicability / scenario.path.name
            copy.parent.mkdir(exist_ok=True)
            shutil.copyfile(scenario.path, copy)
            copies.append(copy)
            programs[scenario.name] = copy
        settings = Settings.from_config(Config(), use_cache=False, jobs=1)
        result = check_paths(copies, settings, {copy: str(copy) for copy in copies})
        run_fixes(result, settings, unsafe=applicability == "unsafe", diff=False)
    for parameter in SCENARIOS:
        scenario = parameter.values[0]
        programs.setdefault(scenario.name, scenario.correct_path)
    return programs


@pytest.fixture(scope="module")
def static() -> StaticCheck:
    return StaticCheck()


def run_under_tracker(
    programs: list[Path], dsn: str, record: Path
) -> dict[str, dict[str, list[Held]]]:
    """Run the programs in one process under the tracker: program -> checkpoint ->
    what was held there through that program (the last time it was reached)."""
    python_path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    arguments = [f"--dsn={dsn}", f"--iterations={ITERATIONS}", f"--pool-size={POOL_SIZE}"]
    command = [sys.executable, str(RUNNER), str(record), *map(str, programs), "--", *arguments]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        env={**os.environ, "PYTHONPATH": python_path},
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    seen: dict[str, dict[str, list[Held]]] = {}
    for checkpoint in json.loads(record.read_text()):
        program = checkpoint["program"]
        held = [
            Held(entry["what"], tuple(_frame(frame) for frame in entry["frames"]))
            for entry in checkpoint["held"] + checkpoint["idle"]
        ]
        through = [h for h in held if any(f.filename == program for f in h.frames)]
        seen.setdefault(program, {})[checkpoint["checkpoint"]] = through
    return seen


def _frame(data: dict[str, Any]) -> Frame:
    return Frame(**{**data, "lines": frozenset(data["lines"])})


def marked_line(path: Path) -> int:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if re.search(r"#\s*error:", line):
            return number
    raise AssertionError(f"{path.name} marks no line")


def named_lines(held: list[Held], program: Path, static: StaticCheck) -> set[int]:
    """The lines of ``program`` a report of ``held`` names: its frames' lines and
    the lines of slotguard's findings on its stacks."""
    lines = set()
    for entry in held:
        lines.update(f.line for f in entry.frames if f.filename == str(program))
        lines.update(
            finding.line
            for finding in static.findings(entry.frames)
            if finding.filename == str(program)
        )
    return lines


@pytest.mark.parametrize("scenario", scenarios())
def test_the_tracker_sees_the_leak_and_not_the_fix(
    scenario: Scenario,
    postgres: PostgresInfo,
    fixed: dict[str, Path],
    static: StaticCheck,
    tmp_path: Path,
) -> None:
    program, fixed_program = scenario.path, fixed[scenario.name]
    seen = run_under_tracker([program, fixed_program], postgres.dsn, tmp_path / "record.json")
    leaking = seen.get(str(program), {})
    assert scenario.at in leaking, f"no checkpoint {scenario.at!r}: {sorted(leaking)}"
    for checkpoint, held in seen.get(str(fixed_program), {}).items():
        assert held == [], f"the fixed form holds at {checkpoint!r}: {held}"
    held = leaking[scenario.at]
    if scenario.name in UNSEEN:
        assert held == [], f"{UNSEEN[scenario.name]}, yet the tracker holds {held}"
        return
    assert held, f"the tracker holds nothing through {program.name} at {scenario.at!r}"
    named = named_lines(held, program, static)
    assert marked_line(program) in named, (
        f"line {marked_line(program)} is not named; the report names lines {sorted(named)}"
    )
