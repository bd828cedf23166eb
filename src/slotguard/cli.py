"""Command-line interface: parse options, call the engine, print, exit.

Exit codes: 0 no findings, 1 findings, 2 usage, configuration or internal
error. Results go to stdout (or ``--output-file``), everything else to stderr.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from slotguard import __version__
from slotguard.diagnostic import Diagnostic, Span

_F = TypeVar("_F", bound=Callable[..., Any])

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


class UsageProblem(Exception):
    """A problem with how slotguard was invoked or configured (exit 2)."""


def _fail(message: str) -> NoReturn:
    click.echo(f"slotguard: error: {message}", err=True)
    sys.exit(EXIT_ERROR)


def _guarded(command: _F) -> _F:
    """Turn known problems into a one-line message and exit 2; never a traceback
    unless SLOTGUARD_DEBUG is set."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from slotguard.config import ConfigError
        from slotguard.selection import SelectionError

        try:
            return command(*args, **kwargs)
        except (ConfigError, SelectionError, UsageProblem) as error:
            _fail(str(error))
        except KeyboardInterrupt:
            click.echo("slotguard: interrupted", err=True)
            _exit_interrupted()
        except BrokenPipeError:
            # The reader went away (``slotguard explain SG101 | head``): not
            # an error of ours. Point stdout at nothing so the interpreter's
            # final flush does not fail again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(1)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as error:
            if os.environ.get("SLOTGUARD_DEBUG"):
                raise
            _fail(
                f"internal error: {type(error).__name__}: {error} "
                "(set SLOTGUARD_DEBUG=1 for a traceback, and please report it)"
            )

    return wrapper  # type: ignore[return-value]


def _exit_interrupted() -> NoReturn:
    """Exit 130 after Ctrl-C. Once worker processes were started (the engine
    has killed them by now), the interpreter's own exit would wait for the
    thread that managed them, which the interrupt may have left waiting on a
    lock forever: leave at once instead, output flushed."""
    if "concurrent.futures.process" not in sys.modules:
        sys.exit(130)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(130)


def _lint_options(command: _F) -> _F:
    options = [
        click.option(
            "--select",
            multiple=True,
            metavar="CODES",
            help="Rules to run: codes or prefixes (SG2, SG), comma-separated or repeated.",
        ),
        click.option(
            "--extend-select",
            multiple=True,
            metavar="CODES",
            help="Rules to run in addition to the selected ones.",
        ),
        click.option(
            "--ignore", multiple=True, metavar="CODES", help="Rules not to run: codes or prefixes."
        ),
        click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Configuration file (default: nearest slotguard.toml or pyproject.toml).",
        ),
        click.option(
            "--isolated",
            is_flag=True,
            help="Ignore every configuration file: the defaults and the options given only.",
        ),
        click.option("--no-cache", is_flag=True, help="Do not read or write the results cache."),
        click.option(
            "--jobs",
            "-j",
            type=click.IntRange(min=1),
            metavar="N",
            help="Worker processes (default: one per CPU, used when the run is large).",
        ),
        click.option(
            "--exclude",
            multiple=True,
            metavar="PATTERN",
            help="Paths to skip, as gitignore-style patterns (repeatable).",
        ),
        click.option(
            "--stdin-filename",
            metavar="NAME",
            help="Read the source from standard input and report it as NAME "
            "(`fix` prints the fixed source).",
        ),
        click.option(
            "--output-format",
            type=click.Choice(["full", "concise", "json", "sarif", "github"]),
            help="How findings are printed (default: full).",
        ),
        click.option(
            "--output-file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Write findings to this file instead of standard output.",
        ),
        click.option("--quiet", "-q", is_flag=True, help="Print findings only, no summary."),
        click.option(
            "--statistics",
            is_flag=True,
            help="Print how many findings each rule has instead of the findings.",
        ),
        click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings."),
        click.option(
            "--baseline",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Do not report the findings recorded in this baseline file.",
        ),
        click.option(
            "--write-baseline",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Record the current findings in this baseline file, and exit 0.",
        ),
        click.option(
            "--add-noqa",
            is_flag=True,
            help="Add `# noqa: CODE` comments to the reported lines, and exit 0.",
        ),
        click.option(
            "--show-settings",
            is_flag=True,
            help="Print the settings of the run and the configuration file they came from.",
        ),
        click.option(
            "--show-files", is_flag=True, help="Print the files the run would check, one a line."
        ),
        click.argument("paths", nargs=-1, type=click.Path(path_type=Path)),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="slotguard")
def cli() -> None:
    """Find database connection leaks in Python code."""


def _fix_options(command: _F) -> _F:
    options = [
        click.option("--fix", is_flag=True, help="Apply the fixes (`check --fix` is `fix`)."),
        click.option("--unsafe-fixes", is_flag=True, help="Apply unsafe fixes too."),
        click.option(
            "--diff",
            is_flag=True,
            help="Print the fixes as a unified diff and write nothing; exit 1 if any.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@dataclass(frozen=True)
class _Options:
    command: str
    """``check`` or ``fix``."""
    paths: tuple[Path, ...]
    select: tuple[str, ...]
    extend_select: tuple[str, ...]
    ignore: tuple[str, ...]
    config_file: Path | None
    isolated: bool
    no_cache: bool
    jobs: int | None
    exclude: tuple[str, ...]
    stdin_filename: str | None
    output_format: str | None
    output_file: Path | None
    quiet: bool
    statistics: bool
    exit_zero: bool
    baseline: Path | None
    write_baseline: Path | None
    add_noqa: bool
    show_settings: bool
    show_files: bool
    fix: bool
    unsafe_fixes: bool
    diff: bool

    @property
    def fixing(self) -> bool:
        return self.fix or self.diff


@cli.command()
@_lint_options
@_fix_options
@_guarded
def check(**options: Any) -> None:
    """Report connection leaks in PATHS (default: the current directory;
    `-` reads standard input)."""
    _lint(_Options(command="check", **options))


@cli.command()
@_lint_options
@_fix_options
@_guarded
def fix(**options: Any) -> None:
    """Rewrite leaking code in PATHS into context-manager form, then report
    what is left. Safe fixes only, unless --unsafe-fixes. From standard
    input, print the fixed source."""
    _lint(_Options(command="fix", **{**options, "fix": True}))


def _refuse_contradictions(options: _Options, stdin_name: str | None) -> None:
    """Options that ask for two incompatible things are a usage error that
    names both, before anything is read or written."""
    fixing = "`slotguard fix`" if options.command == "fix" else "--fix" if options.fix else None

    def refuse(first: str, second: str, why: str) -> NoReturn:
        raise UsageProblem(f"{first} cannot be used with {second}: {why}")

    if options.add_noqa:
        if options.diff:
            refuse("--add-noqa", "--diff", "one writes comments, the other writes nothing")
        if fixing is not None:
            refuse("--add-noqa", fixing, "fix the findings or suppress them, not both")
        if stdin_name is not None:
            reading = "`-`" if options.stdin_filename is None else "--stdin-filename"
            refuse("--add-noqa", reading, "there is no file to write the comments to")
    if options.write_baseline is not None:
        if options.diff:
            refuse("--write-baseline", "--diff", "the diff writes nothing")
        if fixing is not None:
            refuse("--write-baseline", fixing, "record the findings or fix them, not both")
    if options.diff and options.output_format is not None:
        refuse("--diff", "--output-format", "the diff is the output")
    if options.isolated and options.config_file is not None:
        refuse("--isolated", "--config", "--isolated reads no configuration file")


def _stdin_name(options: _Options) -> str | None:
    """The name standard input is reported under, when a run reads it
    (``-`` among the paths, or ``--stdin-filename``)."""
    dash = Path("-") in options.paths
    if dash and len(options.paths) > 1:
        raise UsageProblem("`-` reads standard input; do not name other paths with it")
    if options.stdin_filename is not None:
        if options.paths and not dash:
            raise UsageProblem("--stdin-filename reads standard input; do not also name PATHS")
        return options.stdin_filename
    return "-" if dash else None


def _lint(options: _Options) -> None:
    from slotguard.engine import RunResult, check_paths
    from slotguard.report.output import SourceReader, source_text

    stdin_name = _stdin_name(options)
    _refuse_contradictions(options, stdin_name)
    recorded = _load_baseline(options.baseline)
    settings = _settings(options, stdin_name)
    if options.show_settings:
        click.echo(_shown_settings(settings, options), nl=False)
        sys.exit(EXIT_CLEAN)
    fmt = options.output_format or settings.config.output_format or "full"
    texts: dict[str, str] = {}
    unlisted: list[Diagnostic] = []
    nothing_to_check = False
    data = b""
    if stdin_name is not None:
        if options.show_files:
            click.echo(stdin_name)
            sys.exit(EXIT_CLEAN)
        data = sys.stdin.buffer.read()
        if options.fixing:
            _fix_stdin(data, stdin_name, settings, options, fmt)
        result = _check_stdin(data, stdin_name, settings)
        texts[stdin_name] = source_text(data)
    else:
        files, display, unlisted = _discover(options.paths, settings)
        if options.show_files:
            for path in files:
                click.echo(display[path])
        nothing_to_check = not files and not unlisted
        if nothing_to_check:
            click.echo("slotguard: warning: no Python files found under the given paths", err=True)
        if options.show_files:
            sys.exit(EXIT_CLEAN)
        root, project = _project(options.paths, settings, files)
        display.update((path, _display(path)) for path in project if path not in display)

        def run() -> RunResult:
            return check_paths(
                files,
                settings,
                display,
                project=project,
                root=root,
                progress=_progress(len(files)),
            )

        result = run()
        if options.fixing:
            if nothing_to_check:
                sys.exit(EXIT_CLEAN)
            from slotguard.fix_command import run_fixes

            changed = run_fixes(
                result,
                settings,
                unsafe=options.unsafe_fixes,
                diff=options.diff,
                quiet=options.quiet,
            )
            if options.diff:
                sys.exit(EXIT_FINDINGS if changed else EXIT_CLEAN)
            if changed:
                result = run()
    sources = SourceReader(texts)
    diagnostics = sorted([*result.diagnostics, *unlisted], key=Diagnostic.sort_key)
    if options.write_baseline is not None:
        _write_baseline(options.write_baseline, diagnostics, sources)
        sys.exit(EXIT_CLEAN)
    baselined = stale = 0
    if recorded is not None:
        checked = [r.path for r in result.files]
        filtered = recorded.filter(diagnostics, sources, checked=checked)
        diagnostics = list(filtered.diagnostics)
        baselined, stale = filtered.baselined, filtered.stale
    if options.add_noqa:
        _add_noqa(diagnostics)
        sys.exit(EXIT_CLEAN)
    from slotguard.report.output import SHOWS_EDITS

    edits = None
    if fmt in SHOWS_EDITS and not options.statistics:
        stdin = (stdin_name, data) if stdin_name is not None else None
        edits = _fix_edits(diagnostics, result, settings, stdin)
    _emit(
        diagnostics,
        fmt,
        sources,
        edits=edits,
        output_file=options.output_file,
        quiet=options.quiet or nothing_to_check,
        statistics=options.statistics,
        baselined=baselined,
        stale=stale,
    )
    sys.exit(EXIT_FINDINGS if diagnostics and not options.exit_zero else EXIT_CLEAN)


def _fix_edits(
    diagnostics: Sequence[Diagnostic],
    result: Any,
    settings: Any,
    stdin: tuple[str, bytes] | None,
) -> dict[tuple[str, str, Span], tuple[Any, ...]]:
    """The edits of every fixable finding, worked out again from the source
    of its file (a finding remembers only that it has a fix)."""
    fixable = sorted({d.path for d in diagnostics if d.fix is not None})
    if not fixable:
        return {}
    from slotguard import cache as results_cache
    from slotguard.analysis.index import EMPTY_INDEX

    cache = result.cache
    found: dict[tuple[str, str, Span], tuple[Any, ...]] = {}
    for shown in fixable:
        file_key = result.cache_keys.get(shown)
        key = results_cache.key(file_key, "edits") if file_key is not None else None
        edits = None
        if cache is not None and key is not None:
            # Cached like the findings, so that a warm run stays without libcst.
            edits = cache.get(results_cache.FIX_EDITS, key)
        if edits is None:
            if stdin is not None and shown == stdin[0]:
                path, data = Path(shown), stdin[1]
            else:
                path = result.paths.get(shown)
                if path is None:
                    continue
                try:
                    data = path.read_bytes()
                except OSError:
                    continue
            from slotguard.fixer import planned_edits

            index = result.indexes.get(path, EMPTY_INDEX)
            edits = planned_edits(data, path, settings, shown, index)
            if cache is not None and key is not None:
                cache.put(results_cache.FIX_EDITS, key, edits)
        for (code, span), file_edits in edits.items():
            found[(shown, code, span)] = file_edits
    if cache is not None:
        cache.save()
    return found


def _fix_stdin(data: bytes, name: str, settings: Any, options: _Options, fmt: str) -> NoReturn:
    """``fix`` over standard input, as editors run it: the fixed source (or,
    with ``--diff``, the diff) on standard output, the findings left and the
    summary on standard error."""
    from slotguard.engine import check_bytes
    from slotguard.fix_command import fix_source_text
    from slotguard.report.output import SourceReader, source_text

    fixed, changed = fix_source_text(
        data, name, settings, unsafe=options.unsafe_fixes, diff=options.diff, quiet=options.quiet
    )
    if options.diff:
        sys.exit(EXIT_FINDINGS if changed else EXIT_CLEAN)
    stdout = sys.stdout.buffer
    stdout.write(fixed)
    stdout.flush()
    left = list(check_bytes(fixed, Path(name), settings, name).diagnostics)
    if left:
        from slotguard.report import output

        sources = SourceReader({name: source_text(fixed)})
        click.echo(output.render(left, fmt, sources), err=True, nl=False)
        if not options.quiet and fmt in output.SUMMARISED:
            click.echo(output.summary(left), err=True, nl=False)
    sys.exit(EXIT_FINDINGS if left and not options.exit_zero else EXIT_CLEAN)


def _load_baseline(path: Path | None) -> Any:
    if path is None:
        return None
    from slotguard.report.baseline import Baseline, BaselineError

    try:
        return Baseline.load(path)
    except BaselineError as error:
        raise UsageProblem(str(error)) from None


def _write_baseline(path: Path, diagnostics: Sequence[Any], sources: Any) -> None:
    from slotguard.report.baseline import BaselineError, write_baseline

    try:
        count = write_baseline(path, diagnostics, sources)
    except BaselineError as error:
        raise UsageProblem(str(error)) from None
    noun = "finding" if count == 1 else "findings"
    click.echo(f"slotguard: wrote {count} {noun} to {path}", err=True)


def _add_noqa(diagnostics: Sequence[Any]) -> None:
    """Write ``# noqa`` comments for the findings, file by file, atomically."""
    from slotguard.report.noqa import add_noqa
    from slotguard.source import SourceError, decode
    from slotguard.writes import write_atomically

    by_path: dict[str, list[Any]] = {}
    for diagnostic in diagnostics:
        by_path.setdefault(diagnostic.path, []).append(diagnostic)
    lines = files = 0
    for shown, found in sorted(by_path.items()):
        path = Path(shown)
        try:
            source = decode(path.read_bytes())
        except (OSError, SourceError):
            continue
        added = add_noqa(source.text, found)
        for skipped in added.unplaced:
            click.echo(
                f"slotguard: warning: {shown}:{skipped.line}: no noqa comment written: "
                "the file does not tokenize",
                err=True,
            )
        if not added.lines:
            continue
        try:
            write_atomically(path, source.encode(added.text))
        except OSError as error:
            raise UsageProblem(f"{shown}: cannot be written: {error.strerror or error}") from None
        lines += added.lines
        files += 1
    click.echo(
        f"slotguard: added noqa comments to {lines} line{'s' if lines != 1 else ''} "
        f"in {files} file{'s' if files != 1 else ''}",
        err=True,
    )


def _emit(
    diagnostics: Sequence[Any],
    fmt: str,
    sources: Any,
    *,
    edits: Any = None,
    output_file: Path | None,
    quiet: bool,
    statistics: bool,
    baselined: int,
    stale: int,
) -> None:
    """Findings (or statistics) to standard output or ``--output-file``; the
    summary to standard error, as for every other message, so that the
    output stays a clean document to pipe or parse."""
    from slotguard.report import output

    if statistics:
        text = output.statistics(diagnostics, fmt)
    else:
        text = output.render(diagnostics, fmt, sources, edits)
    if output_file is not None:
        try:
            output_file.write_text(text, encoding="utf-8")
        except OSError as error:
            raise UsageProblem(f"--output-file {output_file}: {error.strerror or error}") from None
    else:
        click.echo(text, nl=False)
    if quiet:
        return
    if fmt in output.SUMMARISED and not statistics:
        click.echo(
            output.summary(diagnostics, baselined=baselined, stale=stale), err=True, nl=False
        )
    elif baselined or stale:
        for line in output.baseline_note(baselined, stale).strip().splitlines():
            click.echo(f"slotguard: {line}", err=True)


def _settings(options: _Options, stdin_name: str | None) -> Any:
    from slotguard import config as configuration
    from slotguard.selection import check_selector, split_selectors
    from slotguard.settings import Settings

    if options.isolated:
        config = configuration.Config()
    elif options.config_file is not None:
        if not options.config_file.is_file():
            raise UsageProblem(f"--config {options.config_file}: no such file")
        config = configuration.load(options.config_file)
    else:
        if stdin_name is not None and stdin_name != "-":
            start = Path(stdin_name)
        else:
            start = options.paths[0] if options.paths else Path.cwd()
        # A name given for standard input need not exist yet (an unsaved
        # buffer): its nearest existing directory decides the configuration.
        start = next((p for p in (start, *start.absolute().parents) if p.exists()), Path.cwd())
        found = configuration.discover(start.absolute())
        config = configuration.load(found) if found is not None else configuration.Config()
    selects = [check_selector(s) for s in split_selectors(options.select)] or None
    return Settings.from_config(
        config,
        select=selects,
        extend_select=[check_selector(s) for s in split_selectors(options.extend_select)],
        ignore=[check_selector(s) for s in split_selectors(options.ignore)],
        exclude=options.exclude,
        use_cache=not options.no_cache,
        jobs=options.jobs,
    )


def _shown_settings(settings: Any, options: _Options) -> str:
    """``--show-settings``: where the configuration came from, and every
    setting of the run, in the configuration's own spelling."""
    import json

    config = settings.config
    if options.isolated:
        origin = "none (--isolated)"
    elif config.path is None:
        origin = "none found, the defaults apply"
    else:
        origin = str(config.path.resolve())

    def value(data: object) -> str:
        return json.dumps(list(data) if isinstance(data, tuple) else data)

    lines = [f"# slotguard {__version__}", f"# configuration file: {origin}"]
    lines.append(f"root = {value(str(settings.root.resolve()))}")
    lines.append("# the rules that run: select, extend-select and ignore, configured and given")
    lines.append(f"rules = {value(sorted(settings.codes))}")
    if config.select is None:
        lines.append("# select: not configured (the default rules)")
    else:
        lines.append(f"select = {value(config.select)}")
    lines.append(f"extend-select = {value(config.extend_select)}")
    lines.append(f"ignore = {value(config.ignore)}")
    lines.append("# exclude, extend-exclude and --exclude together")
    lines.append(f"exclude = {value(settings.excludes)}")
    lines.append(f"respect-gitignore = {value(config.respect_gitignore)}")
    per_file = ", ".join(
        f"{value(glob)} = {value(codes)}" for glob, codes in config.per_file_ignores
    )
    lines.append(f"per-file-ignores = {{{per_file}}}" if per_file else "per-file-ignores = {}")
    shown_format = options.output_format or config.output_format or "full"
    lines.append(f"output-format = {value(shown_format)}")
    lines.append(f"cache-dir = {value(str(settings.cache_directory))}")
    lines.append(f"# cache: {'off (--no-cache)' if not settings.use_cache else 'on'}")
    jobs = settings.jobs if settings.jobs is not None else "one per CPU, for large runs"
    lines.append(f"# jobs: {jobs}")
    lines.append(f"transactions.external-calls = {value(config.external_calls)}")
    resources = config.resources
    if resources is not None:
        acquire = [c.callee for c in resources.constructors if not c.context_manager_only]
        managers = [c.callee for c in resources.constructors if c.context_manager_only]
        lines.append(f"resources.acquire = {value(acquire)}")
        lines.append(f"resources.context-managers = {value(managers)}")
        lines.append(f"resources.release-functions = {value(resources.releasing_functions)}")
        lines.append(f"resources.owners = {value(resources.owner_classes)}")
    budget = config.budget
    if budget is not None:
        lines.append(f"budget.max-connections = {budget.max_connections}")
        lines.append(f"budget.reserved-connections = {budget.reserved_connections}")
        lines.append(f"budget.workers = {budget.workers}")
    return "".join(line + "\n" for line in lines)


def _discover(
    paths: Sequence[Path], settings: Any
) -> tuple[list[Path], dict[Path, str], list[Diagnostic]]:
    """The files to check, how to show their paths, and an SG000 finding for
    each directory that could not be listed (its files are not checked, and
    the run must not pass as if they were)."""
    from slotguard.engine import ANALYSIS_ERROR
    from slotguard.files import discover

    given = list(paths) or [Path(".")]
    files, problems = discover(
        given,
        root=settings.root,
        exclude=settings.excludes,
        respect_gitignore=settings.config.respect_gitignore,
    )
    missing = [p for p in problems if p.path in given]
    if missing:
        raise UsageProblem("; ".join(f"{p.path}: {p.reason}" for p in missing))
    code, name = ANALYSIS_ERROR
    unlisted = [
        Diagnostic(
            code,
            name,
            f"directory not analysed: it cannot be listed ({problem.reason}), so the Python "
            "files in it are not checked",
            _display(problem.path),
            Span(1, 1, 1, 1),
        )
        for problem in problems
    ]
    display = {path: _display(path) for path in files}
    return files, display, unlisted


def _project(
    paths: Sequence[Path], settings: Any, files: Sequence[Path]
) -> tuple[Path, list[Path]]:
    """The project of a run (SPEC section 3) and its Python files, found as a
    run over its root would find them: what every file is analysed with,
    whatever is named."""
    from slotguard.project import project_files, project_root

    root = project_root(paths or [Path(".")], settings.config.path)
    if any(os.path.abspath(path) == str(root) for path in paths or [Path(".")]):
        return root, list(files)
    return root, project_files(root, settings)


def _check_stdin(data: bytes, name: str, settings: Any) -> Any:
    """Standard input as the file it is named after: with the rest of that
    file's project, as an editor's unsaved buffer is; ``-`` on its own."""
    from slotguard.engine import RunResult, check_bytes, check_paths

    if name == "-":
        return RunResult([check_bytes(data, Path(name), settings, name)])
    path = Path(name)
    root, project = _project([path], settings, [])
    display = {p: _display(p) for p in project}
    display[path] = name
    return check_paths([path], settings, display, project=project, root=root, sources={path: data})


def _progress(total: int) -> Callable[[int, int], None] | None:
    """A progress line on standard error, for long runs on a terminal."""
    if total < 200 or not sys.stderr.isatty():
        return None
    step = max(1, total // 100)

    def show(done: int, _: int) -> None:
        if done % step == 0 or done == total:
            click.echo(f"\rslotguard: {done}/{total} files", err=True, nl=done == total)

    return show


def _display(path: Path) -> str:
    text = os.path.normpath(path)
    if os.path.isabs(text):
        with contextlib.suppress(ValueError):  # another drive on Windows
            text = os.path.relpath(text)
    return Path(text).as_posix()


@cli.command()
@click.option("--output-format", type=click.Choice(["text", "json"]), default="text")
@_guarded
def rules(output_format: str) -> None:
    """List every rule: code, name, default or opt-in, fix."""
    import json

    from slotguard.fixes import fix_summary
    from slotguard.rules import all_rules

    if output_format == "json":
        table = [
            {
                "code": rule.code,
                "name": rule.name,
                "default": rule.default,
                "summary": rule.summary,
                "fix": fix_summary(rule.code),
            }
            for rule in all_rules()
        ]
        click.echo(json.dumps(table, indent=2))
        return
    width = max(len(rule.name) for rule in all_rules())
    for rule in all_rules():
        when = "default" if rule.default else "opt-in "
        click.echo(f"{rule.code}  {rule.name:<{width}}  {when}  {fix_summary(rule.code)}")


@cli.command()
@click.argument("rule")
@_guarded
def explain(rule: str) -> None:
    """Show a rule's documentation (RULE is a code such as SG201, or a name
    such as release-skipped-on-exit); for a prefix such as SG2, list its rules."""
    from slotguard.rules import rule_by_code, rule_index
    from slotguard.selection import find_rule

    found = find_rule(rule)
    if found is None:
        family = [
            info for info in rule_index() if rule.strip() and info.code.startswith(rule.upper())
        ]
        if family:
            _list_family(rule.upper(), family)
            return
        import difflib

        names = {info.name: info.code for info in rule_index()}
        close = difflib.get_close_matches(rule.upper(), [info.code for info in rule_index()], n=1)
        close_names = difflib.get_close_matches(rule.lower(), list(names), n=1)
        if close_names and not close:
            hint = f"; did you mean {close_names[0]} ({names[close_names[0]]})?"
        elif close:
            hint = f"; did you mean {close[0]}?"
        else:
            hint = "; `slotguard rules` lists the codes and names"
        raise UsageProblem(f"unknown rule `{rule}`{hint}")
    documented = rule_by_code(found.code)
    assert documented is not None
    when = "runs by default" if documented.default else "opt-in: runs when selected"
    click.echo(f"# {documented.code} {documented.name} ({when})\n")
    click.echo(documented.documentation())


def _list_family(prefix: str, family: Sequence[Any]) -> None:
    from slotguard.rules import rule_by_code

    noun = "rule" if len(family) == 1 else "rules"
    click.echo(f"# {prefix}: {len(family)} {noun}\n")
    width = max(len(info.name) for info in family)
    for info in family:
        rule = rule_by_code(info.code)
        summary = rule.summary if rule is not None else ""
        when = "default" if info.default else "opt-in "
        click.echo(f"{info.code}  {info.name:<{width}}  {when}  {summary}")
    click.echo(f"\n`slotguard explain {family[0].code}` prints one rule's documentation.")


@cli.command()
@_guarded
def server() -> None:
    """Run the language server: the Language Server Protocol over standard
    input and output, for editors (needs the `server` extra)."""
    from slotguard.server import MissingDependencies, serve

    try:
        status = serve()
    except MissingDependencies as error:
        raise UsageProblem(str(error)) from None
    sys.exit(status)


def main() -> None:
    cli(prog_name="slotguard")
