"""The application-corpus triage (bench/apps_labels.json) labels every finding
of the triage set, and bench/apps_triage.md is what the results and labels
render. Needs no corpus: the results are committed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import apps_triage  # noqa: E402


def test_summary_is_generated_from_the_data() -> None:
    stages = apps_triage.load_stages()
    data = apps_triage.load_labels()
    assert apps_triage.SUMMARY.read_text(encoding="utf-8") == apps_triage.render(stages, data)


def test_every_finding_of_the_triage_set_is_labelled_and_labels_are_valid() -> None:
    assert apps_triage.problems(apps_triage.load_stages(), apps_triage.load_labels()) == []


def test_the_before_stage_is_there() -> None:
    names = [stage.name for stage in apps_triage.load_stages()]
    assert names[0] == "before"


def _result(directory: Path, name: str, set_: str, findings: list[tuple[str, str]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    document = {
        "name": name,
        "set": set_,
        "kind": "k",
        "slotguard_commit": "0" * 40,
        "counts": {},
        "not_analysed": 0,
        "findings": [{"path": p, "line": 1, "code": c, "message": "m"} for p, c in findings],
        "fingerprints": ["x = connect()" for _ in findings],
    }
    (directory / f"{name}.json").write_text(json.dumps(document), encoding="utf-8")


def _label(project: str, path: str, code: str, **changes: str) -> dict[str, Any]:
    record = {
        "project": project,
        "path": path,
        "code": code,
        "fingerprint": "x = connect()",
        "label": "false",
        "class": "some-class",
        "reason": "why",
    }
    record.update(changes)
    return record


def test_labels_carry_over_to_a_later_stage_and_gaps_are_reported(tmp_path: Path) -> None:
    _result(tmp_path / "before", "app", "triage", [("a.py", "SG102")])
    _result(tmp_path / "after", "app", "triage", [("a.py", "SG102"), ("b.py", "SG201")])
    _result(tmp_path / "after", "held", "held-out", [("c.py", "SG501")])
    stages = apps_triage.load_stages(tmp_path)
    assert [s.name for s in stages] == ["before", "after"]
    data = {
        "about": "test",
        "classes": {"some-class": "d"},
        "labels": [_label("app", "a.py", "SG102")],
    }
    found = apps_triage.problems(stages, data)
    assert len(found) == 1 and found[0].startswith("unlabelled: after: app:b.py:1 SG201")
    rendered = apps_triage.render(stages, data)
    assert "Unlabelled findings" in rendered and "1 unlabelled" in rendered
    assert [r["path"] for r in apps_triage.todo(stages, data)] == ["b.py"]


def test_bad_labels_are_reported(tmp_path: Path) -> None:
    _result(tmp_path / "before", "app", "triage", [("a.py", "SG102")])
    _result(tmp_path / "before", "held", "held-out", [("c.py", "SG501")])
    stages = apps_triage.load_stages(tmp_path)
    data = {
        "about": "test",
        "classes": {"some-class": "d", "unused-class": "d"},
        "labels": [
            _label("app", "a.py", "SG102", label="maybe", **{"class": "Not_Kebab"}),
            _label("held", "c.py", "SG501"),
            _label("held", "c.py", "SG501"),
        ],
    }
    found = "\n".join(apps_triage.problems(stages, data))
    for expected in (
        "is not one of",
        "is not kebab-case",
        "not described",
        "the held-out set is not labelled",
        "given 2 times",
        "'unused-class' is described but labels no finding",
    ):
        assert expected in found, expected
