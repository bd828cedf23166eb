"""Run the benchmarks against the slotguard of one commit rather than the working tree.

The dev virtualenv installs slotguard in editable mode, so by default the
scripts here measure whatever ``src/`` holds at that moment, half-finished
edits of other people included. ``--commit REV`` instead unpacks ``src/`` of
that commit (``git archive``: the repository is only read) into a temporary
directory and puts it first on ``PYTHONPATH`` for every child process; the
virtualenv's ``slotguard`` script then imports that copy. The figures then
belong to a commit that anyone can check out again.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
    return result.stdout.strip()


def describe(commit: str | None) -> dict[str, object]:
    """Which code was measured: a commit, or the working tree and whether it was dirty."""
    if commit is not None:
        return {
            "commit": git("rev-parse", commit),
            "src_has_uncommitted_edits": False,
            "from": "git archive of the commit",
        }
    return {
        "commit": git("rev-parse", "HEAD"),
        "src_has_uncommitted_edits": bool(git("status", "--porcelain", "--", "src")),
        "from": "the working tree (editable install)",
    }


@contextmanager
def slotguard_at(commit: str | None) -> Iterator[None]:
    """Make child processes import slotguard from ``commit`` (``None``: the working tree)."""
    if commit is None:
        yield
        return
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "src"], cwd=REPO, capture_output=True
    )
    if archive.returncode != 0:
        raise ValueError(f"git archive {commit}: {archive.stderr.decode().strip()}")
    previous = os.environ.get("PYTHONPATH")
    with tempfile.TemporaryDirectory(prefix="slotguard-src-") as scratch:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(scratch, filter="data")
            else:
                tar.extractall(scratch)
        source = str(Path(scratch) / "src")
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [source, previous]))
        try:
            yield
        finally:
            if previous is None:
                del os.environ["PYTHONPATH"]
            else:
                os.environ["PYTHONPATH"] = previous
