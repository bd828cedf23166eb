"""The server's one adapter to the engine: a buffer's findings and fixes, with
its file's configuration, seeing its project (``slotguard.server.checking``).

What it reports for a buffer is what ``slotguard check`` reports for the same
text saved in the file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import server_projects

from slotguard.diagnostic import Applicability
from slotguard.server.checking import Checker, apply_edits, rule_help, text_edits


def _check_cli(project: Path, relative: str) -> list[tuple[str, int, int]]:
    completed = subprocess.run(
        [sys.executable, "-m", "slotguard", "check", "--no-cache", "--output-format", "json"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode in (0, 1), completed.stderr
    return [
        (item["code"], item["line"], item["column"])
        for item in json.loads(completed.stdout)
        if item["path"] == relative
    ]


def _found(checker: Checker, path: Path, text: str | None = None) -> list[tuple[str, int, int]]:
    check = checker.check(path.read_text() if text is None else text, path)
    return [(d.code, d.span.line, d.span.column) for d in check.diagnostics]


@pytest.mark.parametrize("relative", ["app/routes.py", "app/lookups.py", "app/main.py"])
def test_findings_are_those_of_check_once_the_project_is_read(
    tmp_path: Path, relative: str
) -> None:
    project = server_projects.service(tmp_path)
    checker = Checker()
    path = project / relative
    assert checker.refresh(path)
    check = checker.check(path.read_text(), path)
    assert check.project_current
    assert [(d.code, d.span.line, d.span.column) for d in check.diagnostics] == _check_cli(
        project, relative
    )


def test_a_project_read_again_from_its_cache_still_tells_the_buffer(tmp_path: Path) -> None:
    # A second server (or one whose settings were reloaded) finds the project
    # unchanged in the cache: the outcomes kept for `check` leave summaries
    # out, and the buffer must still see the pool another module types.
    project = server_projects.service(tmp_path)
    routes = project / "app/routes.py"
    first = Checker()
    assert first.refresh(routes)
    expected = _found(first, routes)
    assert [code for code, _, _ in expected] == ["SG101"]
    again = Checker()
    assert again.refresh(routes)
    assert _found(again, routes) == expected


def test_before_the_project_is_read_the_buffer_is_checked_alone(tmp_path: Path) -> None:
    project = server_projects.service(tmp_path)
    checker = Checker()
    routes = project / "app/routes.py"
    alone = checker.check(routes.read_text(), routes)
    assert not alone.project_current
    # The pool's type comes from app/main.py, which the routes do not import.
    assert alone.diagnostics == ()
    checker.refresh(routes)
    assert _found(checker, routes) == [("SG101", 8, 12)]
    assert not checker.refresh(routes)


def test_the_buffer_replaces_its_file_and_the_project_is_read_again_when_a_file_changes(
    tmp_path: Path,
) -> None:
    project = server_projects.service(tmp_path)
    checker = Checker()
    routes, main = project / "app/routes.py", project / "app/main.py"
    checker.refresh(routes)
    assert _found(checker, routes, server_projects.ROUTES_RELEASED) == []
    # Nothing types the pool any more: the route's acquisition is unknown.
    main.write_text(server_projects.MAIN.replace("app.state.pool = await", "pool = await"))
    assert not checker.check(routes.read_text(), routes).project_current
    assert checker.refresh(routes)
    assert _found(checker, routes) == []


def test_a_project_without_configuration_is_its_repository(tmp_path: Path) -> None:
    project = server_projects.service(tmp_path / "repository")
    (project / "slotguard.toml").unlink()
    (project / ".git").mkdir()
    checker = Checker()
    routes = project / "app/routes.py"
    checker.refresh(routes)
    assert _found(checker, routes) == [("SG101", 8, 12)]
    assert (project / ".slotguard_cache").is_dir()


def test_each_file_has_the_configuration_nearest_to_it(tmp_path: Path) -> None:
    project = server_projects.service(tmp_path)
    nested = project / "app/legacy"
    nested.mkdir()
    (nested / "slotguard.toml").write_text('ignore = ["SG201"]\n')
    (nested / "lookups.py").write_text(server_projects.LOOKUPS)
    checker = Checker()
    assert _found(checker, project / "app/lookups.py") == [("SG201", 5, 12)]
    assert _found(checker, nested / "lookups.py") == []


def test_an_invalid_configuration_is_reported_and_the_defaults_apply(tmp_path: Path) -> None:
    project = server_projects.service(tmp_path, config='selekt = ["SG2"]\n')
    checker = Checker()
    check = checker.check(server_projects.LOOKUPS, project / "app/lookups.py")
    assert check.configuration_problem is not None
    assert "selekt" in check.configuration_problem
    assert [d.code for d in check.diagnostics] == ["SG201"]


def test_a_buffer_that_does_not_parse_is_sg000_at_the_error(tmp_path: Path) -> None:
    project = server_projects.service(tmp_path)
    broken = server_projects.LOOKUPS.replace("if key is None:", "if key is None")
    check = Checker().check(broken, project / "app/lookups.py")
    assert [(d.code, d.span.line) for d in check.diagnostics] == [("SG000", 6)]
    assert "syntax error" in check.diagnostics[0].message


def test_an_unsaved_buffer_is_checked(tmp_path: Path) -> None:
    project = server_projects.service(tmp_path)
    assert _found(Checker(), project / "app/new.py", server_projects.LOOKUPS) == [("SG201", 5, 12)]


def test_a_buffer_in_a_declared_encoding_keeps_its_columns(tmp_path: Path) -> None:
    project = server_projects.service(tmp_path)
    text = "# -*- coding: latin-1 -*-\n# café\n" + server_projects.LOOKUPS
    assert _found(Checker(), project / "app/lookups.py", text) == [("SG201", 7, 12)]


def test_a_fix_is_offered_when_it_applies_cleanly(tmp_path: Path) -> None:
    project = server_projects.service(tmp_path)
    checker = Checker()
    check = checker.check(server_projects.LOOKUPS, project / "app/lookups.py")
    (finding,) = check.diagnostics
    option = checker.fix(check, finding)
    assert option is not None
    assert option.applicability is Applicability.SAFE
    assert option.text == server_projects.LOOKUPS_FIXED
    assert checker.check(option.text, project / "app/lookups.py").diagnostics == ()


def test_no_fix_for_a_finding_without_one(tmp_path: Path) -> None:
    project = server_projects.service(tmp_path)
    checker = Checker()
    check = checker.check(server_projects.KEPT, project / "app/pids.py")
    (finding,) = check.diagnostics
    assert (finding.code, finding.fix) == ("SG101", None)
    assert checker.fix(check, finding) is None


def test_fix_all_applies_the_safe_fixes_as_slotguard_fix_does(tmp_path: Path) -> None:
    project = server_projects.service(tmp_path)
    checker = Checker()
    text = (
        server_projects.LOOKUPS
        + "\n\n"
        + server_projects.LOOKUPS.split("\n\n\n", 1)[1].replace("find_user", "find_team")
    )
    check = checker.check(text, project / "app/lookups.py")
    assert [d.code for d in check.diagnostics] == ["SG201", "SG201"]
    fixed = checker.fix_all(check)
    assert fixed is not None
    assert checker.check(fixed, project / "app/lookups.py").diagnostics == ()
    assert checker.fix_all(checker.check(fixed, project / "app/lookups.py")) is None


def test_edits_turn_the_old_text_into_the_new() -> None:
    old, new = server_projects.LOOKUPS, server_projects.LOOKUPS_FIXED
    assert apply_edits(old, text_edits(old, new)) == new
    assert apply_edits("a\nb", text_edits("a\nb", "a\nb\nc\n")) == "a\nb\nc\n"


def test_rule_help_is_the_explain_text_and_its_readme_section() -> None:
    found = rule_help("SG201")
    assert found is not None
    assert found.documentation.startswith("## What it does")
    assert found.url.endswith("README.md#sg201-release-skipped-on-exit")
    assert rule_help("SG999") is None
