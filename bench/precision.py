"""Run slotguard over real projects and keep what it reports, for triage.

Reproduce::

    /work/venv/bin/python bench/precision.py

Precision cannot be measured on fixtures written by the people who wrote the
rules; it shows on code written by others. Each precision corpus (see
``corpora.py``) gets one JSON file, ``bench/results/<project>.json``, holding
the findings exactly as ``--output-format json`` prints them, with paths
relative to the project's root so the files can be committed and compared
from one commit to the next. The files carry no timestamp for the same reason.

Files slotguard could not analyse (SG000) are listed separately: each one is
a file whose leaks, if any, went unseen.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import checkout
import corpora

BIN = Path(sys.executable).parent
SLOTGUARD = str(BIN / "slotguard") if (BIN / "slotguard").exists() else "slotguard"
DEFAULT_SELECT = "SG"


def check_command(select: str) -> list[str]:
    return ["check", ".", "--select", select, "--output-format", "json", "--exit-zero"]


DEFAULT_RESULTS = Path(__file__).resolve().parent / "results"
NOT_ANALYSED = "SG000"


@dataclass(frozen=True, slots=True)
class ProjectResult:
    name: str
    version: str
    findings: list[dict[str, Any]]
    seconds: float

    @property
    def counts(self) -> Counter[str]:
        return Counter(finding["code"] for finding in self.findings)

    @property
    def not_analysed(self) -> list[dict[str, Any]]:
        return [finding for finding in self.findings if finding["code"] == NOT_ANALYSED]


class CheckFailed(Exception):
    """slotguard exited with status 2: a usage or internal error, not findings."""


def slotguard_version() -> str:
    result = subprocess.run([SLOTGUARD, "--version"], capture_output=True, text=True)
    return result.stdout.strip()


def check_project(name: str, cache_dir: Path | None, select: str) -> ProjectResult:
    """Run slotguard from the project's root, so reported paths are relative to it."""
    tree = corpora.fetch(name, cache_dir)
    corpora.isolate(tree)
    start = time.perf_counter()
    result = subprocess.run(
        [SLOTGUARD, *check_command(select)], cwd=tree, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise CheckFailed(
            f"{name}: slotguard exited {result.returncode}: {result.stderr.strip()[-2000:]}"
        )
    findings: list[dict[str, Any]] = json.loads(result.stdout or "[]")
    return ProjectResult(name, corpora.version_of(tree), findings, seconds)


def write_result(
    project: ProjectResult, directory: Path, version: str, select: str, source: dict[str, object]
) -> Path:
    corpus = corpora.CORPORA[project.name]
    document = {
        "project": corpus.project,
        "version": project.version,
        "kind": corpus.kind,
        "why": corpus.why,
        "slotguard": version,
        "slotguard_commit": source["commit"],
        "src_had_uncommitted_edits": source["src_has_uncommitted_edits"],
        "command": f"slotguard {' '.join(check_command(select))}",
        "counts": dict(sorted(project.counts.items())),
        "findings": project.findings,
    }
    path = directory / f"{project.name}.json"
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def format_summary(projects: Sequence[ProjectResult]) -> str:
    """A project-by-code table of counts, then the files that were not analysed."""
    codes = sorted({code for project in projects for code in project.counts})
    width = max((len(p.name) for p in projects), default=7)
    header = (
        f"{'project':<{width}} {'version':<8} {'total':>5} "
        + " ".join(f"{code:>6}" for code in codes)
        + f" {'time s':>7}"
    )
    lines = [header, "-" * len(header)]
    for project in projects:
        cells = " ".join(f"{project.counts.get(code, 0):>6}" for code in codes)
        lines.append(
            f"{project.name:<{width}} {project.version:<8} "
            f"{len(project.findings):>5} {cells} {project.seconds:>7.1f}"
        )
    unanalysed = [(p.name, f) for p in projects for f in p.not_analysed]
    lines += ["", f"files not analysed ({NOT_ANALYSED}): {len(unanalysed)}"]
    for name, finding in unanalysed:
        lines.append(f"  {name}: {finding['path']}:{finding['line']}: {finding['message']}")
    return "\n".join(lines) + "\n"


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--corpus",
        action="append",
        choices=corpora.SETS["precision"],
        help="only these projects (repeatable; default: all)",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=DEFAULT_RESULTS,
        help=f"where the per-project JSON files go (default: {DEFAULT_RESULTS})",
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help="corpus cache directory")
    parser.add_argument(
        "--select",
        default=DEFAULT_SELECT,
        help=f"rule selection passed to slotguard (default: {DEFAULT_SELECT})",
    )
    parser.add_argument(
        "--commit",
        default=None,
        metavar="REV",
        help="run the slotguard of this commit instead of the working tree",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    projects: list[ProjectResult] = []
    failures: list[str] = []
    source = checkout.describe(args.commit)
    try:
        with checkout.slotguard_at(args.commit):
            version = slotguard_version()
            for name in args.corpus or corpora.SETS["precision"]:
                try:
                    project = check_project(name, args.cache_dir, args.select)
                except CheckFailed as error:
                    failures.append(str(error))
                    continue
                path = write_result(project, args.results_dir, version, args.select, source)
                print(f"{name}: {len(project.findings)} findings -> {path}", file=sys.stderr)
                projects.append(project)
    except (corpora.CorpusError, ValueError) as error:
        print(f"precision: error: {error}", file=sys.stderr)
        return 1
    dirty = ", with uncommitted edits in src/" if source["src_has_uncommitted_edits"] else ""
    print(f"{version}, from {source['from']}, commit {str(source['commit'])[:12]}{dirty}\n")
    print(format_summary(projects), end="")
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
