"""The run: the project's files, in which order, with what each one sees.

A run analyses the whole project (``slotguard.project``), whatever files it
names, and reports findings for the named files only: what a file tells the
others (its summary, the application state it types, the facts and settled
keys of the run-level rules) never depends on what else was named. Every
file of the project is taken through, as far as it needs to go:

1. its bytes, unless its size, modification time and inode are those the
   cache knows (then its digest and its imports come from the cache);
2. the prefilter (``slotguard.prefilter``), on bytes (a file it stops that
   declares columns of mapped classes is deferred instead);
3. the screen (``slotguard.screen``), on the ``ast`` tree of the syntax
   check: a file with nothing the analysis could use is *deferred*;
4. libcst and the rules, for the files the screen lets through and for the
   deferred files that an analysed file imports (it needs their summaries).

The import graph is cut into strongly connected components, analysed in
dependency order: a component is screened once the components it imports
are settled, and analysed once they are analysed. In a component (an import
cycle) each module first sees the modules before it, then everything; a
module is analysed again only when it would get a different answer to a
question it asked (``slotguard.view``). Application state is typed by the
modules that write it, analysed first without state (and kept while they and
all they import are unchanged); then every module that reads it sees all of it.

Each outcome is cached with the questions it asked, and every file's final
outcome with the signature of the whole project: a run over an unchanged
project is answered from that without a pass, reads no file and imports
neither libcst nor the rules; after an edit, only what asked a question
whose answer changed is analysed again. Worker processes take the largest
files first and receive, with a file, the summaries it may ask about.

Nothing here raises for a bad file: whatever stops a file from being analysed
becomes an SG000 finding, and the rest of the run goes on.
"""

from __future__ import annotations

import enum
import gc
import hashlib
import heapq
import itertools
import json
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from slotguard import cache as results_cache
from slotguard import prefilter
from slotguard.analysis.index import EMPTY_INDEX, ModuleSummary, ProjectIndex
from slotguard.diagnostic import Diagnostic, Related, Span
from slotguard.facts import Fact
from slotguard.project import Modules, ProjectFile, Scan, link, module_name_for, scan
from slotguard.results import FileResult, Outcome, Verdict
from slotguard.settings import Settings
from slotguard.source import SourceError, decode
from slotguard.view import Footprint, Table, View

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor

    import libcst as cst

    from slotguard.rules.base import Context

ANALYSIS_ERROR = ("SG000", "file-not-analysed")
_NO_PLACE = Span(1, 1, 1, 1)
"""Where a fact noted without a node is (its rule reads only its value)."""
UNUSED_NOQA = ("SG001", "unused-noqa")
PARALLEL_THRESHOLD = 24
"""Below this many files to parse, worker processes cost more than they save."""
_VARIANTS = 4
"""Outcomes the cache keeps per file (a branch switched back and forth)."""
_RACY_NS = 2_000_000_000
"""A file modified this close to the run's start may change again within
the same timestamp: its status is not trusted next time."""

Progress = Callable[[int, int], None]


@dataclass(slots=True)
class RunResult:
    files: list[FileResult] = field(default_factory=list)
    """The named files' results, paths as displayed."""
    cache_hits: int = 0
    """Outcomes taken from the cache (the whole project's counts as one)."""
    run_diagnostics: list[Diagnostic] = field(default_factory=list)
    """Findings about the run as a whole (``Rule.check_run``), in named files."""
    indexes: Mapping[Path, ProjectIndex] = field(default_factory=dict)
    """What each named file saw of the project: ``slotguard fix`` re-checks with it."""
    paths: dict[str, Path] = field(default_factory=dict)
    """The file behind each reported path."""
    cache: results_cache.Cache | None = None
    """The run's cache, for what is worked out after the run (the edits of
    each fix, in json output); save it again after adding to it."""
    cache_keys: dict[str, str] = field(default_factory=dict)
    """The cache key of each reported path's results."""
    settled: frozenset[str] = frozenset()
    """Keys settled by any file of the project (``Context.settle``)."""

    @property
    def diagnostics(self) -> list[Diagnostic]:
        settled = self.settled | {key for result in self.files for key in result.settled}
        found = [
            diagnostic
            for result in self.files
            for diagnostic in (
                *result.diagnostics,
                *(d for key, d in result.pending if key not in settled),
            )
        ]
        return sorted([*found, *self.run_diagnostics], key=Diagnostic.sort_key)


PREFILTER_SWITCH = "SLOTGUARD_PREFILTER"
"""Set to ``off`` to analyse every file: the prefilter's soundness test
compares such a run with an ordinary one (not a user option: it only makes
runs slower)."""
SCREEN_SWITCH = "SLOTGUARD_SCREEN"
"""Set to ``off`` to parse every file the prefilter lets through with libcst
(the screen's equivalence test, ``tests/test_screen.py``)."""


def may_have_findings(data: bytes, settings: Settings, index: ProjectIndex = EMPTY_INDEX) -> bool:
    """The prefilter (see ``slotguard.prefilter``)."""
    if os.environ.get(PREFILTER_SWITCH) == "off":
        return True
    return prefilter.may_have_findings(data, settings.model, index)


def _screening() -> bool:
    return os.environ.get(SCREEN_SWITCH) != "off"


# -- one file -------------------------------------------------------------------


def analysis_error(path: str, error: SourceError) -> Diagnostic:
    code, name = ANALYSIS_ERROR
    return Diagnostic(
        code=code,
        name=name,
        message=f"file not analysed: {error.reason}",
        path=path,
        span=Span(error.line, error.column, error.line, error.column),
    )


@dataclass(frozen=True, slots=True)
class Task:
    """One file to take through the prefilter, the screen and the analysis,
    with what it sees of the project."""

    path: Path
    data: bytes
    shown: str
    module: str | None
    is_package: bool
    index: ProjectIndex
    screen: bool = True
    """Stop at the screen when it finds nothing (False: analyse anyway, as
    another module needs the summary)."""
    analyse: bool = True
    """Go on to analyse a file the screen lets through (False: only say so:
    the modules it imports are not all analysed yet)."""
    syntax_ok: bool = False
    """CPython is known to accept the text: do not parse it with ``ast`` again."""


@dataclass(frozen=True, slots=True)
class Examined:
    outcome: Outcome
    syntax_ok: bool
    """Whether CPython accepted the text (known after the screen)."""


_NOTHING = FileResult("", ())


_GARBAGE = 100_000
"""Objects left from one file's analysis above which they are collected at
once (``_collected_after``)."""


@contextmanager
def _collected_after() -> Iterator[None]:
    """No garbage collection while one file is worked on, one of what it left
    after. libcst builds a tree of millions of objects for a large module,
    and each full collection the allocations trigger walks every object
    alive: the time grows faster than the file (measured on a generated
    50,000-line module: 40% of the run). With collection held back, all that
    the file's work allocated stays in the youngest generation, and one
    collection of that generation frees what reference counting did not."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        if gc.get_count()[0] > _GARBAGE:
            gc.collect(0)


def examine(task: Task, settings: Settings) -> Examined:
    """Take one file as far as it needs to go; what it asked of the project
    is recorded when ``task.index`` is a ``View``."""
    with _collected_after():
        return _examine(task, settings)


def _examine(task: Task, settings: Settings) -> Examined:
    index = task.index
    shown = task.shown

    def done(verdict: Verdict, result: FileResult, syntax_ok: bool = False) -> Examined:
        footprint = index.footprint() if isinstance(index, View) else Footprint()
        return Examined(Outcome(verdict, footprint, result), syntax_ok)

    if not may_have_findings(task.data, settings, index):
        if not prefilter.declares_columns(task.data):
            return done(Verdict.STOPPED, _unanalysed(task, settings))
        if task.screen:
            # Its summary tells which attributes are columns: it is analysed
            # if an analysed module imports it.
            return done(Verdict.DEFERRED, _unanalysed(task, settings))
    try:
        text = decode(task.data).text
    except SourceError as error:
        return done(Verdict.ANALYSED, FileResult(shown, (analysis_error(shown, error),)))
    from slotguard.parse import check_syntax, parse_checked

    try:
        cpython_error = None
        if not task.syntax_ok:
            syntax = check_syntax(text)
            cpython_error, tree = syntax.error, syntax.tree
            del syntax  # the ast tree goes before libcst builds its own
            if task.screen and tree is not None and _screening():
                from slotguard.screen import may_produce

                produces = may_produce(
                    tree, settings.model, task.module, is_package=task.is_package, index=index
                )
                tree = None
                if not produces:
                    unused = tuple(_unused_noqa(text, task.path, settings, shown, ()))
                    return done(Verdict.DEFERRED, FileResult(shown, unused), True)
            tree = None
            if not task.analyse:
                return done(Verdict.CANDIDATE, _NOTHING, cpython_error is None)
        module = parse_checked(text, cpython_error)
    except SourceError as error:
        return done(Verdict.ANALYSED, FileResult(shown, (analysis_error(shown, error),)))
    result = analyse(module, text, task.path, settings, shown, index)
    return done(Verdict.ANALYSED, result, True)


def _unanalysed(task: Task, settings: Settings) -> FileResult:
    """The result of a file the prefilter stops: decoding is cheap and a
    binary or undecodable ``.py`` is broken for everyone, so that is checked;
    parsing is not, so a syntax error is found only in files analysed."""
    try:
        text = decode(task.data).text
    except SourceError as error:
        return FileResult(task.shown, (analysis_error(task.shown, error),))
    return FileResult(task.shown, tuple(_unused_noqa(text, task.path, settings, task.shown, ())))


def check_bytes(
    data: bytes,
    path: Path,
    settings: Settings,
    shown: str,
    index: ProjectIndex = EMPTY_INDEX,
) -> FileResult:
    """Findings (and the summary) for one file's bytes, on its own."""
    task = Task(path, data, shown, module_name_for(path), path.name == "__init__.py", index)
    return examine(task, settings).outcome.result


def check_file(path: Path, settings: Settings, display: str | None = None) -> FileResult:
    """One file on its own, without the rest of its project."""
    shown = display if display is not None else path.as_posix()
    try:
        data = path.read_bytes()
    except OSError as error:
        return _unreadable(shown, error)
    return check_bytes(data, path, settings, shown)


def _unreadable(shown: str, error: OSError) -> FileResult:
    reason = f"it cannot be read: {error.strerror or error}"
    return FileResult(shown, (analysis_error(shown, SourceError(reason)),))


def analyse(
    tree: cst.Module,
    text: str,
    path: Path,
    settings: Settings,
    shown: str,
    index: ProjectIndex = EMPTY_INDEX,
) -> FileResult:
    """Run the selected rules over a parsed module, and summarise it."""
    from slotguard.analysis.summary import summarise
    from slotguard.model.external import slow_calls

    try:
        context = run_rules(tree, path, settings, shown, index)
        calls = slow_calls(context.settings.config.external_calls)
        return _located(context, tree, text, shown, summarise(context.module, calls))
    except RecursionError:
        reason = "nesting is too deep to analyse (recursion limit reached)"
        return FileResult(shown, (analysis_error(shown, SourceError(reason)),), True)


def run_rules(
    tree: cst.Module,
    path: Path,
    settings: Settings,
    shown: str,
    index: ProjectIndex = EMPTY_INDEX,
) -> Context:
    """The rules' findings on a module, each with its fix plan when a fixer
    has one (``Context.plans``), or the reason it has none."""
    from slotguard.analysis.infer import ModuleInfo
    from slotguard.analysis.ownership import is_test_path
    from slotguard.project import module_name_for
    from slotguard.rules import all_rules
    from slotguard.rules.base import Context

    codes = settings.codes_for(path)
    module_name = module_name_for(path)
    module = ModuleInfo(
        tree,
        settings.model,
        module_name,
        is_package=path.name == "__init__.py",
        index=index,
        is_test=is_test_path(path, module_name),
    )
    context = Context(module, settings, shown, path)
    for rule in all_rules():
        if rule.code in codes and rule.code not in (ANALYSIS_ERROR[0], UNUSED_NOQA[0]):
            rule().check(context.for_rule(rule))
    _report_too_large(context)
    if context.findings:
        _plan_fixes(context)
    return context


def _report_too_large(context: Context) -> None:
    """SG000 for each function whose control flow was too large to follow:
    what it acquires is not checked, and the run must say so."""
    from slotguard.flow.held import too_large
    from slotguard.rules.sg000_file_not_analysed import FileNotAnalysed

    functions = too_large(context.module)
    if not functions:
        return
    reporter = context.for_rule(FileNotAnalysed)
    for function in functions:
        reporter.report(
            function.node.name,
            f"function `{function.name}` not analysed: too many paths to follow; split it up",
        )


def _plan_fixes(context: Context) -> None:
    """Attach to each finding its fix, or the reason it has none (the fixers
    are imported only for a file with findings: most files have none)."""
    from slotguard.diagnostic import Fix
    from slotguard.fixes import fixers
    from slotguard.fixes.base import Plan

    available = fixers()
    for finding in context.findings:
        fixer = available.get(finding.rule.code)
        if fixer is None:
            continue
        outcome = fixer.plan(context, finding)
        if isinstance(outcome, Plan):
            finding.fix = Fix(outcome.applicability, outcome.description)
            context.plans[id(finding)] = outcome
        else:
            context.unfixable[id(finding)] = outcome.reason


def _located(
    context: Context, tree: cst.Module, text: str, shown: str, summary: ModuleSummary | None
) -> FileResult:
    """Locate what the rules reported and noted, drop what noqa comments
    suppress, and format messages."""
    from slotguard.facts import Fact
    from slotguard.locate import Locator
    from slotguard.report.noqa import Suppressions
    from slotguard.rules.base import Context

    settled = tuple(sorted(context.settled))
    if not context.findings and not context.facts:
        unused = tuple(_unused_noqa(text, context.path_object, context.settings, shown, ()))
        return FileResult(shown, unused, True, summary, settled=settled)
    nodes = [f.node for f in context.findings]
    nodes += [node for f in context.findings for node, _ in f.related]
    nodes += [fact.node for fact in context.facts if fact.node is not None]
    nodes += context.marked_nodes
    # Locating regenerates the module's code: only when something has a place.
    locator = Locator(tree, nodes) if nodes else None
    suppressions = Suppressions.of(text)

    def line_of(index: int) -> int:
        assert locator is not None
        return locator.line(context.marked_nodes[index])

    diagnostics: list[Diagnostic] = []
    pending: list[tuple[str, Diagnostic]] = []
    suppressed: list[Diagnostic] = []
    seen: set[tuple[str, Span]] = set()
    for finding in context.findings:
        assert locator is not None
        span = locator.span(finding.node)
        key = (finding.rule.code, span)
        if key in seen:
            continue
        seen.add(key)
        diagnostic = Diagnostic(
            code=finding.rule.code,
            name=finding.rule.name,
            message=Context.resolve_lines(finding.message, line_of),
            path=shown,
            span=span,
            fix=finding.fix,
            related=tuple(
                Related(locator.span(node), Context.resolve_lines(label, line_of))
                for node, label in finding.related
            ),
            no_fix_reason=context.unfixable.get(id(finding)),
        )
        if suppressions.suppresses(finding.rule.code, span.line):
            suppressed.append(diagnostic)
        elif finding.pending is None:
            diagnostics.append(diagnostic)
        else:
            pending.append((finding.pending, diagnostic))
    facts = []
    for raw in context.facts:
        if raw.node is None:
            facts.append(Fact(raw.rule.code, raw.topic, raw.value, shown, _NO_PLACE, False))
            continue
        assert locator is not None
        span = locator.span(raw.node)
        facts.append(
            Fact(
                raw.rule.code,
                raw.topic,
                raw.value,
                shown,
                span,
                suppressions.suppresses(raw.rule.code, span.line),
            )
        )
    reported = [*diagnostics, *(d for _, d in pending), *suppressed]
    diagnostics += _unused_noqa(text, context.path_object, context.settings, shown, reported)
    return FileResult(
        shown,
        tuple(diagnostics),
        True,
        summary,
        pending=tuple(pending),
        settled=settled,
        facts=tuple(facts),
        suppressed=tuple(suppressed),
    )


def _unused_noqa(
    text: str,
    path: Path,
    settings: Settings,
    shown: str,
    unsuppressed: Sequence[Diagnostic],
) -> list[Diagnostic]:
    """SG001 findings for noqa comments that suppress nothing (opt-in)."""
    codes = settings.codes_for(path)
    if UNUSED_NOQA[0] not in codes or "noqa" not in text:
        return []
    from slotguard.report.noqa import unused_noqa

    found = []
    for unused in unused_noqa(text, shown, unsuppressed, selected=codes):
        code, name = UNUSED_NOQA
        span = Span(unused.line, unused.column, unused.line, unused.column)
        found.append(Diagnostic(code, name, unused.message, shown, span))
    return found


# -- the run --------------------------------------------------------------------


_worker_settings: Settings | None = None


def _start_worker(settings: Settings) -> None:
    global _worker_settings
    _worker_settings = settings
    # Ctrl-C reaches the whole process group, but it is the parent's to
    # handle: it stops the workers itself. A worker that took the interrupt
    # could die holding the lock of the queue the others answer on, and
    # leave everyone waiting. (The parent forked it with SIGINT held back,
    # so none arrived before this.)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _run_task(task: Task) -> Examined:
    assert _worker_settings is not None
    return examine(task, _worker_settings)


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class _Stage(enum.Enum):
    WAITING = "waiting"
    """For the components it imports to be settled (or analysed, if forced)."""
    SCREENING = "screening"
    DEFERRED = "deferred"
    """No member gives the analysis anything: not parsed, unless forced."""
    ACTIVE = "active"
    """To be analysed, once every component it imports is analysed."""
    ROUNDS = "rounds"
    DONE = "done"


@dataclass(eq=False)
class _Component:
    """One strongly connected component of the import graph in one pass."""

    number: int
    members: list[ProjectFile]
    imports: list[_Component] = field(default_factory=list)
    dependents: list[_Component] = field(default_factory=list)
    stage: _Stage = _Stage.WAITING
    forced: bool = False
    """Analyse it whatever the screen says: an analysed module imports it."""
    unsettled: int = 0
    """Components it imports that are neither deferred nor analysed."""
    unanalysed: int = 0
    """Components it imports that are not analysed."""
    settled_told: bool = False
    """Whether the components importing it were told it is settled."""
    position: dict[int, int] = field(default_factory=dict)
    """Each member's place in ``members``, by id."""
    before: list[list[int]] = field(default_factory=list)
    """For each member, the places of the members before it that it imports."""
    after: list[list[int]] = field(default_factory=list)
    """For each member, the places of the members after it that import it."""
    waiting: list[int] = field(default_factory=list)
    """For each member, how many of ``before`` the current round still waits for."""
    startable: deque[int] = field(default_factory=deque)
    """Members of the current round whose ``before`` are all done."""
    current: int = 0
    """The round under way."""
    screened: dict[int, Examined] = field(default_factory=dict)
    rounds: list[dict[int, Outcome]] = field(default_factory=list)


class _Pass:
    """One pass over components in dependency order, with one application state."""

    def __init__(
        self, run: _Run, order: Sequence[list[ProjectFile]], state: Mapping[str, str]
    ) -> None:
        self.run = run
        self.state = dict(state)
        self.components = [_Component(number, members) for number, members in enumerate(order)]
        self.component_of: dict[int, _Component] = {}
        for component in self.components:
            for member in component.members:
                self.component_of[id(member)] = component
        for component in self.components:
            imported: dict[int, _Component] = {}
            for member in component.members:
                for target in member.imports:
                    other = self.component_of[id(target)]
                    if other is not component:
                        imported[other.number] = other
            component.imports = [imported[number] for number in sorted(imported)]
            component.position = {id(m): place for place, m in enumerate(component.members)}
            position = component.position
            component.before = [
                sorted(
                    {position[id(t)] for t in member.imports if position.get(id(t), place) < place}
                )
                for place, member in enumerate(component.members)
            ]
            component.after = [[] for _ in component.members]
            for place, before in enumerate(component.before):
                for earlier in before:
                    component.after[earlier].append(place)
            for other in component.imports:
                other.dependents.append(component)
            component.unsettled = component.unanalysed = len(component.imports)
        self.outcomes: dict[int, Outcome] = {}
        """Each file's latest outcome in this pass."""
        self.views: dict[int, View] = {}
        """The view each file's latest outcome was worked out with."""
        self.ready: deque[_Component] = deque(self.components)

    # -- driving ------------------------------------------------------------------

    def evaluate(self) -> None:
        run = self.run
        while True:
            while self.ready:
                self._advance(self.ready.popleft())
            if run.step():
                continue
            break
        stuck = [c for c in self.components if c.stage not in (_Stage.DEFERRED, _Stage.DONE)]
        assert not stuck, f"components left waiting: {[c.members[0].shown for c in stuck]}"

    def _advance(self, component: _Component) -> None:
        stage = component.stage
        if stage == _Stage.WAITING:
            if component.forced:
                if component.unanalysed == 0:
                    self._start_rounds(component)
            elif component.unsettled == 0:
                self._screen(component)
        elif stage == _Stage.SCREENING:
            if len(component.screened) == len(component.members):
                self._decide(component)
        elif stage == _Stage.DEFERRED:
            if component.forced:
                self._activate(component)
        elif stage == _Stage.ACTIVE:
            if component.unanalysed == 0:
                self._start_rounds(component)
        elif stage == _Stage.ROUNDS:
            self._continue_rounds(component)

    def _wake(self, component: _Component) -> None:
        self.ready.append(component)

    def _force(self, component: _Component) -> None:
        stack = [component]
        while stack:
            current = stack.pop()
            if current.forced or current.stage == _Stage.DONE:
                continue
            current.forced = True
            self._wake(current)
            stack.extend(current.imports)

    def _settle(self, component: _Component) -> None:
        if not component.settled_told:
            component.settled_told = True
            for dependent in component.dependents:
                dependent.unsettled -= 1
                if dependent.unsettled == 0:
                    self._wake(dependent)

    def _finish(self, component: _Component) -> None:
        component.stage = _Stage.DONE
        self._settle(component)
        for dependent in component.dependents:
            dependent.unanalysed -= 1
            if dependent.unanalysed == 0:
                self._wake(dependent)
        self.run.finished(component, self)

    # -- screening ----------------------------------------------------------------

    def _screen(self, component: _Component) -> None:
        component.stage = _Stage.SCREENING
        # A lone module whose imports are all analysed is analysed at once
        # if the screen lets it through.
        at_once = len(component.members) == 1 and component.unanalysed == 0
        for position, member in enumerate(component.members):
            view = self._view(member, component, None)
            accepted = {Verdict.STOPPED, Verdict.DEFERRED, Verdict.CANDIDATE}
            if at_once:
                accepted = {Verdict.STOPPED, Verdict.DEFERRED, Verdict.ANALYSED}
            found = self.run.recall(member, view, accepted)
            if found is not None:
                self._screened(component, position, Examined(found, False), view)
                continue
            task = self.run.task(member, view, screen=True, analyse=at_once)

            def screened(examined: Examined, position: int = position, view: View = view) -> None:
                self._screened(component, position, examined, view)

            self.run.queue(member, task, screened)
        self._wake(component)

    def _screened(
        self, component: _Component, position: int, examined: Examined, view: View
    ) -> None:
        member = component.members[position]
        component.screened[position] = examined
        self.outcomes[id(member)] = examined.outcome
        self.views[id(member)] = view
        self._wake(component)

    def _decide(self, component: _Component) -> None:
        verdicts = [component.screened[p].outcome.verdict for p in range(len(component.members))]
        if all(verdict is Verdict.ANALYSED for verdict in verdicts) and len(verdicts) == 1:
            self._finish(component)
        elif component.forced or any(
            verdict in (Verdict.CANDIDATE, Verdict.ANALYSED) for verdict in verdicts
        ):
            self._activate(component)
        else:
            component.stage = _Stage.DEFERRED
            self._settle(component)
            self.run.finished(component, self)

    def _activate(self, component: _Component) -> None:
        component.stage = _Stage.ACTIVE
        for imported in component.imports:
            self._force(imported)
        self._wake(component)

    # -- analysing ----------------------------------------------------------------

    def _start_rounds(self, component: _Component) -> None:
        component.stage = _Stage.ROUNDS
        component.rounds = [{} for _ in range(1 if len(component.members) == 1 else 2)]
        component.current = 0
        self._start_round(component)

    def _start_round(self, component: _Component) -> None:
        """In each round a member waits for the members before it that it
        imports; the second round starts after the first."""
        component.waiting = [len(before) for before in component.before]
        component.startable.extend(p for p, count in enumerate(component.waiting) if not count)
        self._wake(component)

    def _continue_rounds(self, component: _Component) -> None:
        while component.startable:
            self._analyse(component, component.current, component.startable.popleft())
        if len(component.rounds[component.current]) < len(component.members):
            return
        if component.current + 1 < len(component.rounds):
            component.current += 1
            self._start_round(component)
        else:
            self._finish(component)

    def _analyse(self, component: _Component, round_number: int, position: int) -> None:
        member = component.members[position]
        view = self._view(member, component, round_number)
        accepted = {Verdict.STOPPED, Verdict.ANALYSED}
        found = self.run.recall(member, view, accepted)
        if found is not None:
            self._analysed(component, round_number, position, found, view)
            return
        screened = component.screened.get(position)
        task = self.run.task(
            member,
            view,
            screen=False,
            analyse=True,
            syntax_ok=screened is not None and screened.syntax_ok,
        )

        def analysed(examined: Examined) -> None:
            self._analysed(component, round_number, position, examined.outcome, view)

        self.run.queue(member, task, analysed)

    def _analysed(
        self,
        component: _Component,
        round_number: int,
        position: int,
        outcome: Outcome,
        view: View,
    ) -> None:
        member = component.members[position]
        component.rounds[round_number][position] = outcome
        self.outcomes[id(member)] = outcome
        self.views[id(member)] = view
        for later in component.after[position]:
            component.waiting[later] -= 1
            if not component.waiting[later]:
                component.startable.append(later)
        self._wake(component)

    # -- what a module sees ---------------------------------------------------------

    def _view(self, member: ProjectFile, component: _Component, round_number: int | None) -> View:
        """The summaries of the modules ``member`` imports as they stand: those
        of other components when analysed; those of its own component from
        round ``round_number`` (in the first, only the modules before it);
        the application state if it reads it."""
        tables: dict[str, Table] = {}
        position = component.position
        mine = position[id(member)]
        for target in member.imports:
            if target.module is None:
                continue
            other = self.component_of[id(target)]
            outcome: Outcome | None
            if other is not component:
                outcome = self.outcomes.get(id(target)) if other.stage == _Stage.DONE else None
            elif round_number is None:
                outcome = None
            else:
                # As if the members went one after the other: those before it
                # in this round, those after it in the round before (whether or
                # not a worker has finished them already).
                where = position[id(target)]
                if where < mine:
                    outcome = component.rounds[round_number].get(where)
                elif round_number > 0:
                    outcome = component.rounds[round_number - 1].get(where)
                else:
                    outcome = None
            summary = outcome.result.summary if outcome is not None else None
            if summary is not None:
                tables[target.module] = self.run.table(summary)
        reads = member.scan is not None and member.scan.reads_state
        return View(tables, self.state if reads else None)


class _Run:
    """One run: the project's files, the cache, the workers, the passes."""

    def __init__(
        self,
        settings: Settings,
        files: Sequence[ProjectFile],
        named: Sequence[ProjectFile],
        display: Callable[[ProjectFile], str],
        progress: Progress | None,
        sources: Mapping[int, bytes],
    ) -> None:
        self.settings = settings
        self.files = list(files)
        self.named = list(named)
        self.named_ids = {id(item) for item in named}
        self.display = display
        self.progress = progress
        self.sources = dict(sources)
        """Bytes given instead of the file's (standard input), by file id."""
        self.cache = results_cache.Cache(settings.cache_directory) if settings.use_cache else None
        self.started_ns = time.time_ns()
        self.data: dict[int, bytes] = {}
        self.digests: dict[int, str] = {}
        self.unreadable: dict[int, OSError] = {}
        self.memory: dict[int, list[Outcome]] = {}
        """Outcomes worked out in this run, by file id."""
        self.stored: dict[int, list[Outcome]] = {}
        self.tables: dict[int, Table] = {}
        self.heap: list[tuple[int, int, Task, Callable[[Examined], None]]] = []
        self.counter = itertools.count()
        self.pool: ProcessPoolExecutor | None = None
        self.in_flight: dict[Future[Examined], Callable[[Examined], None]] = {}
        self.parallel: bool | None = None
        """Whether worker processes were started (None: not decided yet)."""
        self.queued = 0
        self.hits = 0
        self.reported: set[int] = set()
        self.final_pass: _Pass | None = None
        self.last_snapshot: results_cache.Snapshot | None = None
        """What the last run over the project kept, whatever changed since."""
        self.state: dict[str, str] = {}
        self.state_closure = ""
        """The signature of the files the application state was worked out from."""

    # -- files ----------------------------------------------------------------------

    def digest_all(self) -> str:
        """Digest every file (from the cache when its status has not changed);
        the signature of the whole project in this state."""
        readable = []
        signature = hashlib.blake2b(self.settings.fingerprint.encode(), digest_size=20)
        for item in sorted(self.files, key=lambda item: item.shown):
            try:
                digest = self._digest_of(item)
            except OSError as error:
                self.unreadable[id(item)] = error
                continue
            self.digests[id(item)] = digest
            readable.append(item)
            signature.update(f"{item.shown}\0{digest}\0{item.module}\0{item.is_package}\n".encode())
        self.files = readable
        return signature.hexdigest()

    def load(self) -> list[list[ProjectFile]]:
        """Scan every file (from the cache by digest), and order the project."""
        for item in self.files:
            item.scan = self._scan_of(item, self.digests[id(item)])
        return link(self.files)

    def _digest_of(self, item: ProjectFile) -> str:
        given = self.sources.get(id(item))
        if given is not None:
            self.data[id(item)] = given
            return _digest(given)
        status = os.stat(item.path)
        known = (status.st_size, status.st_mtime_ns, status.st_ino)
        key = results_cache.key("stat", item.shown)
        cache = self.cache
        if cache is not None:
            stored = cache.get(results_cache.STAT, key)
            if stored is not None and stored[:3] == known:
                return stored[3]
        data = item.path.read_bytes()
        self.data[id(item)] = data
        digest = _digest(data)
        if cache is not None and status.st_mtime_ns < self.started_ns - _RACY_NS:
            cache.put(results_cache.STAT, key, (*known, digest))
        return digest

    def _scan_of(self, item: ProjectFile, digest: str) -> Scan:
        key = results_cache.key("scan", digest, item.module or "", str(item.is_package))
        cache = self.cache
        if cache is not None:
            stored = cache.get(results_cache.SCAN, key)
            if stored is not None:
                return stored
        found = scan(self.bytes_of(item), item.module, item.is_package)
        if cache is not None:
            cache.put(results_cache.SCAN, key, found)
        return found

    def bytes_of(self, item: ProjectFile) -> bytes:
        data = self.data.get(id(item))
        if data is None:
            data = self.data[id(item)] = item.path.read_bytes()
        return data

    def table(self, summary: ModuleSummary) -> Table:
        found = self.tables.get(id(summary))
        if found is None:
            found = self.tables[id(summary)] = Table.of(summary)
        return found

    # -- outcomes -------------------------------------------------------------------

    def _entry_key(self, item: ProjectFile) -> str:
        return results_cache.key(
            "outcomes",
            self.settings.fingerprint,
            item.shown,
            self.digests[id(item)],
            item.module or "",
            str(item.is_package),
        )

    def recall(self, item: ProjectFile, view: View, accepted: set[Verdict]) -> Outcome | None:
        """An outcome worked out before, in this run or an earlier one, that
        asked this view only questions it answers the same way."""
        for outcome in self.memory.get(id(item), ()):
            if outcome.verdict in accepted and view.answers(outcome.footprint):
                return outcome
        stored = self.stored.get(id(item))
        if stored is None:
            stored = []
            if self.cache is not None:
                stored = self.cache.get(results_cache.OUTCOMES, self._entry_key(item)) or []
            self.stored[id(item)] = stored
        for outcome in stored:
            if outcome.verdict in accepted and view.answers(outcome.footprint):
                self.memory.setdefault(id(item), []).append(outcome)
                self.hits += 1
                return outcome
        return None

    def _remember(self, item: ProjectFile, outcome: Outcome) -> None:
        self.memory.setdefault(id(item), []).append(outcome)
        if self.cache is None:
            return
        stored = self.stored.get(id(item), [])
        kept = [outcome, *(old for old in stored if old.footprint != outcome.footprint)]
        self.stored[id(item)] = kept[:_VARIANTS]
        self.cache.put(results_cache.OUTCOMES, self._entry_key(item), kept[:_VARIANTS])

    def outcome_key(self, item: ProjectFile, outcome: Outcome) -> str:
        footprint = results_cache.encode_footprint(outcome.footprint)
        return results_cache.key(self._entry_key(item), json.dumps(footprint))

    # -- work -----------------------------------------------------------------------

    def task(
        self,
        item: ProjectFile,
        view: View,
        *,
        screen: bool,
        analyse: bool,
        syntax_ok: bool = False,
    ) -> Task:
        return Task(
            item.path,
            self.bytes_of(item),
            item.shown,
            item.module,
            item.is_package,
            view,
            screen=screen,
            analyse=analyse,
            syntax_ok=syntax_ok,
        )

    def queue(self, item: ProjectFile, task: Task, then: Callable[[Examined], None]) -> None:
        """Work out ``task``, then call ``then``: here and now when the
        prefilter stops the file (cheaper than its trip to a worker),
        otherwise in turn, the largest file first."""

        def done(examined: Examined) -> None:
            self._remember(item, examined.outcome)
            then(examined)

        if not may_have_findings(task.data, self.settings, task.index):
            done(examine(task, self.settings))
            return
        self.queued += 1
        heapq.heappush(self.heap, (-len(task.data), next(self.counter), task, done))

    def step(self) -> bool:
        """Work on what is queued; whether anything was done or is under way."""
        if self.parallel is None and self.heap and self.queued >= PARALLEL_THRESHOLD:
            self.parallel = self._start_workers()
        if self.pool is None:
            if not self.heap:
                return False
            _, _, task, then = heapq.heappop(self.heap)
            then(examine(task, self.settings))
            return True
        capacity = 2 * (self.settings.jobs or os.cpu_count() or 1)
        while self.heap and len(self.in_flight) < capacity:
            _, _, task, then = heapq.heappop(self.heap)
            self.in_flight[self._submit(task)] = then
        if not self.in_flight:
            return False
        for future in _first_completed(self.in_flight):
            then = self.in_flight.pop(future)
            then(future.result())
        return True

    def _start_workers(self) -> bool:
        """Worker processes, when there is enough to parse to pay for them."""
        jobs = self.settings.jobs or os.cpu_count() or 1
        if jobs <= 1:
            return False
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("fork") if hasattr(os, "fork") else None
        if context is not None:
            # Forked workers inherit libcst and the rules instead of each
            # importing them, and share those pages with this process.
            import libcst  # noqa: F401

            import slotguard.parse  # noqa: F401
            from slotguard.rules import all_rules
            from slotguard.screen import vocabulary

            all_rules()
            vocabulary(self.settings.model)
        self.pool = ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=context,
            initializer=_start_worker,
            initargs=(self.settings,),
        )
        return True

    def _submit(self, task: Task) -> Future[Examined]:
        assert self.pool is not None
        if not hasattr(signal, "pthread_sigmask"):
            return self.pool.submit(_run_task, task)
        # The first submission forks the workers: a Ctrl-C waits until it is
        # done (the workers then ignore it, and this process takes it).
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            return self.pool.submit(_run_task, task)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def stop_workers(self) -> None:
        """After an interrupt or an error: kill the workers rather than wait
        for them (one may be stuck writing to a pipe nobody reads now).

        An interrupt can also leave a lock of the pool's bookkeeping taken
        for good, so that the interpreter's exit would wait forever for the
        pool's manager thread: the command line leaves without that wait
        (``slotguard.cli``)."""
        pool, self.pool = self.pool, None
        if pool is None:
            return
        workers = list((pool._processes or {}).values())
        for process in workers:
            process.kill()
        for process in workers:
            process.join(timeout=5)  # reaped here, not left to init
        pool.shutdown(wait=False, cancel_futures=True)

    def finished(self, component: _Component, current: _Pass) -> None:
        if self.progress is None or current is not self.final_pass:
            return
        for member in component.members:
            if id(member) in self.named_ids and id(member) not in self.reported:
                self.reported.add(id(member))
                self.progress(len(self.reported), len(self.named_ids))

    # -- the run ----------------------------------------------------------------------

    def recalled(self, signature: str) -> results_cache.Snapshot | None:
        """The final outcomes of the last run over the project in this very
        state, if the cache holds them."""
        if self.cache is None:
            return None
        self.last_snapshot = self.cache.get(results_cache.SNAPSHOT, self._snapshot_key())
        found = self.last_snapshot
        return found if found is not None and found.signature == signature else None

    def _snapshot_key(self) -> str:
        return results_cache.key("snapshot", self.settings.fingerprint)

    def remember(self, signature: str, final: _Pass) -> None:
        """Keep every file's final outcome for the next run over the same project."""
        if self.cache is None:
            return
        verdicts: dict[str, Verdict] = {}
        reported: dict[str, tuple[str, FileResult]] = {}
        facts: list[Fact] = []
        settled: set[str] = set()
        for item in self.files:
            outcome = final.outcomes[id(item)]
            result = outcome.result
            verdicts[item.shown] = outcome.verdict
            if result.diagnostics or result.pending or result.suppressed:
                shown = replace(result, summary=None, facts=(), settled=())
                reported[item.shown] = (self.outcome_key(item, outcome), shown)
            facts.extend(result.facts)
            settled.update(result.settled)
        snapshot = results_cache.Snapshot(
            signature,
            verdicts,
            reported,
            tuple(facts),
            tuple(sorted(settled)),
            self.state_closure,
            tuple(sorted(self.state.items())),
        )
        self.cache.put(results_cache.SNAPSHOT, self._snapshot_key(), snapshot)

    def run(self) -> _Pass:
        order = self.load()
        try:
            state = self._state(order)
            self.final_pass = final = _Pass(self, order, state)
            final.evaluate()
            if self.pool is not None:
                self.pool.shutdown()
        except BaseException:
            self.stop_workers()
            raise
        return final

    def _state(self, order: Sequence[list[ProjectFile]]) -> dict[str, str]:
        """The application state typed in the project: what its writers (and
        the modules they import) say, analysed without state, the first
        writer by path winning."""
        writers = [item for item in self.files if item.scan is not None and item.scan.writes_state]
        if not writers:
            return {}
        needed: set[int] = set()
        stack = list(writers)
        while stack:
            item = stack.pop()
            if id(item) in needed:
                continue
            needed.add(id(item))
            stack.extend(item.imports)
        closure = hashlib.blake2b(self.settings.fingerprint.encode(), digest_size=20)
        for item in sorted((i for i in self.files if id(i) in needed), key=lambda i: i.shown):
            closure.update(f"{item.shown}\0{self.digests[id(item)]}\0{item.module}\n".encode())
        self.state_closure = closure.hexdigest()
        last = self.last_snapshot
        if last is not None and last.state_closure == self.state_closure:
            # The writers and all they import are as they were: so is the state.
            self.state = dict(last.state)
            return self.state
        subset = [members for members in order if id(members[0]) in needed]
        first = _Pass(self, subset, {})
        first.evaluate()
        state: dict[str, str] = {}
        for writer in sorted(writers, key=lambda item: item.shown):
            outcome = first.outcomes.get(id(writer))
            summary = outcome.result.summary if outcome is not None else None
            if summary is not None:
                for name, type_name in summary.state:
                    state.setdefault(name, type_name)
        self.state = state
        return state


def _first_completed(futures: Iterable[Future[Examined]]) -> set[Future[Examined]]:
    from concurrent.futures import FIRST_COMPLETED, wait

    done, _ = wait(list(futures), return_when=FIRST_COMPLETED)
    return done


def _relocated(result: FileResult, shown: str) -> FileResult:
    """A result worked out under the file's project path, under the path the
    run shows it by."""
    if result.path == shown:
        return result

    def moved(diagnostic: Diagnostic) -> Diagnostic:
        return replace(diagnostic, path=shown)

    return replace(
        result,
        path=shown,
        diagnostics=tuple(moved(d) for d in result.diagnostics),
        pending=tuple((key, moved(d)) for key, d in result.pending),
        facts=tuple(replace(fact, path=shown) for fact in result.facts),
        suppressed=tuple(moved(d) for d in result.suppressed),
    )


def check_paths(
    files: Sequence[Path],
    settings: Settings,
    display: Mapping[Path, str],
    *,
    project: Iterable[Path] = (),
    root: Path | None = None,
    progress: Progress | None = None,
    sources: Mapping[Path, bytes] | None = None,
    whole_results: bool = False,
) -> RunResult:
    """Check ``files`` as part of their project: ``project`` are the other
    files it holds (read for what they tell the named ones, never reported),
    ``root`` the directory their paths are known by in the cache (by default
    the common directory of all of them). ``sources`` gives bytes to use
    instead of a file's (standard input for a file of the project).
    ``whole_results``: each named file's result keeps its summary, facts and
    settled keys (the language server reads them), so the kept outcomes of
    an unchanged project, which leave those out, are not used."""
    items: dict[str, ProjectFile] = {}
    given_as: dict[int, Path] = {}
    """Each file as the caller gave it (what the fixer reads)."""
    modules = Modules()
    directory = str(root) if root is not None else None
    entries = [*files, *project]
    absolute = {path: os.path.abspath(path) for path in dict.fromkeys(entries)}
    if directory is None:
        parents = {os.path.dirname(text) for text in absolute.values()} or {os.getcwd()}
        directory = os.path.commonpath(parents)
    prefix = directory.rstrip(os.sep) + os.sep
    for path, text in absolute.items():
        if text in items:
            continue
        found = Path(text)
        inside = text.startswith(prefix)
        relative = text[len(prefix) :].replace(os.sep, "/") if inside else found.as_posix()
        item = items[text] = ProjectFile(
            found, relative, modules.name(found), found.name == "__init__.py"
        )
        given_as[id(item)] = path
    named = [items[absolute[path]] for path in dict.fromkeys(files)]
    shown_for = {
        id(items[absolute[path]]): shown for path, shown in display.items() if path in absolute
    }

    def shown(item: ProjectFile) -> str:
        return shown_for.get(id(item)) or given_as[id(item)].as_posix()

    given = {id(items[os.path.abspath(path)]): data for path, data in (sources or {}).items()}
    run = _Run(settings, list(items.values()), named, shown, progress, given)
    signature = run.digest_all()
    snapshot = None if whole_results else run.recalled(signature)
    if snapshot is None:
        return _assemble(run, signature, named, shown, given_as)
    results: list[FileResult] = []
    keys: dict[str, str] = {}
    for item in named:
        error = run.unreadable.get(id(item))
        if error is not None:
            results.append(_unreadable(shown(item), error))
            continue
        kept = snapshot.reported.get(item.shown)
        if kept is None:
            analysed = snapshot.verdicts.get(item.shown) is Verdict.ANALYSED
            results.append(FileResult(shown(item), (), analysed))
            continue
        outcome_key, kept_result = kept
        results.append(_relocated(kept_result, shown(item)))
        keys[shown(item)] = outcome_key
    by_path = {item.shown: shown(item) for item in run.files}
    facts = [replace(fact, path=by_path.get(fact.path, fact.path)) for fact in snapshot.facts]
    reported = {result.path for result in results}

    def views() -> Mapping[Path, ProjectIndex]:
        again = _Run(settings, list(items.values()), named, shown, None, given)
        again.digest_all()
        return _assemble(again, None, named, shown, given_as).indexes

    return RunResult(
        results,
        run.hits + 1,
        _check_run(settings, run.cache, facts, reported),
        _Later(views),
        {shown(item): given_as[id(item)] for item in named},
        run.cache,
        keys,
        frozenset(snapshot.settled),
    )


def _assemble(
    run: _Run,
    signature: str | None,
    named: Sequence[ProjectFile],
    shown: Callable[[ProjectFile], str],
    given_as: Mapping[int, Path],
) -> RunResult:
    """The passes over the project, and the named files' results."""
    final = run.run()
    if signature is not None:
        run.remember(signature, final)
    results: list[FileResult] = []
    indexes: dict[Path, ProjectIndex] = {}
    keys: dict[str, str] = {}
    for item in named:
        error = run.unreadable.get(id(item))
        if error is not None:
            results.append(_unreadable(shown(item), error))
            continue
        outcome = final.outcomes[id(item)]
        results.append(_relocated(outcome.result, shown(item)))
        indexes[given_as[id(item)]] = final.views[id(item)].fresh()
        keys[shown(item)] = run.outcome_key(item, outcome)
    settled: set[str] = set()
    facts: list[Fact] = []
    for item in run.files:
        latest = final.outcomes.get(id(item))
        if latest is not None:
            settled.update(latest.result.settled)
            where = shown(item)
            facts += (replace(fact, path=where) for fact in latest.result.facts)
    run_diagnostics = _check_run(run.settings, run.cache, facts, {r.path for r in results})
    if run.cache is not None:
        run.cache.save()
    return RunResult(
        results,
        run.hits,
        run_diagnostics,
        indexes,
        {shown(item): given_as[id(item)] for item in named},
        run.cache,
        keys,
        frozenset(settled),
    )


class _Later(Mapping[Path, ProjectIndex]):
    """What each named file saw of the project, worked out when first asked
    (a run served whole from the cache did not need it)."""

    def __init__(self, compute: Callable[[], Mapping[Path, ProjectIndex]]) -> None:
        self._compute = compute
        self._found: Mapping[Path, ProjectIndex] | None = None

    def _mapping(self) -> Mapping[Path, ProjectIndex]:
        if self._found is None:
            self._found = self._compute()
        return self._found

    def __getitem__(self, path: Path) -> ProjectIndex:
        return self._mapping()[path]

    def __iter__(self) -> Iterator[Path]:
        return iter(self._mapping())

    def __len__(self) -> int:
        return len(self._mapping())


def _check_run(
    settings: Settings,
    cache: results_cache.Cache | None,
    facts: Sequence[Fact],
    reported: set[str],
) -> list[Diagnostic]:
    """Whole-run checks of the rules that noted facts, over every file of the
    project, reported for the named files. The rule modules are imported only
    then, and the findings are cached by the facts, so a warm run over
    unchanged files never imports libcst."""
    by_code: dict[str, list[Fact]] = {}
    for fact in facts:
        by_code.setdefault(fact.code, []).append(fact)
    if not by_code:
        return []
    run_key = results_cache.key(settings.fingerprint, "run", repr(sorted(by_code.items())))
    found = cache.get(results_cache.RUN_FINDINGS, run_key) if cache is not None else None
    if found is None:
        from slotguard.rules import all_rules

        found = []
        for rule in all_rules():
            if rule.code in by_code and rule.code in settings.codes:
                found.extend(rule.check_run(by_code[rule.code], settings))
        if cache is not None:
            cache.put(results_cache.RUN_FINDINGS, run_key, found)
    return [diagnostic for diagnostic in found if diagnostic.path in reported]
