"""Pinned third-party source trees that the benchmarks and the precision triage run over.

Reproduce::

    /work/venv/bin/python bench/corpora.py --set all

Real code, pinned to exact releases, is what makes figures comparable from one
commit to the next: a synthetic corpus measures what its author thought of, and
an unpinned one moves under the measurement. Files come from PyPI's JSON API
(``https://pypi.org/pypi/<project>/json``) rather than ``pip download`` because
pip prepares metadata for an sdist by building it, which needs Cython and a
compiler for asyncpg and SQLAlchemy and says nothing about the source we want.

Every download is checked against the sha256 PyPI publishes, and every tree is
unpacked into a temporary directory and renamed into place, so an interrupted
run leaves nothing that a later run would mistake for a finished tree. A pinned
tree already in the cache is used without touching the network.

The cache is ``bench/.cache/`` (git-ignored), or ``$SLOTGUARD_BENCH_CACHE``, or
``--cache-dir``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

CACHE_ENV = "SLOTGUARD_BENCH_CACHE"
DEFAULT_CACHE = Path(__file__).resolve().parent / ".cache"
PYPI_JSON = "https://pypi.org/pypi/{project}/json"
ATTEMPTS = 3
TIMEOUT_SECONDS = 60.0

Kind = Literal["wheel", "sdist"]


@dataclass(frozen=True, slots=True)
class Corpus:
    """One pinned release: which file of it to unpack, and why it is here."""

    name: str
    """The key used on the command line and in result files."""
    project: str
    """The PyPI project name."""
    version: str
    """An exact version, or a prefix such as ``5.2.*`` for the newest final release in it."""
    kind: Kind
    why: str

    @property
    def is_pinned(self) -> bool:
        return not self.version.endswith(".*")


CORPORA: dict[str, Corpus] = {
    corpus.name: corpus
    for corpus in (
        Corpus(
            "django",
            "django",
            "5.2.*",
            "wheel",
            "a large, mostly leak-free web framework: the speed reference against ruff",
        ),
        Corpus(
            "sqlalchemy",
            "sqlalchemy",
            "2.1.9",
            "sdist",
            "a pool and session implementation with its tests: memory and pool-code stress",
        ),
        Corpus(
            "prefect",
            "prefect",
            "3.9.1",
            "wheel",
            "an application with SQLAlchemy sessions everywhere: analysed-file speed",
        ),
        Corpus(
            "apache-airflow-core",
            "apache-airflow-core",
            "3.3.2",
            "wheel",
            "an application with SQLAlchemy sessions passed through many layers",
        ),
        Corpus(
            "procrastinate", "procrastinate", "3.10.0", "wheel", "a task queue over psycopg 3 pools"
        ),
        Corpus("piccolo", "piccolo", "1.38.0", "wheel", "an ORM over asyncpg pools"),
        Corpus(
            "databases",
            "databases",
            "0.9.0",
            "wheel",
            "the `databases` library itself: connections and pools as implementations",
        ),
        Corpus(
            "advanced-alchemy",
            "advanced-alchemy",
            "1.12.0",
            "wheel",
            "SQLAlchemy session helpers, repositories and framework integrations",
        ),
        Corpus(
            "asyncpg",
            "asyncpg",
            "0.32.0",
            "sdist",
            "asyncpg's own pool implementation: must not be flagged for being one",
        ),
    )
}

SETS: dict[str, tuple[str, ...]] = {
    "speed": ("django", "sqlalchemy", "prefect"),
    "precision": (
        "prefect",
        "apache-airflow-core",
        "procrastinate",
        "piccolo",
        "databases",
        "advanced-alchemy",
        "sqlalchemy",
        "asyncpg",
    ),
}
SETS["all"] = tuple(dict.fromkeys((*SETS["speed"], *SETS["precision"])))


class CorpusError(Exception):
    """A corpus could not be resolved, downloaded, verified or unpacked."""


@dataclass(frozen=True, slots=True)
class Artifact:
    """The file on PyPI that a corpus resolves to."""

    corpus: Corpus
    version: str
    filename: str
    url: str
    sha256: str


def cache_root(cache_dir: Path | None = None) -> Path:
    """Where corpora live: the argument, else ``$SLOTGUARD_BENCH_CACHE``, else ``bench/.cache``."""
    if cache_dir is not None:
        return cache_dir
    from_env = os.environ.get(CACHE_ENV)
    return Path(from_env) if from_env else DEFAULT_CACHE


def fetch(name: str, cache_dir: Path | None = None) -> Path:
    """The unpacked source tree of corpus ``name``, downloading it first if needed.

    For an sdist this is its top-level directory (``sqlalchemy-2.1.9/``); for a
    wheel, the directory holding its packages.
    """
    corpus = _corpus(name)
    root = cache_root(cache_dir)
    if corpus.is_pinned:
        cached = _tree_dir(root, corpus, corpus.version)
        if cached.is_dir():
            return _source_root(cached)
    try:
        artifact = resolve(corpus)
    except CorpusError as error:
        fallback = _newest_cached(root, corpus)
        if fallback is None:
            raise
        print(f"corpora: {error}; using the cached {fallback.name}", file=sys.stderr)
        return _source_root(fallback)
    target = _tree_dir(root, corpus, artifact.version)
    if not target.is_dir():
        archive = _download(artifact, root / "downloads")
        _unpack(archive, target)
    return _source_root(target)


def fetch_set(set_name: str, cache_dir: Path | None = None) -> dict[str, Path]:
    """Every corpus of a set (``speed``, ``precision``, ``all``), by name."""
    if set_name not in SETS:
        raise CorpusError(f"unknown set {set_name!r}; choose from {', '.join(SETS)}")
    return {name: fetch(name, cache_dir) for name in SETS[set_name]}


def version_of(tree: Path) -> str:
    """The version a fetched tree holds, read back from its cache directory name."""
    for directory in (tree, tree.parent):
        for corpus in CORPORA.values():
            prefix, suffix = f"{corpus.name}-", f"-{corpus.kind}"
            if directory.name.startswith(prefix) and directory.name.endswith(suffix):
                return directory.name[len(prefix) : -len(suffix)]
    return "unknown"


def resolve(corpus: Corpus) -> Artifact:
    """Ask PyPI which file the corpus stands for, with its sha256."""
    index_url = PYPI_JSON.format(project=corpus.project)
    metadata = _get_json(index_url)
    releases: dict[str, list[dict[str, Any]]] = metadata.get("releases", {})
    version = corpus.version if corpus.is_pinned else _newest_final(releases, corpus.version[:-2])
    files = releases.get(version)
    if not files:
        raise CorpusError(f"{corpus.project} {version} is not on PyPI")
    chosen = _choose_file(files, corpus.kind)
    if chosen is None:
        raise CorpusError(f"{corpus.project} {version} has no pure-Python {corpus.kind} on PyPI")
    # Mirrors of PyPI may give file URLs relative to the JSON document.
    url = urllib.parse.urljoin(index_url, chosen["url"])
    return Artifact(corpus, version, chosen["filename"], url, chosen["digests"]["sha256"])


def _corpus(name: str) -> Corpus:
    try:
        return CORPORA[name]
    except KeyError:
        raise CorpusError(f"unknown corpus {name!r}; choose from {', '.join(CORPORA)}") from None


def _tree_dir(root: Path, corpus: Corpus, version: str) -> Path:
    return root / f"{corpus.name}-{version}-{corpus.kind}"


def _newest_cached(root: Path, corpus: Corpus) -> Path | None:
    """The newest already unpacked tree of a corpus, for when PyPI cannot be asked."""
    prefix = corpus.version[:-2] if not corpus.is_pinned else corpus.version
    candidates = {
        version_of(path): path
        for path in root.glob(f"{corpus.name}-{prefix}*-{corpus.kind}")
        if path.is_dir()
    }
    finals = [v for v in candidates if _final_release_key(v) is not None]
    if not finals:
        return None
    return candidates[max(finals, key=lambda v: _final_release_key(v) or ())]


def _final_release_key(version: str) -> tuple[int, ...] | None:
    """A sort key for ``X.Y.Z`` final releases; ``None`` for pre-, post- and dev releases."""
    parts = version.split(".")
    if not all(part.isdigit() for part in parts):
        return None
    return tuple(int(part) for part in parts)


def _newest_final(releases: dict[str, list[dict[str, Any]]], prefix: str) -> str:
    """The highest final, not wholly yanked release equal to ``prefix`` or under ``prefix.``."""
    candidates = [
        version
        for version, files in releases.items()
        if (version == prefix or version.startswith(prefix + "."))
        and _final_release_key(version) is not None
        and any(not file.get("yanked", False) for file in files)
    ]
    if not candidates:
        raise CorpusError(f"no final release matches {prefix}.*")
    return max(candidates, key=lambda v: _final_release_key(v) or ())


def _choose_file(files: Sequence[dict[str, Any]], kind: Kind) -> dict[str, Any] | None:
    """A pure-Python wheel or a ``.tar.gz`` sdist; compiled wheels would hide sources."""
    for file in files:
        if file.get("yanked", False):
            continue
        name: str = file["filename"]
        package_type: str = file["packagetype"]
        if kind == "wheel" and package_type == "bdist_wheel" and name.endswith("-none-any.whl"):
            return file
        if kind == "sdist" and package_type == "sdist" and name.endswith(".tar.gz"):
            return file
    return None


def _get_json(url: str) -> dict[str, Any]:
    data = _get_with_retries(url, lambda response: response.read())
    try:
        parsed: dict[str, Any] = json.loads(data)
    except ValueError as error:
        raise CorpusError(f"{url}: not JSON: {error}") from None
    return parsed


def _get_with_retries(url: str, consume: Any) -> Any:
    """GET ``url`` and hand the response to ``consume``; retry network hiccups, not 404s."""
    last: Exception | None = None
    for attempt in range(ATTEMPTS):
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "slotguard-bench"})
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                return consume(response)
        except urllib.error.HTTPError as error:
            if error.code < 500:
                raise CorpusError(f"{url}: HTTP {error.code}") from None
            last = error
        except (urllib.error.URLError, OSError) as error:
            last = error
        time.sleep(2.0 * (attempt + 1))
    raise CorpusError(f"{url}: {last} (after {ATTEMPTS} attempts)")


def _download(artifact: Artifact, directory: Path) -> Path:
    """The verified archive, downloaded unless a verified copy is already there."""
    directory.mkdir(parents=True, exist_ok=True)
    destination = directory / artifact.filename
    if destination.is_file() and _sha256(destination) == artifact.sha256:
        return destination
    partial = directory / f"{artifact.filename}.{os.getpid()}.part"

    def save(response: Any) -> str:
        digest = hashlib.sha256()
        with partial.open("wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        return digest.hexdigest()

    try:
        actual = _get_with_retries(artifact.url, save)
        if actual != artifact.sha256:
            raise CorpusError(
                f"{artifact.filename}: sha256 {actual} does not match PyPI's {artifact.sha256}"
            )
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)
    return destination


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _unpack(archive: Path, target: Path) -> None:
    """Unpack into a sibling temporary directory, then rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        if archive.name.endswith(".whl"):
            _unzip(archive, staging)
        elif archive.name.endswith(".tar.gz"):
            _untar(archive, staging)
        else:
            raise CorpusError(f"{archive.name}: neither a wheel nor a .tar.gz sdist")
        try:
            os.replace(staging, target)
        except OSError:
            if not target.is_dir():
                raise
            # Another run unpacked the same tree first; theirs is as good as ours.
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _safe_member(name: str) -> bool:
    """Archive members must stay inside the directory they are unpacked into."""
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts


def _unzip(archive: Path, destination: Path) -> None:
    with zipfile.ZipFile(archive) as wheel:
        unsafe = [name for name in wheel.namelist() if not _safe_member(name)]
        if unsafe:
            raise CorpusError(f"{archive.name}: refuses to unpack {unsafe[0]!r}")
        wheel.extractall(destination)


def _untar(archive: Path, destination: Path) -> None:
    with tarfile.open(archive, "r:gz") as sdist:
        if hasattr(tarfile, "data_filter"):
            sdist.extractall(destination, filter="data")
            return
        members = sdist.getmembers()
        unsafe = [m.name for m in members if not _safe_member(m.name) or m.issym() or m.islnk()]
        if unsafe:
            raise CorpusError(f"{archive.name}: refuses to unpack {unsafe[0]!r}")
        sdist.extractall(destination, members=members)


def _source_root(tree: Path) -> Path:
    """An sdist unpacks to one top-level directory; the tree is that directory."""
    entries = [entry for entry in tree.iterdir() if not entry.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir() and tree.name.endswith("-sdist"):
        return entries[0]
    return tree


ISOLATING_CONFIGS = {
    "slotguard.toml": "respect-gitignore = false\n",
    "ruff.toml": "respect-gitignore = false\n",
}


def isolate(tree: Path) -> None:
    """Give a tree configuration of its own, so that tools judge it as a project.

    The default cache sits inside this repository, which git-ignores it, and
    slotguard skips git-ignored files even under a directory named on its
    command line: without this, ``slotguard check`` sees no file at all. The
    same files also keep ruff and slotguard from picking up this repository's
    own ``pyproject.toml``. No corpus ships either file; both state defaults
    apart from ``respect-gitignore``.
    """
    for name, text in ISOLATING_CONFIGS.items():
        path = tree / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


def count_python_files(tree: Path) -> int:
    return sum(1 for _ in tree.rglob("*.py"))


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--set", dest="set_name", choices=sorted(SETS), default="all")
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help=f"default: ${CACHE_ENV} or {DEFAULT_CACHE}"
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help="fetch only these corpora instead of a set"
    )
    return parser.parse_args(argv)


def _print_table(trees: Iterable[tuple[str, Path]]) -> None:
    for name, tree in trees:
        corpus = CORPORA[name]
        print(
            f"{name:<20} {version_of(tree):<8} {corpus.kind:<5} "
            f"{count_python_files(tree):>5} .py  {tree}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    names = args.names or SETS[args.set_name]
    try:
        trees = [(name, fetch(name, args.cache_dir)) for name in names]
    except CorpusError as error:
        print(f"corpora: error: {error}", file=sys.stderr)
        return 1
    _print_table(trees)
    return 0


if __name__ == "__main__":
    sys.exit(main())
