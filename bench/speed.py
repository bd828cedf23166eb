"""How fast slotguard is, as ratios against references measured in the same run.

Reproduce::

    /work/venv/bin/python bench/speed.py --json bench/results/speed.json

The machine the project runs on is shared and noisy, so absolute seconds from
two runs cannot be compared; a ratio against ruff (the tool users compare us
with) or against libcst's own parse time (the floor of any libcst linter)
measured minutes apart on the same machine can. Every figure is the median of
``--repeat`` runs of a fresh process, interpreter start included, because that
is what a user waits for. The stateless runs (ruff, libcst, cold slotguard)
take turns within each repetition so that a slow minute on the machine hits
them alike.

Measured over each speed corpus (see ``corpora.py``):

* ``slotguard check . --select SG --output-format json --exit-zero``, cold
  (``--no-cache``) and warm (a second run over the unchanged tree), each with
  ``--jobs 1`` and with the default jobs, as far as the installed slotguard
  has those options;
* ``ruff check --select ALL --no-cache --exit-zero -q .``, the reference;
* ``libcst.parse_module`` over exactly the files slotguard analyses (those its
  byte prefilter lets through), in a fresh interpreter;
* peak memory: the largest resident set of any one process of each run;
* CPU time (user and system, worker processes included) beside wall time.

On one file, from its corpus root, as pre-commit runs it: prefect's
session-heavy ``server/models/flows.py``, edited before each run, with the
cache of a whole-project run and with no cache at all, and a django file
the prefilter stops. And a generated 50,000-line module alone in its project
(``large_module``), with libcst's parse of it.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import checkout
import corpora

BIN = Path(sys.executable).parent
SLOTGUARD = str(BIN / "slotguard") if (BIN / "slotguard").exists() else "slotguard"
RUFF = str(BIN / "ruff") if (BIN / "ruff").exists() else "ruff"
SLOTGUARD_RUN = ["check", ".", "--select", "SG", "--output-format", "json", "--exit-zero"]
RUFF_RUN = ["check", "--select", "ALL", "--no-cache", "--exit-zero", "-q", "."]
SLOTGUARD_CACHE_NAME = ".slotguard_cache"

FILE_SETS_CHILD = """
import json, sys
from pathlib import Path
from slotguard import config
from slotguard.engine import may_have_findings
from slotguard.files import discover
from slotguard.settings import Settings
tree = Path(sys.argv[1])
settings = Settings.from_config(config.load(tree / "slotguard.toml"))
discovered, _ = discover([tree], root=tree, exclude=settings.excludes,
                         respect_gitignore=settings.config.respect_gitignore)
prefilter = Settings()
analysed = [p for p in discovered if may_have_findings(p.read_bytes(), prefilter)]
json.dump({"discovered": [str(p) for p in discovered],
           "analysed": [str(p) for p in analysed]}, sys.stdout)
"""

PARSE_ONLY_CHILD = """
import sys, time
import libcst
paths = open(sys.argv[1], encoding="utf-8").read().splitlines()
start = time.perf_counter()
failed = 0
for path in paths:
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        libcst.parse_module(data)
    except Exception:
        failed += 1
print(time.perf_counter() - start, failed)
"""


@dataclass(frozen=True, slots=True)
class Options:
    """Which of the options this benchmark varies the installed slotguard accepts."""

    no_cache: bool
    jobs: bool

    def notes(self) -> list[str]:
        missing = [
            name for name, ok in (("--no-cache", self.no_cache), ("--jobs", self.jobs)) if not ok
        ]
        if not missing:
            return []
        return [
            f"the installed slotguard has no {' or '.join(missing)} option: "
            "only the runs it can do were timed"
        ]


@dataclass(frozen=True, slots=True)
class Sample:
    seconds: float
    max_rss_kib: int
    """The largest resident set of any single process of the run."""
    returncode: int
    tree_kib: int | None = None
    """The largest sum of the proportional set sizes of the run's processes
    alive at the same moment, sampled (None where ``/proc`` cannot be read)."""
    cpu_seconds: float | None = None
    """User and system time of the run's processes, workers included (those
    a process waits for are counted in its own usage)."""


@dataclass(slots=True)
class Measurement:
    """Repeated runs of one command, summarised by their median."""

    label: str
    argv: list[str]
    samples: list[Sample] = field(default_factory=list)
    note: str = ""
    error: str = ""
    """Why the command failed; a failed command is not run again."""
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        times = [s.seconds for s in self.samples]
        cpu = [s.cpu_seconds for s in self.samples if s.cpu_seconds is not None]
        complete = bool(times) and not self.error
        return {
            "label": self.label,
            "command": " ".join(self.argv),
            "median_s": round(statistics.median(times), 4) if complete else None,
            "min_s": round(min(times), 4) if complete else None,
            "max_s": round(max(times), 4) if complete else None,
            "samples_s": [round(t, 4) for t in times],
            "median_cpu_s": round(statistics.median(cpu), 4) if complete and cpu else None,
            "samples_cpu_s": [round(t, 4) for t in cpu],
            "peak_rss_mb": round(max(s.max_rss_kib for s in self.samples) * 1024 / 1e6, 1)
            if complete
            else None,
            "peak_total_mb": _mb(max(tree))
            if complete and (tree := [s.tree_kib for s in self.samples if s.tree_kib is not None])
            else None,
            "note": self.note,
            "error": self.error,
            **self.extra,
        }


def _mb(kib: int) -> float:
    return round(kib * 1024 / 1e6, 1)


class RunFailed(Exception):
    """A timed command exited with an error status: its time would mean nothing."""


def gnu_time() -> str | None:
    """GNU time's path if it works here, for peak memory measured from a small parent.

    Linux charges a child with the peak RSS of the process it was forked from
    (the memory it had before ``exec``), so ``wait4`` on a child of this
    Python process reports at least this process's own size; GNU time is a
    parent of about 2 MB. Without it the figures have this process as a floor.
    """
    path = "/usr/bin/time"
    if not os.access(path, os.X_OK):
        return None
    probe = subprocess.run([path, "-f", "%M", "-o", os.devnull, "true"], capture_output=True)
    return path if probe.returncode == 0 else None


TIME = gnu_time()
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024 if hasattr(os, "sysconf") else 4
SAMPLE_EVERY_S = 0.05


class TreeSampler(threading.Thread):
    """The peak of the memory a process and its descendants hold together.

    With worker processes the largest single process understates what a run
    holds at once, so the whole tree is sampled from ``/proc`` every 50 ms:
    each process's children are found through the parent ids in
    ``/proc/*/stat`` (of processes younger than the root), and their
    proportional set sizes summed (``Pss`` in ``smaps_rollup``: a page that
    forked workers share with their parent counts once in all, not once per
    process; the resident set from ``statm`` where the kernel has no
    ``smaps_rollup``). Sampling can miss a peak shorter than the interval,
    which is why the largest single process, exact, is kept beside it.
    """

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peak_kib: int | None = None if not Path("/proc/self/statm").exists() else 0
        self._finished = threading.Event()

    def run(self) -> None:
        if self.peak_kib is None:
            return
        while not self._finished.is_set():
            self.peak_kib = max(self.peak_kib, self._tree_kib())
            self._finished.wait(SAMPLE_EVERY_S)

    def stop(self) -> int | None:
        self._finished.set()
        self.join()
        return self.peak_kib

    def _tree_kib(self) -> int:
        children: dict[int, list[int]] = {}
        for entry in os.scandir("/proc"):
            # Process ids grow: the run's processes started after its root.
            if not entry.name.isdigit() or int(entry.name) < self.root:
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as handle:
                    stat = handle.read()
            except OSError:
                continue
            # The command name may hold spaces and parentheses: fields follow the last ')'.
            parent = int(stat[stat.rindex(b")") + 2 :].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
        total = 0
        pending = [self.root]
        while pending:
            pid = pending.pop()
            pending.extend(children.get(pid, ()))
            total += _process_kib(pid)
        return total


def _process_kib(pid: int) -> int:
    """A process's proportional set size, or its resident set; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
            for line in handle:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * PAGE_KIB
    except (OSError, ValueError, IndexError):
        return 0


def run_once(argv: Sequence[str], cwd: Path, stdout: Path | None = None) -> Sample:
    """Run a command to completion: its wall time and its peak RSS.

    The peak is the largest single process (GNU time and ``wait4`` both report
    a child's own peak together with the largest of its descendants), so a run
    with worker processes shows its largest process, not their sum.
    """
    with tempfile.TemporaryDirectory() as scratch:
        rss_file = Path(scratch) / "rss"
        errors_file = Path(scratch) / "stderr"
        wrapped = [TIME, "-f", "%M", "-o", str(rss_file), *argv] if TIME else list(argv)
        with (stdout or Path(os.devnull)).open("wb") as out, errors_file.open("wb") as errors:
            start = time.perf_counter()
            process = subprocess.Popen(wrapped, cwd=cwd, stdout=out, stderr=errors)
            sampler = TreeSampler(process.pid)
            sampler.start()
            _, status, usage = os.wait4(process.pid, 0)
            elapsed = time.perf_counter() - start
            tree_kib = sampler.stop()
        process.returncode = returncode = os.waitstatus_to_exitcode(status)
        if returncode not in (0, 1):
            message = errors_file.read_text("utf-8", "replace").strip()[-2000:]
            raise RunFailed(f"{' '.join(argv)} (in {cwd}) exited {returncode}: {message}")
        peak_kib = int(rss_file.read_text().split()[-1]) if TIME else usage.ru_maxrss
    cpu = usage.ru_utime + usage.ru_stime
    return Sample(elapsed, peak_kib, returncode, tree_kib, cpu)


def detect_options() -> Options:
    """Read ``slotguard check --help``: the options are being built as this runs."""
    result = subprocess.run(
        [SLOTGUARD, "check", "--help"], capture_output=True, text=True, check=True
    )
    return Options(no_cache="--no-cache" in result.stdout, jobs="--jobs" in result.stdout)


def tool_versions() -> dict[str, str]:
    from importlib.metadata import version

    def first_line(argv: list[str]) -> str:
        return subprocess.run(argv, capture_output=True, text=True).stdout.strip()

    return {
        "slotguard": first_line([SLOTGUARD, "--version"]),
        "ruff": first_line([RUFF, "--version"]),
        "libcst": version("libcst"),
        "python": platform.python_version(),
    }


@dataclass(frozen=True, slots=True)
class FileSets:
    """The files slotguard walks in a tree, and those its prefilter lets through."""

    discovered: list[Path]
    analysed: list[Path]


def file_sets(tree: Path) -> FileSets:
    """Ask slotguard's own discovery and prefilter, so that the parse-only
    reference covers exactly the files slotguard parses. It runs in a child
    so that this process stays small (see ``gnu_time``)."""
    result = subprocess.run(
        [sys.executable, "-c", FILE_SETS_CHILD, str(tree)], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RunFailed(f"listing the files slotguard analyses in {tree}: {result.stderr}")
    listed = json.loads(result.stdout)
    return FileSets([Path(p) for p in listed["discovered"]], [Path(p) for p in listed["analysed"]])


def ruff_file_count(tree: Path) -> int:
    result = subprocess.run(
        [RUFF, "check", "--select", "ALL", "--show-files", "."],
        cwd=tree,
        capture_output=True,
        text=True,
    )
    return sum(1 for line in result.stdout.splitlines() if line.startswith("/"))


def parse_only_argv(list_file: Path) -> list[str]:
    return [sys.executable, "-c", PARSE_ONLY_CHILD, str(list_file)]


def run_parse_only(argv: Sequence[str], cwd: Path, measurement: Measurement) -> Sample:
    """The child prints its in-process parse time; keep it beside the wall time."""
    with tempfile.NamedTemporaryFile(suffix=".out") as handle:
        output = Path(handle.name)
        sample = run_once(argv, cwd, stdout=output)
        parse_seconds, failed = output.read_text().split()
    measurement.extra.setdefault("parse_loop_s", []).append(round(float(parse_seconds), 4))
    measurement.extra["parse_failures"] = int(failed)
    return sample


def slotguard_argv(jobs: str | None, cold: bool) -> list[str]:
    argv = [SLOTGUARD, *SLOTGUARD_RUN]
    if cold:
        argv.append("--no-cache")
    if jobs is not None:
        argv += ["--jobs", jobs]
    return argv


def jobs_variants(options: Options) -> list[str | None]:
    return ["1", None] if options.jobs else [None]


def jobs_label(jobs: str | None, options: Options) -> str:
    if jobs is not None:
        return f"--jobs {jobs}"
    return "default jobs" if options.jobs else "no --jobs option"


def remove_cache(tree: Path) -> None:
    shutil.rmtree(tree / SLOTGUARD_CACHE_NAME, ignore_errors=True)


@dataclass(frozen=True, slots=True)
class Probe:
    """What one untimed slotguard run over a tree showed."""

    leaves_cache: bool
    findings: int | None
    error: str = ""


def probe(tree: Path, argv: list[str]) -> Probe:
    """Does slotguard leave a cache in the tree, and how many findings does it report?"""
    remove_cache(tree)
    before = {entry.name for entry in tree.iterdir()}
    with tempfile.NamedTemporaryFile(suffix=".json") as handle:
        try:
            run_once(argv, tree, stdout=Path(handle.name))
        except RunFailed as error:
            return Probe(False, None, str(error))
        findings = len(json.loads(Path(handle.name).read_text() or "[]"))
    created = {entry.name for entry in tree.iterdir()} - before
    return Probe(bool(created), findings)


def take_turns(runners: list[tuple[Measurement, Callable[[], Sample]]], repeat: int) -> None:
    """Each repetition runs every command once, so noise spreads over all of them.

    A command that fails is recorded as failed and left out of the later
    repetitions: one crash must not cost the figures of the others.
    """
    for _ in range(repeat):
        for measurement, runner in runners:
            if measurement.error:
                continue
            try:
                measurement.samples.append(runner())
            except RunFailed as error:
                measurement.error = str(error)


def bench_corpus(name: str, tree: Path, options: Options, repeat: int) -> dict[str, Any]:
    corpora.isolate(tree)
    sets = file_sets(tree)
    print(
        f"{name}: {len(sets.discovered)} files, {len(sets.analysed)} pass the prefilter",
        file=sys.stderr,
    )
    first = probe(tree, slotguard_argv(None, cold=False))
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as listing:
        listing.write("".join(f"{path}\n" for path in sets.analysed))
    try:
        measurements, notes = _measure(
            tree, options, repeat, first.leaves_cache, Path(listing.name)
        )
        if first.error:
            notes.insert(0, f"slotguard failed: {first.error}")
    finally:
        os.unlink(listing.name)
        remove_cache(tree)
    return {
        "version": corpora.version_of(tree),
        "kind": corpora.CORPORA[name].kind,
        "files_discovered": len(sets.discovered),
        "files_analysed": len(sets.analysed),
        "files_ruff": ruff_file_count(tree),
        "findings": first.findings,
        "slotguard_writes_cache": first.leaves_cache,
        "notes": notes,
        "runs": {key: m.summary() for key, m in measurements.items()},
        "_analysed_paths": [str(p) for p in sets.analysed],
        "_discovered_paths": [str(p) for p in sets.discovered],
    }


def _measure(
    tree: Path, options: Options, repeat: int, leaves_cache: bool, listing: Path
) -> tuple[dict[str, Measurement], list[str]]:
    """Stateless runs take turns; warm runs follow, after priming the cache."""
    notes: list[str] = []
    ruff = Measurement("ruff", [RUFF, *RUFF_RUN])
    parse = Measurement("libcst parse-only", parse_only_argv(listing))
    runners: list[tuple[Measurement, Callable[[], Sample]]] = [
        (ruff, lambda: run_once(ruff.argv, tree)),
        (parse, lambda: run_parse_only(parse.argv, tree, parse)),
    ]
    measurements = {"ruff": ruff, "libcst_parse": parse}
    warm_variants: list[tuple[str, Measurement]] = []
    for jobs in jobs_variants(options):
        label = jobs_label(jobs, options)
        key = f"jobs{jobs or 'default'}"
        cold = Measurement(f"slotguard cold, {label}", slotguard_argv(jobs, cold=options.no_cache))
        if options.no_cache:
            runners.append((cold, _runner(cold.argv, tree)))
        elif leaves_cache:
            cold.note = "no --no-cache option: cache directory deleted before each run"
            runners.append((cold, _runner(cold.argv, tree, before=lambda: remove_cache(tree))))
        else:
            cold.note = "no --no-cache option, and no cache written: every run is cold"
            runners.append((cold, _runner(cold.argv, tree)))
        measurements[f"slotguard_cold_{key}"] = cold
        if options.no_cache or leaves_cache:
            warm = Measurement(f"slotguard warm, {label}", slotguard_argv(jobs, cold=False))
            warm_variants.append((f"slotguard_warm_{key}", warm))
    take_turns(runners, repeat)
    for key, warm in warm_variants:
        take_turns([(warm, _runner(warm.argv, tree))], 1)
        warm.samples.clear()
        take_turns([(warm, _runner(warm.argv, tree))], repeat)
        measurements[key] = warm
    if not warm_variants:
        notes.append(
            "no cache written and no --no-cache option: warm runs equal cold runs, "
            "warm figures repeat the cold ones"
        )
    return measurements, notes


def _runner(
    argv: list[str],
    tree: Path,
    before: Callable[[], None] | None = None,
) -> Callable[[], Sample]:
    def run() -> Sample:
        if before is not None:
            before()
        return run_once(argv, tree)

    return run


def pick_one_file(paths: Sequence[Path]) -> Path:
    """The file of median size: a typical module, neither trivial nor huge."""
    by_size = sorted(paths, key=lambda p: (p.stat().st_size, p.as_posix()))
    return by_size[len(by_size) // 2]


SESSION_HEAVY = ("prefect", "prefect/server/models/flows.py")
"""A module of a package that passes sessions everywhere: what pre-commit
checks when it is the file staged."""
ONE_FILE_RUN = ["check", "--exit-zero", "-q"]
"""As the pre-commit hook runs (default rules); the whole-project run that
fills the cache uses the same rules."""


def bench_one_file(
    trees: dict[str, Path], stopped: Path | None, repeat: int
) -> dict[str, dict[str, Any]]:
    """Wall time for one named file, interpreter start included, from the root
    of its corpus:

    * the session-heavy module, edited before each run (so that it is
      analysed), with the cache of a run over its whole project: what a
      pre-commit run over one changed file costs;
    * the same with no cache at all: a first run on a fresh clone;
    * a file the prefilter stops (django's median-size one), unchanged, with
      the project cached.

    An untimed run of each first compiles the bytecode (see ``cached_bytecode``)."""
    found: dict[str, dict[str, Any]] = {}
    python = Measurement("python -c pass (interpreter start)", [sys.executable, "-c", "pass"])
    runners: list[tuple[Measurement, Callable[[], Sample]]] = []
    corpus, relative = SESSION_HEAVY
    tree = trees.get(corpus)
    edited = tree / relative if tree is not None else None
    original = edited.read_bytes() if edited is not None else b""
    if tree is not None and edited is not None:
        counter = itertools.count()

        def edit() -> None:
            assert edited is not None
            edited.write_bytes(
                original + f"\n# edited for the benchmark: {next(counter)}\n".encode()
            )

        def forget_and_edit() -> None:
            assert tree is not None
            remove_cache(tree)
            edit()

        argv = [SLOTGUARD, *ONE_FILE_RUN, relative]
        cached = Measurement(f"check {relative} (edited), project cached", argv)
        cold = Measurement(f"check {relative} (edited), nothing cached", argv)
        for measurement in (cached, cold):
            measurement.extra["file"] = str(edited)
        remove_cache(tree)
        with contextlib.suppress(RunFailed):  # a failure shows in the timed runs
            run_once([SLOTGUARD, *ONE_FILE_RUN, "."], tree)
        # A run with nothing cached fills the cache as a whole-project run
        # does (it analyses the project): the cached run after it finds it.
        runners += [
            (cached, _runner(argv, tree, before=edit)),
            (cold, _runner(argv, tree, before=forget_and_edit)),
        ]
        found["session_heavy_cached"] = cached
        found["session_heavy_cold"] = cold
    if stopped is not None:
        root = next((t for t in trees.values() if t in stopped.parents), stopped.parent)
        shown = stopped.relative_to(root).as_posix()
        argv = [SLOTGUARD, *ONE_FILE_RUN, shown]
        skipped = Measurement(f"check {shown} (stopped by the prefilter), project cached", argv)
        skipped.extra["file"] = str(stopped)
        remove_cache(root)
        with contextlib.suppress(RunFailed):
            run_once([SLOTGUARD, *ONE_FILE_RUN, "."], root)
            run_once(argv, root)
        runners.append((skipped, _runner(argv, root)))
        found["prefilter_stops"] = skipped
    runners.insert(0, (python, _runner(python.argv, Path.cwd())))
    try:
        take_turns(runners, repeat)
    finally:
        if edited is not None:
            edited.write_bytes(original)
    return {"python_start": python.summary(), **{k: m.summary() for k, m in found.items()}}


LARGE_MODULE_LINES = 50_000
_LARGE_MODULE_HEADER = '''"""A generated module: data access written by a generator."""
import asyncio

import asyncpg
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
'''
_LARGE_MODULE_PARTS = (
    """
async def fetch_{i}(pool: asyncpg.Pool, key: int):
    conn = await pool.acquire()
    try:
        row = await conn.fetchrow("select * from t where id = $1", key)
        if row is None:
            return None
        return dict(row)
    finally:
        await pool.release(conn)
""",
    """
async def leak_{i}(pool: asyncpg.Pool, key: int):
    conn = await pool.acquire()
    value = await conn.fetchval("select {i}")
    if value > key:
        return value
    await pool.release(conn)
    return key
""",
    """
def report_{i}(engine):
    with Session(engine) as session:
        rows = session.execute(text("select {i}")).all()
        total = sum(r[0] for r in rows)
    return total
""",
    """
def unclosed_{i}(factory: sessionmaker):
    session = factory()
    for item in range({i} % 7):
        session.add(item)
    session.commit()
""",
    """
class Repository{i}:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def count(self) -> int:
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                return await conn.fetchval("select count(*) from t{i}")

    def helper(self, values):
        return [v * {i} for v in values if v]
""",
    """
def plain_{i}(values):
    result = []
    for index, value in enumerate(values):
        if value % 3 == 0:
            result.append(value * {i})
        elif value % 5 == 0:
            continue
        else:
            result.append(index)
    return result
""",
)


def large_module(lines: int) -> str:
    """A module of about ``lines`` lines, the same every time: the shapes a
    generator of data-access code writes (pooled connections released in
    ``finally`` and leaked on a path, sessions in ``with`` and left open,
    repository classes, plain helpers), one after the other."""
    parts = [_LARGE_MODULE_HEADER]
    count = _LARGE_MODULE_HEADER.count("\n")
    for index in itertools.count():
        if count >= lines:
            break
        part = _LARGE_MODULE_PARTS[index % len(_LARGE_MODULE_PARTS)].format(i=index)
        parts.append(part)
        count += part.count("\n")
    return "".join(parts)


def bench_large_module(options: Options, repeat: int) -> dict[str, Any]:
    """One generated 50,000-line module, alone in its project: slotguard's
    wall and CPU time and peak memory, and libcst's parse of it alone."""
    with tempfile.TemporaryDirectory(prefix="slotguard-large-") as scratch:
        root = Path(scratch)
        (root / "slotguard.toml").write_text("# The generated module is a project by itself.\n")
        module = root / "generated.py"
        text = large_module(LARGE_MODULE_LINES)
        module.write_text(text, encoding="utf-8")
        listing = root / "files.txt"
        listing.write_text(f"{module}\n", encoding="utf-8")
        argv = [SLOTGUARD, "check", module.name, "--exit-zero", "-q"]
        if options.no_cache:
            argv.append("--no-cache")
        check = Measurement(f"check generated.py ({text.count(chr(10))} lines)", argv)
        parse = Measurement("libcst parse-only of it", parse_only_argv(listing))
        with contextlib.suppress(RunFailed):
            run_once(argv, root)
        take_turns(
            [
                (check, _runner(argv, root, before=lambda: remove_cache(root))),
                (parse, lambda: run_parse_only(parse.argv, root, parse)),
            ],
            repeat,
        )
        return {
            "lines": text.count("\n"),
            "bytes": len(text.encode()),
            "slotguard": check.summary(),
            "libcst_parse": parse.summary(),
        }


@dataclass(frozen=True, slots=True)
class Ratio:
    name: str
    value: float | None
    target: float | None
    """None: shown for what it tells, not a target."""
    unit: str
    basis: str

    @property
    def met(self) -> bool | None:
        if self.value is None or self.target is None:
            return None
        return self.value <= self.target


def _run(results: dict[str, Any], corpus: str, *keys: str) -> dict[str, Any] | None:
    runs = results.get("corpora", {}).get(corpus, {}).get("runs", {})
    for key in keys:
        if key in runs:
            return runs[key]  # type: ignore[no-any-return]
    return None


def _divide(
    top: dict[str, Any] | None, bottom: dict[str, Any] | None, key: str = "median_s"
) -> float | None:
    if top is None or bottom is None or top.get(key) is None or not bottom.get(key):
        return None
    return top[key] / bottom[key]  # type: ignore[no-any-return]


def ratios(results: dict[str, Any]) -> list[Ratio]:
    """Issue 16's targets (and what else tells how the runs behave), each with
    what it was computed from: CPU (user and system, workers included) and
    wall time against ruff in the same run."""
    found: list[Ratio] = []
    cold_one = ("slotguard_cold_jobs1", "slotguard_cold_jobsdefault")
    for corpus, target in (("django", 1.2), ("prefect", 2.0), ("sqlalchemy", 4.0)):
        cold = _run(results, corpus, *cold_one)
        ruff = _run(results, corpus, "ruff")
        found.append(
            Ratio(
                f"{corpus} cold / ruff, CPU, --jobs 1",
                _divide(cold, ruff, "median_cpu_s"),
                target,
                "x",
                _basis(cold, ruff),
            )
        )
        found.append(
            Ratio(f"{corpus} cold / ruff, wall, --jobs 1", _divide(cold, ruff), None, "x", "")
        )
        default = _run(results, corpus, "slotguard_cold_jobsdefault")
        found.append(
            Ratio(
                f"{corpus} cold, default jobs / --jobs 1, wall",
                _divide(default, cold) if default is not cold else None,
                None,
                "x",
                "below 1: the worker processes pay off",
            )
        )
    warm = _run(results, "django", "slotguard_warm_jobsdefault", "slotguard_warm_jobs1")
    ruff = _run(results, "django", "ruff")
    found.append(
        Ratio("django warm / ruff, wall", _divide(warm, ruff), 0.15, "x", _basis(warm, ruff))
    )
    found.append(
        Ratio("django warm / ruff, CPU", _divide(warm, ruff, "median_cpu_s"), 0.15, "x", "")
    )
    parse = _run(results, "prefect", "libcst_parse")
    prefect = _run(results, "prefect", *cold_one)
    found.append(
        Ratio(
            "prefect cold --jobs 1 / libcst parse-only, wall",
            _divide(prefect, parse),
            None,
            "x",
            _basis(prefect, parse),
        )
    )
    one = results.get("one_file", {})
    for key, name, target in (
        ("session_heavy_cached", "one analysed file, project cached, wall", 0.35),
        ("session_heavy_cold", "one analysed file, nothing cached, wall", 0.8),
        ("prefilter_stops", "one file the prefilter stops, project cached, wall", None),
    ):
        run = one.get(key)
        found.append(
            Ratio(
                name,
                run["median_s"] if run else None,
                target,
                "s",
                run["command"] if run else "not measured",
            )
        )
    large = results.get("large_module", {}).get("slotguard")
    found.append(
        Ratio(
            "generated 50,000-line module, wall",
            large["median_s"] if large else None,
            5.0,
            "s",
            large["command"] if large else "not measured",
        )
    )
    found.append(
        Ratio(
            "generated 50,000-line module, peak memory",
            large["peak_rss_mb"] if large else None,
            400.0,
            "MB",
            "largest single process",
        )
    )
    sqlalchemy_runs = results.get("corpora", {}).get("sqlalchemy", {}).get("runs", {})
    peaks = [
        peak
        for key, run in sqlalchemy_runs.items()
        if key.startswith("slotguard")
        for peak in (run["peak_rss_mb"], run.get("peak_total_mb"))
        if peak is not None
    ]
    found.append(
        Ratio(
            "peak memory, sqlalchemy sdist",
            max(peaks) if peaks else None,
            300.0,
            "MB",
            "the larger of the largest single process and the sampled peak of all "
            "processes alive at once, over every slotguard run on sqlalchemy",
        )
    )
    return found


def _basis(top: dict[str, Any] | None, bottom: dict[str, Any] | None) -> str:
    if top is None or bottom is None:
        return "not measured"
    note = f" ({top['note']})" if top.get("note") else ""
    return f"{top['label']}{note} / {bottom['label']}"


def format_report(results: dict[str, Any]) -> str:
    lines = [
        f"slotguard speed ({results['versions']['slotguard']}, "
        f"{results['versions']['ruff']}, libcst {results['versions']['libcst']}, "
        f"Python {results['versions']['python']}, {results['machine']['cpus']} CPUs, "
        f"median of {results['repeat']})",
        f"slotguard from {results['source']['from']}, commit "
        f"{results['source']['commit'][:12]}"
        + (
            ", with uncommitted edits in src/"
            if results["source"]["src_has_uncommitted_edits"]
            else ""
        ),
        "",
    ]
    machine = results["machine"]
    if "load_average_at_end" in machine:
        lines.append(
            f"note: 1-minute load average {machine['load_average_at_start']:.1f} at the "
            f"start, {machine['load_average_at_end']:.1f} at the end, on "
            f"{machine['cpus']} CPUs: other work shares the machine, hence ratios"
        )
    lines += [f"note: {note}" for note in results["notes"]]
    header = (
        f"{'corpus':<11} {'measurement':<48} {'median s':>9} {'range s':>15} "
        f"{'CPU s':>7} {'peak MB':>8} {'total MB':>8} {'/ ruff':>7}"
    )
    lines += ["", header, "-" * len(header)]
    for name, corpus in results["corpora"].items():
        ruff = corpus["runs"]["ruff"]["median_s"]
        found = "?" if corpus["findings"] is None else corpus["findings"]
        lines.append(
            f"{name} {corpus['version']} {corpus['kind']}: "
            f"{corpus['files_discovered']} files ({corpus['files_ruff']} for ruff), "
            f"{corpus['files_analysed']} pass the prefilter, "
            f"{found} findings"
        )
        for run in corpus["runs"].values():
            lines.append(_row(name, run, ruff))
        lines += [f"  note: {note}" for note in corpus["notes"]]
    lines.append("one file:")
    for run in results["one_file"].values():
        lines.append(_row("one file", run, None))
        if "file" in run:
            lines.append(f"{'':<11}   {run['file']}")
    large = results.get("large_module")
    if large:
        lines.append(f"a generated module: {large['lines']} lines, {large['bytes']} bytes")
        for key in ("slotguard", "libcst_parse"):
            lines.append(_row("large", large[key], None))
    lines += ["", "targets:"]
    for ratio in results["ratios"]:
        unit = ratio["unit"]
        shown = "n/a" if ratio["value"] is None else f"{ratio['value']:.2f} {unit}"
        if ratio["target"] is None:
            target, verdict = "(shown, no target)", ""
        else:
            target = f"<= {ratio['target']:g} {unit}"
            verdict = {True: "met", False: "MISSED", None: "not measured"}[ratio["met"]]
        lines.append(f"  {ratio['name']:<52} {shown:>10}   target {target:<10} {verdict}")
        if ratio["basis"]:
            lines.append(f"    from: {ratio['basis']}")
    return "\n".join(lines) + "\n"


def _row(corpus: str, run: dict[str, Any], ruff: float | None) -> str:
    if run["median_s"] is None:
        failure = run["error"] or "not run"
        return f"{'':<11} {run['label']:<48} FAILED: {failure[-300:]}"
    spread = f"{run['min_s']:.2f}-{run['max_s']:.2f}"
    versus = f"{run['median_s'] / ruff:.2f}" if ruff else ""
    note = f"  [{run['note']}]" if run.get("note") else ""
    if "parse_loop_s" in run:
        note += (
            f"  [in-process parse {statistics.median(run['parse_loop_s']):.2f} s, "
            f"{run['parse_failures']} failed]"
        )
    total = run.get("peak_total_mb")
    shown_total = "" if total is None else f"{total:.1f}"
    cpu = run.get("median_cpu_s")
    shown_cpu = "" if cpu is None else f"{cpu:.2f}"
    return (
        f"{'':<11} {run['label']:<48} {run['median_s']:>9.3f} {spread:>15} "
        f"{shown_cpu:>7} {run['peak_rss_mb']:>8.1f} {shown_total:>8} {versus:>7}{note}"
    )


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument(
        "--corpus",
        action="append",
        choices=corpora.SETS["speed"],
        help="only these speed corpora (repeatable; default: all)",
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help="corpus cache directory")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--no-large-module",
        action="store_true",
        help="leave out the generated 50,000-line module",
    )
    parser.add_argument(
        "--commit",
        default=None,
        metavar="REV",
        help="measure the slotguard of this commit instead of the working tree",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.repeat < 1:
        print("speed: --repeat must be at least 1", file=sys.stderr)
        return 2
    try:
        with checkout.slotguard_at(args.commit), cached_bytecode():
            results = measure(args)
    except (corpora.CorpusError, RunFailed, ValueError) as error:
        print(f"speed: error: {error}", file=sys.stderr)
        return 1
    print(format_report(results), end="")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


@contextmanager
def cached_bytecode() -> Iterator[None]:
    """Let every child cache compiled bytecode, in a temporary directory.

    An installed slotguard has its ``.pyc`` files (pip compiles them), but an
    editable install or a ``--commit`` checkout has none, and where
    ``PYTHONDONTWRITEBYTECODE`` is set every run would compile slotguard's
    modules again (about 0.15 s, most of a one-file run). The untimed runs
    that precede the timed ones fill the cache; the tree stays untouched.
    """
    saved = {
        name: os.environ.get(name) for name in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    }
    with tempfile.TemporaryDirectory(prefix="slotguard-pycache-") as prefix:
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ["PYTHONPYCACHEPREFIX"] = prefix
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Everything, for the corpora and options chosen on the command line."""
    names = args.corpus or list(corpora.SETS["speed"])
    options = detect_options()
    results: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).as_posix(), *sys.argv]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_at_start": os.getloadavg()[0],
        },
        "versions": tool_versions(),
        "source": checkout.describe(args.commit),
        "repeat": args.repeat,
        "slotguard_options": asdict(options),
        "notes": [
            *options.notes(),
            _memory_note(),
            "children cache bytecode in a temporary PYTHONPYCACHEPREFIX, as an "
            "installed slotguard has its .pyc files; untimed runs fill it first",
        ],
        "corpora": {},
    }
    trees = {name: corpora.fetch(name, args.cache_dir) for name in names}
    for name, tree in trees.items():
        results["corpora"][name] = bench_corpus(name, tree, options, args.repeat)
    results["one_file"] = _one_file(results, trees, args.repeat)
    if not args.no_large_module:
        print("large module: generating and checking it", file=sys.stderr)
        results["large_module"] = bench_large_module(options, args.repeat)
    for tree in trees.values():
        remove_cache(tree)
    for corpus in results["corpora"].values():
        del corpus["_analysed_paths"], corpus["_discovered_paths"]
    results["ratios"] = [{**asdict(r), "met": r.met} for r in ratios(results)]
    results["machine"]["load_average_at_end"] = os.getloadavg()[0]
    return results


def _memory_note() -> str:
    total = (
        "; total MB: the largest sum of the proportional set sizes (PSS) of the processes "
        "alive at once (the run and its workers: a page they share counts once), sampled "
        f"from /proc every {SAMPLE_EVERY_S * 1000:.0f} ms"
        if Path("/proc/self/statm").exists()
        else "; no /proc: no total MB"
    )
    if TIME:
        return (
            "peak MB: largest single process (workers included: the kernel carries a "
            "reaped child's peak up to its parent), measured by GNU time" + total
        )
    import resource

    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6
    return (
        "peak MB: largest single process, from wait4; GNU time is missing, so it "
        f"includes the size of this benchmark process ({floor:.0f} MB) as a floor" + total
    )


def _one_file(results: dict[str, Any], trees: dict[str, Path], repeat: int) -> dict[str, Any]:
    """The session-heavy module of prefect, and a typical module the
    prefilter stops (django's if measured)."""
    measured = results["corpora"]
    failing_from = "django" if "django" in measured else next(iter(measured), None)
    stopped = None
    if failing_from is not None:
        skipped = sorted(
            set(measured[failing_from]["_discovered_paths"])
            - set(measured[failing_from]["_analysed_paths"])
        )
        stopped = pick_one_file([Path(p) for p in skipped]) if skipped else None
    return bench_one_file(trees, stopped, max(repeat, 5))


if __name__ == "__main__":
    sys.exit(main())
