"""What the language server asks of slotguard: findings and fixes for the text
of an open buffer at a path, with that file's configuration, seeing its project.

This is the one module of the server that calls into the engine, so that the
engine can change under the server without the server changing.

- **Configuration**: the nearest ``slotguard.toml`` or ``pyproject.toml``
  with a ``[tool.slotguard]`` table at or above the file, as ``slotguard check
  --stdin-filename`` finds it; re-read when it changes on disk.
- **Project**: the directory of that configuration file, else the git
  repository holding the file (SPEC section 3). Its files are analysed from
  disk for what they tell the buffer (summaries, application state, whole-run
  facts, settled pending findings), once, and again only when one of them
  changes on disk (by stat) or the list of files does. A file in neither a
  configured project nor a repository has its directory for project, as for
  ``slotguard check FILE``, and no cache is written beside it.
- **The buffer** replaces its own file: it sees the summaries of the modules
  it imports and the application state of the project, as in a ``check`` run,
  and its findings include the whole-run ones about its own lines.

A ``Checker`` may be used from two threads, one calling ``check`` and the
fixes, the other ``refresh``: a buffer's findings never wait for the
analysis of a whole project.
"""

from __future__ import annotations

import ast
import codecs
import dataclasses
import io
import os
import threading
import time
import tokenize
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from slotguard import config as configuration
from slotguard.analysis.index import EMPTY_INDEX, ModuleSummary, ProjectIndex
from slotguard.diagnostic import Applicability, Diagnostic, Edit, Related, Span
from slotguard.engine import check_bytes, check_paths
from slotguard.facts import Fact
from slotguard.report.sarif import README_URL, repository_root, root_relative, rule_anchor
from slotguard.results import FileResult
from slotguard.settings import Settings

LIST_AGAIN_AFTER = 5.0
"""Seconds after which the project's files are listed again (a file created
or deleted outside the editor); a save lists them at once."""

ANALYSIS_ERROR = "SG000"


@dataclass(frozen=True, slots=True)
class RuleHelp:
    code: str
    name: str
    documentation: str
    """Markdown: what ``slotguard explain`` prints."""
    url: str
    """The rule's section of the README."""


@dataclass(frozen=True, slots=True)
class _Surroundings:
    """What the buffer sees of its project, kept to check edited versions of
    the buffer (a fix's result) the same way."""

    settings: Settings
    index: ProjectIndex
    settled: frozenset[str]
    """Pending-finding keys settled by the project's other files."""
    facts: tuple[Fact, ...]
    """Whole-run facts noted in the project's other files."""
    decides_pending: bool
    """The project was analysed, so findings that wait on the rest of the
    run can be decided; before, they are left out rather than shown and
    withdrawn a moment later."""


@dataclass(frozen=True, slots=True)
class BufferCheck:
    """The findings of one version of a buffer."""

    path: Path
    shown: str
    """The path findings are reported under (relative to the project root)."""
    root: Path
    text: str
    diagnostics: tuple[Diagnostic, ...]
    project_current: bool = True
    """Whether the project's analysis it saw is up to date (else the server
    asks for ``Checker.refresh`` and checks again)."""
    configuration_problem: str | None = None
    _seen: _Surroundings | None = field(default=None, repr=False, compare=False)

    def place(self, related: Related) -> Path:
        """The file a related place is in."""
        if related.path is None:
            return self.path
        given = Path(related.path)
        return given if given.is_absolute() else self.root / given


@dataclass(frozen=True, slots=True)
class FixOption:
    """One finding's fix, applied on its own to the buffer and checked."""

    diagnostic: Diagnostic
    applicability: Applicability
    description: str
    text: str
    """The whole buffer with the fix applied."""


@dataclass(slots=True)
class _Project:
    root: Path
    whole: bool
    """All of the project is read; else only what the file imports."""
    configured: Settings
    """The settings of the files that lead here."""
    settings: Settings
    """Those of the project's analysis (where its cache is)."""
    files: tuple[Path, ...] = ()
    listed_at: float = float("-inf")
    signature: tuple[tuple[str, int, int], ...] = ()
    results: dict[str, FileResult] | None = None
    """The last analysis of each file from disk, by shown path; None before
    the first."""

    def listing_due(self) -> bool:
        return time.monotonic() - self.listed_at > LIST_AGAIN_AFTER

    def current(self) -> bool:
        return (
            self.results is not None
            and not self.listing_due()
            and _signature(self.files) == self.signature
        )


class Checker:
    """Checks buffers, and keeps each project's analysis between checks.

    ``check`` never analyses the project: it uses the project's last analysis
    (none at first) and says whether that is current; ``refresh`` brings it
    up to date."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settings: dict[Path | None, tuple[int, Settings, str | None]] = {}
        self._projects: dict[tuple[Path, str], _Project] = {}
        self._plans: tuple[BufferCheck, dict[tuple[str, Span], tuple[Edit, ...]]] | None = None

    # -- findings ----------------------------------------------------------------

    def check(self, text: str, path: Path) -> BufferCheck:
        """The findings of ``text`` as the content of ``path`` (which need
        not exist: an unsaved buffer), seeing the project as last analysed."""
        path = Path(os.path.abspath(path))
        with self._lock:
            settings, problem = self._settings_for(path)
            project = self._project(path, settings)
            results = project.results
        shown = _shown(path, project.root)
        others = [result for other, result in (results or {}).items() if other != shown]
        data = _encode(text)
        seen = _Surroundings(
            settings,
            _index_for(path, data, others),
            frozenset(key for result in others for key in result.settled),
            tuple(fact for result in others for fact in result.facts),
            decides_pending=results is not None,
        )
        diagnostics = _findings(data, path, shown, seen)
        return BufferCheck(
            path,
            shown,
            project.root,
            text,
            diagnostics,
            project_current=project.current(),
            configuration_problem=problem,
            _seen=seen,
        )

    def refresh(self, path: Path) -> bool:
        """Bring the analysis of the project of ``path`` up to date; whether
        it changed (the project's buffers should then be checked again)."""
        path = Path(os.path.abspath(path))
        with self._lock:
            settings, _ = self._settings_for(path)
            project = self._project(path, settings)
        files = project.files
        if project.listing_due():
            files = _project_files(project.root, project.settings)
        signature = _signature(files)
        if project.results is not None and signature == project.signature:
            with self._lock:
                project.files, project.listed_at = files, time.monotonic()
            return False
        display = {file: _shown(file, project.root) for file in files}
        run = check_paths(files, project.settings, display, root=project.root, whole_results=True)
        with self._lock:
            project.files, project.listed_at = files, time.monotonic()
            project.signature = signature
            project.results = {result.path: result for result in run.files}
        return True

    def project_of(self, path: Path) -> Path:
        """The directory of the project ``path`` belongs to."""
        path = Path(os.path.abspath(path))
        with self._lock:
            settings, _ = self._settings_for(path)
            return self._project(path, settings).root

    def saved(self) -> None:
        """A file was saved: list the projects' files again at the next refresh."""
        with self._lock:
            for project in self._projects.values():
                project.listed_at = float("-inf")

    # -- fixes ---------------------------------------------------------------------

    def fix(self, check: BufferCheck, diagnostic: Diagnostic) -> FixOption | None:
        """The fix of one finding, if it has one that applies cleanly: the
        result parses (and compiles, if the buffer did), removes the finding
        and brings no finding that was not there (the opt-in style rule
        SG108 aside, as for ``slotguard fix``)."""
        from slotguard.fixer import STYLE_CODES

        seen = check._seen
        if diagnostic.fix is None or seen is None:
            return None
        edits = self._planned(check).get((diagnostic.code, diagnostic.span))
        if not edits:
            return None
        fixed = apply_edits(check.text, edits)
        if fixed == check.text or (_compiles(check.text) and not _compiles(fixed)):
            return None
        after = _findings(_encode(fixed), check.path, check.shown, seen)
        before_counts = Counter(d.code for d in check.diagnostics)
        after_counts = Counter(d.code for d in after)
        if after_counts[ANALYSIS_ERROR] > before_counts[ANALYSIS_ERROR]:
            return None
        if after_counts[diagnostic.code] >= before_counts[diagnostic.code]:
            return None
        added = after_counts - before_counts
        if any(code not in STYLE_CODES for code in added):
            return None
        return FixOption(diagnostic, diagnostic.fix.applicability, diagnostic.fix.message, fixed)

    def fix_all(self, check: BufferCheck, *, unsafe: bool = False) -> str | None:
        """The buffer with every safe fix applied (and the unsafe ones with
        ``unsafe``), as ``slotguard fix`` would write it; None if nothing
        changes."""
        from slotguard.fixer import fix_source

        seen = check._seen
        if seen is None:
            return None
        data = _encode(check.text)
        outcome = fix_source(
            data, check.path, seen.settings, check.shown, unsafe=unsafe, index=seen.index
        )
        if outcome.text is None or outcome.text == check.text:
            return None
        return outcome.text

    def _planned(self, check: BufferCheck) -> dict[tuple[str, Span], tuple[Edit, ...]]:
        """Each finding's fix on its own, as edits of the buffer (worked out
        once per checked version)."""
        from slotguard.fixer import planned_edits

        if self._plans is None or self._plans[0] is not check:
            seen = check._seen
            assert seen is not None
            edits = planned_edits(
                _encode(check.text), check.path, seen.settings, check.shown, seen.index
            )
            self._plans = (check, edits)
        return self._plans[1]

    # -- configuration and project (under the lock) ----------------------------------

    def _settings_for(self, path: Path) -> tuple[Settings, str | None]:
        start = next((p for p in (path, *path.parents) if p.exists()), Path.cwd())
        found = configuration.discover(start)
        stamp = _stamp(found) if found is not None else 0
        known = self._settings.get(found)
        if known is not None and known[0] == stamp:
            return known[1], known[2]
        problem = None
        if found is None:
            config = configuration.Config()
        else:
            try:
                config = configuration.load(found)
            except configuration.ConfigError as error:
                problem = f"{error}; the default settings apply until it is fixed"
                config = configuration.Config(path=found)
        settings = Settings.from_config(config, jobs=1)
        self._settings[found] = (stamp, settings, problem)
        return settings, problem

    def _project(self, path: Path, settings: Settings) -> _Project:
        root, whole = _project_root(path, settings)
        key = (root, "" if whole else str(path))
        project = self._projects.get(key)
        if project is None or project.configured is not settings:
            project = _Project(root, whole, settings, _with_cache(settings, root, whole))
            self._projects[key] = project
        return project


def rule_help(code: str) -> RuleHelp | None:
    """A rule's documentation and where it is published."""
    from slotguard.rules import rule_by_code

    rule = rule_by_code(code)
    if rule is None:
        return None
    return RuleHelp(rule.code, rule.name, rule.documentation(), rule_url(rule.code, rule.name))


def rule_url(code: str, name: str) -> str:
    """The rule's section of the README (where SARIF's ``helpUri`` points)."""
    return f"{README_URL}#{rule_anchor(code, name)}"


def add_noqa(text: str, diagnostics: Iterable[Diagnostic]) -> str | None:
    """The buffer with ``# noqa`` comments for ``diagnostics``; None if that
    changes nothing (or the buffer does not tokenize)."""
    from slotguard.report.noqa import add_noqa as annotated

    added = annotated(text, diagnostics)
    return added.text if added.lines else None


def text_edits(old: str, new: str) -> tuple[Edit, ...]:
    """Line-wise replacements that turn ``old`` into ``new``."""
    from slotguard.fixer import text_edits as line_edits

    return line_edits(old, new)


def apply_edits(text: str, edits: Sequence[Edit]) -> str:
    """``text`` with non-overlapping ``edits`` applied (lines split on
    ``\\n``, columns in code points, as the engine counts them)."""
    starts = [0]
    for index, character in enumerate(text):
        if character == "\n":
            starts.append(index + 1)

    def offset(line: int, column: int) -> int:
        if line > len(starts):
            return len(text)
        return min(starts[line - 1] + column - 1, len(text))

    result = text
    for edit in sorted(edits, key=lambda e: (e.span.line, e.span.column), reverse=True):
        start = offset(edit.span.line, edit.span.column)
        end = offset(edit.span.end_line, edit.span.end_column)
        result = result[:start] + edit.content + result[end:]
    return result


# -- helpers -----------------------------------------------------------------------------


def _findings(data: bytes, path: Path, shown: str, seen: _Surroundings) -> tuple[Diagnostic, ...]:
    """The buffer's findings as a ``check`` run of its project reports them:
    its own, its pending ones that no file settles, and the whole-run ones
    about its lines."""
    result = check_bytes(data, path, seen.settings, shown, seen.index)
    found = list(result.diagnostics)
    if seen.decides_pending:
        settled = seen.settled | set(result.settled)
        found += [diagnostic for key, diagnostic in result.pending if key not in settled]
        run = _run_findings([*seen.facts, *result.facts], seen.settings)
        found += [diagnostic for diagnostic in run if diagnostic.path == shown]
    return tuple(sorted(found, key=Diagnostic.sort_key))


def _run_findings(facts: Sequence[Fact], settings: Settings) -> list[Diagnostic]:
    """The whole-run checks of the rules that noted facts."""
    if not facts:
        return []
    from slotguard.rules import all_rules

    by_code: dict[str, list[Fact]] = {}
    for fact in facts:
        by_code.setdefault(fact.code, []).append(fact)
    found: list[Diagnostic] = []
    for rule in all_rules():
        if rule.code in by_code and rule.code in settings.codes:
            found.extend(rule.check_run(by_code[rule.code], settings))
    return found


def _index_for(path: Path, data: bytes, others: Sequence[FileResult]) -> ProjectIndex:
    """What the buffer sees: the summaries of the project modules it imports,
    and the application state typed in the project if it reads any (as the
    engine gives a file of a run)."""
    from slotguard.project import module_name_for, scan

    summaries = [result.summary for result in others if result.summary is not None]
    if not summaries:
        return EMPTY_INDEX
    module = module_name_for(path)
    buffer = scan(data, module, path.name == "__init__.py")
    by_module: dict[str, ModuleSummary] = {}
    for summary in summaries:
        if summary.module != module:
            by_module.setdefault(summary.module, summary)
    imported: dict[str, ModuleSummary] = {}
    for name in buffer.imports:
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            found = by_module.get(".".join(parts[:end]))
            if found is not None:
                imported[found.module] = found
    symbols = {
        f"{summary.module}.{name}": symbol
        for summary in imported.values()
        for name, symbol in summary.symbols
    }
    state: dict[str, str] = {}
    if buffer.reads_state:
        for summary in by_module.values():
            for name, type_name in summary.state:
                state.setdefault(name, type_name)
    return ProjectIndex(symbols, state) if symbols or state else EMPTY_INDEX


def _project_root(path: Path, settings: Settings) -> tuple[Path, bool]:
    """The project's directory, and whether it is a project of its own (a
    configured project or a repository, which keeps a cache) or only the
    directory of a loose file."""
    if settings.config.path is not None:
        return Path(os.path.abspath(settings.root)), True
    start = next((p for p in path.parents if p.is_dir()), Path.cwd())
    repository = repository_root(start)
    if (repository / ".git").exists():
        return repository, True
    return start, False


def _with_cache(settings: Settings, root: Path, whole: bool) -> Settings:
    """The settings of the project's analysis: the results cache in the
    project root, where ``slotguard check`` run there keeps it; none for a
    file outside any project (nothing is written beside a loose script)."""
    if not whole:
        return dataclasses.replace(settings, use_cache=False)
    if settings.config.path is not None:
        return settings
    config = dataclasses.replace(settings.config, cache_dir=str(root / ".slotguard_cache"))
    return Settings.from_config(config, jobs=1)


def _project_files(root: Path, settings: Settings) -> tuple[Path, ...]:
    """The project's files, as ``slotguard check`` finds them: a file in no
    configured project or repository has its directory for project."""
    from slotguard.project import project_files

    return tuple(Path(os.path.abspath(file)) for file in project_files(root, settings))


def _shown(path: Path, root: Path) -> str:
    """How a file of the project is named in findings: from the project root."""
    return root_relative(str(path), root) or path.as_posix()


def _signature(files: Iterable[Path]) -> tuple[tuple[str, int, int], ...]:
    found = []
    for file in files:
        try:
            status = file.stat()
        except OSError:
            found.append((str(file), -1, -1))
            continue
        found.append((str(file), status.st_mtime_ns, status.st_size))
    return tuple(found)


def _stamp(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return -1


def _encode(text: str) -> bytes:
    """The buffer's text as the bytes of its file: in the encoding its coding
    line declares (so that the engine decodes the same text), else UTF-8."""
    data = text.encode("utf-8", "surrogatepass")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError:
        return data
    if codecs.lookup(encoding).name in ("utf-8", "utf-8-sig"):
        return data
    try:
        return text.encode(encoding)
    except UnicodeEncodeError:
        return data


def _compiles(text: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True
