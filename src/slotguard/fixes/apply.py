"""Applying fixes to one file, safely.

Plans are applied one at a time. After each, the new code must parse, and
checking it again must report fewer findings and no new kind of finding;
otherwise the plan is dropped and the next one tried. This repeats until no
plan is left (overlapping fixes are simply taken in turn), with a bound.
Comments and formatting outside the rewritten statements are untouched,
because the rewrite is done on the concrete syntax tree, which keeps them.

Nothing is written here: the caller writes the result (atomically) or shows
it as a diff.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst

from slotguard.engine import run_rules
from slotguard.fixes.base import Plan
from slotguard.model.summary import EMPTY_INDEX, ProjectIndex
from slotguard.parse import parse
from slotguard.report.diagnostic import Applicability
from slotguard.rules.base import Context, RawFinding
from slotguard.settings import Settings
from slotguard.source import SourceError, SourceText, decode

MAX_ROUNDS = 200
"""More rewrites than this in one file means something is looping."""


@dataclass(frozen=True, slots=True)
class Applied:
    code: str
    description: str
    line: int
    """Where the finding was, in the file as it was before this run."""


@dataclass(slots=True)
class FileFix:
    source: SourceText | None
    text: str | None = None
    """The fixed text; None when nothing changed."""
    applied: list[Applied] = field(default_factory=list)
    declined: dict[tuple[str, str], int] = field(default_factory=dict)
    """(code, reason) → how many findings were left unfixed for that reason."""
    error: str | None = None

    @property
    def changed(self) -> bool:
        return self.text is not None


def fix_source(
    data: bytes,
    path: Path,
    settings: Settings,
    shown: str,
    *,
    unsafe: bool = False,
    index: ProjectIndex = EMPTY_INDEX,
) -> FileFix:
    try:
        source = decode(data)
        tree = parse(source.text)
    except SourceError as error:
        return FileFix(None, error=f"not fixed: {error.reason}")
    allowed = {Applicability.SAFE, Applicability.UNSAFE} if unsafe else {Applicability.SAFE}
    rejected: set[tuple[str, str, str]] = set()
    applied: list[Applied] = []
    context = run_rules(tree, path, settings, shown, index)
    first_lines = _lines(tree, context)
    for _ in range(MAX_ROUNDS):
        candidate = _next_plan(context, allowed, rejected)
        if candidate is None:
            break
        finding, plan = candidate
        key = _key(tree, finding, plan)
        outcome = _attempt(tree, plan, context, path, settings, shown, index)
        if outcome is None:
            rejected.add(key)
            continue
        tree, context, removed = outcome
        line = first_lines.get(key[2], 0)
        for code, count in sorted(removed.items()):
            applied.extend(Applied(code, plan.description, line) for _ in range(count))
    declined: dict[tuple[str, str], int] = {}
    for finding in context.findings:
        reason = context.unfixable.get(id(finding))
        if reason is None and id(finding) in context.plans:
            plan = context.plans[id(finding)]
            reason = (
                "the fix is unsafe: run with --unsafe-fixes"
                if plan.applicability not in allowed
                else "rewriting it would not remove the finding"
            )
        if reason is not None:
            declined[(finding.rule.code, reason)] = declined.get((finding.rule.code, reason), 0) + 1
    text = tree.code if applied else None
    return FileFix(source, text, applied, declined)


def _next_plan(
    context: Context, allowed: set[Applicability], rejected: set[tuple[str, str, str]]
) -> tuple[RawFinding, Plan] | None:
    for finding in context.findings:
        plan = context.plans.get(id(finding))
        if plan is None or plan.applicability not in allowed:
            continue
        if _key(context.tree, finding, plan) not in rejected:
            return finding, plan
    return None


def _key(tree: cst.Module, finding: RawFinding, plan: Plan) -> tuple[str, str, str]:
    """Identifies a plan across rounds (nodes are rebuilt every round)."""
    return (plan.code, plan.description, tree.code_for_node(finding.node))


def _lines(tree: cst.Module, context: Context) -> dict[str, int]:
    """Line of each finding's code in the original text, for the summary."""
    from slotguard.locate import Locator

    locator = Locator(tree, [f.node for f in context.findings])
    return {tree.code_for_node(f.node): locator.line(f.node) for f in context.findings}


def _attempt(
    tree: cst.Module,
    plan: Plan,
    before: Context,
    path: Path,
    settings: Settings,
    shown: str,
    index: ProjectIndex,
) -> tuple[cst.Module, Context, Counter[str]] | None:
    """The tree with the plan applied, its findings, and how many findings of
    each code it removed; None unless it removes findings without adding a
    new kind of finding."""
    rewritten = apply_plan(tree, plan)
    try:
        reparsed = parse(rewritten.code)
    except SourceError:
        return None
    after = run_rules(reparsed, path, settings, shown, index)
    counts_before = Counter(f.rule.code for f in before.findings)
    counts_after = Counter(f.rule.code for f in after.findings)
    if sum(counts_after.values()) >= sum(counts_before.values()):
        return None
    if any(counts_after[code] > counts_before[code] for code in counts_after):
        return None
    return reparsed, after, counts_before - counts_after


def apply_plan(tree: cst.Module, plan: Plan) -> cst.Module:
    block = plan.block
    body = list(block.body)
    new_body = [*body[: plan.start], *plan.replacement, *body[plan.end :]]
    if isinstance(block, cst.Module):
        rewritten = block.with_changes(body=new_body)
    else:
        replaced = tree.deep_replace(block, block.with_changes(body=new_body))
        assert isinstance(replaced, cst.Module)
        rewritten = replaced
    if plan.imports:
        rewritten = _with_imports(rewritten, plan.imports)
    return rewritten


def _with_imports(tree: cst.Module, imports: Sequence[cst.SimpleStatementLine]) -> cst.Module:
    """Add import lines the module lacks, after its docstring and
    ``__future__`` imports."""
    existing = {tree.code_for_node(statement).strip() for statement in tree.body}
    missing = [line for line in imports if tree.code_for_node(line).strip() not in existing]
    if not missing:
        return tree
    position = 0
    for index, statement in enumerate(tree.body):
        if _is_docstring_or_future(statement):
            position = index + 1
        else:
            break
    body = list(tree.body)
    return tree.with_changes(body=[*body[:position], *missing, *body[position:]])


def _is_docstring_or_future(statement: cst.BaseStatement) -> bool:
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return False
    small = statement.body[0]
    if isinstance(small, cst.Expr) and isinstance(small.value, cst.SimpleString):
        return True
    return (
        isinstance(small, cst.ImportFrom)
        and isinstance(small.module, cst.Name)
        and small.module.value == "__future__"
    )
