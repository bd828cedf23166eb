"""``slotguard fix`` over the application corpus: how much it fixes, and that it breaks nothing.

Reproduce::

    python bench/apps_fix.py --cache-dir /work/main/bench/.cache [--commit REV] [--diffs DIR]

Users run ``fix`` once over a legacy code base (issue 18). For each tree of
the application corpus (``apps.py``), on a copy in a temporary directory
(never the cached tree itself), this runs:

1. ``slotguard check . --output-format json`` with the default rules: the
   findings before (files not analysed, SG000, are counted apart: nothing
   can fix them);
2. ``slotguard fix .``: what the safe fixes remove;
3. ``slotguard fix . --unsafe-fixes``: what the unsafe ones remove on top,
   and, for every finding left, the reason ``fix`` gives;
4. the checks that a fix run corrupted nothing: every file it rewrote still
   compiles, keeps its mode, its line endings and its byte-order mark; a
   second ``fix --unsafe-fixes --diff`` would change nothing; and
   ``check`` afterwards reports no finding that was not there before
   (compared by path, code and reported line, whitespace collapsed).

It prints a table per tree (findings, fixed safe, fixed unsafe, not fixed)
and the reasons for what was not fixed, grouped with names elided; with
``--diffs DIR`` it writes each tree's diff (``DIR/<app>.diff``) for reading,
and with ``--json FILE`` everything, per finding. Exit status 1 if any check
of step 4 failed or a run failed.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apps
import checkout
import corpora

CHECK = ("check", ".", "--output-format", "json", "--exit-zero", "--no-cache")
FIX = ("fix", ".", "--no-cache")
UNSAFE = ("--unsafe-fixes",)
NOT_ANALYSED = "SG000"

_FIXED = re.compile(r"^slotguard: fixed (\d+) findings? in")
_FINDING = re.compile(
    r"^  (?P<path>.+?):(?P<line>\d+):(?P<column>\d+): (?P<code>SG\d{3}) "
    r"(?P<status>fixed|fixable with --unsafe-fixes|not fixable): (?P<reason>.*)$"
)
_NAMED = re.compile(r"`[^`]*`")


@dataclass(slots=True)
class FixResult:
    name: str
    findings: int
    not_analysed: int
    fixed_safe: int
    fixed_unsafe: int
    left: list[dict[str, Any]]
    done: list[dict[str, Any]]
    problems: list[str] = field(default_factory=list)
    diff: str = ""
    rewritten: int = 0

    @property
    def fixed(self) -> int:
        return self.fixed_safe + self.fixed_unsafe


def reason_class(reason: str) -> str:
    """A reason with the names it quotes elided, for grouping."""
    return _NAMED.sub("`…`", reason)


def _run(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([apps.SLOTGUARD, *args], cwd=cwd, capture_output=True, text=True)


def _check(tree: Path) -> list[dict[str, Any]]:
    result = _run(CHECK, tree)
    if result.returncode != 0:
        raise apps.AppError(f"check exited {result.returncode}: {result.stderr[-2000:]}")
    findings: list[dict[str, Any]] = json.loads(result.stdout or "[]")
    return findings


def _fix(tree: Path, *extra: str) -> tuple[int, list[dict[str, Any]], list[dict[str, Any]]]:
    """How many findings a fix run removed, each one it fixed with what was
    done, and each one it left with its status and reason."""
    result = _run((*FIX, *extra), tree)
    if result.returncode not in (0, 1):
        raise apps.AppError(f"fix exited {result.returncode}: {result.stderr[-2000:]}")
    fixed = 0
    done: list[dict[str, Any]] = []
    left: list[dict[str, Any]] = []
    for line in result.stderr.splitlines():
        match = _FIXED.match(line)
        if match:
            fixed = int(match.group(1))
            continue
        match = _FINDING.match(line)
        if match:
            entry = {
                "path": match["path"],
                "line": int(match["line"]),
                "code": match["code"],
                "status": match["status"],
                "reason": match["reason"],
            }
            (done if match["status"] == "fixed" else left).append(entry)
    return fixed, done, left


def _keys(tree: Path, findings: list[dict[str, Any]]) -> Counter[tuple[str, str, str]]:
    prints = apps.fingerprints(tree, findings)
    return Counter(
        (finding["path"], finding["code"], print_.split(" #")[0])
        for finding, print_ in zip(findings, prints, strict=True)
    )


def _snapshot(tree: Path) -> dict[Path, tuple[bytes, int]]:
    return {
        path: (path.read_bytes(), path.stat().st_mode)
        for path in sorted(tree.rglob("*.py"))
        if path.is_file() and not path.is_symlink()
    }


def _endings(data: bytes) -> set[bytes]:
    found = set()
    crlf = data.count(b"\r\n")
    if crlf:
        found.add(b"\r\n")
    if data.count(b"\n") > crlf:
        found.add(b"\n")
    return found


def _corruption(path: str, old: bytes, new: bytes, old_mode: int, new_mode: int) -> list[str]:
    """What is wrong with a rewritten file, if anything."""
    problems = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(new, path, "exec", ast.PyCF_ONLY_AST)
    except (SyntaxError, ValueError) as error:
        problems.append(f"{path}: does not compile after the fix: {error}")
    if old_mode != new_mode:
        problems.append(f"{path}: mode {oct(old_mode)} became {oct(new_mode)}")
    if old.startswith(b"\xef\xbb\xbf") != new.startswith(b"\xef\xbb\xbf"):
        problems.append(f"{path}: byte-order mark added or lost")
    if not _endings(new) <= _endings(old) and _endings(old):
        problems.append(f"{path}: line endings changed")
    return problems


def _diff(tree: Path, before: dict[Path, tuple[bytes, int]]) -> tuple[str, list[str], int]:
    parts: list[str] = []
    problems: list[str] = []
    rewritten = 0
    for path, (old, old_mode) in before.items():
        new = path.read_bytes()
        if new == old:
            continue
        rewritten += 1
        shown = path.relative_to(tree).as_posix()
        problems += _corruption(shown, old, new, old_mode, path.stat().st_mode)
        old_text = old.decode("utf-8", "replace").splitlines(keepends=True)
        new_text = new.decode("utf-8", "replace").splitlines(keepends=True)
        parts.extend(difflib.unified_diff(old_text, new_text, f"a/{shown}", f"b/{shown}"))
    return "".join(parts), problems, rewritten


def fix_app(name: str, cache_dir: Path | None, mirror_dir: Path | None) -> FixResult:
    source = apps.materialise(name, cache_dir, mirror_dir)
    with tempfile.TemporaryDirectory(prefix=f"slotguard-fix-{name}-") as scratch:
        tree = Path(scratch) / source.name
        shutil.copytree(source, tree, symlinks=True)
        corpora.isolate(tree)
        before_findings = _check(tree)
        before_keys = _keys(tree, before_findings)
        snapshot = _snapshot(tree)
        fixed_safe, done_safe, _ = _fix(tree)
        fixed_all, done_unsafe, left = _fix(tree, *UNSAFE)
        diff, problems, rewritten = _diff(tree, snapshot)
        again = _run((*FIX, *UNSAFE, "--diff"), tree)
        if again.stdout.strip():
            changed = sorted(set(re.findall(r"^\+\+\+ b/(.+)$", again.stdout, re.M)))
            problems.append(f"a second fix run would change {', '.join(changed)}")
        after_findings = _check(tree)
        added = _keys(tree, after_findings) - before_keys
        problems += [f"new finding: {path}: {code} on `{line}`" for path, code, line in added]
        not_analysed = sum(1 for f in before_findings if f["code"] == NOT_ANALYSED)
        return FixResult(
            name,
            len(before_findings) - not_analysed,
            not_analysed,
            fixed_safe,
            fixed_all,
            [entry for entry in left if entry["code"] != NOT_ANALYSED],
            [*done_safe, *done_unsafe],
            problems,
            diff,
            rewritten,
        )


def format_table(results: Sequence[FixResult]) -> str:
    width = max((len(r.name) for r in results), default=4)
    header = (
        f"{'app':<{width}} {'findings':>8} {'safe':>5} {'unsafe':>6} {'fixed':>6} "
        f"{'left':>5} {'files':>5} {'SG000':>5}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(
            f"{r.name:<{width}} {r.findings:>8} {r.fixed_safe:>5} {r.fixed_unsafe:>6} "
            f"{r.fixed:>6} {len(r.left):>5} {r.rewritten:>5} {r.not_analysed:>5}"
        )
    total = sum(r.findings for r in results)
    safe = sum(r.fixed_safe for r in results)
    unsafe = sum(r.fixed_unsafe for r in results)
    left = sum(len(r.left) for r in results)
    files = sum(r.rewritten for r in results)
    share = f"{100 * (safe + unsafe) / total:.0f} %" if total else "-"
    lines.append("-" * len(header))
    lines.append(
        f"{'total':<{width}} {total:>8} {safe:>5} {unsafe:>6} {safe + unsafe:>6} "
        f"{left:>5} {files:>5} {sum(r.not_analysed for r in results):>5}   fixed {share}"
    )
    for title, entries in (
        ("fixed, by code and rewrite:", [entry for r in results for entry in r.done]),
        ("not fixed, by code and reason:", [entry for r in results for entry in r.left]),
    ):
        classes: Counter[tuple[str, str]] = Counter(
            (entry["code"], f"{entry['status']}: {reason_class(entry['reason'])}")
            for entry in entries
        )
        lines += ["", title]
        for (code, reason), count in sorted(classes.items(), key=lambda item: (-item[1], item[0])):
            lines.append(f"{count:>5}  {code} {reason}")
    problems = [f"{r.name}: {problem}" for r in results for problem in r.problems]
    lines += ["", f"problems: {len(problems)}", *(f"  {p}" for p in problems)]
    return "\n".join(lines) + "\n"


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="only these apps instead of a set")
    parser.add_argument("--set", dest="set_name", choices=sorted(apps.SETS), default="all")
    parser.add_argument("--commit", default=None, metavar="REV", help="run this commit's src/")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--mirror-dir", type=Path, default=None)
    parser.add_argument("--diffs", type=Path, default=None, help="write DIR/<app>.diff")
    parser.add_argument("--json", type=Path, default=None, help="write every result here")
    args = parser.parse_args(argv)
    for name in args.names:
        if name not in apps.APPS:
            parser.error(f"unknown app {name!r}; choose from {', '.join(apps.APPS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    names = args.names or apps.SETS[args.set_name]
    source = checkout.describe(args.commit)
    results: list[FixResult] = []
    failures: list[str] = []
    with checkout.slotguard_at(args.commit):
        version = apps.slotguard_version()
        for name in names:
            try:
                result = fix_app(name, args.cache_dir, args.mirror_dir)
            except apps.AppError as error:
                failures.append(f"{name}: {error}")
                continue
            print(f"{name}: {result.fixed}/{result.findings} fixed", file=sys.stderr)
            results.append(result)
            if args.diffs is not None:
                args.diffs.mkdir(parents=True, exist_ok=True)
                (args.diffs / f"{name}.diff").write_text(result.diff, encoding="utf-8")
    dirty = ", with uncommitted edits in src/" if source["src_has_uncommitted_edits"] else ""
    print(f"{version}, from {source['from']}, commit {str(source['commit'])[:12]}{dirty}\n")
    print(format_table(results), end="")
    for failure in failures:
        print(f"FAILED: {failure}")
    if args.json is not None:
        document = {
            "slotguard": version,
            "slotguard_commit": source["commit"],
            "src_had_uncommitted_edits": source["src_has_uncommitted_edits"],
            "apps": [
                {
                    "name": r.name,
                    "corpus_commit": apps.APPS[r.name].commit,
                    "findings": r.findings,
                    "not_analysed": r.not_analysed,
                    "fixed_safe": r.fixed_safe,
                    "fixed_unsafe": r.fixed_unsafe,
                    "files_rewritten": r.rewritten,
                    "fixed": r.done,
                    "left": r.left,
                    "problems": r.problems,
                }
                for r in results
            ],
        }
        args.json.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return 1 if failures or any(r.problems for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
