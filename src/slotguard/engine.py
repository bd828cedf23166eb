"""The run: which files to analyse, in which order, with what they can see.

For every file: read the bytes, and decide cheaply whether any finding is
possible (the prefilter). The files that pass are parsed and analysed in
import order, each seeing the summaries of the project modules it imports
(``slotguard.analysis.index``). Files an import cycle or a late state writer
put too early are analysed a second time once everything they import is
known. Results are cached by content; a warm run over an unchanged tree
imports neither libcst nor the rules.

Nothing here raises for a bad file: whatever stops a file from being analysed
becomes an SG000 finding, and the rest of the run goes on.
"""

from __future__ import annotations

import itertools
import os
import signal
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from slotguard import cache as results_cache
from slotguard import prefilter
from slotguard.analysis.index import EMPTY_INDEX, ModuleSummary, ProjectIndex, Symbol
from slotguard.diagnostic import Diagnostic, Related, Span
from slotguard.project import ProjectFile, build
from slotguard.results import FileResult
from slotguard.settings import Settings
from slotguard.source import SourceError, decode

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor

    import libcst as cst

    from slotguard.facts import Fact
    from slotguard.rules.base import Context

ANALYSIS_ERROR = ("SG000", "file-not-analysed")
_NO_PLACE = Span(1, 1, 1, 1)
"""Where a fact noted without a node is (its rule reads only its value)."""
UNUSED_NOQA = ("SG001", "unused-noqa")
PARALLEL_THRESHOLD = 24
"""Below this many files to parse, worker processes cost more than they save."""

Progress = Callable[[int, int], None]


@dataclass(slots=True)
class RunResult:
    files: list[FileResult] = field(default_factory=list)
    cache_hits: int = 0
    run_diagnostics: list[Diagnostic] = field(default_factory=list)
    """Findings about the run as a whole (``Rule.check_run``)."""
    indexes: dict[Path, ProjectIndex] = field(default_factory=dict)
    """What each file saw of the project: ``slotguard fix`` re-checks with it."""
    paths: dict[str, Path] = field(default_factory=dict)
    """The file behind each reported path."""
    cache: results_cache.Cache | None = None
    """The run's cache, for what is worked out after the run (the edits of
    each fix, in json output); save it again after adding to it."""
    cache_keys: dict[str, str] = field(default_factory=dict)
    """The cache key of each reported path's results."""

    @property
    def diagnostics(self) -> list[Diagnostic]:
        settled = {key for result in self.files for key in result.settled}
        found = [
            diagnostic
            for result in self.files
            if not result.context_only
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


def may_have_findings(data: bytes, settings: Settings, index: ProjectIndex = EMPTY_INDEX) -> bool:
    """The prefilter (see ``slotguard.prefilter``)."""
    if os.environ.get(PREFILTER_SWITCH) == "off":
        return True
    return prefilter.may_have_findings(data, settings.model, index)


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


def check_bytes(
    data: bytes,
    path: Path,
    settings: Settings,
    shown: str,
    index: ProjectIndex = EMPTY_INDEX,
    passes: bool | None = None,
) -> FileResult:
    """Findings (and the summary) for one file's bytes.

    Decoding is cheap and a binary or undecodable ``.py`` is broken for
    everyone, so it is checked for every file; parsing is not, so a syntax
    error is found only in files the prefilter sends on. ``passes`` is the
    prefilter's verdict when the caller already has it.
    """
    if passes is None:
        passes = may_have_findings(data, settings, index)
    if not passes:
        try:
            source = decode(data)
        except SourceError as error:
            return FileResult(shown, (analysis_error(shown, error),))
        return FileResult(shown, tuple(_unused_noqa(source.text, path, settings, shown, ())))
    try:
        source = decode(data)
        from slotguard.parse import parse

        tree = parse(source.text)
    except SourceError as error:
        return FileResult(shown, (analysis_error(shown, error),))
    return analyse(tree, source.text, path, settings, shown, index)


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

    try:
        context = run_rules(tree, path, settings, shown, index)
        return _located(context, tree, text, shown, summarise(context.module))
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


@dataclass(frozen=True, slots=True)
class _Job:
    path: Path
    data: bytes
    shown: str
    symbols: tuple[tuple[str, Symbol], ...]
    state: tuple[tuple[str, str], ...]

    def index(self) -> ProjectIndex:
        return ProjectIndex(dict(self.symbols), dict(self.state))


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


def _run_job(job: _Job) -> FileResult:
    assert _worker_settings is not None
    # Only files the prefilter lets through are sent to a worker.
    return check_bytes(job.data, job.path, _worker_settings, job.shown, job.index(), passes=True)


class _Run:
    """One run over many files: scheduling, the index, the cache."""

    def __init__(
        self,
        settings: Settings,
        display: dict[Path, str],
        context_files: frozenset[Path],
        progress: Progress | None,
    ) -> None:
        self.settings = settings
        self.display = display
        self.context_files = context_files
        self.progress = progress
        self.summaries: dict[str, ModuleSummary] = {}
        self.state: dict[str, str] = {}
        self.results: dict[Path, FileResult] = {}
        self.seen: dict[Path, _Job] = {}
        """The job each file was analysed with: what it could see."""
        self.cache = results_cache.Cache(settings.cache_directory) if settings.use_cache else None
        self.keys: dict[Path, str] = {}
        """The cache key of each file's latest job."""
        self.pool: ProcessPoolExecutor | None = None

    def run(self, files: Sequence[Path]) -> RunResult:
        readable: list[tuple[Path, bytes]] = []
        for path in files:
            try:
                readable.append((path, path.read_bytes()))
            except OSError as error:
                self.results[path] = _unreadable(self._shown(path), error)
        order = build(readable)
        try:
            self._pass(order, final=False)
            # Files that an import cycle or a later state writer put too early
            # see more now: analyse them again with everything known.
            late = [item for item in order if self._job(item, final=True) != self.seen[item.path]]
            self._pass(late, final=True)
            if self.pool is not None:
                self.pool.shutdown()
        except BaseException:
            self._stop_workers()
            raise
        ordered = [self.results[path] for path in files if path in self.results]
        run_diagnostics = self._check_run(ordered)
        if self.cache is not None:
            self.cache.save()
        return RunResult(
            ordered,
            self.cache.hits if self.cache is not None else 0,
            run_diagnostics,
            {path: job.index() for path, job in self.seen.items()},
            {self._shown(path): path for path in files},
            self.cache,
            {self._shown(path): key for path, key in self.keys.items()},
        )

    def _check_run(self, results: Sequence[FileResult]) -> list[Diagnostic]:
        """Whole-run checks of the rules that noted facts. The rule modules
        are imported only then, and the findings are cached by the facts, so
        a warm run over unchanged files never imports libcst."""
        by_code: dict[str, list[Fact]] = {}
        for result in results:
            for fact in result.facts:
                by_code.setdefault(fact.code, []).append(fact)
        if not by_code:
            return []
        run_key = results_cache.key(
            self.settings.fingerprint,
            "run",
            repr(sorted(by_code.items())),
            repr(sorted(result.path for result in results if result.context_only)),
        )
        if self.cache is not None:
            cached = self.cache.get(results_cache.RUN_FINDINGS, run_key)
            if cached is not None:
                return cached
        found = self._run_checks(results, by_code)
        if self.cache is not None:
            self.cache.put(results_cache.RUN_FINDINGS, run_key, found)
        return found

    def _run_checks(
        self, results: Sequence[FileResult], by_code: dict[str, list[Fact]]
    ) -> list[Diagnostic]:
        from slotguard.rules import all_rules

        found = []
        for rule in all_rules():
            if rule.code in by_code and rule.code in self.settings.codes:
                found.extend(rule.check_run(by_code[rule.code], self.settings))
        # A file read only for context says what it defines; findings about
        # its own lines belong to a run that checks it.
        context = {result.path for result in results if result.context_only}
        return [diagnostic for diagnostic in found if diagnostic.path not in context]

    def _shown(self, path: Path) -> str:
        return self.display.get(path, path.as_posix())

    def _job(self, item: ProjectFile, final: bool) -> _Job:
        """What the file may see: the summaries of the modules it imports that
        are analysed before it (all of them, once the first pass is over),
        and the application state typed in the project."""
        sources = [*item.depends_on, *item.comes_later] if final else item.depends_on
        symbols: dict[str, Symbol] = {}
        for target in sources:
            summary = self.summaries.get(target.module or "")
            if summary is not None:
                for name, symbol in summary.symbols:
                    symbols[f"{summary.module}.{name}"] = symbol
        state = tuple(sorted(self.state.items())) if item.reads_state else ()
        return _Job(
            item.path, item.data, self._shown(item.path), tuple(sorted(symbols.items())), state
        )

    def _pass(self, items: Sequence[ProjectFile], *, final: bool) -> None:
        """Analyse ``items`` in order; in the first pass a file starts once the
        files it depends on are done, so that it sees their summaries."""
        scheduled = {item.path for item in items}
        done: set[Path] = set()
        waiting = list(items)
        in_flight: dict[Future[FileResult], tuple[ProjectFile, _Job]] = {}
        use_workers: bool | None = None
        while waiting or in_flight:
            blocked = []
            for item in waiting:
                if not final and any(
                    d.path in scheduled and d.path not in done for d in item.depends_on
                ):
                    blocked.append(item)
                    continue
                job = self._job(item, final)
                result = self._cached(job)
                if result is None:
                    index = job.index()
                    if use_workers is None:
                        use_workers = self._start_workers(items)
                    # A file the prefilter stops costs less here than its trip
                    # to a worker, and the files waiting for it start sooner.
                    passes = None
                    if use_workers:
                        passes = may_have_findings(job.data, self.settings, index)
                        if passes:
                            in_flight[self._submit(job)] = (item, job)
                            continue
                    result = check_bytes(
                        job.data, job.path, self.settings, job.shown, index, passes=passes
                    )
                    self._store(job, result)
                self._finish(item, job, result, final)
                done.add(item.path)
            waiting = blocked
            if in_flight:
                for future in _first_completed(in_flight):
                    item, job = in_flight.pop(future)
                    result = future.result()
                    self._store(job, result)
                    self._finish(item, job, result, final)
                    done.add(item.path)
            elif waiting:
                raise AssertionError("a file waits for a file that is not scheduled")

    def _start_workers(self, items: Sequence[ProjectFile]) -> bool:
        """Worker processes, when there is enough to parse to pay for them."""
        if self.pool is not None:
            return True
        jobs = self.settings.jobs or os.cpu_count() or 1
        if jobs <= 1:
            return False
        to_parse = (item for item in items if may_have_findings(item.data, self.settings))
        if sum(1 for _ in itertools.islice(to_parse, PARALLEL_THRESHOLD)) < PARALLEL_THRESHOLD:
            return False
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("fork") if hasattr(os, "fork") else None
        if context is not None:
            # Forked workers inherit libcst and the rules instead of each
            # importing them, and share those pages with this process.
            from slotguard.parse import parse  # noqa: F401
            from slotguard.rules import all_rules

            all_rules()
        self.pool = ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=context,
            initializer=_start_worker,
            initargs=(self.settings,),
        )
        return True

    def _submit(self, job: _Job) -> Future[FileResult]:
        assert self.pool is not None
        if not hasattr(signal, "pthread_sigmask"):
            return self.pool.submit(_run_job, job)
        # The first submission forks the workers: a Ctrl-C waits until it is
        # done (the workers then ignore it, and this process takes it).
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            return self.pool.submit(_run_job, job)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def _stop_workers(self) -> None:
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

    def _cached(self, job: _Job) -> FileResult | None:
        if self.cache is None:
            return None
        return self.cache.get(results_cache.FILE_RESULT, self._key(job))

    def _store(self, job: _Job, result: FileResult) -> None:
        if self.cache is not None:
            self.cache.put(results_cache.FILE_RESULT, self._key(job), result)

    def _key(self, job: _Job) -> str:
        found = results_cache.key(
            self.settings.fingerprint, job.shown, job.data, repr(job.symbols), repr(job.state)
        )
        self.keys[job.path] = found
        return found

    def _finish(self, item: ProjectFile, job: _Job, result: FileResult, final: bool) -> None:
        if item.path in self.context_files:
            result = replace(result, context_only=True)
        self.results[item.path] = result
        self.seen[item.path] = job
        if result.summary is not None:
            self.summaries[result.summary.module] = result.summary
            for name, type_name in result.summary.state:
                self.state.setdefault(name, type_name)
        if self.progress is not None and not final:
            self.progress(len(self.seen), len(self.display) or len(self.seen))


def _first_completed(futures: Iterable[Future[FileResult]]) -> set[Future[FileResult]]:
    from concurrent.futures import FIRST_COMPLETED, wait

    done, _ = wait(list(futures), return_when=FIRST_COMPLETED)
    return done


def check_paths(
    files: Sequence[Path],
    settings: Settings,
    display: dict[Path, str],
    *,
    context_files: Iterable[Path] = (),
    progress: Progress | None = None,
) -> RunResult:
    """Analyse a run's files as one project (context files are read for what
    they tell the others, and not reported)."""
    context = frozenset(context_files)
    everything = list(dict.fromkeys([*files, *context]))
    return _Run(settings, display, context, progress).run(everything)
