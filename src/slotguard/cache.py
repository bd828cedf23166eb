"""The results cache: a re-run over unchanged files does almost no work.

An entry is keyed by everything that can change a file's results: slotguard's
version, the settings (selected rules, resources, per-file ignores...), the
path it is reported under, its bytes, and what the project index lets it see
of the modules it imports. A hit gives back the file's findings and summary
without parsing it (without even importing libcst).

The cache is one file under the cache directory, read once and written once
per run, atomically. A cache that cannot be read is ignored, never an error.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

from slotguard import __version__

_FORMAT = 1
_MAX_ENTRIES = 100_000
_FILE_NAME = f"results-v{_FORMAT}.pickle"


@functools.cache
def code_fingerprint() -> str:
    """Identifies slotguard's own code: its version, and the names, sizes and
    modification times of its modules, so that a development checkout whose
    version string does not change still never reads results an older copy
    of the code wrote."""
    digest = hashlib.blake2b(__version__.encode(), digest_size=16)
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        stat = path.stat()
        digest.update(f"{path.relative_to(package)}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()


def key(*parts: bytes | str) -> str:
    digest = hashlib.blake2b(digest_size=20)
    digest.update(code_fingerprint().encode())
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


class Cache:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._entries: dict[str, Any] = {}
        self._used: dict[str, Any] = {}
        self.hits = 0
        try:
            with open(directory / _FILE_NAME, "rb") as handle:
                loaded = pickle.load(handle)
            if isinstance(loaded, dict) and loaded.get("code") == code_fingerprint():
                self._entries = loaded["entries"]
        except (
            OSError,
            pickle.UnpicklingError,
            EOFError,
            KeyError,
            AttributeError,
            ImportError,
            TypeError,
            ValueError,
        ):
            self._entries = {}

    def get(self, entry_key: str) -> Any | None:
        found = self._entries.get(entry_key)
        if found is None:
            return None
        self.hits += 1
        self._used[entry_key] = found
        return found

    def put(self, entry_key: str, value: Any) -> None:
        self._used[entry_key] = value

    def save(self) -> None:
        """Write the entries of this run, then older ones up to a bound."""
        if not self._used:
            return
        entries = dict(self._used)
        for entry_key, value in reversed(self._entries.items()):
            if len(entries) >= _MAX_ENTRIES:
                break
            entries.setdefault(entry_key, value)
        import tempfile  # only a run that wrote something needs it

        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            ignore = self.directory / ".gitignore"
            if not ignore.exists():
                ignore.write_text("# Created by slotguard.\n*\n")
            handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".results-")
            with os.fdopen(handle, "wb") as stream:
                pickle.dump(
                    {"code": code_fingerprint(), "entries": entries},
                    stream,
                    protocol=pickle.HIGHEST_PROTOCOL,
                )
            os.replace(temporary, self.directory / _FILE_NAME)
        except OSError:
            # A read-only checkout still gets its findings.
            return
