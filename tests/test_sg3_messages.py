"""The SG3 messages name where the resource's scope ends and where it escapes.

The fixtures pin which lines are reported; these tests pin what the messages
say about them, for each way a resource's scope is bounded.
"""

from __future__ import annotations

from pathlib import Path

from fixture_harness import FIXTURES, run

from slotguard.diagnostic import Diagnostic

RULES = FIXTURES / "rules"


def line_in(path: Path, function: str, text: str = "") -> int:
    """The first line at or after ``def function`` that contains ``text``."""
    lines = path.read_text().splitlines()
    start = next(
        n
        for n, line in enumerate(lines)
        if line.lstrip().startswith((f"def {function}(", f"async def {function}("))
    )
    return next(n for n in range(start, len(lines)) if text in lines[n]) + 1


def finding(path: Path, code: str, line: int) -> Diagnostic:
    found = [d for d in run(path, select=[code]) if d.line == line]
    assert len(found) == 1, f"no single {code} at line {line} of {path.name}"
    return found[0]


def test_sg302_injected() -> None:
    path = RULES / "sg302" / "fastapi_dependencies.py"
    line = line_in(path, "positional", "add_task")
    message = finding(path, "SG302", line).message
    assert f"`db` is injected by the dependency `get_db` (line {line - 1})" in message
    assert "closed when the request ends" in message
    assert (
        f"`tasks.add_task` at line {line} hands it to a background task, which runs after the "
        "response is sent"
    ) in message


def test_sg302_entered() -> None:
    path = RULES / "sg302" / "with_blocks_and_parameters.py"
    block = line_in(path, "async_with_task", "async with")
    message = finding(path, "SG302", block + 1).message
    assert f"closed when the `async with` block at line {block} ends (line {block + 2})" in message
    assert f"`asyncio.create_task` at line {block + 1} hands it to a task" in message


def test_sg302_released_later() -> None:
    path = RULES / "sg302" / "with_blocks_and_parameters.py"
    line = line_in(path, "released_in_finally", "executor.submit")
    release = line_in(path, "released_in_finally", "session.close()")
    message = finding(path, "SG302", line).message
    assert f"`session` is released at line {release}" in message
    assert f"`executor.submit` at line {line}" in message


def test_sg302_borrowed() -> None:
    path = RULES / "sg302" / "with_blocks_and_parameters.py"
    parameter = line_in(path, "borrowed_parameter")
    diagnostic = finding(path, "SG302", parameter + 1)
    assert (
        f"borrowed from the caller of `borrowed_parameter` (parameter at line {parameter})"
        in diagnostic.message
    )
    assert [r.span.line for r in diagnostic.related] == [parameter, parameter + 1]


def test_sg302_closure() -> None:
    path = RULES / "sg302" / "fastapi_dependencies.py"
    line = line_in(path, "closure", "add_task")
    assert "hands `later`, which uses it, to a background task" in (
        finding(path, "SG302", line).message
    )


def test_sg301_names_the_scope_and_the_store() -> None:
    path = RULES / "sg301" / "application_state_and_globals.py"
    line = line_in(path, "cache_in_a_module_dict", "_sessions[tenant]")
    message = finding(path, "SG301", line).message
    assert "`db` is injected by the dependency `get_db`" in message
    assert "closed when the request ends" in message
    assert f"the module-level `_sessions[tenant]` at line {line}" in message


def test_sg301_application_state_lives_as_long_as_the_application() -> None:
    path = RULES / "sg301" / "application_state_and_globals.py"
    line = line_in(path, "lifespan", "app.state.db")
    assert "`app.state.db`, which lives as long as the application" in (
        finding(path, "SG301", line).message
    )


def test_sg303_says_it_is_created_at_import_time() -> None:
    path = RULES / "sg303" / "import_time.py"
    line = next(
        n for n, text in enumerate(path.read_text().splitlines(), 1) if "= pool.getconn()" in text
    )
    message = finding(path, "SG303", line).message
    assert "when the module is imported" in message
    assert "`with pool.connection() as ...`" in message
