"""Applying fixes to one file, safely.

Each round takes the fix plans of the findings still there, as many as do
not overlap, applies them together and checks the result: the new code must
parse (and compile, if the old code did), and checking it again must leave
no finding that was not there before, and remove the finding each plan
targets. A batch that fails that test is retried with its first half, and so
on down to one plan, which is dropped if it fails alone. Rounds repeat until
no plan is left (overlapping fixes are simply taken in later rounds), with a
bound; each round removes findings or drops a plan, so they end.

The re-check runs the selected rules plus every default rule, so a fix
restricted by ``--select`` still cannot introduce a finding of another rule.
Findings a ``noqa`` comment suppresses are neither fixed nor counted.
Comments and formatting outside the rewritten statements are untouched,
because the rewrite is done on the concrete syntax tree, which keeps them.

Nothing is written here: the caller writes the result (atomically) or shows
it as a diff.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst

from slotguard.analysis.index import EMPTY_INDEX, ProjectIndex
from slotguard.diagnostic import Applicability, Edit, Fix, Span
from slotguard.engine import run_rules
from slotguard.facts import Fact
from slotguard.fixes import fixers, no_fix_reason
from slotguard.fixes.base import Plan
from slotguard.fixes.imports import with_imports
from slotguard.locate import Locator
from slotguard.parse import parse
from slotguard.report.noqa import Suppressions
from slotguard.rules import rule_by_code
from slotguard.rules.base import Context, RawFinding
from slotguard.selection import selected_codes
from slotguard.settings import Settings
from slotguard.source import SourceError, SourceText, decode
from slotguard.syntax import children, walk

_NO_PLACE = Span(1, 1, 1, 1)
"""Where a fact without a node is said to be (as the engine says it)."""

MAX_ROUNDS = 100
"""More rounds than this in one file means something is looping."""

FIXABLE_UNSAFE = "fixable with --unsafe-fixes"
"""The status of a finding whose fix waits for ``--unsafe-fixes``."""
NOT_FIXABLE = "not fixable"
FIXED = "fixed"


STYLE_CODES = frozenset({"SG108"})
"""Findings a leak's fix may leave behind: a release moved into a ``finally``
is correct code written by hand, which the opt-in SG108 reports."""


@dataclass(frozen=True, slots=True)
class Applied:
    """A finding the run removed, where it was in the original text (0 when
    it appeared during the run), and the rewrite that removed it."""

    code: str
    description: str
    line: int = 0
    column: int = 0


@dataclass(frozen=True, slots=True)
class Unfixed:
    """A finding left after fixing, where it is in the fixed text, and why
    it was not fixed: its fix waits for ``--unsafe-fixes`` (``reason`` then
    says what the fix would do), or there is none."""

    code: str
    line: int
    column: int
    reason: str
    unsafe: bool = False
    original: tuple[int, int] = (0, 0)
    """Line and column in the original text (0, 0: it appeared during the run)."""

    @property
    def status(self) -> str:
        return FIXABLE_UNSAFE if self.unsafe else NOT_FIXABLE


@dataclass(slots=True)
class FileFix:
    source: SourceText | None
    text: str | None = None
    """The fixed text; None when nothing changed."""
    applied: list[Applied] = field(default_factory=list)
    declined: list[Unfixed] = field(default_factory=list)
    """Each finding left unfixed, with its own reason."""
    pending: frozenset[str] = frozenset()
    """Codes of findings left that wait on the rest of the run (not counted
    in ``declined``: only the run knows whether they stand)."""
    error: str | None = None

    @property
    def changed(self) -> bool:
        return self.text is not None


@dataclass(frozen=True, slots=True)
class _Found:
    """One finding as the user sees it (after ``noqa``), in one round."""

    finding: RawFinding
    key: tuple[str, str]
    """Code and normalised source of the reported node: with its occurrence,
    identifies the finding across rounds, where nodes are rebuilt and lines
    move."""


@dataclass(slots=True)
class _Round:
    tree: cst.Module
    context: Context
    found: list[_Found]

    def counts(self) -> Counter[tuple[str, str]]:
        return Counter(f.key for f in self.found)


def fix_source(
    data: bytes,
    path: Path,
    settings: Settings,
    shown: str,
    *,
    unsafe: bool = False,
    index: ProjectIndex = EMPTY_INDEX,
    run_facts: Sequence[Fact] | None = None,
) -> FileFix:
    """Fix one file. ``run_facts``: what the other files of the run noted,
    so that the findings of the whole run in this file are fixed too."""
    try:
        source = decode(data)
        tree = parse(source.text)
    except SourceError as error:
        return FileFix(None, error=f"not fixed: {error.reason}")
    fixer = _Fixer(
        path, settings, shown, index, unsafe, strict=_compiles(source.text), run_facts=run_facts
    )
    current = fixer.check(tree)
    origins = _Origins(current)
    applied: list[Applied] = []
    for _ in range(MAX_ROUNDS):
        plans = fixer.candidates(current)
        if not plans:
            break
        outcome = fixer.attempt(current, plans)
        while outcome is None and len(plans) > 1:
            # Some plan spoils the batch: try the first half, and so on down
            # to a single plan, which is then dropped if it fails alone.
            plans = plans[: len(plans) // 2]
            outcome = fixer.attempt(current, plans)
        if outcome is None:
            fixer.rejected.add(plans[0][0])
            continue
        descriptions = _descriptions(plans)
        by_identity = {identity: plan.description for identity, plan in plans}
        removed = origins.advance(current, outcome, list(by_identity))
        for key, gone in sorted(removed.items()):
            if key[0] in fixer.wanted:
                for place, identity in gone:
                    description = (
                        by_identity.get(identity) if identity is not None else None
                    ) or descriptions.get(("", key[1]), "")
                    applied.append(Applied(key[0], description, *place))
        current = outcome
    return FileFix(
        source,
        current.tree.code if applied else None,
        applied,
        fixer.declined(current, origins),
        fixer.pending(current),
    )


class _Fixer:
    """The state of fixing one file: what is wanted, what was rejected."""

    def __init__(
        self,
        path: Path,
        settings: Settings,
        shown: str,
        index: ProjectIndex,
        unsafe: bool,
        *,
        strict: bool,
        run_facts: Sequence[Fact] | None = None,
    ) -> None:
        self.path = path
        self.shown = shown
        self.index = index
        self.strict = strict
        """The original compiles, so the result must too (libcst alone
        accepts some code CPython refuses, such as ``async with`` in a plain
        function)."""
        self.wanted = settings.codes_for(path)
        self.guard = dataclasses.replace(settings, codes=settings.codes | selected_codes(None))
        self.allowed = {Applicability.SAFE}
        if unsafe:
            self.allowed.add(Applicability.UNSAFE)
        self.run_facts = run_facts
        """The facts the other files of the run noted, when the run is known:
        the findings of the whole run that fall in this file are then
        checked, fixed and re-checked like the others."""
        self.rejected: set[tuple[str, str, int]] = set()
        """Plans that failed alone, by the identity of their finding."""
        self.reasons: dict[tuple[str, str, int], str] = {}
        """Why each of those failed."""

    def check(self, tree: cst.Module) -> _Round:
        context = run_rules(tree, self.path, self.guard, self.shown, self.index)
        fact_nodes = [fact.node for fact in context.facts if fact.node is not None]
        locator = Locator(tree, [*(f.node for f in context.findings), *fact_nodes])
        suppressions = Suppressions.of(locator.code)
        found: list[_Found] = []
        seen: set[tuple[str, int, int]] = set()
        findings = list(context.findings)
        if self.run_facts is not None:
            findings += self._run_findings(context, locator, suppressions)
        for finding in findings:
            span = locator.span(finding.node)
            identity = (finding.rule.code, span.line, span.column)
            if identity in seen or suppressions.suppresses(finding.rule.code, span.line):
                continue
            seen.add(identity)
            normalised = " ".join(tree.code_for_node(finding.node).split())
            found.append(_Found(finding, (finding.rule.code, normalised)))
        return _Round(tree, context, found)

    def _run_findings(
        self, context: Context, locator: Locator, suppressions: Suppressions
    ) -> list[RawFinding]:
        """The findings of the whole run (``Rule.check_run``) that fall in
        this file, for the rules that have a fixer: the run's other facts
        with this version of the file's own, each finding with its plan."""
        assert self.run_facts is not None
        available = fixers()
        own: dict[str, list[Fact]] = {}
        nodes: dict[tuple[str, Span], cst.CSTNode] = {}
        for raw in context.facts:
            code = raw.rule.code
            if code not in available:
                continue
            if raw.node is None:
                span = _NO_PLACE
            else:
                span = locator.span(raw.node)
                nodes.setdefault((code, span), raw.node)
            quiet = raw.node is not None and suppressions.suppresses(code, span.line)
            own.setdefault(code, []).append(
                Fact(code, raw.topic, raw.value, self.shown, span, quiet)
            )
        found: list[RawFinding] = []
        for code, facts in own.items():
            rule = rule_by_code(code)
            if rule is None:
                continue
            others = [fact for fact in self.run_facts if fact.code == code]
            for diagnostic in rule.check_run([*others, *facts], self.guard):
                node = nodes.get((code, diagnostic.span))
                if diagnostic.path != self.shown or node is None:
                    continue
                finding = RawFinding(rule, node, diagnostic.message, (), None)
                outcome = available[code].plan(context, finding)
                if isinstance(outcome, Plan):
                    finding.fix = Fix(outcome.applicability, outcome.description)
                    context.plans[id(finding)] = outcome
                else:
                    context.unfixable[id(finding)] = outcome.reason
                found.append(finding)
        return found

    def candidates(self, current: _Round) -> list[tuple[tuple[str, str, int], Plan]]:
        """Plans to try this round, none overlapping another."""
        chosen: list[tuple[tuple[str, str, int], Plan]] = []
        claims = _Claims()
        for found, identity in self._identified(current):
            plan = current.context.plans.get(id(found.finding))
            if plan is None or plan.applicability not in self.allowed:
                continue
            if identity not in self.rejected and claims.claim(plan):
                chosen.append((identity, plan))
        return chosen

    def _identified(self, current: _Round) -> list[tuple[_Found, tuple[str, str, int]]]:
        """The findings of the selected rules that have a plan, each with an
        identity that survives rounds: its key and its occurrence."""
        identified = []
        occurrences: Counter[tuple[str, str]] = Counter()
        for found in current.found:
            if found.key[0] not in self.wanted or id(found.finding) not in current.context.plans:
                continue
            occurrences[found.key] += 1
            identified.append((found, (*found.key, occurrences[found.key])))
        return identified

    def attempt(
        self, current: _Round, plans: Sequence[tuple[tuple[str, str, int], Plan]]
    ) -> _Round | None:
        """The round after applying ``plans``, or None if the result breaks
        a promise: it must parse, remove what each plan targets, and add
        nothing."""
        rewritten = apply_plans(current.tree, [plan for _, plan in plans])
        text = rewritten.code
        try:
            reparsed = parse(text)
        except SourceError:
            self._note(plans, "the rewrite would not parse")
            return None
        if self.strict and not _compiles(text):
            self._note(plans, "the rewrite would not compile")
            return None
        after = self.check(reparsed)
        before_counts, after_counts = current.counts(), after.counts()
        added = Counter(
            {
                key: count
                for key, count in (after_counts - before_counts).items()
                if key[0] not in STYLE_CODES
            }
        )
        if added:
            codes = ", ".join(sorted({key[0] for key in added}))
            self._note(plans, f"the rewrite would introduce {codes}")
            return None
        targets = Counter(identity[:2] for identity, _ in plans)
        if any(before_counts[key] - after_counts[key] < count for key, count in targets.items()):
            self._note(plans, "the rewrite would not remove the finding")
            return None
        return after

    def _note(self, plans: Sequence[tuple[tuple[str, str, int], Plan]], reason: str) -> None:
        if len(plans) == 1:
            self.reasons[plans[0][0]] = reason

    def declined(self, current: _Round, origins: _Origins) -> list[Unfixed]:
        """Why each finding left (of the selected rules) was not fixed."""
        left: list[Unfixed] = []
        seen: Counter[tuple[str, str]] = Counter()
        identities = {id(found.finding): identity for found, identity in self._identified(current)}
        locator: Locator | None = None
        for found in current.found:
            finding = found.finding
            code = finding.rule.code
            if code not in self.wanted or finding.pending is not None:
                continue
            plan = current.context.plans.get(id(finding))
            unsafe = False
            if plan is not None:
                if plan.applicability not in self.allowed:
                    reason, unsafe = plan.description, True
                else:
                    identity = identities[id(finding)]
                    reason = self.reasons.get(identity, "the rewrite would not remove the finding")
            else:
                reason = current.context.unfixable.get(id(finding)) or no_fix_reason(code)
            if locator is None:
                locator = Locator(current.tree, [f.finding.node for f in current.found])
            span = locator.span(finding.node)
            original = origins.place(found.key, seen[found.key])
            seen[found.key] += 1
            left.append(Unfixed(code, span.line, span.column, reason, unsafe, original))
        return left

    def pending(self, current: _Round) -> frozenset[str]:
        return frozenset(
            f.finding.rule.code
            for f in current.found
            if f.finding.pending is not None and f.finding.rule.code in self.wanted
        )


class _Origins:
    """Where each finding still there was in the original text, so that the
    summary can name the place of each finding the run fixed: by key, the
    places of its findings in the order the rounds list them (a fix removes
    the findings it targets, and keeps the others in order)."""

    def __init__(self, first: _Round) -> None:
        locator = Locator(first.tree, [found.finding.node for found in first.found])
        self.places: dict[tuple[str, str], list[tuple[int, int]]] = {}
        for found in first.found:
            span = locator.span(found.finding.node)
            self.places.setdefault(found.key, []).append((span.line, span.column))

    def advance(
        self, before: _Round, after: _Round, targets: Sequence[tuple[str, str, int]]
    ) -> dict[tuple[str, str], list[tuple[tuple[int, int], tuple[str, str, int] | None]]]:
        """The findings removed between two rounds, by key: the place of
        each, with the identity of the plan that targeted it (None for one
        removed in passing, taken in order among the others)."""
        removed: dict[
            tuple[str, str], list[tuple[tuple[int, int], tuple[str, str, int] | None]]
        ] = {}
        counts_before, counts_after = before.counts(), after.counts()
        for key in counts_before.keys() | counts_after.keys():
            places = self.places.setdefault(key, [])
            # A finding that appeared during the run has no original place.
            places += [(0, 0)] * (counts_before[key] - len(places))
            gone = counts_before[key] - counts_after[key]
            if gone <= 0:
                places += [(0, 0)] * -gone
                continue
            positions = _positions(before, key)
            aimed = {
                positions[number - 1]: (code, text, number)
                for code, text, number in targets
                if (code, text) == key and number <= len(positions)
            }
            chosen: dict[int, tuple[str, str, int] | None] = dict(sorted(aimed.items())[:gone])
            others = [i for i in range(len(places)) if i not in chosen]
            chosen.update(dict.fromkeys(others[: gone - len(chosen)]))
            removed[key] = [(places[i], chosen[i]) for i in sorted(chosen)]
            self.places[key] = [place for i, place in enumerate(places) if i not in chosen]
        return removed

    def place(self, key: tuple[str, str], position: int) -> tuple[int, int]:
        """The original place of the ``position``-th finding of ``key`` still there."""
        places = self.places.get(key, [])
        return places[position] if position < len(places) else (0, 0)


def _positions(current: _Round, key: tuple[str, str]) -> list[int]:
    """For each finding of ``key`` that has a plan, in order, its position
    among all the findings of ``key`` (what an identity's occurrence counts)."""
    positions = []
    index = 0
    for found in current.found:
        if found.key != key:
            continue
        if id(found.finding) in current.context.plans:
            positions.append(index)
        index += 1
    return positions


def _descriptions(
    plans: Sequence[tuple[tuple[str, str, int], Plan]],
) -> dict[tuple[str, str], str]:
    """What was done about each finding a round removed: the description of
    the plan that targeted it or, for the findings a plan removed in passing
    (the SG201 of the acquisition an SG101 fix rewrote), of the plan that
    targeted the same node."""
    found: dict[tuple[str, str], str] = {}
    for (code, text, _), plan in plans:
        found[(code, text)] = plan.description
        found.setdefault(("", text), plan.description)
    return found


class _Claims:
    """The statements the plans chosen for a round rewrite, so that the next
    plan chosen does not touch them."""

    def __init__(self) -> None:
        self.ranges: dict[int, list[tuple[int, int]]] = {}
        """Rewritten ranges, by ``id`` of their block."""
        self.inside: set[int] = set()
        """``id`` of every node in a rewritten range."""

    def claim(self, plan: Plan) -> bool:
        """Claim the plan's statements, unless they overlap a claim."""
        if id(plan.block) in self.inside:
            return False
        ranges = self.ranges.get(id(plan.block), [])
        if any(plan.start < end and start < plan.end for start, end in ranges):
            return False
        nodes = {
            id(node)
            for statement in plan.block.body[plan.start : plan.end]
            for node in walk(statement)
        }
        if not nodes.isdisjoint(self.ranges):
            return False
        self.ranges.setdefault(id(plan.block), []).append((plan.start, plan.end))
        self.inside |= nodes
        return True


def _compiles(text: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def apply_plans(tree: cst.Module, plans: Sequence[Plan]) -> cst.Module:
    """The tree with every plan applied; the plans must not overlap.

    One pass rebuilds only the nodes on the way from the module to a block
    that changes (``deep_replace`` would walk the whole tree once per
    block)."""
    blocks: dict[int, cst.IndentedBlock | cst.Module] = {}
    groups: dict[int, list[Plan]] = {}
    for plan in plans:
        blocks[id(plan.block)] = plan.block
        groups.setdefault(id(plan.block), []).append(plan)
    bodies: dict[int, list[cst.BaseStatement]] = {}
    imports: list[cst.SimpleStatementLine] = []
    for key, group in groups.items():
        body = list(blocks[key].body)
        for plan in sorted(group, key=lambda plan: plan.start, reverse=True):
            body[plan.start : plan.end] = plan.build()
            imports.extend(plan.imports)
        bodies[key] = body
    parents: dict[int, cst.CSTNode] = {}
    for node in walk(tree):
        for child in children(node):
            parents[id(child)] = node
    on_the_way: set[int] = set()
    for block in blocks.values():
        current: cst.CSTNode | None = block
        while current is not None and id(current) not in on_the_way:
            on_the_way.add(id(current))
            current = parents.get(id(current))
    rebuilt = _rebuilt(tree, bodies, on_the_way)
    assert isinstance(rebuilt, cst.Module)
    return with_imports(rebuilt, imports) if imports else rebuilt


def _rebuilt(
    node: cst.CSTNode, bodies: dict[int, list[cst.BaseStatement]], on_the_way: set[int]
) -> cst.CSTNode:
    if id(node) not in on_the_way:
        return node
    changes: dict[str, object] = {}
    for field_ in dataclasses.fields(node):
        value = getattr(node, field_.name)
        replaced = id(node) in bodies and field_.name == "body"
        if replaced:
            value = bodies[id(node)]
        if isinstance(value, cst.CSTNode):
            new = _rebuilt(value, bodies, on_the_way)
            if new is not value:
                changes[field_.name] = new
        elif isinstance(value, list | tuple):
            items = [
                _rebuilt(item, bodies, on_the_way) if isinstance(item, cst.CSTNode) else item
                for item in value
            ]
            if replaced or any(new is not old for new, old in zip(items, value, strict=True)):
                changes[field_.name] = items
    return node.with_changes(**changes) if changes else node


def apply_plan(tree: cst.Module, plan: Plan) -> cst.Module:
    return apply_plans(tree, [plan])


def planned_edits(
    data: bytes,
    path: Path,
    settings: Settings,
    shown: str,
    index: ProjectIndex = EMPTY_INDEX,
) -> dict[tuple[str, Span], tuple[Edit, ...]]:
    """The edits of each finding's fix on its own, by code and span, as the
    json format shows them: what applying that one plan changes in the
    source (before the re-check ``fix`` does, which may still decline it)."""
    try:
        source = decode(data)
        tree = parse(source.text)
    except SourceError:
        return {}
    context = run_rules(tree, path, settings, shown, index)
    if not context.plans:
        return {}
    locator = Locator(tree, [finding.node for finding in context.findings])
    found: dict[tuple[str, Span], tuple[Edit, ...]] = {}
    for finding in context.findings:
        plan = context.plans.get(id(finding))
        if plan is not None:
            fixed = apply_plan(tree, plan).code
            found[(finding.rule.code, locator.span(finding.node))] = text_edits(tree.code, fixed)
    return found


def text_edits(old: str, new: str) -> tuple[Edit, ...]:
    """Line-wise replacements that turn ``old`` into ``new``. Lines are
    split on ``\\n`` only, as the engine counts them."""
    old_lines, new_lines = _lines(old), _lines(new)
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    edits = []
    for tag, old_start, old_end, new_start, new_end in matcher.get_opcodes():
        if tag == "equal":
            continue
        start = _position(old_lines, old_start)
        end = _position(old_lines, old_end)
        edits.append(Edit("".join(new_lines[new_start:new_end]), Span(*start, *end)))
    return tuple(edits)


def _lines(text: str) -> list[str]:
    parts = text.split("\n")
    return [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _position(lines: Sequence[str], index: int) -> tuple[int, int]:
    """Line and column (1-based) where line ``index`` (0-based) starts; for
    the index past the last line, the end of the text."""
    if index < len(lines) or not lines or lines[-1].endswith("\n"):
        return index + 1, 1
    return len(lines), len(lines[-1]) + 1
