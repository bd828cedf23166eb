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
* peak memory: the largest resident set of any one process of each run.

And, on one file: ``slotguard check FILE`` for a file the prefilter lets
through and for one it does not.
"""

from __future__ import annotations

import argparse
import contextlib
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
        complete = bool(times) and not self.error
        return {
            "label": self.label,
            "command": " ".join(self.argv),
            "median_s": round(statistics.median(times), 4) if complete else None,
            "min_s": round(min(times), 4) if complete else None,
            "max_s": round(max(times), 4) if complete else None,
            "samples_s": [round(t, 4) for t in times],
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
    return Sample(elapsed, peak_kib, returncode, tree_kib)


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


def bench_one_file(
    passing: Path, passing_root: Path, failing: Path, failing_root: Path, repeat: int
) -> dict[str, dict[str, Any]]:
    """Wall time for one file (and the root of its corpus), dominated by
    interpreter start and imports. The cache is deleted before each run: a
    warm hit on one file would hide what a first run costs. An untimed run
    of each first compiles the bytecode (see ``cached_bytecode``)."""
    python = Measurement("python -c pass (interpreter start)", [sys.executable, "-c", "pass"])
    through = Measurement(
        "slotguard check FILE (passes the prefilter)", [SLOTGUARD, "check", passing.name]
    )
    skipped = Measurement(
        "slotguard check FILE (stopped by the prefilter)", [SLOTGUARD, "check", failing.name]
    )
    through.extra["file"] = str(passing)
    skipped.extra["file"] = str(failing)
    for warm_up, directory in ((through.argv, passing.parent), (skipped.argv, failing.parent)):
        with contextlib.suppress(RunFailed):  # a failure shows in the timed runs
            run_once(warm_up, directory)
    take_turns(
        [
            (python, _runner(python.argv, passing.parent)),
            (
                through,
                _runner(through.argv, passing.parent, before=lambda: remove_cache(passing_root)),
            ),
            (
                skipped,
                _runner(skipped.argv, failing.parent, before=lambda: remove_cache(failing_root)),
            ),
        ],
        repeat,
    )
    return {
        "python_start": python.summary(),
        "prefilter_passes": through.summary(),
        "prefilter_stops": skipped.summary(),
    }


@dataclass(frozen=True, slots=True)
class Ratio:
    name: str
    value: float | None
    target: float
    unit: str
    basis: str

    @property
    def met(self) -> bool | None:
        return None if self.value is None else self.value <= self.target


def _run(results: dict[str, Any], corpus: str, *keys: str) -> dict[str, Any] | None:
    runs = results.get("corpora", {}).get(corpus, {}).get("runs", {})
    for key in keys:
        if key in runs:
            return runs[key]  # type: ignore[no-any-return]
    return None


def _divide(top: dict[str, Any] | None, bottom: dict[str, Any] | None) -> float | None:
    if top is None or bottom is None or top["median_s"] is None or not bottom["median_s"]:
        return None
    return top["median_s"] / bottom["median_s"]  # type: ignore[no-any-return]


def ratios(results: dict[str, Any]) -> list[Ratio]:
    """The figures the project targets, each with what it was computed from."""
    cold_default = ("slotguard_cold_jobsdefault",)
    warm_default = ("slotguard_warm_jobsdefault", "slotguard_cold_jobsdefault")
    django_cold = _run(results, "django", *cold_default)
    django_warm = _run(results, "django", *warm_default)
    ruff = _run(results, "django", "ruff")
    prefect_one = _run(results, "prefect", "slotguard_cold_jobs1", *cold_default)
    parse = _run(results, "prefect", "libcst_parse")
    one_file = results.get("one_file", {}).get("prefilter_passes")
    sqlalchemy_runs = results.get("corpora", {}).get("sqlalchemy", {}).get("runs", {})
    peaks = [
        peak
        for key, run in sqlalchemy_runs.items()
        if key.startswith("slotguard")
        for peak in (run["peak_rss_mb"], run.get("peak_total_mb"))
        if peak is not None
    ]
    return [
        Ratio(
            "django cold / ruff", _divide(django_cold, ruff), 1.0, "x", _basis(django_cold, ruff)
        ),
        Ratio(
            "django warm / ruff", _divide(django_warm, ruff), 0.3, "x", _basis(django_warm, ruff)
        ),
        Ratio(
            "prefect --jobs 1 cold / libcst parse-only",
            _divide(prefect_one, parse),
            2.0,
            "x",
            _basis(prefect_one, parse),
        ),
        Ratio(
            "one file wall time",
            one_file["median_s"] if one_file else None,
            0.3,
            "s",
            one_file["command"] if one_file else "not measured",
        ),
        Ratio(
            "peak memory, sqlalchemy sdist",
            max(peaks) if peaks else None,
            300.0,
            "MB",
            "the larger of the largest single process and the sampled peak of all "
            "processes alive at once, over every slotguard run on sqlalchemy",
        ),
    ]


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
        f"{'peak MB':>8} {'total MB':>8} {'/ ruff':>7}"
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
    lines += ["", "targets:"]
    for ratio in results["ratios"]:
        unit = ratio["unit"]
        shown = "n/a" if ratio["value"] is None else f"{ratio['value']:.2f} {unit}"
        target = f"<= {ratio['target']:g} {unit}"
        verdict = {True: "met", False: "MISSED", None: "not measured"}[ratio["met"]]
        lines.append(f"  {ratio['name']:<48} {shown:>10}   target {target:<10} {verdict}")
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
    return (
        f"{'':<11} {run['label']:<48} {run['median_s']:>9.3f} {spread:>15} "
        f"{run['peak_rss_mb']:>8.1f} {shown_total:>8} {versus:>7}{note}"
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
    """Pick the files from what was measured: prefect's typical analysed
    module, and a typical module the prefilter stops (django's if present)."""
    measured = results["corpora"]
    passing_from = "prefect" if "prefect" in measured else next(iter(measured))
    failing_from = "django" if "django" in measured else passing_from
    analysed = [Path(p) for p in measured[passing_from]["_analysed_paths"]]
    skipped = sorted(
        set(measured[failing_from]["_discovered_paths"])
        - set(measured[failing_from]["_analysed_paths"])
    )
    if not analysed or not skipped:
        return {}
    return bench_one_file(
        pick_one_file(analysed),
        trees[passing_from],
        pick_one_file([Path(p) for p in skipped]),
        trees[failing_from],
        max(repeat, 5),
    )


if __name__ == "__main__":
    sys.exit(main())
