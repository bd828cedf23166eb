"""The SG502 fix on the command line: what it declines and why, and that
it waits for ``--unsafe-fixes``. Its rewrites are checked with every other
fix's by ``tests/test_fixes.py`` (``fixtures/fixes/sg502``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from slotguard.cli import cli
from slotguard.fixer import FIXABLE_UNSAFE
from slotguard.fixes import fix_summary

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "fixes" / "sg502"


def fix(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *options: str) -> Result:
    target = tmp_path / name
    shutil.copyfile(FIXTURES / name, target)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["fix", "--no-cache", *options, name])
    assert result.exit_code in (0, 1), result.output
    assert target.read_bytes() == (FIXTURES / name).read_bytes()
    return result


def test_declines_say_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = fix("traps.py", tmp_path, monkeypatch, "--unsafe-fixes")
    reasons = [
        "`FastAPI(**SETTINGS)` may pass its hooks through `**` arguments",
        "`open_called` is used elsewhere in the module, and would no longer exist",
        "`pool` is local to `open_clashing` but not to `close_clashing`",
        '`registered.add_event_handler("shutdown", flush)` registers a hook the fix does not move',
        "the application the handler is registered on is not a module global",
        "the handler `open_early` returns early, which would cut the lifespan",
    ]
    for reason in reasons:
        assert f": SG502 not fixable: {reason}\n" in result.stderr
    assert "slotguard: 6 findings not fixed:" in result.stderr


def test_waits_for_unsafe_fixes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = fix("safe_fixes_only.py", tmp_path, monkeypatch)
    assert "slotguard: fixed 0 findings in 0 files" in result.stderr
    assert f"safe_fixes_only.py:11:28: SG502 {FIXABLE_UNSAFE}: " in result.stderr


def test_the_rule_table_shows_an_unsafe_fix() -> None:
    assert fix_summary("SG502").startswith("Unsafe fix: move the application's startup")
