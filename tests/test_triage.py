"""The precision triage (bench/triage.json) is consistent with itself, and
bench/triage.md is its summary. Needs no corpora: CI has none."""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import triage  # noqa: E402


def _data() -> dict[str, object]:
    return json.loads((BENCH / "triage.json").read_text(encoding="utf-8"))


def test_every_finding_has_a_valid_label_and_a_reason() -> None:
    findings = _data()["findings"]
    assert isinstance(findings, list) and findings
    for finding in findings:
        assert finding["label"] in triage.LABELS, finding
        assert finding["reason"].strip(), finding
        assert finding["fingerprint"].strip(), finding
        assert finding["class"] in {c.name for c in triage.CLASSES}, finding


def test_findings_are_identified_once() -> None:
    keys = [(f["project"], f["path"], f["code"], f["fingerprint"]) for f in _data()["findings"]]
    assert len(keys) == len(set(keys))


def test_labels_agree_with_their_class() -> None:
    classes = {c.name: c for c in triage.CLASSES}
    for finding in _data()["findings"]:
        judged = classes[finding["class"]]
        assert (finding["label"], finding["reason"]) == (judged.label, judged.reason), finding


def test_fixed_classes_are_false_alarms_with_fixtures() -> None:
    classes = {c.name: c for c in triage.CLASSES}
    root = BENCH.parent
    for fixed in _data()["fixed"]:
        assert classes[fixed["class"]].label == "false"
        assert fixed["fix"].strip()
        assert (root / fixed["fixture"].split(" ", 1)[0]).is_file(), fixed


def test_summary_is_generated_from_the_data() -> None:
    assert (BENCH / "triage.md").read_text(encoding="utf-8") == triage.render(_data())
