"""The command line: options, formats and exit codes (SPEC sections 3 and 5)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from slotguard.cli import cli
from slotguard.rules import all_rules

ROOT = Path(__file__).resolve().parent.parent
SLOTGUARD = Path(sys.executable).with_name("slotguard")
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


async def store(pool: asyncpg.Pool, row):
    conn = await pool.acquire()
    await conn.execute("insert into t values ($1)", row)
"""
CLEAN = """\
import asyncpg


async def load(pool: asyncpg.Pool, key):
    async with pool.acquire() as conn:
        return await conn.fetchrow("select $1", key)
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "leaky.py").write_text(LEAKY)
    (tmp_path / "app" / "clean.py").write_text(CLEAN)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_findings_exit_1_with_code_frame(project: Path) -> None:
    code, out, err = invoke("check", "app")
    assert code == 1
    assert "app/leaky.py:15:12: SG101 `conn` from `await pool.acquire()` is never released" in out
    assert "app/leaky.py:5:12: SG201 `conn` acquired at line 5 is not released when " in out
    frame = "^^^^^^^^^^^^^^^^^^^^ SG201: acquired here; use `async with pool.acquire() as conn`"
    assert frame in out
    assert "leaves without releasing it" in out
    assert "= fix (safe): rewrite as `async with pool.acquire() as conn:`" in out
    # The summary goes to standard error, with every other message.
    assert "1 fixable with `slotguard fix`." in err and "fixable" not in out
    assert "Found 2 findings in 1 file." in err


def test_unsafe_fixes_are_counted_apart(project: Path) -> None:
    (project / "app" / "main.py").write_text(
        "import asyncpg\n"
        "from fastapi import FastAPI\n\n"
        "app = FastAPI()\n\n\n"
        '@app.on_event("startup")\n'
        "async def startup():\n"
        '    app.state.pool = await asyncpg.create_pool("postgresql://localhost/app")\n'
    )
    code, out, err = invoke("check", "app/main.py")
    assert code == 1
    assert "= fix (unsafe): move the `on_event` handlers of `app` into a lifespan" in out
    assert "1 fixable with `slotguard fix --unsafe-fixes`." in err
    assert "fixable with `slotguard fix`." not in err


def test_clean_code_exits_0(project: Path) -> None:
    code, out, err = invoke("check", "app/clean.py")
    assert code == 0
    assert out == "" and "All checks passed." in err


def test_default_path_is_the_current_directory(project: Path) -> None:
    code, out, _ = invoke("check", "--output-format", "concise")
    assert code == 1 and "app/leaky.py" in out


def test_json_has_every_field_of_the_spec(project: Path) -> None:
    code, out, _ = invoke("check", "app", "--output-format", "json")
    assert code == 1
    findings = json.loads(out)
    assert {f["code"] for f in findings} == {"SG101", "SG201"}
    for finding in findings:
        assert set(finding) == {
            "code",
            "name",
            "message",
            "path",
            "line",
            "column",
            "end_line",
            "end_column",
            "severity",
            "fix",
            "related",
        }
        line = 5 if finding["code"] == "SG201" else 15
        assert finding["line"] == line and finding["column"] == 12
        assert finding["end_line"] == line and finding["end_column"] == 32
    sg201 = next(f for f in findings if f["code"] == "SG201")
    assert sg201["name"] == "release-skipped-on-exit"
    assert [r["line"] for r in sg201["related"]] == [5, 7]


def test_concise_is_one_line_per_finding(project: Path) -> None:
    _, out, _ = invoke("check", "app", "--output-format", "concise", "--quiet")
    assert out.splitlines() == [
        "app/leaky.py:5:12: SG201 `conn` acquired at line 5 is not released when returning at "
        "line 7",
        "app/leaky.py:15:12: SG101 `conn` from `await pool.acquire()` is never released",
    ]


@pytest.mark.parametrize(
    ("options", "codes"),
    [
        (["--select", "SG2"], {"SG201"}),
        (["--select", "SG101,SG201"], {"SG101", "SG201"}),
        (["--select", "SG1", "--select", "SG2"], {"SG101", "SG201"}),
        (["--ignore", "SG1"], {"SG201"}),
        (["--select", "SG1", "--extend-select", "SG201"], {"SG101", "SG201"}),
        # SG selects the opt-in rules too: SG503 on an acquire with no timeout.
        (["--select", "SG", "--ignore", "SG201"], {"SG101", "SG503"}),
    ],
)
def test_selection(project: Path, options: list[str], codes: set[str]) -> None:
    _, out, _ = invoke("check", "app", "--output-format", "json", *options)
    assert {f["code"] for f in json.loads(out)} == codes


def test_exit_zero_quiet_statistics_and_output_file(project: Path) -> None:
    code, out, _ = invoke("check", "app", "--exit-zero")
    assert code == 0 and "SG201" in out
    code, out, _ = invoke("check", "app", "--statistics")
    assert code == 1
    assert out.splitlines() == [
        "    1  SG101      acquire-without-context-manager",
        "    1  SG201  [*] release-skipped-on-exit",
        "    2  total",
    ]
    code, out, _ = invoke("check", "app", "--statistics", "--output-format", "json")
    assert code == 1
    assert json.loads(out) == [
        {
            "code": "SG101",
            "name": "acquire-without-context-manager",
            "count": 1,
            "fixable": 0,
            "unsafe_fixable": 1,
        },
        {
            "code": "SG201",
            "name": "release-skipped-on-exit",
            "count": 1,
            "fixable": 1,
            "unsafe_fixable": 0,
        },
    ]
    code, out, _ = invoke("check", "app", "--output-file", "report.json", "--output-format", "json")
    assert code == 1 and out == ""
    assert len(json.loads((project / "report.json").read_text())) == 2


def test_stdin_filename(project: Path) -> None:
    code, out, _ = invoke(
        "check", "--stdin-filename", "app/from_editor.py", "--output-format", "concise", stdin=LEAKY
    )
    assert code == 1
    assert out.startswith("app/from_editor.py:5:12: SG201")
    assert "app/from_editor.py:15:12: SG101" in out


def test_stdin_filename_reads_the_configuration_of_its_directory(project: Path) -> None:
    """The buffer's file does not exist yet; the project's configuration
    next to it still applies, not the one of the current directory."""
    service = project / "service"
    service.mkdir()
    (service / "pyproject.toml").write_text('[tool.slotguard]\nignore = ["SG101"]\n')
    (project / "pyproject.toml").write_text("[tool.slotguard]\n")
    code, out, _ = invoke(
        "check", "--stdin-filename", "service/new.py", "--output-format", "concise", stdin=LEAKY
    )
    assert code == 1
    assert out.startswith("service/new.py:5:12: SG201") and "SG101" not in out


def test_exclude_option(project: Path) -> None:
    code, out, _ = invoke("check", ".", "--exclude", "leaky.py")
    assert code == 0, out


def test_usage_errors_exit_2(project: Path) -> None:
    code, _, err = invoke("check", "app", "--select", "SG9")
    assert code == 2 and "unknown rule selector `SG9`" in err
    code, _, err = invoke("check", "missing_dir")
    assert code == 2 and "missing_dir: no such file or directory" in err
    code, _, err = invoke("check", "app", "--config", "nope.toml")
    assert code == 2 and "nope.toml" in err
    code, _, err = invoke("explain", "SG1O1")
    assert code == 2 and "did you mean SG101?" in err
    code, _, _ = invoke("check", "--output-format", "xml")
    assert code == 2


def test_rules_lists_every_rule() -> None:
    code, out, _ = invoke("rules")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == len(all_rules())
    assert lines[0].startswith("SG000  file-not-analysed")
    columns = {line.split()[0]: line.split()[1:3] for line in lines}
    assert columns["SG101"] == ["acquire-without-context-manager", "default"]
    assert columns["SG001"] == ["unused-noqa", "opt-in"]
    code, out, _ = invoke("rules", "--output-format", "json")
    assert {row["code"] for row in json.loads(out)} == {rule.code for rule in all_rules()}


@pytest.mark.parametrize("rule", all_rules(), ids=lambda rule: rule.code)
def test_explain_prints_the_documentation(rule: type) -> None:
    code, out, _ = invoke("explain", rule.code.lower())
    assert code == 0
    assert out.startswith(f"# {rule.code} {rule.name}")
    for section in (
        "## What it does",
        "## Why is this bad?",
        "## Example",
        "## Use instead",
        "## Fix safety",
    ):
        assert section in out, f"{rule.code} documentation lacks {section}"


def test_noqa_comments(tmp_path: Path) -> None:
    source = LEAKY.replace(
        "conn = await pool.acquire()", "conn = await pool.acquire()  # noqa: SG201"
    )
    path = tmp_path / "noqa.py"
    path.write_text(source)
    _, out, _ = invoke("check", str(path), "--output-format", "json")
    assert {f["code"] for f in json.loads(out)} == {"SG101"}
    path.write_text(source.replace("# noqa: SG201", "# noqa"))
    assert invoke("check", str(path))[0] == 0
    path.write_text("# slotguard: noqa: SG1\n" + LEAKY)
    _, out, _ = invoke("check", str(path), "--output-format", "json")
    assert {f["code"] for f in json.loads(out)} == {"SG201"}
    path.write_text("# slotguard: noqa\n" + LEAKY)
    assert invoke("check", str(path))[0] == 0


def test_console_script_and_module_entry_points(project: Path) -> None:
    result = subprocess.run(
        [str(SLOTGUARD), "check", "app", "--output-format", "concise"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "SG201" in result.stdout
    result = subprocess.run(
        [sys.executable, "-m", "slotguard", "check", "app/clean.py"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    result = subprocess.run([str(SLOTGUARD), "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and "slotguard" in result.stdout


def test_demo_quick_start_reports_sg1_with_code_frames() -> None:
    result = subprocess.run(
        [str(SLOTGUARD), "check", "fixtures/demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    for code in ("SG101", "SG102", "SG103", "SG104", "SG105"):
        assert f" {code} " in result.stdout
    assert " | " in result.stdout and "^" in result.stdout


def test_sarif_and_github_formats(project: Path) -> None:
    code, out, _ = invoke("check", "app", "--output-format", "sarif")
    assert code == 1
    sarif = json.loads(out)
    assert sarif["version"] == "2.1.0"
    results = sarif["runs"][0]["results"]
    assert {r["ruleId"] for r in results} == {"SG101", "SG201"}
    code, out, _ = invoke("check", "app", "--output-format", "github")
    assert code == 1
    assert out.count("::error file=") == 2
    assert "line=5,col=12" in out and "title=SG201 release-skipped-on-exit" in out


def test_baseline_adopts_legacy_findings_and_reports_new_ones(project: Path) -> None:
    code, out, err = invoke("check", "app", "--write-baseline", "baseline.json")
    assert code == 0 and "wrote 2 findings to baseline.json" in err
    code, out, err = invoke("check", "app", "--baseline", "baseline.json")
    assert code == 0 and "2 findings in the baseline not reported." in err
    leaky = project / "app" / "leaky.py"
    leaky.write_text("# a new comment above\n\n" + LEAKY + LEAKY.replace("def load", "def again"))
    code, out, err = invoke(
        "check", "app", "--baseline", "baseline.json", "--output-format", "json"
    )
    assert code == 1
    assert {(f["code"], f["line"]) for f in json.loads(out)} == {("SG101", 33), ("SG201", 23)}
    assert "slotguard: 2 findings in the baseline not reported." in err.splitlines()
    code, _, err = invoke("check", "app", "--baseline", "missing.json")
    assert code == 2 and "missing.json" in err


def test_add_noqa_then_check_reports_nothing(project: Path) -> None:
    code, _, err = invoke("check", "app", "--add-noqa")
    assert code == 0 and "added noqa comments to 2 lines in 1 file" in err
    text = (project / "app" / "leaky.py").read_text()
    assert "conn = await pool.acquire()  # noqa: SG201" in text
    assert "conn = await pool.acquire()  # noqa: SG101" in text
    assert invoke("check", "app")[0] == 0
    code, out, _ = invoke("check", "app", "--extend-select", "SG001")
    assert code == 0, out


def test_unused_noqa_is_opt_in(project: Path) -> None:
    clean = project / "app" / "clean.py"
    clean.write_text(CLEAN.replace("as conn:", "as conn:  # noqa: SG101"))
    assert invoke("check", "app/clean.py")[0] == 0
    code, out, _ = invoke(
        "check", "app/clean.py", "--extend-select", "SG001", "--output-format", "concise"
    )
    assert code == 1 and "SG001 unused noqa code SG101" in out


def test_a_closed_pipe_is_not_an_internal_error() -> None:
    """``slotguard explain SG101 | head -1``: the reader is gone before the
    write; the run ends quietly instead of reporting an internal error."""
    read, write = os.pipe()
    os.close(read)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "slotguard", "explain", "SG101"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write)
    assert "internal error" not in result.stderr
    assert "Traceback" not in result.stderr
    assert result.returncode == 1


def test_output_does_not_depend_on_the_hash_seed() -> None:
    """Findings and their messages are the same in every process: sets are
    iterated in hash order, and the analysis must not let that show."""
    demo = Path(__file__).resolve().parent.parent / "fixtures" / "demo"
    outputs = set()
    for seed in ("0", "1", "2"):
        result = subprocess.run(
            [sys.executable, "-m", "slotguard", "check", str(demo), "--no-cache", "-q"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        assert result.returncode == 1, result.stderr
        outputs.add(result.stdout)
    assert len(outputs) == 1
    assert "SG202" in outputs.pop()


def test_progress_goes_to_a_terminal_stderr_only(tmp_path: Path) -> None:
    """A long run shows ``N/M files`` on standard error when that is a
    terminal; never on standard output, and not at all into a pipe."""
    import pty

    for index in range(210):
        (tmp_path / f"module_{index}.py").write_text("x = 1\n")
    (tmp_path / "pyproject.toml").write_text("[tool.slotguard]\n")
    command = [sys.executable, "-m", "slotguard", "check", ".", "--no-cache"]
    leader, follower = pty.openpty()
    try:
        on_terminal = subprocess.run(
            command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=follower, timeout=120
        )
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
    assert on_terminal.returncode == 0
    assert b"slotguard: 210/210 files" in shown
    assert b"files" not in on_terminal.stdout.replace(b"All checks passed.", b"")
    piped = subprocess.run(command, cwd=tmp_path, capture_output=True, timeout=120)
    assert piped.returncode == 0 and b"/210 files" not in piped.stderr
