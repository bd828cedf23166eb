"""An open corpus of real applications, pinned to commits, and slotguard's default rules over it.

Reproduce::

    python bench/apps.py materialise                        # every tree, from the mirrors
    python bench/apps.py check --stage before --commit ef7a9b6

The PyPI corpora (``corpora.py``) are mostly libraries and frameworks; users
run slotguard on applications: request handlers, tasks, tests, migrations,
scripts. Precision measured there is what predicts their experience
(issue 14), so this corpus is made of applications, pinned to exact commits.

The trees come from bare git directories that the session's fetch tool
brings onto the machine (``/work/.mirror/<owner>+<name>/repo``, or
``$SLOTGUARD_BENCH_MIRRORS``, or ``--mirror-dir``): never from the network
here, and never committed. Only this pinned list is committed. Each tree is
materialised into ``bench/.cache/apps/<name>-<short commit>/`` (git-ignored)
with ``git ls-tree`` and ``git cat-file``: every ``*.py`` file plus the files
that say what the project declares (``pyproject.toml``, ``setup.cfg``,
``.gitignore``, ``requirements*.txt``), written into a temporary directory and
renamed into place, so an interrupted run leaves nothing a later run would
mistake for a finished tree. A tree already there is reused.

``check`` runs slotguard with its **default rules** (no ``--select``) from the
root of each tree and writes ``bench/results/apps/<stage>/<name>.json``: the
findings exactly as ``--output-format json`` prints them (paths relative to the
tree's root), the slotguard commit and the corpus commit, per-code counts and
the number of files not analysed (SG000) apart. No timestamp, so the files can
be committed and compared between stages.

Three sets: ``triage`` (every finding is labelled in ``bench/apps_labels.json``),
``held-out`` (run, never triaged while the rules are being fixed, so that
a fix that only fits the triaged trees shows there) and ``unseen``
(applications added once the rules were tuned: their first run measures code
nobody tuned on, and is labelled like the triage set).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import checkout
import corpora
from triage import fingerprint

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
MIRRORS_ENV = "SLOTGUARD_BENCH_MIRRORS"
DEFAULT_MIRRORS = Path("/work/.mirror")
DEFAULT_RESULTS = BENCH / "results" / "apps"
NOT_ANALYSED = "SG000"
SHORT = 7

BIN = Path(sys.executable).parent
SLOTGUARD = str(BIN / "slotguard") if (BIN / "slotguard").exists() else "slotguard"
CHECK_ARGS = ("check", ".", "--output-format", "json", "--exit-zero", "--no-cache")

Set = Literal["triage", "held-out", "unseen"]

KEPT_NAMES = frozenset({"pyproject.toml", "setup.cfg", ".gitignore"})
KEPT_PATTERN = re.compile(r"(\.py|^requirements.*\.txt)$")
REGULAR_FILE_MODES = frozenset({"100644", "100755"})


@dataclass(frozen=True, slots=True)
class App:
    """One application at one commit, and why it is in the corpus."""

    repo: str
    """``owner/name`` as GitHub spells it."""
    commit: str
    kind: str
    set: Set
    replaces: str = ""
    """For a stand-in: the repository issue 14 listed that it replaces."""
    why: str = ""
    """For a stand-in: why the listed repository could not be used."""

    @property
    def name(self) -> str:
        """The key used on the command line, in result files and in labels."""
        return self.repo.split("/", 1)[1]

    @property
    def tree_name(self) -> str:
        return f"{self.name}-{self.commit[:SHORT]}"

    @property
    def mirror_name(self) -> str:
        return self.repo.replace("/", "+")


_TOO_LARGE = "over the 500 MB limit of the fetch tool"

APPS: dict[str, App] = {
    app.name: app
    for app in (
        # -- triage set: issue 14's list, with stand-ins of the same kind --------
        App(
            "getredash/redash",
            "ca79fe988d81cdac9675b412f3dfcab107bc1fbc",
            "Flask + SQLAlchemy + RQ",
            "triage",
        ),
        App(
            "mealie-recipes/mealie",
            "b5643a9399465d8b4ea339e7a6639df2d697741b",
            "FastAPI + SQLAlchemy",
            "triage",
        ),
        App(
            "freqtrade/freqtrade",
            "c9ae5e1e9ff25bb55dd61f5e5519f7c479291edb",
            "SQLAlchemy scoped sessions, bot + API",
            "triage",
        ),
        App(
            "pgadmin-org/pgadmin4",
            "bc58657d3d3ab4209cdadea6d191b632cf1572cc",
            "Flask + psycopg",
            "triage",
        ),
        App(
            "Rapptz/RoboDanny",
            "39af9d71ffd5f099094a05352c18b987a1dc5d04",
            "discord bot on asyncpg",
            "triage",
        ),
        App(
            "Chainlit/chainlit",
            "488b74579ace74ad917556a1560e9db68e011219",
            "asyncpg / SQLAlchemy data layers",
            "triage",
        ),
        App(
            "fief-dev/fief",
            "a77e7fb65fc54d7994740619684a87e85d1293ed",
            "FastAPI + async SQLAlchemy",
            "triage",
        ),
        App(
            "onyx-dot-app/onyx",
            "a7d66a8b778c3f9026c4f89dae47d14a3f84816f",
            "LLM app platform: FastAPI + SQLAlchemy + Celery",
            "triage",
            "langgenius/dify",
            _TOO_LARGE,
        ),
        App(
            "letta-ai/letta",
            "56ba9c25552605eec89de8ed3dc6394b625c1993",
            "LLM agent server: FastAPI + SQLAlchemy",
            "triage",
            "langflow-ai/langflow",
            f"{_TOO_LARGE}; pinned to the parent of letta's HEAD, an archive commit "
            "that removed the code",
        ),
        App(
            "Netflix/dispatch",
            "dd2837e82a0bf5565b1b4b4b91ea30b7262d4061",
            "FastAPI + SQLAlchemy",
            "triage",
            "argilla-io/argilla",
            _TOO_LARGE,
        ),
        App(
            "Netflix/lemur",
            "3a3c2c201d42db0eed06e79297eb8dc252c39288",
            "Flask + SQLAlchemy + Celery",
            "triage",
            "apache/superset",
            _TOO_LARGE,
        ),
        App(
            "healthchecks/healthchecks",
            "29b5ec251059034b79e0120e2ff0c3e35d7bd9f8",
            "Django",
            "triage",
            "zulip/zulip",
            _TOO_LARGE,
        ),
        # -- held-out set: run, not triaged while the rules are being fixed ------
        App(
            "aio-libs/aiohttp-demos",
            "5362c18e9612c22f7af29c3d1246e20e89d25145",
            "aiohttp + aiopg/asyncpg demo apps",
            "held-out",
        ),
        App(
            "litestar-org/litestar-fullstack",
            "8b637ce4232a407142ae94ec95d7eb268f8fd765",
            "Litestar + advanced-alchemy",
            "held-out",
        ),
        App(
            "fastapi/full-stack-fastapi-template",
            "68adb40d37425f6f8668ec7e5a054500d045e43e",
            "FastAPI + SQLModel",
            "held-out",
        ),
        # -- unseen set: added when issue 18 was measured, after the rules were ---
        # -- tuned; read once, labelled, never tuned on ---------------------------
        App(
            "TransformerOptimus/SuperAGI",
            "c3c1982e7bd6a11cfed53c5a193ea502f924b1b6",
            "LLM agent platform: FastAPI + SQLAlchemy + Celery",
            "unseen",
        ),
        App(
            "zalando/patroni",
            "a4a6dc02997db2ae5392261b697dd547c6258f41",
            "PostgreSQL HA daemon on psycopg",
            "unseen",
        ),
        App(
            "Cog-Creators/Red-DiscordBot",
            "4e27059209473118142a5a220b002353dc82d3e4",
            "discord bot, asyncpg driver",
            "unseen",
        ),
        App(
            "OWASP/Nettacker",
            "103ef3a1f5d04bcf319fa0834c140cc9d9e5b174",
            "scanner with a Flask API + SQLAlchemy sessions",
            "unseen",
        ),
        App(
            "lnbits/lnbits",
            "7d98c6b0808efab3edafc21310ec34d1c38c23df",
            "FastAPI + async SQLAlchemy wrapper",
            "unseen",
        ),
        App(
            "reworkd/AgentGPT",
            "18b073ab05b2902e1d052c3d2799786d8623b5e5",
            "FastAPI + async SQLAlchemy",
            "unseen",
        ),
        App(
            "mem0ai/mem0",
            "8d5b7865bd0521e75fe9ab1b260eeccc83f8a378",
            "memory service: psycopg pools, SQLAlchemy, FastAPI server",
            "unseen",
        ),
        App(
            "chatchat-space/Langchain-Chatchat",
            "49165d6af4438aa7e8a1f71ce276db55f4405151",
            "LLM app: FastAPI + SQLAlchemy session_scope",
            "unseen",
        ),
    )
}

SETS: dict[str, tuple[str, ...]] = {
    "triage": tuple(name for name, app in APPS.items() if app.set == "triage"),
    "held-out": tuple(name for name, app in APPS.items() if app.set == "held-out"),
}
SETS["unseen"] = tuple(name for name, app in APPS.items() if app.set == "unseen")
SETS["all"] = (*SETS["triage"], *SETS["held-out"], *SETS["unseen"])


class AppError(Exception):
    """A tree could not be materialised, or slotguard failed on it."""


def mirror_root(mirror_dir: Path | None = None) -> Path:
    if mirror_dir is not None:
        return mirror_dir
    from_env = os.environ.get(MIRRORS_ENV)
    return Path(from_env) if from_env else DEFAULT_MIRRORS


def _git_dir(app: App, mirrors: Path) -> Path:
    git_dir = mirrors / app.mirror_name / "repo"
    bring = f"bring it with the session's fetch tool: github:{app.repo}"
    if not git_dir.is_dir():
        raise AppError(f"{app.name}: no mirror at {git_dir}; {bring}")
    found = subprocess.run(
        ["git", "--git-dir", str(git_dir), "cat-file", "-e", f"{app.commit}^{{commit}}"],
        capture_output=True,
    )
    if found.returncode != 0:
        raise AppError(f"{app.name}: the mirror at {git_dir} lacks {app.commit}; {bring}")
    return git_dir


def kept(path: str) -> bool:
    """Whether a file of the repository goes into the tree."""
    name = PurePosixPath(path).name
    return name in KEPT_NAMES or KEPT_PATTERN.search(name) is not None


def _listing(git_dir: Path, commit: str) -> list[tuple[str, str]]:
    """(blob id, path) of every regular file the tree keeps; symlinks and submodules skipped."""
    result = subprocess.run(
        ["git", "--git-dir", str(git_dir), "ls-tree", "-r", "-z", "--full-tree", commit],
        capture_output=True,
        check=True,
    )
    files = []
    for entry in result.stdout.decode("utf-8", "surrogateescape").split("\0"):
        if not entry:
            continue
        meta, path = entry.split("\t", 1)
        mode, kind, blob = meta.split()
        if kind == "blob" and mode in REGULAR_FILE_MODES and kept(path):
            files.append((blob, path))
    return files


def _write_blobs(git_dir: Path, files: list[tuple[str, str]], destination: Path) -> None:
    """Write each blob with one ``git cat-file --batch`` process."""
    with subprocess.Popen(
        ["git", "--git-dir", str(git_dir), "cat-file", "--batch"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    ) as batch:
        assert batch.stdin is not None and batch.stdout is not None
        for blob, path in files:
            batch.stdin.write(f"{blob}\n".encode())
            batch.stdin.flush()
            header = batch.stdout.readline().split()
            if len(header) != 3 or header[1] != b"blob":
                raise AppError(f"git cat-file: unexpected answer for {path}: {header!r}")
            data = batch.stdout.read(int(header[2]))
            batch.stdout.read(1)  # the newline after the contents
            target = destination.joinpath(*PurePosixPath(path).parts)
            if ".." in PurePosixPath(path).parts:
                raise AppError(f"refuses to write {path!r}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        batch.stdin.close()


def materialise(name: str, cache_dir: Path | None = None, mirror_dir: Path | None = None) -> Path:
    """The tree of app ``name`` under ``<cache>/apps/``, written from its mirror if absent."""
    app = _app(name)
    root = corpora.cache_root(cache_dir) / "apps"
    target = root / app.tree_name
    if target.is_dir():
        return target
    git_dir = _git_dir(app, mirror_root(mirror_dir))
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=root))
    try:
        _write_blobs(git_dir, _listing(git_dir, app.commit), staging)
        try:
            os.replace(staging, target)
        except OSError:
            if not target.is_dir():
                raise
            # Another run materialised the same tree first; theirs is as good as ours.
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _app(name: str) -> App:
    try:
        return APPS[name]
    except KeyError:
        raise AppError(f"unknown app {name!r}; choose from {', '.join(APPS)}") from None


# -- running slotguard -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AppResult:
    app: App
    findings: list[dict[str, Any]]
    seconds: float
    fingerprints: list[str]
    """One per finding, in order: what labels are keyed by (see ``fingerprints``)."""

    @property
    def counts(self) -> Counter[str]:
        return Counter(finding["code"] for finding in self.findings)

    @property
    def not_analysed(self) -> list[dict[str, Any]]:
        return [finding for finding in self.findings if finding["code"] == NOT_ANALYSED]


def slotguard_version() -> str:
    return subprocess.run([SLOTGUARD, "--version"], capture_output=True, text=True).stdout.strip()


def check_app(name: str, cache_dir: Path | None, mirror_dir: Path | None) -> AppResult:
    """Run the default rules from the tree's root, so reported paths are relative to it."""
    app = _app(name)
    tree = materialise(name, cache_dir, mirror_dir)
    corpora.isolate(tree)
    start = time.perf_counter()
    result = subprocess.run([SLOTGUARD, *CHECK_ARGS], cwd=tree, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise AppError(
            f"{name}: slotguard exited {result.returncode}: {result.stderr.strip()[-2000:]}"
        )
    findings: list[dict[str, Any]] = json.loads(result.stdout or "[]")
    return AppResult(app, findings, seconds, fingerprints(tree, findings))


def fingerprints(tree: Path, findings: Sequence[dict[str, Any]]) -> list[str]:
    """The reported source line of each finding, whitespace collapsed, ``#n`` for repeats.

    The same identification as ``triage.py``: it survives line moves, so a
    label given to a finding of one stage applies to the same finding in the
    next. Kept in the result file so the summary renders without the trees.
    """
    lines: dict[str, list[str]] = {}
    seen: Counter[tuple[str, str, str]] = Counter()
    prints = []
    for finding in findings:
        path = finding["path"]
        if path not in lines:
            source = tree / path
            text = source.read_text(encoding="utf-8", errors="replace") if source.is_file() else ""
            lines[path] = text.splitlines()
        number = finding["line"]
        line = lines[path][number - 1] if 0 < number <= len(lines[path]) else ""
        print_ = fingerprint(line)
        key = (path, finding["code"], print_)
        seen[key] += 1
        prints.append(print_ if seen[key] == 1 else f"{print_} #{seen[key]}")
    return prints


def write_result(
    result: AppResult, directory: Path, version: str, source: dict[str, object]
) -> Path:
    app = result.app
    document = {
        "project": app.repo,
        "name": app.name,
        "corpus_commit": app.commit,
        "kind": app.kind,
        "set": app.set,
        "replaces": app.replaces or None,
        "slotguard": version,
        "slotguard_commit": source["commit"],
        "src_had_uncommitted_edits": source["src_has_uncommitted_edits"],
        "command": f"slotguard {' '.join(CHECK_ARGS)}",
        "counts": dict(sorted(result.counts.items())),
        "not_analysed": len(result.not_analysed),
        "findings": result.findings,
        "fingerprints": result.fingerprints,
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{app.name}.json"
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def format_summary(results: Sequence[AppResult]) -> str:
    """An app-by-code table of counts (SG000 apart), then the files not analysed."""
    codes = sorted({code for r in results for code in r.counts if code != NOT_ANALYSED})
    width = max((len(r.app.name) for r in results), default=7)
    header = (
        f"{'app':<{width}} {'set':<8} {'total':>5} "
        + " ".join(f"{code:>5}" for code in codes)
        + f" {NOT_ANALYSED:>6} {'time s':>7}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        analysed = len(r.findings) - len(r.not_analysed)
        cells = " ".join(f"{r.counts.get(code, 0):>5}" for code in codes)
        lines.append(
            f"{r.app.name:<{width}} {r.app.set:<8} {analysed:>5} {cells} "
            f"{len(r.not_analysed):>6} {r.seconds:>7.1f}"
        )
    unanalysed = [(r.app.name, f) for r in results for f in r.not_analysed]
    lines += ["", f"files not analysed ({NOT_ANALYSED}): {len(unanalysed)}"]
    for name, finding in unanalysed:
        lines.append(f"  {name}: {finding['path']}:{finding['line']}: {finding['message']}")
    return "\n".join(lines) + "\n"


# -- command line ------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("action", choices=("materialise", "check", "list"))
    parser.add_argument("names", nargs="*", metavar="NAME", help="only these apps instead of a set")
    parser.add_argument("--set", dest="set_name", choices=sorted(SETS), default="all")
    parser.add_argument(
        "--stage",
        default="before",
        help="check: the results directory under bench/results/apps/ (default: before)",
    )
    parser.add_argument(
        "--commit",
        default=None,
        metavar="REV",
        help="check: run the slotguard of this commit instead of the working tree",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=DEFAULT_RESULTS,
        help=f"check: where the stage directories go (default: {DEFAULT_RESULTS})",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help=f"default: ${corpora.CACHE_ENV} or {corpora.DEFAULT_CACHE}",
    )
    parser.add_argument(
        "--mirror-dir",
        type=Path,
        default=None,
        help=f"default: ${MIRRORS_ENV} or {DEFAULT_MIRRORS}",
    )
    args = parser.parse_args(argv)
    for name in args.names:
        if name not in APPS:
            parser.error(f"unknown app {name!r}; choose from {', '.join(APPS)}")
    return args


def _list() -> str:
    lines = []
    for app in APPS.values():
        stand_in = f"  (replaces {app.replaces}: {app.why})" if app.replaces else ""
        lines.append(f"{app.set:<8} {app.repo}@{app.commit[:12]}  {app.kind}{stand_in}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    names = args.names or SETS[args.set_name]
    if args.action == "list":
        print(_list(), end="")
        return 0
    if args.action == "materialise":
        try:
            for name in names:
                tree = materialise(name, args.cache_dir, args.mirror_dir)
                count = corpora.count_python_files(tree)
                print(f"{name:<28} {count:>5} .py  {tree}")
        except AppError as error:
            print(f"apps: error: {error}", file=sys.stderr)
            return 1
        return 0
    directory = args.results_dir / args.stage
    results: list[AppResult] = []
    failures: list[str] = []
    source = checkout.describe(args.commit)
    try:
        with checkout.slotguard_at(args.commit):
            version = slotguard_version()
            for name in names:
                try:
                    result = check_app(name, args.cache_dir, args.mirror_dir)
                except AppError as error:
                    failures.append(str(error))
                    continue
                path = write_result(result, directory, version, source)
                shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
                print(f"{name}: {len(result.findings)} findings -> {shown}", file=sys.stderr)
                results.append(result)
    except ValueError as error:
        print(f"apps: error: {error}", file=sys.stderr)
        return 1
    dirty = ", with uncommitted edits in src/" if source["src_has_uncommitted_edits"] else ""
    print(f"{version}, from {source['from']}, commit {str(source['commit'])[:12]}{dirty}\n")
    print(format_summary(results), end="")
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
