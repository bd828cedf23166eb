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


def labels(diagnostic: Diagnostic) -> list[tuple[int, str]]:
    return [(related.span.line, related.message) for related in diagnostic.related]


def test_sg302_injected() -> None:
    path = RULES / "sg302" / "fastapi_dependencies.py"
    line = line_in(path, "positional", "add_task")
    diagnostic = finding(path, "SG302", line)
    assert diagnostic.message == (
        "`tasks.add_task` hands `db` to a background task (closed when the request ends)"
    )
    assert (line - 1, "injected by the dependency `get_db`: closed when the request ends") in (
        labels(diagnostic)
    )
    (_, escape), *_ = [label for label in labels(diagnostic) if label[0] == line]
    assert escape.startswith("escapes here: it runs after the response is sent")


def test_sg302_entered() -> None:
    path = RULES / "sg302" / "with_blocks_and_parameters.py"
    block = line_in(path, "async_with_task", "async with")
    diagnostic = finding(path, "SG302", block + 1)
    assert diagnostic.message == (
        f"`asyncio.create_task` hands `session` to a task (its `async with` block ends at "
        f"line {block + 2})"
    )
    assert (block + 2, "the block ends here and releases it") in labels(diagnostic)


def test_sg302_released_later() -> None:
    path = RULES / "sg302" / "with_blocks_and_parameters.py"
    line = line_in(path, "released_in_finally", "executor.submit")
    release = line_in(path, "released_in_finally", "session.close()")
    diagnostic = finding(path, "SG302", line)
    assert diagnostic.message.endswith(f"(released at line {release})")
    assert diagnostic.message.startswith("`executor.submit` hands `session`")
    assert (release, "released here") in labels(diagnostic)


def test_sg302_borrowed() -> None:
    path = RULES / "sg302" / "with_blocks_and_parameters.py"
    parameter = line_in(path, "borrowed_parameter")
    diagnostic = finding(path, "SG302", parameter + 1)
    assert diagnostic.message.endswith("(borrowed from the caller)")
    assert (
        parameter,
        "borrowed here: the caller may close it when `borrowed_parameter` returns",
    ) in labels(diagnostic)
    assert [r.span.line for r in diagnostic.related] == [parameter, parameter + 1]


def test_sg302_closure() -> None:
    path = RULES / "sg302" / "fastapi_dependencies.py"
    line = line_in(path, "closure", "add_task")
    assert "hands `later`, which uses `db`, to a background task" in (
        finding(path, "SG302", line).message
    )


def test_sg301_names_the_scope_and_the_store() -> None:
    path = RULES / "sg301" / "application_state_and_globals.py"
    line = line_in(path, "cache_in_a_module_dict", "_sessions[tenant]")
    diagnostic = finding(path, "SG301", line)
    assert diagnostic.message == (
        "`db` is stored in the module-level `_sessions[tenant]` (closed when the request ends)"
    )
    assert any(
        where == line and label.startswith("stored here, for the life of the process")
        for where, label in labels(diagnostic)
    )


def test_sg301_application_state_lives_as_long_as_the_application() -> None:
    path = RULES / "sg301" / "application_state_and_globals.py"
    line = line_in(path, "lifespan", "app.state.db")
    diagnostic = finding(path, "SG301", line)
    assert "is stored in application state `app.state.db`" in diagnostic.message
    assert any("for the life of the application" in label for where, label in labels(diagnostic))


def test_sg303_says_it_is_created_at_import_time() -> None:
    path = RULES / "sg303" / "import_time.py"
    line = next(
        n for n, text in enumerate(path.read_text().splitlines(), 1) if "= pool.getconn()" in text
    )
    diagnostic = finding(path, "SG303", line)
    assert diagnostic.message.endswith("is created when the module is imported")
    assert any("`with pool.connection() as ...`" in label for _, label in labels(diagnostic))


def test_first_lines_stay_short() -> None:
    """What leaks and where in about 100 characters; the rest is in the frame."""
    long = [
        (path.name, diagnostic.code, diagnostic.message)
        for path in sorted(RULES.glob("sg*/*.py"))
        for diagnostic in run(path)
        if len(diagnostic.message) > 110
    ]
    assert long == []
