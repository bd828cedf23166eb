"""The ``sarif`` and ``github`` formats (SPEC section 5), on findings the
engine makes, and the fields every format shows."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from slotguard.config import Config
from slotguard.diagnostic import Applicability, Diagnostic, Fix
from slotguard.engine import check_bytes
from slotguard.report import output
from slotguard.report.github import escape_data, escape_property, format_github
from slotguard.report.json_format import format_json
from slotguard.report.output import FORMATS
from slotguard.report.sarif import (
    FINGERPRINT_KEY,
    SOURCE_ROOT,
    format_sarif,
    repository_root,
    section,
)
from slotguard.report.text import format_concise, format_full
from slotguard.rules import all_rules
from slotguard.settings import Settings

SCHEMA = json.loads(
    (Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text(encoding="utf-8")
)
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


def check(text: str, path: str = "app/leaky.py") -> list[Diagnostic]:
    settings = Settings.from_config(Config(), use_cache=False)
    return list(check_bytes(text.encode(), Path(path), settings, path).diagnostics)


def sources_of(files: dict[str, str]) -> Any:
    def sources(path: str) -> Sequence[str] | None:
        return files[path].splitlines() if path in files else None

    return sources


def with_fix(diagnostic: Diagnostic) -> Diagnostic:
    # No rule offers a fix yet; the formats must show one when a rule does.
    fix = Fix(Applicability.SAFE, "wrap the block in `async with pool.acquire() as conn`")
    return dataclasses.replace(diagnostic, fix=fix)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / "app").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def sarif(diagnostics: list[Diagnostic], files: dict[str, str], root: Path) -> dict[str, Any]:
    text = format_sarif(diagnostics, sources_of(files), root=root)
    log: dict[str, Any] = json.loads(text)
    jsonschema.validate(log, SCHEMA)
    return log


def test_the_schema_is_the_official_one_and_rejects_bad_logs() -> None:
    assert SCHEMA["title"] == "Static Analysis Results Format (SARIF) Version 2.1.0 JSON Schema"
    bad_region = {"physicalLocation": {"region": {"startLine": 0}}}
    log = {
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "slotguard"}},
                "results": [{"message": {"text": "m"}, "locations": [bad_region]}],
            }
        ],
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(log, SCHEMA)


def test_sarif_is_valid_with_rules_results_related_locations_and_fixes(repo: Path) -> None:
    diagnostics = check(LEAKY)
    assert {d.code for d in diagnostics} == {"SG101", "SG201"}
    diagnostics = [
        with_fix(d) if d.code == "SG101" else dataclasses.replace(d, fix=None) for d in diagnostics
    ]
    log = sarif(diagnostics, {"app/leaky.py": LEAKY}, repo)

    assert log["version"] == "2.1.0"
    (run,) = log["runs"]
    assert run["originalUriBaseIds"][SOURCE_ROOT]["uri"] == repo.as_uri() + "/"
    driver = run["tool"]["driver"]
    assert driver["name"] == "slotguard"
    results = {result["ruleId"]: result for result in run["results"]}
    assert set(results) == {"SG101", "SG201"}

    leak = results["SG201"]
    assert driver["rules"][leak["ruleIndex"]]["id"] == "SG201"
    assert leak["level"] == "error"
    assert leak["message"]["text"] == (
        "`conn` acquired at line 5 is not released when returning at line 7"
    )
    (location,) = leak["locations"]
    assert location["physicalLocation"] == {
        "artifactLocation": {"uri": "app/leaky.py", "uriBaseId": SOURCE_ROOT},
        "region": {"startLine": 5, "startColumn": 12, "endLine": 5, "endColumn": 32},
    }
    related = {r["message"]["text"]: r for r in leak["relatedLocations"]}
    acquired = "acquired here; use `async with pool.acquire() as conn`"
    assert set(related) == {acquired, "leaves without releasing it"}
    assert related[acquired]["physicalLocation"]["region"]["startLine"] == 5
    exit_region = related["leaves without releasing it"]["physicalLocation"]["region"]
    assert (exit_region["startLine"], exit_region["startColumn"]) == (7, 9)
    assert len({r["id"] for r in leak["relatedLocations"]}) == 2
    assert "properties" not in leak

    assert results["SG101"]["properties"]["fix"] == {
        "applicability": "safe",
        "description": "wrap the block in `async with pool.acquire() as conn`",
    }


def test_sarif_rules_carry_the_rule_documentation(repo: Path) -> None:
    log = sarif([], {}, repo)
    (run,) = log["runs"]
    assert run["results"] == []
    descriptors = run["tool"]["driver"]["rules"]
    assert [d["id"] for d in descriptors] == [rule.code for rule in all_rules()]
    for rule, descriptor in zip(all_rules(), descriptors, strict=True):
        assert descriptor["name"] == rule.name
        assert descriptor["shortDescription"]["text"] == rule.summary
        what = descriptor["fullDescription"]["text"]
        assert what == section(rule.documentation(), "What it does")
        assert what and "##" not in what
        assert descriptor["help"]["text"] == rule.documentation()
        assert descriptor["help"]["markdown"] == rule.documentation()
        assert descriptor["defaultConfiguration"] == {"enabled": rule.default, "level": "error"}


def test_sarif_fingerprints_survive_lines_added_above(repo: Path) -> None:
    moved = "# a comment\n\n\n" + LEAKY
    before = sarif(check(LEAKY), {"app/leaky.py": LEAKY}, repo)["runs"][0]["results"]
    after = sarif(check(moved), {"app/leaky.py": moved}, repo)["runs"][0]["results"]
    assert [r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in after] == [18, 8]
    assert [r["partialFingerprints"][FINGERPRINT_KEY] for r in before] == [
        r["partialFingerprints"][FINGERPRINT_KEY] for r in after
    ]
    assert len({r["partialFingerprints"][FINGERPRINT_KEY] for r in after}) == 2


def test_sarif_paths_are_relative_to_the_root_or_absolute_outside_it(
    repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    (repo / "app" / "sub dir").mkdir()
    inside = "app/sub dir/ünï.py"
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "leaky.py"
    diagnostics = check(LEAKY, inside)[:1] + check(LEAKY, str(elsewhere))[:1]
    log = sarif(diagnostics, {inside: LEAKY, str(elsewhere): LEAKY}, repo)
    first, second = (
        r["locations"][0]["physicalLocation"]["artifactLocation"] for r in log["runs"][0]["results"]
    )
    assert first == {"uri": "app/sub%20dir/%C3%BCn%C3%AF.py", "uriBaseId": SOURCE_ROOT}
    assert second == {"uri": elsewhere.as_uri()}


def test_sarif_paths_from_a_subdirectory_are_relative_to_the_repository(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo / "app")
    assert repository_root(Path.cwd()) == repo
    log = sarif(check(LEAKY, "leaky.py"), {"leaky.py": LEAKY}, repository_root(Path.cwd()))
    artifact = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert artifact["artifactLocation"]["uri"] == "app/leaky.py"


def test_sarif_from_outside_the_repository_is_relative_to_the_files_repository(
    repo: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    leaky = repo / "app" / "leaky.py"
    leaky.write_text(LEAKY)
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    text = output.render(check(LEAKY, str(leaky)), "sarif", output.SourceReader())
    log = json.loads(text)
    assert log["runs"][0]["originalUriBaseIds"][SOURCE_ROOT]["uri"] == repo.as_uri() + "/"
    artifact = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert artifact["artifactLocation"] == {"uri": "app/leaky.py", "uriBaseId": SOURCE_ROOT}


def test_sarif_for_a_file_not_analysed(repo: Path) -> None:
    (broken,) = check("import asyncpg\ndef f(:\n", "app/broken.py")
    assert broken.code == "SG000"
    log = sarif([broken], {"app/broken.py": "import asyncpg\ndef f(:\n"}, repo)
    (result,) = log["runs"][0]["results"]
    region = result["locations"][0]["physicalLocation"]["region"]
    assert region["startLine"] == broken.line
    assert "endColumn" not in region
    assert "relatedLocations" not in result


def test_github_escapes_messages_and_properties() -> None:
    assert escape_data("100% done\r\nnext: a, b") == "100%25 done%0D%0Anext: a, b"
    assert escape_property("C:\\a,b%\n") == "C%3A\\a%2Cb%25%0A"


def test_github_workflow_commands(repo: Path) -> None:
    diagnostics = [with_fix(d) if d.code == "SG101" else d for d in check(LEAKY)]
    lines = format_github(diagnostics, sources_of({"app/leaky.py": LEAKY})).splitlines()
    assert lines == [
        "::error file=app/leaky.py,line=15,col=12,endLine=15,endColumn=32,"
        "title=SG101 acquire-without-context-manager::SG101 `conn` from "
        "`await pool.acquire()` is never released"
        "%0Afix (safe): wrap the block in `async with pool.acquire() as conn`",
        "::error file=app/leaky.py,line=5,col=12,endLine=5,endColumn=32,"
        "title=SG201 release-skipped-on-exit::SG201 `conn` acquired at line 5 is not "
        "released when returning at line 7"
        "%0Afix (safe): rewrite as `async with pool.acquire() as conn:`",
    ]


def test_github_escapes_awkward_paths_and_relativises_to_the_root(repo: Path) -> None:
    (repo / "app" / "a,b:c").mkdir()
    path = "app/a,b:c/100%.py"
    (finding,) = [d for d in check(LEAKY, path) if d.code == "SG201"]
    line = format_github([finding], sources_of({}))
    assert line.startswith("::error file=app/a%2Cb%3Ac/100%25.py,line=5,")
    assert line.count("\n") == 1 and line.endswith("\n")
    inner = format_github([finding], sources_of({}), root=repo, base=repo / "app")
    assert inner.startswith("::error file=app/app/a%2Cb%3Ac/100%25.py,")


def test_github_for_a_file_not_analysed() -> None:
    (broken,) = check("import asyncpg\ndef f(:\n", "app/broken.py")
    line = format_github([broken], sources_of({}))
    assert line.startswith(f"::error file=app/broken.py,line={broken.line},col={broken.column},")
    assert "endLine" not in line
    assert "title=SG000 file-not-analysed::SG000 file not analysed" in line


FORMAT_NAMES = sorted(FORMATS)


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_every_format_shows_every_finding(name: str, repo: Path) -> None:
    formatters = {
        "full": format_full,
        "concise": format_concise,
        "json": format_json,
        "sarif": partial(format_sarif, root=repo),
        "github": format_github,
    }
    diagnostics = check(LEAKY)
    output = formatters[name](diagnostics, sources_of({"app/leaky.py": LEAKY}))
    for diagnostic in diagnostics:
        assert diagnostic.code in output
        assert diagnostic.message in output
    assert "app/leaky.py" in output
    assert output.endswith("\n")
