"""The results cache holds plain data that cannot run code when read, is
versioned, survives any garbage put in its place, and ignores itself in git
(SPEC section 8)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path
from typing import TypeVar

import pytest
from click.testing import CliRunner

from slotguard import cache
from slotguard.analysis.index import ModuleSummary, Symbol, SymbolKind
from slotguard.cli import cli
from slotguard.diagnostic import Applicability, Diagnostic, Edit, Fix, Related, Span
from slotguard.facts import Fact
from slotguard.project import Scan
from slotguard.results import FileResult, Outcome, Verdict
from slotguard.view import Footprint

LEAKY = """\
import asyncpg


async def load(pool: asyncpg.Pool, key):
    conn = await pool.acquire()
    if key is None:
        return None
    return await conn.fetchrow("select $1", key)
"""


class _RunsCode:
    """Unpickling this calls ``os.mkdir(marker)``: what an attacker's
    ``__reduce__`` would do with ``os.system``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "slotguard.toml").write_text("")
    (tmp_path / "app.py").write_text(LEAKY)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def check(*args: str) -> tuple[int, list[tuple[str, int, str, str]]]:
    result = CliRunner().invoke(cli, ["check", "--output-format", "json", *args])
    found = [(f["path"], f["line"], f["code"], f["message"]) for f in json.loads(result.stdout)]
    return result.exit_code, found


def test_a_pickle_in_the_cache_folder_is_never_executed(project: Path) -> None:
    expected = check("--no-cache")
    marker = project / "code-ran"
    payload = pickle.dumps(_RunsCode(marker))
    folder = project / ".slotguard_cache"
    folder.mkdir()
    # Under the name the pickle cache used, and under the cache's own names.
    for name in ("results-v1.pickle", cache.FILE_NAME, cache.PROJECT_FILE):
        (folder / name).write_bytes(payload)
    assert check() == expected
    assert not marker.exists()
    assert check() == expected
    assert not marker.exists()


def test_the_cache_is_json_that_names_its_format_and_ignores_itself(project: Path) -> None:
    check()
    folder = project / ".slotguard_cache"
    for name in (cache.FILE_NAME, cache.PROJECT_FILE):
        stored = json.loads((folder / name).read_text(encoding="utf-8"))
        assert stored["format"] == cache.FORMAT and stored["version"] == cache.VERSION
        assert stored["entries"]
    assert "*" in (folder / ".gitignore").read_text().splitlines()


@pytest.mark.parametrize(
    "garbage",
    [b"", b"\x80\x04not json", b"[1, 2]", b'{"format": 3}', b"[" * 100_000, b'{"entries": 1}'],
)
def test_a_cache_that_does_not_parse_is_empty_and_rewritten(project: Path, garbage: bytes) -> None:
    expected = check("--no-cache")
    folder = project / ".slotguard_cache"
    folder.mkdir()
    for name in (cache.FILE_NAME, cache.PROJECT_FILE):
        (folder / name).write_bytes(garbage)
    assert check() == expected
    for name in (cache.FILE_NAME, cache.PROJECT_FILE):
        stored = json.loads((folder / name).read_text(encoding="utf-8"))
        assert stored["format"] == cache.FORMAT and stored["entries"]


def _forge(path: Path, **header: object) -> None:
    """Rewrite every stored finding's message, and the header as given."""
    stored = json.loads(path.read_text(encoding="utf-8"))
    results = []
    for kind, value in stored["entries"].values():
        if kind == "outcomes":
            results += [result for _, _, result in value]
        elif kind == "snapshot":
            results += [result for _, result in value["reported"].values()]
    for result in results:
        for diagnostic in result["diagnostics"]:
            diagnostic["message"] = "FORGED"
    stored.update(header)
    path.write_text(json.dumps(stored), encoding="utf-8")


def test_a_cache_written_by_another_version_is_not_trusted(project: Path) -> None:
    _, expected = check()
    folder = project / ".slotguard_cache"
    for name in (cache.PROJECT_FILE, cache.FILE_NAME):
        path = folder / name

        def forge(path: Path = path, name: str = name, **header: object) -> None:
            _forge(path, **header)
            if name == cache.FILE_NAME:
                # What the last run found, or it would answer first.
                (folder / cache.PROJECT_FILE).unlink(missing_ok=True)

        # The forged entries are read when the header is this slotguard's...
        forge()
        assert {message for *_, message in check()[1]} == {"FORGED"}, name
        # ...and ignored (then replaced) when it is not.
        for header in ({"slotguard": "0.0.1"}, {"version": cache.VERSION + 1}, {"code": "x"}):
            shutil.rmtree(folder)
            check()
            forge(**header)
            assert check()[1] == expected
            assert check()[1] == expected
        shutil.rmtree(folder)
        check()


@pytest.mark.parametrize("name", ["project.json", "results.json"])
def test_an_entry_that_does_not_decode_is_a_miss(project: Path, name: str) -> None:
    _, expected = check()
    path = project / ".slotguard_cache" / name
    stored = json.loads(path.read_text(encoding="utf-8"))
    broken = [
        ["outcomes", [["analysed", {}, {"path": 3}]]],
        ["run", {}],
        "x",
        ["outcomes", None],
        ["stat", [1, 2]],
        ["scan", [[], 1, True]],
        ["snapshot", {"signature": 1}],
        ["nonsense", 1],
    ]
    stored["entries"] = {
        entry_key: broken[number % len(broken)]
        for number, entry_key in enumerate(stored["entries"])
    }
    path.write_text(json.dumps(stored), encoding="utf-8")
    assert check()[1] == expected


_T = TypeVar("_T")


def _without_defaults(value: _T) -> _T:
    """``value``, checked to set every field away from its default, so that a
    field the codec forgets shows in the round trip."""
    import dataclasses

    assert dataclasses.is_dataclass(value)
    for field in dataclasses.fields(value):
        if field.default is not dataclasses.MISSING:
            assert getattr(value, field.name) != field.default, field.name
    return value


def test_every_field_survives_the_round_trip() -> None:
    span = Span(3, 5, 4, 1)
    symbol = _without_defaults(
        Symbol(
            SymbolKind.PROVIDER,
            "sqlalchemy.Session",
            awaited=True,
            parameter=2,
            element=1,
            raises=True,
            slow="an LLM call",
            mixed=frozenset({"none", "tuple"}),
        )
    )
    diagnostic = Diagnostic(
        "SG201",
        "release-skipped-on-exit",
        "`conn` leaks",
        "app/x.py",
        span,
        fix=Fix(Applicability.UNSAFE, "rewrite"),
        related=(Related(Span(9, 1, 9, 7), "here"), Related(span, "there", "app/y.py")),
        no_fix_reason="because",
    )
    result = FileResult(
        "app/x.py",
        (diagnostic,),
        analysed=True,
        summary=ModuleSummary(
            "app.x",
            (("get_db", symbol),),
            (("pool", "asyncpg.Pool"),),
            (("pools", ("a", 1, None, ("b", 2.5, True))),),
        ),
        pending=(("app.x:pool", diagnostic),),
        settled=("app.y:engine",),
        facts=(Fact("SG504", "pool", ("create_pool", 10, "10 + 0"), "app/x.py", span, True),),
        suppressed=(Diagnostic("SG101", "n", "m", "app/x.py", span),),
    )
    footprint = _without_defaults(
        Footprint(
            (("app.db.get_db", symbol), ("app.db.other", None)),
            (("pool", "asyncpg.Pool"), ("engine", None)),
            "0123abcd",
            has_state=True,
            truthy=False,
        )
    )
    outcomes = [
        Outcome(Verdict.ANALYSED, footprint, result),
        Outcome(Verdict.DEFERRED, Footprint(), FileResult("app/y.py", ())),
    ]
    stored = json.loads(json.dumps(cache.OUTCOMES.encode(outcomes)))
    assert cache.OUTCOMES.decode(stored) == outcomes
    snapshot = cache.Snapshot(
        "signature",
        {"app/x.py": Verdict.ANALYSED, "app/y.py": Verdict.DEFERRED},
        {"app/x.py": ("key", result)},
        result.facts,
        ("app.y:engine",),
        "closure",
        (("pool", "asyncpg.Pool"),),
    )
    stored = json.loads(json.dumps(cache.SNAPSHOT.encode(snapshot)))
    assert cache.SNAPSHOT.decode(stored) == snapshot
    status = (120, 1_700_000_000_123_456_789, 42, "abc")
    assert cache.STAT.decode(json.loads(json.dumps(cache.STAT.encode(status)))) == status
    found = Scan(("app.db", "app.db.get_db"), True, True)
    assert cache.SCAN.decode(json.loads(json.dumps(cache.SCAN.encode(found)))) == found
    stored = json.loads(json.dumps(cache.RUN_FINDINGS.encode([diagnostic])))
    assert cache.RUN_FINDINGS.decode(stored) == [diagnostic]
    edits = {("SG101", span): (Edit("    async with x:\n", Span(5, 1, 7, 1)), Edit("", span))}
    stored = json.loads(json.dumps(cache.FIX_EDITS.encode(edits)))
    assert cache.FIX_EDITS.decode(stored) == edits
