"""Every fix fixture under ``fixtures/fixes``: before, after, and the promises.

A fixture is ``fixtures/fixes/<code>/<case>.py``; what ``slotguard fix``
makes of it is ``<case>.py.fixed`` beside it, byte for byte (no ``.fixed``:
the fix must leave the file alone). Comment lines at the top of a fixture
say how to run it and what must be left unfixed, and why:

    # options: --unsafe-fixes --select SG104
    # not fixed: SG101 (2): a comment in the `finally` has nowhere to go
    # not fixed: SG108 (1): fixable with --unsafe-fixes: rewrite as `with pool.connection() ...

The ``not fixed`` lines list every finding of a rule that has a fixer that
is still there after fixing, with the reason the summary gives. For every
fixture, the fixed code must parse and compile, checking it again must not
report the fixed findings nor anything that was not there before, and
fixing it again must change nothing.
"""

from __future__ import annotations

import ast
import difflib
import os
import re
import stat
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from slotguard.cli import cli
from slotguard.config import Config
from slotguard.engine import check_bytes
from slotguard.facts import Fact
from slotguard.fixer import FIXABLE_UNSAFE, STYLE_CODES, FileFix, Unfixed, fix_source
from slotguard.fixes import fixers
from slotguard.parse import parse
from slotguard.rules import all_rules, rule_index
from slotguard.settings import Settings
from slotguard.source import decode

ROOT = Path(__file__).resolve().parent.parent
FIXES = ROOT / "fixtures" / "fixes"
CASES = sorted(FIXES.rglob("*.py"))
_NOT_FIXED = re.compile(r"^# not fixed: (SG\d{3}) \((\d+)\): (.+)$", re.M)
_OPTIONS = re.compile(r"^# options: (.+)$", re.M)


@dataclass(frozen=True)
class Fixture:
    path: Path
    data: bytes
    unsafe: bool
    select: list[str] | None
    not_fixed: Counter[tuple[str, str]]

    @classmethod
    def read(cls, path: Path) -> Fixture:
        data = path.read_bytes()
        text = decode(data).text.replace("\r\n", "\n")
        options = " ".join(_OPTIONS.findall(text)).split()
        select = None
        if "--select" in options:
            select = options[options.index("--select") + 1].split(",")
        not_fixed: Counter[tuple[str, str]] = Counter()
        for code, count, reason in _NOT_FIXED.findall(text):
            not_fixed[(code, reason)] += int(count)
        return cls(path, data, "--unsafe-fixes" in options, select, not_fixed)

    @property
    def settings(self) -> Settings:
        return Settings.from_config(
            Config(), select=self.select, extend_select=self.opt_in, use_cache=False
        )

    @property
    def opt_in(self) -> list[str]:
        """The fixture directory's rule, when it is opt-in: what it fixes
        must run (``fixtures/fixes/sg108/``)."""
        code = self.path.relative_to(FIXES).parts[0].upper()
        info = next((rule for rule in rule_index() if rule.code == code), None)
        return [code] if self.select is None and info is not None and not info.default else []

    @property
    def expected(self) -> bytes:
        fixed = self.path.with_name(self.path.name + ".fixed")
        return fixed.read_bytes() if fixed.exists() else self.data

    def fix(self, data: bytes | None = None) -> FileFix:
        # The file is the whole run: its findings of the whole run are its own.
        return fix_source(
            self.data if data is None else data,
            self.path,
            self.settings,
            self.path.name,
            unsafe=self.unsafe,
            run_facts=(),
        )

    def findings(self, data: bytes) -> Counter[tuple[str, str]]:
        """Each finding as its code and the normalised text it points at;
        findings that wait on the rest of the run stand, as the file is the
        whole run."""
        result = check_bytes(data, self.path, self.settings, self.path.name)
        lines = decode(data).text.splitlines()
        found: Counter[tuple[str, str]] = Counter()
        # The file is the whole run: the rules' whole-run findings are its own.
        by_code: dict[str, list[Fact]] = {}
        for fact in result.facts:
            by_code.setdefault(fact.code, []).append(fact)
        whole_run = [
            diagnostic
            for rule in all_rules()
            if rule.code in by_code
            for diagnostic in rule.check_run(by_code[rule.code], self.settings)
        ]
        for diagnostic in (*result.diagnostics, *(d for _, d in result.pending), *whole_run):
            span = diagnostic.span
            text = lines[span.line - 1][span.column - 1 :]
            if span.end_line == span.line:
                text = text[: span.end_column - span.column]
            found[(diagnostic.code, " ".join(text.split()))] += 1
        return found


def _shown_reason(unfixed: Unfixed) -> str:
    """A reason as a fixture's ``not fixed`` line gives it: a fix that waits
    for ``--unsafe-fixes`` is shown with that status and what it would do."""
    return f"{FIXABLE_UNSAFE}: {unfixed.reason}" if unfixed.unsafe else unfixed.reason


def produced(fixture: Fixture, result: FileFix) -> bytes:
    assert result.error is None, result.error
    if not result.changed:
        return fixture.data
    assert result.source is not None and result.text is not None
    return result.source.encode(result.text)


def show(data: bytes) -> str:
    return data.decode("latin-1")


@pytest.mark.parametrize("path", CASES, ids=[path.relative_to(FIXES).as_posix() for path in CASES])
def test_fixture(path: Path) -> None:
    fixture = Fixture.read(path)
    result = fixture.fix()
    output = produced(fixture, result)
    if output != fixture.expected:
        diff = difflib.unified_diff(
            show(fixture.expected).splitlines(True),
            show(output).splitlines(True),
            "expected",
            "produced",
        )
        pytest.fail("fix output differs from the .fixed file:\n" + "".join(diff))
    left = Counter((u.code, _shown_reason(u)) for u in result.declined if u.code in fixers())
    assert left == fixture.not_fixed, "\n".join(
        f"# not fixed: {code} ({count}): {reason}" for (code, reason), count in sorted(left.items())
    )
    if result.changed:
        assert result.text is not None
        ast.parse(result.text)
        parse(result.text)
        before, after = fixture.findings(fixture.data), fixture.findings(output)
        introduced = Counter(
            {key: n for key, n in (after - before).items() if key[0] not in STYLE_CODES}
        )
        assert not introduced, f"the fix introduced {introduced}"
        fixed = Counter(applied.code for applied in result.applied)
        assert fixed, "the file changed but no finding was fixed"
        for code, count in fixed.items():
            was = sum(n for key, n in before.items() if key[0] == code)
            now = sum(n for key, n in after.items() if key[0] == code)
            if code in STYLE_CODES:
                # A leak's fix may leave by-hand code that a later fix rewrites.
                assert was - now <= count, f"{code}: {was} before, {now} after, {count} fixed"
            else:
                assert was - now == count, f"{code}: {was} before, {now} after, {count} fixed"
    again = fixture.fix(output)
    assert not again.changed, "a second fix changed the file again:\n" + "".join(
        difflib.unified_diff(show(output).splitlines(True), (again.text or "").splitlines(True))
    )


def test_every_fixer_has_fixtures() -> None:
    covered = {
        path.relative_to(FIXES).parts[0].upper()
        for path in CASES
        if path.with_name(path.name + ".fixed").exists()
    }
    missing = sorted(set(fixers()) - covered)
    assert not missing, f"fixers without a before/after fixture: {missing}"


def test_every_expected_file_has_its_fixture() -> None:
    orphans = [
        path.relative_to(FIXES).as_posix()
        for path in FIXES.rglob("*.fixed")
        if not path.with_suffix("").exists()
    ]
    assert not orphans


# Some fixtures through the command line, as users run them: the written
# file is the expected one, byte for byte, and keeps its mode.

THROUGH_THE_CLI = [
    "sg108/crlf_line_endings.py",
    "sg108/bom.py",
    "sg108/latin1_with_coding_line.py",
    "sg108/tabs_and_nested_blocks.py",
    "sg108/with_psycopg2_connect.py",
    "sg501/startup_handler_crlf_tabs.py",
    "sg102/narrowed_crlf_tabs.py",
]


@pytest.mark.parametrize("name", THROUGH_THE_CLI)
def test_fixture_through_the_cli(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixture = Fixture.read(FIXES / name)
    target = tmp_path / Path(name).name
    target.write_bytes(fixture.data)
    os.chmod(target, 0o754)
    monkeypatch.chdir(tmp_path)
    options = ["--unsafe-fixes"] if fixture.unsafe else []
    if fixture.select:
        options += ["--select", ",".join(fixture.select)]
    if fixture.opt_in:
        options += ["--extend-select", ",".join(fixture.opt_in)]
    result = CliRunner().invoke(cli, ["fix", "--no-cache", *options, target.name])
    assert result.exit_code in (0, 1), result.output
    assert target.read_bytes() == fixture.expected
    assert stat.S_IMODE(target.stat().st_mode) == 0o754
    assert "slotguard: fixed" in result.stderr
