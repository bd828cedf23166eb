"""Label every finding slotguard makes on the precision corpora, and summarise.

Reproduce::

    /work/venv/bin/python bench/precision.py          # bench/results/<project>.json
    /work/venv/bin/python bench/triage.py             # bench/triage.json + bench/triage.md
    /work/venv/bin/python bench/triage.py --render    # triage.md from triage.json only

A finding is identified by project, path, code and a *fingerprint* that
survives line moves: the reported source line with its whitespace collapsed,
plus ``#n`` when the same line text is reported more than once for the same
code in the same file.

Each finding gets a label (``true``: the code does what the rule says and it
matters; ``false``: it does not; ``debatable``: the pattern is there but
whether it is a problem depends on something the code does not show), a
class and a one-line reason. Labels come from ``CLASSES``: an ordered list
of rules, each a predicate over the finding and its source, written after
reading the findings it matches (see ``bench/triage.md`` for how they were
checked). A finding no rule matches is an error: every finding must be
judged. False-alarm classes name the regression fixture that reproduces them
and the change that fixed them; once fixed they no longer match anything, and
their counts before the fix are kept in ``triage.json`` under ``fixed``.

Rendering (``render``) needs only ``triage.json``, so the test suite can check
that ``triage.md`` is the summary of the data without the corpora.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
DATA = BENCH / "triage.json"
SUMMARY = BENCH / "triage.md"
LABELS = ("true", "false", "debatable")

Finding = dict[str, Any]


@dataclass(frozen=True)
class Source:
    """The finding's file, for predicates that read the code."""

    text: str
    lines: list[str]

    def line(self, number: int) -> str:
        return self.lines[number - 1] if 0 < number <= len(self.lines) else ""

    def imports(self, module: str) -> bool:
        dotted = re.escape(module)
        head, _, tail = module.rpartition(".")
        pattern = rf"^\s*(from {dotted}\b|import {dotted}\b"
        if head:
            pattern += rf"|from {re.escape(head)} import .*\b{re.escape(tail)}\b"
        pattern += ")"
        return re.search(pattern, self.text, re.MULTILINE) is not None


Predicate = Callable[[str, Finding, Source], bool]


@dataclass(frozen=True)
class Class:
    name: str
    label: str
    reason: str
    matches: Predicate
    fixture: str = ""
    """For a false-alarm class: the regression fixture that reproduces it."""


def _in(project: str, pattern: str) -> Predicate:
    return lambda p, f, s: p == project and re.search(pattern, f["path"]) is not None


def _line(pattern: str) -> Predicate:
    return lambda p, f, s: re.search(pattern, s.line(f["line"])) is not None


def _all(*predicates: Predicate) -> Predicate:
    return lambda p, f, s: all(predicate(p, f, s) for predicate in predicates)


def _code(*codes: str) -> Predicate:
    return lambda p, f, s: f["code"] in codes


def _at(project: str, path: str, code: str, line_pattern: str) -> Predicate:
    return _all(_in(project, "^" + re.escape(path) + "$"), _code(code), _line(line_pattern))


_LEAK_RULES = ("SG101", "SG102", "SG103", "SG201", "SG202", "SG203")

CLASSES: tuple[Class, ...] = (
    # -- false-alarm classes (fixed: they match only results from before the fix)
    Class(
        "released-in-same-expression",
        "false",
        "`engine.connect().close()`: the connection is closed in the expression that opens it",
        _all(_code(*_LEAK_RULES), _line(r"\.connect\(\)\.close\(\)")),
        "fixtures/rules/sg102/released_in_the_same_expression.py",
    ),
    Class(
        "library-implementation",
        "false",
        "inside the library that defines the resource: it manages connections through its own "
        "bookkeeping (registries, finalizers), not the public API the rule checks",
        _all(
            _code(*_LEAK_RULES),
            lambda p, f, s: f["path"].startswith(("lib/sqlalchemy/", "asyncpg/")),
        ),
        "fixtures/rules/sg202/library_implementation/psycopg_pool/pool.py",
    ),
    Class(
        "test-harness-reclaims",
        "false",
        "test under sqlalchemy.testing, whose teardown checks connections back in after each "
        "test and closes sessions (after the test or its class): the harness releases it",
        _all(
            _code(*_LEAK_RULES),
            lambda p, f, s: p == "sqlalchemy" and s.imports("sqlalchemy.testing"),
        ),
        "fixtures/rules/sg102/under_a_reclaiming_harness/test_sessions.py",
    ),
    Class(
        "execution-options-return-the-connection",
        "false",
        "`Connection.execution_options()` returns the same connection, which is entered/released",
        _all(_code("SG104", "SG201"), _line(r"execution_options\(")),
        "fixtures/rules/sg104/options_return_the_connection.py",
    ),
    Class(
        "factory-without-a-bind",
        "false",
        "sessions from a factory made without a bind (`sessionmaker()`) hold no connection",
        _all(
            _code("SG102"),
            _line(
                r"scoped_session\(\s*$|scoped_session\((async_)?sessionmaker\(\)"
                r"|scoped_session\(asm\b|= sm\(\)|= as_\(\)"
            ),
        ),
        "fixtures/rules/sg102/factory_without_bind.py",
    ),
    Class(
        "session-bound-to-a-connection-from-asyncio-run",
        "false",
        "a session bound to a connection made by `asyncio.run(...)` at import time; the "
        "connection itself is reported (line 81). Not fixed: the bind's type is not inferred",
        _at(
            "sqlalchemy",
            "test/typing/plain_files/sql/typed_results.py",
            "SG303",
            r"AsyncSession\(async_connection\)",
        ),
    ),
    Class(
        "session-bound-to-a-connection",
        "false",
        "a session bound to a connection someone else holds checks nothing out of the pool",
        _all(
            _code("SG102", "SG201", "SG202", "SG303"),
            _line(r"Session\(\s*(bind=)?(connection|conn|c|conn1|async_connection)\b"),
        ),
        "fixtures/rules/sg102/session_bound_to_a_connection.py",
    ),
    Class(
        "raw-connection-with-releases",
        "false",
        "SQLAlchemy 2's raw connection (PoolProxiedConnection) closes on `__exit__`; its own test "
        "asserts checkedout() == 0 after the block",
        _all(_code("SG104"), _line(r"raw_connection\(\)")),
        "fixtures/rules/sg104/raw_connection_entered.py",
    ),
)

# -- judged findings of the current results, most specific first -----------------

CLASSES += (
    Class(
        "exception-only-in-a-log-message",
        "debatable",
        "the only exception path is `db_url.query.get(...)` inside a log message's f-string "
        "between the connect and its return; a mapping lookup that cannot realistically raise",
        _at(
            "prefect",
            "prefect/server/utilities/postgres_listener.py",
            "SG201",
            r"asyncpg\.connect\(",
        ),
    ),
    Class(
        "connect-patched-by-a-mock",
        "debatable",
        "`asyncpg.connect` runs with `_connect_addr` patched to return Mocks; with a real "
        "server the connection would never be closed",
        _at("asyncpg", "tests/test_connect.py", "SG103", r"asyncpg\.connect\("),
    ),
    Class(
        "exception-only-from-list-append",
        "debatable",
        "a connect wrapper that returns its connection; only `list.append(weakref.ref(con))` "
        "sits between the connect and the return",
        _at("asyncpg", "tests/test_pool.py", "SG202", r"pg_connection\.connect\("),
    ),
    Class(
        "released-by-hand-not-entered",
        "true",
        "released in a `finally` by hand instead of the context-manager form the rule asks for",
        _all(_code("SG101", "SG102"), lambda p, f, s: " instead of `" in f["message"]),
    ),
    Class(
        "never-released",
        "true",
        "nothing closes it on any path: it stays checked out until the garbage collector runs",
        _all(_code("SG101", "SG102", "SG103"), lambda p, f, s: "never" in f["message"]),
    ),
    Class(
        "idle-in-transaction-during-slow-work",
        "true",
        "the session/connection is checked out (in a transaction) while the process sleeps or "
        "waits on a subprocess",
        _code("SG402", "SG403"),
    ),
    Class(
        "module-level-session",
        "true",
        "a session/connection created at import time and never closed (a script or typing "
        "fixture, but the connection is held for the life of the process)",
        _code("SG303"),
    ),
    Class(
        "released-only-on-success",
        "true",
        "closed only on the normal path (or in an `else:`); an exception or the loop's next "
        "iteration leaves it checked out",
        _code("SG201", "SG202", "SG203"),
    ),
    Class(
        "session-on-a-class-attribute",
        "true",
        "a session stored on the test class for all its tests (the code itself says "
        "'this is not the correct pattern, use session per test')",
        _code("SG301"),
    ),
)


# -- SG5: false-alarm classes found on the first run with every rule (fixed since) --

CLASSES += (
    Class(
        "sg501-testing-engine-reaped",
        "false",
        "`testing_engine()` registers the engine with sqlalchemy.testing's reaper, which "
        "disposes it when its scope (by default the test) ends",
        _all(_code("SG501"), _line(r"\b(testing_engine|reconnecting_engine)\(")),
        "fixtures/rules/sg501/under_a_test_harness/test_engines.py",
    ),
    Class(
        "sg501-engine-probe-never-connects",
        "false",
        "an engine made only to read a dialect attribute in a requirement probe; it never "
        "connects, so it holds nothing",
        _at("sqlalchemy", "lib/sqlalchemy/testing/requirements.py", "SG501", r"create_engine\("),
        "fixtures/rules/sg501/under_a_test_harness/test_engines.py",
    ),
    Class(
        "sg501-engine-local-to-a-test",
        "false",
        "an engine a test makes for itself (often over a mock DBAPI) and drops when the test "
        "ends: not the pool of a long-lived application or process",
        _all(
            _code("SG501"),
            lambda p, f, s: (
                p == "sqlalchemy" and " in `" in f["message"] and s.imports("sqlalchemy.testing")
            ),
        ),
        "fixtures/rules/sg501/script_and_tests.py",
    ),
    Class(
        "sg501-async-engine-not-disposed",
        "true",
        "an AsyncEngine made in `async_main` and not disposed before `asyncio.run` closes the "
        "loop: SQLAlchemy's asyncio docs require `await engine.dispose()` there",
        _all(
            _code("SG501"),
            _line(r"create_async_engine\("),
            lambda p, f, s: " in `async_main`" in f["message"],
        ),
    ),
    Class(
        "sg501-script-engine",
        "debatable",
        "the engine of a demo script or typing fixture: never disposed, as reported, but it "
        "lives exactly as long as the process, whose exit closes its connections",
        _code("SG501"),
    ),
)


def fingerprint(text: str) -> str:
    return " ".join(text.split())


def classify(project: str, finding: Finding, source: Source) -> Class | None:
    for candidate in CLASSES:
        if candidate.matches(project, finding, source):
            return candidate
    return None


def triage(results: Path, corpora_root: Callable[[str], Path]) -> dict[str, Any]:
    """Label every finding of every result file; raise if one is left unjudged."""
    findings: list[dict[str, Any]] = []
    unjudged: list[str] = []
    for result_file in sorted(results.glob("*.json")):
        if result_file.name == "speed.json":
            continue
        document = json.loads(result_file.read_text(encoding="utf-8"))
        project = result_file.stem
        root = corpora_root(project)
        seen: Counter[tuple[str, str, str]] = Counter()
        for finding in document["findings"]:
            path = root / finding["path"]
            text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
            source = Source(text, text.splitlines())
            print_ = fingerprint(source.line(finding["line"]))
            key = (finding["path"], finding["code"], print_)
            seen[key] += 1
            if seen[key] > 1:
                print_ += f" #{seen[key]}"
            judged = classify(project, finding, source)
            if judged is None:
                unjudged.append(
                    f"{project}: {finding['path']}:{finding['line']} "
                    f"{finding['code']} {finding['message']}"
                )
                continue
            findings.append(
                {
                    "project": project,
                    "path": finding["path"],
                    "code": finding["code"],
                    "fingerprint": print_,
                    "line": finding["line"],
                    "label": judged.label,
                    "class": judged.name,
                    "reason": judged.reason,
                }
            )
    if unjudged:
        raise SystemExit("findings no class matches:\n" + "\n".join(unjudged))
    return {"findings": findings}


# -- rendering (no corpora needed) ----------------------------------------------


def precision(counts: Counter[str]) -> tuple[str, str]:
    """(debatable counted as false, debatable excluded), as percentages."""
    true, false, debatable = counts["true"], counts["false"], counts["debatable"]
    strict = f"{100 * true / (true + false + debatable):.0f} %" if true + false + debatable else "-"
    lenient = f"{100 * true / (true + false):.0f} %" if true + false else "-"
    return strict, lenient


def render(data: dict[str, Any]) -> str:
    findings = data["findings"]
    by_code: dict[str, Counter[str]] = {}
    for finding in findings:
        by_code.setdefault(finding["code"], Counter())[finding["label"]] += 1
    lines = [
        "# Precision triage",
        "",
        "Generated by `bench/triage.py` from `bench/triage.json`; do not edit by hand.",
        "",
        data["about"].strip(),
        "",
        "## Per-rule precision",
        "",
        "precision = true / (true + false). *Debatable as false* counts every",
        "debatable finding as a false alarm (true / all); *excluded* leaves them",
        "out (true / (true + false)).",
        "",
        "| rule | findings | true | false | debatable | precision, debatable as false "
        "| precision, debatable excluded |",
        "|---|---|---|---|---|---|---|",
    ]
    total: Counter[str] = Counter()
    for code in sorted(by_code):
        counts = by_code[code]
        total.update(counts)
        strict, lenient = precision(counts)
        lines.append(
            f"| {code} | {sum(counts.values())} | {counts['true']} | {counts['false']} "
            f"| {counts['debatable']} | {strict} | {lenient} |"
        )
    strict, lenient = precision(total)
    lines.append(
        f"| all | {sum(total.values())} | {total['true']} | {total['false']} "
        f"| {total['debatable']} | {strict} | {lenient} |"
    )
    lines += [
        "",
        "## Findings per project",
        "",
        "| project | findings | true | false | debatable |",
        "|---|---|---|---|---|",
    ]
    per_project: dict[str, Counter[str]] = {}
    for finding in findings:
        per_project.setdefault(finding["project"], Counter())[finding["label"]] += 1
    for project in sorted(per_project):
        counts = per_project[project]
        lines.append(
            f"| {project} | {sum(counts.values())} | {counts['true']} "
            f"| {counts['false']} | {counts['debatable']} |"
        )
    lines += [
        "",
        "## False-alarm classes found and fixed",
        "",
        "| class | findings before the fix | fixture | fix |",
        "|---|---|---|---|",
    ]
    for fixed in data["fixed"]:
        lines.append(
            f"| {fixed['class']} | {fixed['before']} | `{fixed['fixture']}` | {fixed['fix']} |"
        )
    lines += [
        "",
        "## Every finding",
        "",
        "| project | path | code | fingerprint | label | class | reason |",
        "|---|---|---|---|---|---|---|",
    ]
    for finding in findings:
        shown = finding["fingerprint"].replace("|", "\\|")
        if len(shown) > 70:
            shown = shown[:67] + "..."
        lines.append(
            f"| {finding['project']} | {finding['path']} | {finding['code']} "
            f"| `{shown}` | {finding['label']} | {finding['class']} "
            f"| {finding['reason']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--render", action="store_true", help="only regenerate triage.md from triage.json"
    )
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        metavar="DIR",
        help="results of the commit before the fixes: count the findings of "
        "each false-alarm class there (data['fixed'][*]['before'])",
    )
    args = parser.parse_args(argv)
    data = json.loads(DATA.read_text(encoding="utf-8")) if DATA.exists() else {}
    if not args.render:
        import corpora

        def root(project: str) -> Path:
            return corpora.fetch(project)

        labelled = triage(RESULTS, root)
        data["findings"] = labelled["findings"]
        if args.before is not None:
            before = Counter(f["class"] for f in triage(args.before, root)["findings"])
            for fixed in data.get("fixed", []):
                fixed["before"] = before[fixed["class"]]
        DATA.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    SUMMARY.write_text(render(data), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
