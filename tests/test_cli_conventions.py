"""The command line as ruff users expect it, and its edges: encodings in
code frames, standard input, contradictory options, what a run says about
itself (SPEC sections 3 and 5)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from slotguard.cli import cli

LEAKY = """\
import asyncpg


async def load(pool: asyncpg.Pool, key):
    conn = await pool.acquire()
    if key is None:
        return None
    try:
        return await conn.fetchrow("select $1", key)
    finally:
        await pool.release(conn)
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "slotguard.toml").write_text("")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "leaky.py").write_text(LEAKY)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(*args: str, stdin: bytes | str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


LATIN_1 = (
    "# -*- coding: latin-1 -*-\n" + LEAKY.replace("acquire()\n", "acquire()  # café\n")
).encode("latin-1")


def test_code_frames_show_a_declared_encoding_decoded(project: Path) -> None:
    (project / "app" / "latin.py").write_bytes(LATIN_1)
    code, out, _ = invoke("check", "--no-cache", "app/latin.py")
    assert code == 1
    assert "conn = await pool.acquire()  # café" in out and "\ufffd" not in out
    code, out, _ = invoke("check", "--stdin-filename", "app/buffer.py", stdin=LATIN_1)
    assert code == 1
    assert "conn = await pool.acquire()  # café" in out and "\ufffd" not in out


def test_a_symbolic_link_loop_on_the_command_line_is_named_as_one(project: Path) -> None:
    (project / "loop_a").symlink_to("loop_b")
    (project / "loop_b").symlink_to("loop_a")
    (project / "dangling.py").symlink_to("gone.py")
    code, _, err = invoke("check", "loop_a")
    assert code == 2
    assert "loop_a: a symbolic link loop" in err and "no such file" not in err
    code, _, err = invoke("check", "dangling.py")
    assert code == 2 and "dangling.py: a symbolic link to gone.py, which does not exist" in err
    code, _, err = invoke("check", "missing.py")
    assert code == 2 and "missing.py: no such file or directory" in err


FIXED = LEAKY.replace(
    """    conn = await pool.acquire()
    if key is None:
        return None
    try:
        return await conn.fetchrow("select $1", key)
    finally:
        await pool.release(conn)
""",
    """    async with pool.acquire() as conn:
        if key is None:
            return None
        return await conn.fetchrow("select $1", key)
""",
)


def test_dash_reads_standard_input(project: Path) -> None:
    code, out, _ = invoke("check", "--output-format", "concise", "-", stdin=LEAKY)
    assert code == 1 and out.startswith("-:5:12: SG201")
    code, out, _ = invoke(
        "check", "--output-format", "concise", "--stdin-filename", "app/x.py", "-", stdin=LEAKY
    )
    assert code == 1 and out.startswith("app/x.py:5:12: SG201")
    code, _, err = invoke("check", "-", "app", stdin=LEAKY)
    assert code == 2 and "`-`" in err


def test_fix_from_standard_input_prints_the_fixed_source(project: Path) -> None:
    result = CliRunner().invoke(cli, ["fix", "--stdin-filename", "app/x.py"], input=LEAKY)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == FIXED
    assert "fixed 1 finding" in result.stderr
    result = CliRunner().invoke(cli, ["fix", "-q", "-"], input=FIXED)
    assert (result.exit_code, result.stdout, result.stderr) == (0, FIXED, "")
    # As `check --fix`, and keeping the encoding it declares.
    source = LATIN_1.decode("latin-1")
    result = CliRunner().invoke(cli, ["check", "--fix", "-"], input=LATIN_1)
    assert result.stdout_bytes.decode("latin-1").startswith("# -*- coding: latin-1 -*-\n")
    assert "async with pool.acquire() as conn:  # café" in result.stdout_bytes.decode("latin-1")
    assert source != result.stdout_bytes.decode("latin-1")
    assert not (project / "-").exists() and (project / "app" / "leaky.py").read_text() == LEAKY


def test_fix_diff_from_standard_input_prints_the_diff(project: Path) -> None:
    result = CliRunner().invoke(cli, ["fix", "--diff", "--stdin-filename", "app/x.py"], input=LEAKY)
    assert result.exit_code == 1
    assert result.stdout.startswith("--- a/app/x.py\n+++ b/app/x.py\n")
    assert "+    async with pool.acquire() as conn:\n" in result.stdout
    result = CliRunner().invoke(cli, ["fix", "--diff", "-"], input=FIXED)
    assert (result.exit_code, result.stdout) == (0, "")


def test_findings_left_after_fixing_standard_input_go_to_stderr(project: Path) -> None:
    left = "import aiopg\n\n\nasync def load(dsn):\n    conn = await aiopg.connect(dsn)\n"
    result = CliRunner().invoke(cli, ["fix", "--output-format", "concise", "-"], input=left)
    assert result.exit_code == 1
    assert result.stdout == left
    assert "-:5:12: SG103" in result.stderr


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["check", "--add-noqa", "--fix", "app"], ["--add-noqa", "--fix"]),
        (["check", "--add-noqa", "--diff", "app"], ["--add-noqa", "--diff"]),
        (["fix", "--add-noqa", "app"], ["--add-noqa", "`slotguard fix`"]),
        (["check", "--fix", "--write-baseline", "b.json", "app"], ["--fix", "--write-baseline"]),
        (["fix", "--write-baseline", "b.json", "app"], ["--write-baseline", "`slotguard fix`"]),
        (["fix", "--diff", "--output-format", "json", "app"], ["--diff", "--output-format"]),
        (["check", "--diff", "--output-format", "full", "app"], ["--diff", "--output-format"]),
        (["check", "--isolated", "--config", "slotguard.toml"], ["--isolated", "--config"]),
        (["check", "--add-noqa", "--stdin-filename", "x.py"], ["--add-noqa", "--stdin-filename"]),
        (["check", "--add-noqa", "-"], ["--add-noqa", "`-`"]),
    ],
)
def test_contradictory_options_are_usage_errors(
    project: Path, arguments: list[str], named: list[str]
) -> None:
    code, out, err = invoke(*arguments, stdin=LEAKY)
    assert code == 2, err
    assert all(name in err for name in named), err
    assert out == "" and (project / "app" / "leaky.py").read_text() == LEAKY
    assert not (project / "b.json").exists()


def test_quiet_fix_prints_no_summary(project: Path) -> None:
    code, out, err = invoke("fix", "-q", "--no-cache", "app")
    assert code == 0 and err == "" and out == ""
    assert "async with" in (project / "app" / "leaky.py").read_text()


def test_show_settings_names_the_configuration_file_and_what_runs(project: Path) -> None:
    (project / "slotguard.toml").write_text('select = ["SG1"]\n')
    nested = project / "app" / "nested"
    nested.mkdir()
    code, out, _ = invoke("check", "--show-settings", "app/nested")
    assert code == 0
    assert f"# configuration file: {(project / 'slotguard.toml').resolve()}" in out
    assert 'select = ["SG1"]' in out
    assert "SG101" in out.split("rules = ", 1)[1].splitlines()[0]
    assert "SG201" not in out.split("rules = ", 1)[1].splitlines()[0]
    code, out, _ = invoke("check", "--show-settings", "--isolated", "app/nested")
    assert code == 0 and "# configuration file: none (--isolated)" in out
    assert "SG201" in out.split("rules = ", 1)[1].splitlines()[0]


def test_isolated_ignores_every_configuration_file(project: Path) -> None:
    (project / "slotguard.toml").write_text('select = ["SG1"]\n')
    code, out, _ = invoke("check", "--no-cache", "--output-format", "concise", "app")
    assert code == 0 and "SG201" not in out
    code, out, _ = invoke("check", "--no-cache", "--isolated", "--output-format", "concise", "app")
    assert code == 1 and "SG201" in out


def test_show_files_lists_what_a_run_would_check(project: Path) -> None:
    (project / "app" / "build").mkdir()
    (project / "app" / "build" / "generated.py").write_text(LEAKY)
    (project / "app" / "clean.py").write_text("x = 1\n")
    code, out, err = invoke("check", "--show-files", "app")
    assert (code, out, err) == (0, "app/clean.py\napp/leaky.py\n", "")


@pytest.mark.parametrize("fmt", ["full", "concise", "json"])
def test_a_run_without_python_files_says_so(project: Path, fmt: str) -> None:
    (project / "docs").mkdir()
    (project / "docs" / "index.md").write_text("# docs\n")
    code, out, err = invoke("check", "--output-format", fmt, "docs")
    assert code == 0
    assert "no Python files found" in err and "All checks passed" not in out + err
    assert out == ("[]\n" if fmt == "json" else "")
    code, out, err = invoke("fix", "docs")
    assert code == 0 and "no Python files found" in err


def test_explain_takes_a_rule_name(project: Path) -> None:
    by_code = invoke("explain", "SG201")
    assert by_code[0] == 0
    assert invoke("explain", "release-skipped-on-exit") == by_code
    assert invoke("explain", "sg201") == by_code
    code, _, err = invoke("explain", "release-skiped-on-exit")
    assert code == 2 and "did you mean release-skipped-on-exit (SG201)?" in err


def test_explain_a_family_lists_its_rules(project: Path) -> None:
    code, out, err = invoke("explain", "SG2")
    assert code == 0, err
    assert "SG502" not in out + err
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("SG")]
    assert listed == ["SG201", "SG202", "SG203"]
    assert "release-skipped-on-exit" in out and "slotguard explain SG201" in out


@pytest.mark.parametrize("selector", ["E501", "F401", "B"])
def test_a_code_of_another_linter_is_named_as_such(project: Path, selector: str) -> None:
    code, _, err = invoke("check", "--select", selector, "app")
    assert code == 2
    assert f"`{selector}` is not a slotguard rule code" in err and "did you mean" not in err
    (project / "slotguard.toml").write_text(f'ignore = ["{selector}"]\n')
    code, _, err = invoke("check", "app")
    assert code == 2 and f"`{selector}` is not a slotguard rule code" in err


def test_a_rule_name_as_selector_suggests_its_code(project: Path) -> None:
    code, _, err = invoke("check", "--select", "release-skipped-on-exit", "app")
    assert code == 2 and "did you mean SG201?" in err


STARTUP = """\
import asyncpg
from fastapi import FastAPI

app = FastAPI()


@app.on_event("startup")
async def startup():
    app.state.pool = await asyncpg.create_pool("postgresql://localhost/app")
"""


def test_statistics_mark_only_safe_fixes_and_give_a_total(project: Path) -> None:
    (project / "app" / "main.py").write_text(STARTUP)
    code, out, _ = invoke("check", "--statistics", "--no-cache", "app")
    assert code == 1
    rows = out.splitlines()
    assert "    1  SG201  [*] release-skipped-on-exit" in rows
    assert "    1  SG502      startup-without-shutdown" in rows
    assert rows[-1] == "    2  total"


MULTI_LINE = """\
import asyncpg


async def load(pool: asyncpg.Pool, key):
    conn = await pool.acquire(  # one of ten
        timeout=5,
    )
    if key is None:
        return None
    await pool.release(conn)
"""


def test_a_multi_line_finding_underlines_code_not_the_comment(project: Path) -> None:
    (project / "app" / "multi.py").write_text(MULTI_LINE)
    code, out, _ = invoke("check", "--no-cache", "app/multi.py")
    assert code == 1
    frame = out.splitlines()
    source = "5 |     conn = await pool.acquire(  # one of ten"
    markers = [frame[number + 1] for number, row in enumerate(frame) if row.endswith(source)]
    assert markers
    for marker in markers:
        # `await pool.acquire(`, the code of the first line, and no further.
        assert re.fullmatch(r" +\| {12}\^{19} SG.*", marker), marker


def test_sarif_rules_point_at_their_section_of_the_readme(project: Path) -> None:
    import json

    _, out, _ = invoke("check", "--no-cache", "--output-format", "sarif", "app")
    rules = json.loads(out)["runs"][0]["tool"]["driver"]["rules"]
    by_id = {rule["id"]: rule for rule in rules}
    assert by_id["SG201"]["helpUri"] == (
        "https://github.com/slotguard/slotguard/blob/main/README.md#sg201-release-skipped-on-exit"
    )
    assert all(rule["helpUri"].endswith(f"#{rule['id'].lower()}-{rule['name']}") for rule in rules)


def test_json_fixes_carry_their_edits(project: Path) -> None:
    import json

    code, out, _ = invoke("check", "--no-cache", "--output-format", "json", "app")
    assert code == 1
    findings = json.loads(out)
    assert {f["code"] for f in findings} == {"SG201"}
    for finding in findings:
        edits = finding["fix"]["edits"]
        lines = LEAKY.splitlines(keepends=True)
        for edit in sorted(edits, key=lambda e: (e["line"], e["column"]), reverse=True):
            start = sum(len(text) for text in lines[: edit["line"] - 1]) + edit["column"] - 1
            end = sum(len(text) for text in lines[: edit["end_line"] - 1]) + edit["end_column"] - 1
            text = "".join(lines)
            lines = (text[:start] + edit["content"] + text[end:]).splitlines(keepends=True)
        assert "".join(lines) == FIXED
    code, out, _ = invoke("check", "--output-format", "json", "-", stdin=LEAKY)
    assert all(finding["fix"]["edits"] for finding in json.loads(out))


def test_json_related_places_name_their_file(project: Path) -> None:
    import json

    _, out, _ = invoke("check", "--no-cache", "--output-format", "json", "app")
    related = [place for finding in json.loads(out) for place in finding["related"]]
    assert related and all(place["path"] == "app/leaky.py" for place in related)


TWO_REASONS = """\
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

engine = create_engine("postgresql://")


def work(flag):
    db = Session(engine)
    db.execute("select 1")
    if flag:
        db.close()
        return
    db.execute("select 2")
    db.close()


def other():
    db = Session(engine)
    db.execute("select 1")
    # closed by hand
    db.close()
"""


def test_the_fix_summary_gives_each_finding_left_its_own_reason(project: Path) -> None:
    (project / "app" / "leaky.py").unlink()
    (project / "app" / "two.py").write_text(TWO_REASONS)
    code, _, err = invoke("fix", "--no-cache", "app")
    assert code == 1
    lines = err.splitlines()
    # `other` gets its release in a `finally` (SG202); `work`'s second
    # release, before its early `return`, makes its `with` unsafe.
    assert "slotguard: fixed 1 finding in 1 file (SG202 (1))" in lines
    start = lines.index("slotguard: 1 finding not fixed:")
    assert lines[start + 1 : start + 2] == [
        "  app/two.py:8:10: SG202 fixable with --unsafe-fixes: rewrite as "
        "`with contextlib.closing(Session(engine)) as db:` (unsafe: a release before a "
        "`return` or `raise` now runs once its value is computed)",
    ]
