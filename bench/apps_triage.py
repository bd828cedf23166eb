"""Render the triage of the application corpus: labels from data, counts from results.

Reproduce::

    python bench/apps.py check --stage before --commit ef7a9b6   # bench/results/apps/before/
    python bench/apps_triage.py                                  # bench/apps_triage.md
    python bench/apps_triage.py --check                          # every finding labelled?
    python bench/apps_triage.py --todo                           # unlabelled findings, as records

Every default-rule finding that slotguard makes on the *triage* set of
``apps.py`` is judged by reading the code, and the judgement is data:
``bench/apps_labels.json`` holds one record per finding, keyed by project,
path, code and the fingerprint ``apps.py`` stores beside each finding (the
reported source line with its whitespace collapsed, ``#n`` for repeats), with

- ``label``: ``true`` (a maintainer would fix it: it leaks or holds a
  connection at runtime), ``false`` (it does not), or ``debatable`` (it
  depends on something the code does not show);
- ``class``: a short kebab-case name of the class of code, never a project's
  name, described once under ``classes``;
- ``reason``: one line, for this finding.

Labels survive from one stage (``bench/results/apps/<stage>/``) to the next:
a finding of a later stage with the same key reuses its label, so only new
findings need reading. The *unseen* set is labelled the same way, once, at
the commit that first ran it (applications added after the rules were
tuned, so its first stage measures code nobody tuned on). An unlabelled
finding of either set is an error
(``--check`` fails, the summary lists it). The *held-out* set is never
labelled: its raw counts are shown so that a change tuned to the triaged trees
shows there; a label for one of its findings is an error too.

Rendering reads only the committed results and labels, so
``tests/test_apps_triage.py`` checks that ``bench/apps_triage.md`` is what the
data renders without the corpus.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results" / "apps"
LABELS = BENCH / "apps_labels.json"
SUMMARY = BENCH / "apps_triage.md"
VALUES = ("true", "false", "debatable")
KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
STAGES = ("before", "after", "unseen-first", "after-18", "after-18-fixes")
"""The committed stages in the order they were run: issue 14's before and
after, the first run of the unseen set, the whole corpus after issue 18's
first round, and after its fix-coverage round."""
TRIAGE, HELD_OUT, UNSEEN = "triage", "held-out", "unseen"
LABELLED = (TRIAGE, UNSEEN)
"""The sets whose findings are labelled: the triage set, and the unseen set,
labelled once at the commit it was first run and never tuned on before that."""

Key = tuple[str, str, str, str]


@dataclass(frozen=True, slots=True)
class Finding:
    stage: str
    project: str
    set: str
    path: str
    line: int
    code: str
    fingerprint: str
    message: str

    @property
    def key(self) -> Key:
        return (self.project, self.path, self.code, self.fingerprint)

    @property
    def location(self) -> str:
        return f"{self.project}:{self.path}:{self.line}"


@dataclass(frozen=True, slots=True)
class Stage:
    name: str
    documents: list[dict[str, Any]]
    findings: list[Finding]

    @property
    def slotguard_commits(self) -> list[str]:
        return sorted({str(d["slotguard_commit"])[:12] for d in self.documents})


def stage_order(name: str) -> tuple[int, str]:
    """Known stages in the order they were run, any other after them."""
    return (STAGES.index(name), "") if name in STAGES else (len(STAGES), name)


def load_stages(results: Path = RESULTS) -> list[Stage]:
    stages = []
    directories = [d for d in results.iterdir() if d.is_dir()] if results.is_dir() else []
    for directory in sorted(directories, key=lambda d: stage_order(d.name)):
        documents, findings = [], []
        for path in sorted(directory.glob("*.json"), key=lambda p: p.name.lower()):
            document = json.loads(path.read_text(encoding="utf-8"))
            documents.append(document)
            prints = document["fingerprints"]
            if len(prints) != len(document["findings"]):
                raise ValueError(f"{path}: one fingerprint per finding expected")
            for finding, print_ in zip(document["findings"], prints, strict=True):
                findings.append(
                    Finding(
                        directory.name,
                        document["name"],
                        document["set"],
                        finding["path"],
                        finding["line"],
                        finding["code"],
                        print_,
                        finding["message"],
                    )
                )
        stages.append(Stage(directory.name, documents, findings))
    return stages


def load_labels(path: Path = LABELS) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def label_index(data: dict[str, Any]) -> dict[Key, dict[str, Any]]:
    return {(r["project"], r["path"], r["code"], r["fingerprint"]): r for r in data["labels"]}


def problems(stages: Sequence[Stage], data: dict[str, Any]) -> list[str]:
    """Everything ``--check`` fails on, one line each."""
    found: list[str] = []
    keys: Counter[Key] = Counter()
    classes: dict[str, str] = data.get("classes", {})
    held_out = {f.project for s in stages for f in s.findings if f.set == HELD_OUT}
    used: set[str] = set()
    for record in data["labels"]:
        key = (record["project"], record["path"], record["code"], record["fingerprint"])
        keys[key] += 1
        where = f"label {':'.join(key)}"
        if record["label"] not in VALUES:
            found.append(f"{where}: label {record['label']!r} is not one of {VALUES}")
        if not KEBAB.match(record["class"]):
            found.append(f"{where}: class {record['class']!r} is not kebab-case")
        if record["class"] not in classes:
            found.append(f"{where}: class {record['class']!r} is not described under 'classes'")
        if not record["reason"].strip():
            found.append(f"{where}: no reason")
        if record["project"] in held_out:
            found.append(f"{where}: the held-out set is not labelled")
        used.add(record["class"])
    found += [f"label {':'.join(k)}: given {n} times" for k, n in keys.items() if n > 1]
    found += [
        f"class {name!r} is described but labels no finding" for name in sorted(set(classes) - used)
    ]
    index = label_index(data)
    for stage in stages:
        for finding in stage.findings:
            if finding.set in LABELLED and finding.key not in index:
                found.append(
                    f"unlabelled: {stage.name}: {finding.location} {finding.code} "
                    f"{finding.message[:120]}"
                )
    return found


# -- rendering -------------------------------------------------------------------


def percent(numerator: int, denominator: int) -> str:
    return f"{100 * numerator / denominator:.0f} %" if denominator else "-"


def _counts(findings: Iterable[Finding], index: dict[Key, dict[str, Any]]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for finding in findings:
        record = index.get(finding.key)
        counts[record["label"] if record else "unlabelled"] += 1
    return counts


def _row(name: str, counts: Counter[str], total: int) -> str:
    true, false, debatable = counts["true"], counts["false"], counts["debatable"]
    unlabelled = f" ({counts['unlabelled']} unlabelled)" if counts["unlabelled"] else ""
    return (
        f"| {name} | {total}{unlabelled} | {true} | {false} | {debatable} "
        f"| {percent(true, true + false)} | {percent(true, true + false + debatable)} |"
    )


def _table(title: str, rows: Iterable[str]) -> list[str]:
    return [
        f"| {title} | findings | true | false | debatable "
        "| precision, debatable excluded | precision, debatable as false |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def render(stages: Sequence[Stage], data: dict[str, Any]) -> str:
    index = label_index(data)
    classes: dict[str, str] = data.get("classes", {})
    lines = [
        "# Application corpus: triage of the default rules",
        "",
        "Generated by `bench/apps_triage.py` from `bench/results/apps/<stage>/*.json` and",
        "`bench/apps_labels.json`; do not edit by hand.",
        "",
        data["about"].strip(),
        "",
        "Precision is true / (true + false) with debatable findings left out, and",
        "true / all with debatable findings counted as false alarms.",
        "",
        "## Stages",
        "",
        "| stage | slotguard commit | triage-set findings | held-out findings "
        "| unseen-set findings |",
        "|---|---|---|---|---|",
    ]
    for stage in stages:
        sizes = [sum(1 for f in stage.findings if f.set == name) for name in SET_ORDER]
        cells = " | ".join(str(n) for n in sizes)
        lines.append(f"| {stage.name} | {', '.join(stage.slotguard_commits)} | {cells} |")
    for stage in stages:
        lines += ["", f"## Stage `{stage.name}`"]
        for name in LABELLED:
            if any(d["set"] == name for d in stage.documents):
                lines += _labelled_set(stage, name, index, classes)
        lines += ["", "### Held-out set (not triaged)", ""]
        lines += _held_out(stage)
    lines += ["", "## Every label", ""]
    lines += _every_label(stages, data)
    return "\n".join(lines) + "\n"


SET_ORDER = (TRIAGE, HELD_OUT, UNSEEN)


def _labelled_set(
    stage: Stage, set_name: str, index: dict[Key, dict[str, Any]], classes: dict[str, str]
) -> list[str]:
    """Per-rule precision, per-project counts and classes of one labelled set."""
    triaged = [f for f in stage.findings if f.set == set_name]
    lines = ["", f"### {set_name.capitalize()} set: per-rule precision", ""]
    by_code: dict[str, list[Finding]] = {}
    for finding in triaged:
        by_code.setdefault(finding.code, []).append(finding)
    rows = [
        _row(code, _counts(by_code[code], index), len(by_code[code])) for code in sorted(by_code)
    ]
    rows.append(_row("all", _counts(triaged, index), len(triaged)))
    lines += _table("rule", rows)
    lines += ["", f"### {set_name.capitalize()} set: per project", ""]
    lines += [
        "| project | kind | findings | true | false | debatable | by rule |",
        "|---|---|---|---|---|---|---|",
    ]
    for document in stage.documents:
        if document["set"] != set_name:
            continue
        mine = [f for f in triaged if f.project == document["name"]]
        counts = _counts(mine, index)
        codes = ", ".join(f"{c} {n}" for c, n in sorted(Counter(f.code for f in mine).items()))
        lines.append(
            f"| {document['name']} | {document['kind']} | {len(mine)} | {counts['true']} "
            f"| {counts['false']} | {counts['debatable']} | {codes or '-'} |"
        )
    for label, title in (
        ("false", "false-alarm classes"),
        ("debatable", "debatable classes"),
        ("true", "true-leak classes"),
    ):
        lines += ["", f"#### {set_name.capitalize()} set: {title}", ""]
        lines += _classes(triaged, index, classes, label)
    unlabelled = [f for f in triaged if f.key not in index]
    if unlabelled:
        lines += ["", "#### Unlabelled findings (an error: label them)", ""]
        lines += [f"- `{f.location}` {f.code}: {_escape(f.message[:120])}" for f in unlabelled]
    return lines


def _classes(
    findings: Sequence[Finding],
    index: dict[Key, dict[str, Any]],
    classes: dict[str, str],
    label: str,
) -> list[str]:
    grouped: dict[str, list[Finding]] = {}
    for finding in findings:
        record = index.get(finding.key)
        if record and record["label"] == label:
            grouped.setdefault(record["class"], []).append(finding)
    if not grouped:
        return ["(none)"]
    rows = ["| class | findings | rules | what it is | examples |", "|---|---|---|---|---|"]
    for name, members in sorted(grouped.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        codes = ", ".join(f"{c} {n}" for c, n in sorted(Counter(f.code for f in members).items()))
        examples, projects = [], []
        for finding in members:  # one example per project first, then more
            if finding.project not in projects:
                projects.append(finding.project)
                examples.append(finding)
        examples += [f for f in members if f not in examples]
        shown = "<br>".join(f"`{f.location}`" for f in examples[:3])
        rows.append(
            f"| {name} | {len(members)} | {codes} | {_escape(classes.get(name, '?'))} | {shown} |"
        )
    return rows


def _held_out(stage: Stage) -> list[str]:
    documents = [d for d in stage.documents if d["set"] == HELD_OUT]
    if not documents:
        return ["(not run in this stage)"]
    rows = [
        "| project | kind | findings | by rule | files not analysed (SG000) |",
        "|---|---|---|---|---|",
    ]
    for document in documents:
        counts = document["counts"]
        codes = ", ".join(f"{c} {n}" for c, n in sorted(counts.items()))
        rows.append(
            f"| {document['name']} | {document['kind']} | {len(document['findings'])} "
            f"| {codes or '-'} | {document['not_analysed']} |"
        )
    return rows


def _every_label(stages: Sequence[Stage], data: dict[str, Any]) -> list[str]:
    seen: dict[Key, list[Finding]] = {}
    for stage in stages:
        for finding in stage.findings:
            seen.setdefault(finding.key, []).append(finding)
    rows = [
        "| project | path:line | code | fingerprint | stages | label | class | reason |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for record in data["labels"]:
        key = (record["project"], record["path"], record["code"], record["fingerprint"])
        where = seen.get(key, [])
        line = f":{where[-1].line}" if where else ""
        stage_names = ", ".join(dict.fromkeys(f.stage for f in where)) or "(none)"
        shown = record["fingerprint"]
        if len(shown) > 60:
            shown = shown[:57] + "..."
        rows.append(
            f"| {record['project']} | {record['path']}{line} | {record['code']} "
            f"| `{_escape(shown)}` | {stage_names} | {record['label']} | {record['class']} "
            f"| {_escape(record['reason'])} |"
        )
    return rows


# -- command line ------------------------------------------------------------------


def todo(stages: Sequence[Stage], data: dict[str, Any]) -> list[dict[str, Any]]:
    """Label records to fill in, one per unlabelled finding of the triage set."""
    index = label_index(data)
    records: dict[Key, dict[str, Any]] = {}
    for stage in stages:
        for f in stage.findings:
            if f.set in LABELLED and f.key not in index and f.key not in records:
                records[f.key] = {
                    "project": f.project,
                    "path": f.path,
                    "code": f.code,
                    "fingerprint": f.fingerprint,
                    "label": "",
                    "class": "",
                    "reason": "",
                    "_seen": f"{f.stage}: line {f.line}: {f.message}",
                }
    return list(records.values())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--check",
        action="store_true",
        help="fail if a finding of a labelled set is unlabelled or a label is bad",
    )
    mode.add_argument(
        "--todo",
        action="store_true",
        help="print the unlabelled findings as label records to fill in",
    )
    args = parser.parse_args(argv)
    stages = load_stages()
    data = load_labels()
    if args.todo:
        print(json.dumps(todo(stages, data), indent=1, ensure_ascii=False))
        return 0
    found = problems(stages, data)
    if not args.check:
        SUMMARY.write_text(render(stages, data), encoding="utf-8")
    for problem in found:
        print(f"apps_triage: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
