"""Writing files that users own: atomically, keeping the file's mode.

A rewrite goes to a temporary file in the same directory and replaces the
original with one rename, so an interrupted run leaves either the old file or
the new one, never half of each.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path``'s contents with ``data``; raises ``OSError``. A
    symbolic link stays a link: the file it points to is rewritten."""
    path = Path(os.path.realpath(path))
    mode = stat.S_IMODE(os.stat(path).st_mode) if path.exists() else None
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        if mode is not None:
            os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
