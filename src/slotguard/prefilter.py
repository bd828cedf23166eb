"""The prefilter: can any rule find anything in a file with these bytes?

Most files of a project have nothing to do with the database, and parsing
them is most of a run's cost. A finding needs a value of a known type, and a
type enters a module only in one of these ways, so a file none of them
applies to is not parsed at all:

- an import of a name the model knows, or of a module on the way to one
  (``from sqlalchemy.orm import Session``, ``import asyncpg``,
  ``from django.db import transaction``; but not ``from django.db import
  models``, which leads to nothing the model knows);
- a dependency marker called (``Depends(get_db)``: it injects what another
  module's provider yields), or a configured wrapper's name;
- an import of a library whose calls are slow (``httpx``, ``openai``,
  ``boto3``, ...): the file may wrap them for the rest of the project, and
  its summary says which of its functions are slow;
- a name another module of the project exports (the project index);
- application state (``app.state.pool``) when the project types some.

A file none of them applies to is still analysed when an analysed module
imports it and it declares columns in a class body (``declares_columns``:
``total = Column(Integer)``, ``note: Mapped[str]``): its summary says which
attributes of its mapped classes are columns, plain data that a fix may let
outlive the session (``slotguard.analysis.columns``).

Everything here works on bytes with regular expressions and never imports
libcst.
"""

from __future__ import annotations

import re
from functools import cache

from slotguard.analysis.index import EMPTY_INDEX, ProjectIndex
from slotguard.model import Model
from slotguard.model.catalog import COLUMN_FACTORIES, DEPENDENCY_MARKERS, MAPPED_ANNOTATION
from slotguard.model.external import WRAPPED_SLOW_LIBRARIES
from slotguard.project import STATE_READ, import_statements

_MARKER_CALL = re.compile(
    rb"\b(?:" + b"|".join(m.encode() for m in DEPENDENCY_MARKERS) + rb")[ \t]*\("
)


@cache
def _words(words: frozenset[str]) -> re.Pattern[bytes] | None:
    if not words:
        return None
    alternatives = b"|".join(re.escape(w.encode()) for w in sorted(words, key=len, reverse=True))
    return re.compile(rb"\b(?:" + alternatives + rb")\b")


def imported_names(data: bytes) -> set[str]:
    """Qualified names a file imports from absolute modules: ``M.name`` for
    ``from M import name``, ``M`` for ``import M`` and ``from M import *``."""
    found: set[str] = set()
    for statement in import_statements(data):
        if statement.module is None:
            found.update(statement.names)
        elif statement.level == 0 and statement.module:
            module = statement.module
            found.update(module if name == "*" else f"{module}.{name}" for name in statement.names)
    return found


def _imports_the_model(data: bytes, model: Model) -> bool:
    roots = _words(model.libraries())
    if roots is None or roots.search(data) is None:
        return False
    return any(model.leads_somewhere(name) for name in imported_names(data))


def _imports_slow_calls(data: bytes) -> bool:
    roots = _words(WRAPPED_SLOW_LIBRARIES)
    if roots is None or roots.search(data) is None:
        return False
    return any(name.split(".", 1)[0] in WRAPPED_SLOW_LIBRARIES for name in imported_names(data))


_COLUMN_DECLARATION = re.compile(
    rb"^[ \t]+\w+[ \t]*(?::[^=\n]*)?=[ \t]*(?:\w+\.)*(?:"
    + b"|".join(sorted(name.encode() for name in COLUMN_FACTORIES))
    + rb")[ \t]*\(|^[ \t]+\w+[ \t]*:[ \t]*(?:\w+\.)*"
    + MAPPED_ANNOTATION.encode()
    + rb"\[",
    re.MULTILINE,
)


_COLUMN_WORDS = tuple(name.encode() for name in (*sorted(COLUMN_FACTORIES), MAPPED_ANNOTATION))


def declares_columns(data: bytes) -> bool:
    """Whether a class body may declare a column of a mapped class. (Asked of
    every file the prefilter stops: a search for the words first, which is
    several times cheaper than the expression over a file without them.)"""
    if not any(word in data for word in _COLUMN_WORDS):
        return False
    return _COLUMN_DECLARATION.search(data) is not None


def may_have_findings(data: bytes, model: Model, index: ProjectIndex = EMPTY_INDEX) -> bool:
    if _imports_the_model(data, model) or _MARKER_CALL.search(data) is not None:
        return True
    if _imports_slow_calls(data):
        return True
    names = _words(model.name_triggers())
    if names is not None and names.search(data) is not None:
        return True
    # The project is asked only what the verdict depends on, in an order that
    # asks least (``slotguard.view`` records the questions).
    exported = _words(frozenset(index.names()))
    if exported is not None and exported.search(data) is not None:
        return True
    return index.has_state() and STATE_READ.search(data) is not None
