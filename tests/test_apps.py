"""The pinned application corpus (bench/apps.py) is well formed. Needs no mirrors."""

from __future__ import annotations

import re
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import apps  # noqa: E402


def test_every_app_is_pinned_to_a_full_commit_and_named_once() -> None:
    repos = [app.repo for app in apps.APPS.values()]
    assert len(repos) == len(set(repos)) == len(apps.APPS)
    for app in apps.APPS.values():
        assert re.fullmatch(r"[0-9a-f]{40}", app.commit), app
        assert app.kind.strip(), app
        assert app.set in ("triage", "held-out", "unseen"), app


def test_stand_ins_say_what_they_replace_and_why() -> None:
    for app in apps.APPS.values():
        assert bool(app.replaces) == bool(app.why), app


def test_sets_partition_the_list() -> None:
    assert set(apps.SETS["triage"]).isdisjoint(apps.SETS["held-out"])
    assert set(apps.SETS["all"]) == set(apps.APPS)


def test_kept_files() -> None:
    for path in (
        "a/b.py",
        "pyproject.toml",
        "x/setup.cfg",
        ".gitignore",
        "requirements.txt",
        "deps/requirements-dev.txt",
    ):
        assert apps.kept(path), path
    for path in ("README.md", "a/b.pyc", "setup.py.in", "constraints.txt", "x/requirements.in"):
        assert not apps.kept(path), path


def test_a_missing_mirror_says_how_to_bring_it(tmp_path: Path) -> None:
    name = apps.SETS["triage"][0]
    try:
        apps.materialise(name, cache_dir=tmp_path / "cache", mirror_dir=tmp_path / "none")
    except apps.AppError as error:
        assert f"github:{apps.APPS[name].repo}" in str(error)
    else:
        raise AssertionError("no error for a missing mirror")
