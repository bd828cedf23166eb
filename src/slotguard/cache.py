"""The results cache: a re-run over unchanged files does almost no work.

A file of the project has three entries:

- its size, modification time, inode and the digest of its bytes, by its
  path: an unchanged file is not read again (``project.json``);
- what its bytes say of its place in the project (its imports, whether it
  reads or writes application state), by digest;
- the outcomes of its analysis, by settings (selected rules, resources,
  per-file ignores...), path, digest and module name: each with the
  questions the analysis asked of the project and their answers
  (``slotguard.view.Footprint``), valid while the project gives the same
  answers. A hit gives back the file's findings and summary without parsing
  it (without even importing libcst).

The cache is two JSON files under the cache directory (``.slotguard_cache``):
``project.json`` holds the file statuses and what the last run over the
project found, all a run over an unchanged project reads; ``results.json``
holds the rest, read only when some file changed. Each is read at most once
and written at most once per run, atomically, and only when the run added to
it. They hold plain data only, so reading them
cannot run code, whoever wrote it: a cache folder committed to a repository
is at worst wrong, and wrong is handled too. A file names its format, its
version and the slotguard code that wrote it; a file that does not parse, or
that another version wrote, is read as an empty cache (and replaced), and an
entry that does not decode is a miss. The folder holds a ``.gitignore`` of
``*``, so that git leaves it alone.

Each kind of entry is an ``EntryKind``: a name and an explicit encoder and
decoder between its value and JSON. Adding a kind means writing those two
functions from the ones below (``Diagnostic``, ``Fact``, ``ModuleSummary``,
``FileResult``...), and giving it a name no other kind has.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from slotguard import __version__
from slotguard.analysis.index import OTHER_SHAPES, ModuleSummary, Symbol, SymbolKind
from slotguard.diagnostic import Applicability, Diagnostic, Edit, Fix, Related, Span
from slotguard.facts import Fact
from slotguard.project import Scan
from slotguard.results import FileResult, Outcome, Verdict
from slotguard.view import Footprint

FORMAT = "slotguard-results-cache"
VERSION = 10
"""Bumped whenever the shape of an entry changes."""
FILE_NAME = "results.json"
PROJECT_FILE = "project.json"
_MAX_ENTRIES = 100_000
_KEPT_OLD_ENTRIES = 1_000

Json = Any
"""A value ``json`` reads or writes: dicts, lists, strings, numbers, booleans, None."""

_T = TypeVar("_T")


class BadEntry(ValueError):
    """Stored data that is not what its kind says: the entry is a miss."""


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


# -- reading stored values, strictly ----------------------------------------------


def _string(value: Json) -> str:
    if not isinstance(value, str):
        raise BadEntry(f"expected a string, found {type(value).__name__}")
    return value


def _optional_string(value: Json) -> str | None:
    return None if value is None else _string(value)


def _integer(value: Json) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadEntry(f"expected an integer, found {type(value).__name__}")
    return value


def _boolean(value: Json) -> bool:
    if not isinstance(value, bool):
        raise BadEntry(f"expected a boolean, found {type(value).__name__}")
    return value


def _list(value: Json) -> list[Json]:
    if not isinstance(value, list):
        raise BadEntry(f"expected a list, found {type(value).__name__}")
    return value


def _object(value: Json) -> dict[str, Json]:
    if not isinstance(value, dict):
        raise BadEntry(f"expected an object, found {type(value).__name__}")
    return value


def _pair(value: Json) -> tuple[Json, Json]:
    items = _list(value)
    if len(items) != 2:
        raise BadEntry("expected a pair")
    return items[0], items[1]


# -- codecs -----------------------------------------------------------------------


def encode_plain(value: object) -> Json:
    """A fact's value: strings, numbers, booleans, None and tuples of them
    (a tuple is stored as a list and read back as a tuple)."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, tuple):
        return [encode_plain(item) for item in value]
    raise TypeError(f"a {type(value).__name__} cannot be cached")


def decode_plain(data: Json) -> object:
    if data is None or isinstance(data, str | bool | int | float):
        return data
    return tuple(decode_plain(item) for item in _list(data))


def encode_span(span: Span) -> Json:
    return [span.line, span.column, span.end_line, span.end_column]


def decode_span(data: Json) -> Span:
    values = _list(data)
    if len(values) != 4:
        raise BadEntry("a span has four numbers")
    line, column, end_line, end_column = (_integer(value) for value in values)
    return Span(line, column, end_line, end_column)


def encode_diagnostic(diagnostic: Diagnostic) -> Json:
    fix = diagnostic.fix
    return {
        "code": diagnostic.code,
        "name": diagnostic.name,
        "message": diagnostic.message,
        "path": diagnostic.path,
        "span": encode_span(diagnostic.span),
        "severity": diagnostic.severity,
        "fix": None if fix is None else [fix.applicability.value, fix.message],
        "related": [
            [encode_span(related.span), related.message, related.path]
            for related in diagnostic.related
        ],
        "no_fix_reason": diagnostic.no_fix_reason,
    }


def decode_diagnostic(data: Json) -> Diagnostic:
    fields = _object(data)
    fix = None
    if fields["fix"] is not None:
        applicability, message = _pair(fields["fix"])
        fix = Fix(Applicability(_string(applicability)), _string(message))
    related = []
    for item in _list(fields["related"]):
        values = _list(item)
        if len(values) != 3:
            raise BadEntry("a related place has a span, a message and a path")
        span, message, path = values
        related.append(Related(decode_span(span), _string(message), _optional_string(path)))
    return Diagnostic(
        code=_string(fields["code"]),
        name=_string(fields["name"]),
        message=_string(fields["message"]),
        path=_string(fields["path"]),
        span=decode_span(fields["span"]),
        severity=_string(fields["severity"]),
        fix=fix,
        related=tuple(related),
        no_fix_reason=_optional_string(fields["no_fix_reason"]),
    )


def encode_diagnostics(diagnostics: Sequence[Diagnostic]) -> Json:
    return [encode_diagnostic(diagnostic) for diagnostic in diagnostics]


def decode_diagnostics(data: Json) -> list[Diagnostic]:
    return [decode_diagnostic(item) for item in _list(data)]


def encode_fact(fact: Fact) -> Json:
    return [
        fact.code,
        fact.topic,
        encode_plain(fact.value),
        fact.path,
        encode_span(fact.span),
        fact.suppressed,
    ]


def decode_fact(data: Json) -> Fact:
    values = _list(data)
    if len(values) != 6:
        raise BadEntry("a fact has six fields")
    code, topic, value, path, span, suppressed = values
    plain = decode_plain(value)
    if not isinstance(plain, tuple):
        raise BadEntry("a fact's value is a list")
    return Fact(
        _string(code),
        _string(topic),
        plain,
        _string(path),
        decode_span(span),
        _boolean(suppressed),
    )


def encode_symbol(symbol: Symbol) -> Json:
    return [
        symbol.kind.value,
        symbol.type_name,
        symbol.awaited,
        symbol.parameter,
        symbol.element,
        symbol.raises,
        symbol.slow,
        ",".join(sorted(symbol.mixed)),
    ]


_SYMBOL_KINDS = {kind.value: kind for kind in SymbolKind}
_decoded_symbols: dict[tuple[Json, ...], Symbol] = {}
"""Symbols already decoded: a project's summaries hold many alike (every
function that may raise), and a warm run decodes them all."""


def decode_symbol(data: Json) -> Symbol:
    values = tuple(_list(data))
    try:
        found = _decoded_symbols.get(values)
    except TypeError:  # a list or an object among the fields
        raise BadEntry("a symbol's fields are plain values") from None
    if found is not None:
        return found
    if len(values) != 8:
        raise BadEntry("a symbol has eight fields")
    kind, type_name, awaited, parameter, element, raises, slow, mixed = values
    known = _SYMBOL_KINDS.get(_string(kind))
    if known is None:
        raise BadEntry(f"no symbol kind {kind!r}")
    found = _decoded_symbols[values] = Symbol(
        known,
        _optional_string(type_name),
        _boolean(awaited),
        _integer(parameter),
        None if element is None else _integer(element),
        _boolean(raises),
        _optional_string(slow),
        _shapes(mixed),
    )
    return found


def _shapes(value: Json) -> frozenset[str]:
    shapes = frozenset(_string(value).split(",")) - {""}
    if not shapes <= set(OTHER_SHAPES):
        raise BadEntry(f"unknown return shapes {value!r}")
    return shapes


def encode_summary(summary: ModuleSummary) -> Json:
    return {
        "module": summary.module,
        "symbols": [[name, encode_symbol(symbol)] for name, symbol in summary.symbols],
        "state": [[name, type_name] for name, type_name in summary.state],
        "facts": [[topic, encode_plain(value)] for topic, value in summary.facts],
    }


def decode_summary(data: Json) -> ModuleSummary:
    fields = _object(data)
    symbols = []
    for item in _list(fields["symbols"]):
        name, symbol = _pair(item)
        symbols.append((_string(name), decode_symbol(symbol)))
    state = []
    for item in _list(fields["state"]):
        name, type_name = _pair(item)
        state.append((_string(name), _string(type_name)))
    facts = []
    for item in _list(fields["facts"]):
        topic, value = _pair(item)
        plain = decode_plain(value)
        if not isinstance(plain, tuple):
            raise BadEntry("a summary fact's value is a list")
        facts.append((_string(topic), plain))
    return ModuleSummary(_string(fields["module"]), tuple(symbols), tuple(state), tuple(facts))


def encode_file_result(result: FileResult) -> Json:
    return {
        "path": result.path,
        "diagnostics": encode_diagnostics(result.diagnostics),
        "analysed": result.analysed,
        "summary": None if result.summary is None else encode_summary(result.summary),
        "pending": [[key, encode_diagnostic(diagnostic)] for key, diagnostic in result.pending],
        "settled": list(result.settled),
        "facts": [encode_fact(fact) for fact in result.facts],
        "suppressed": encode_diagnostics(result.suppressed),
    }


def decode_file_result(data: Json) -> FileResult:
    fields = _object(data)
    pending = []
    for item in _list(fields["pending"]):
        pending_key, diagnostic = _pair(item)
        pending.append((_string(pending_key), decode_diagnostic(diagnostic)))
    summary = fields["summary"]
    return FileResult(
        path=_string(fields["path"]),
        diagnostics=tuple(decode_diagnostics(fields["diagnostics"])),
        analysed=_boolean(fields["analysed"]),
        summary=None if summary is None else decode_summary(summary),
        pending=tuple(pending),
        settled=tuple(_string(settled) for settled in _list(fields["settled"])),
        facts=tuple(decode_fact(fact) for fact in _list(fields["facts"])),
        suppressed=tuple(decode_diagnostics(fields["suppressed"])),
    )


def encode_edits(edits: Mapping[tuple[str, Span], Sequence[Edit]]) -> Json:
    return [
        [code, encode_span(span), [[edit.content, encode_span(edit.span)] for edit in found]]
        for (code, span), found in edits.items()
    ]


def decode_edits(data: Json) -> dict[tuple[str, Span], tuple[Edit, ...]]:
    edits: dict[tuple[str, Span], tuple[Edit, ...]] = {}
    for item in _list(data):
        values = _list(item)
        if len(values) != 3:
            raise BadEntry("a fix's edits have a code, a span and the edits")
        code, span, found = values
        decoded = []
        for edit in _list(found):
            content, edit_span = _pair(edit)
            decoded.append(Edit(_string(content), decode_span(edit_span)))
        edits[(_string(code), decode_span(span))] = tuple(decoded)
    return edits


def _optional_symbol(data: Json) -> Symbol | None:
    return None if data is None else decode_symbol(data)


def encode_footprint(footprint: Footprint) -> Json:
    return {
        "symbols": [
            [name, None if symbol is None else encode_symbol(symbol)]
            for name, symbol in footprint.symbols
        ],
        "states": [[name, type_name] for name, type_name in footprint.states],
        "names": footprint.names,
        "has_state": footprint.has_state,
        "truthy": footprint.truthy,
    }


def decode_footprint(data: Json) -> Footprint:
    fields = _object(data)
    symbols = []
    for item in _list(fields["symbols"]):
        name, symbol = _pair(item)
        symbols.append((_string(name), _optional_symbol(symbol)))
    states = []
    for item in _list(fields["states"]):
        name, type_name = _pair(item)
        states.append((_string(name), _optional_string(type_name)))
    names = fields["names"]
    has_state, truthy = fields["has_state"], fields["truthy"]
    return Footprint(
        tuple(symbols),
        tuple(states),
        _optional_string(names),
        None if has_state is None else _boolean(has_state),
        None if truthy is None else _boolean(truthy),
    )


def encode_outcomes(outcomes: Sequence[Outcome]) -> Json:
    return [
        [
            outcome.verdict.value,
            encode_footprint(outcome.footprint),
            encode_file_result(outcome.result),
        ]
        for outcome in outcomes
    ]


def decode_outcomes(data: Json) -> list[Outcome]:
    outcomes = []
    for item in _list(data):
        values = _list(item)
        if len(values) != 3:
            raise BadEntry("an outcome has a verdict, a footprint and a result")
        verdict, footprint, result = values
        outcomes.append(
            Outcome(
                Verdict(_string(verdict)), decode_footprint(footprint), decode_file_result(result)
            )
        )
    return outcomes


def encode_stat(stat: tuple[int, int, int, str]) -> Json:
    return list(stat)


def decode_stat(data: Json) -> tuple[int, int, int, str]:
    values = _list(data)
    if len(values) != 4:
        raise BadEntry("a file's status has a size, a time, an inode and a digest")
    size, mtime, inode, digest = values
    return _integer(size), _integer(mtime), _integer(inode), _string(digest)


def encode_scan(found: Scan) -> Json:
    return [list(found.imports), found.reads_state, found.writes_state]


def decode_scan(data: Json) -> Scan:
    values = _list(data)
    if len(values) != 3:
        raise BadEntry("a scan has imports and two flags")
    imports, reads, writes = values
    return Scan(tuple(_string(name) for name in _list(imports)), _boolean(reads), _boolean(writes))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The final outcome of every file of a project in one state (the
    signature of its files' paths and digests): a run over the same project,
    unchanged, is answered from it without a pass over the files."""

    signature: str
    verdicts: dict[str, Verdict]
    """By the file's project path."""
    reported: dict[str, tuple[str, FileResult]]
    """The results of the files with anything to report, with the key of
    the outcome they came from (the cache of fix edits is keyed by it)."""
    facts: tuple[Fact, ...]
    settled: tuple[str, ...]
    state_closure: str
    """The signature of the files that type the application state (its
    writers and all they import): while they stay as they were, so does it."""
    state: tuple[tuple[str, str], ...]


def encode_snapshot(snapshot: Snapshot) -> Json:
    return {
        "signature": snapshot.signature,
        "verdicts": {shown: verdict.value for shown, verdict in snapshot.verdicts.items()},
        "reported": {
            shown: [key, encode_file_result(result)]
            for shown, (key, result) in snapshot.reported.items()
        },
        "facts": [encode_fact(fact) for fact in snapshot.facts],
        "settled": list(snapshot.settled),
        "state_closure": snapshot.state_closure,
        "state": [list(pair) for pair in snapshot.state],
    }


def decode_snapshot(data: Json) -> Snapshot:
    fields = _object(data)
    reported = {}
    for shown, item in _object(fields["reported"]).items():
        outcome_key, result = _pair(item)
        reported[shown] = (_string(outcome_key), decode_file_result(result))
    return Snapshot(
        _string(fields["signature"]),
        {shown: Verdict(_string(value)) for shown, value in _object(fields["verdicts"]).items()},
        reported,
        tuple(decode_fact(fact) for fact in _list(fields["facts"])),
        tuple(_string(key) for key in _list(fields["settled"])),
        _string(fields["state_closure"]),
        tuple((_string(a), _string(b)) for a, b in map(_pair, _list(fields["state"]))),
    )


@dataclass(frozen=True, slots=True)
class EntryKind(Generic[_T]):
    """One kind of cached value, and how it is written as JSON and read back."""

    name: str
    encode: Callable[[_T], Json]
    decode: Callable[[Json], _T]
    per_analysis: bool = False
    """Kept in the larger file, read only when some file must be looked at
    (``Cache``)."""


STAT: EntryKind[tuple[int, int, int, str]] = EntryKind("stat", encode_stat, decode_stat)
"""A file's size, modification time (ns) and inode, and the digest of the
bytes it had then."""
SCAN: EntryKind[Scan] = EntryKind("scan", encode_scan, decode_scan, per_analysis=True)
"""What a file's bytes say of its imports and application state."""
OUTCOMES: EntryKind[list[Outcome]] = EntryKind(
    "outcomes", encode_outcomes, decode_outcomes, per_analysis=True
)
"""A file's analyses, newest first, each with what it asked of the project."""
SNAPSHOT: EntryKind[Snapshot] = EntryKind("snapshot", encode_snapshot, decode_snapshot)
"""The final outcomes of the last run over the project, for the settings."""
RUN_FINDINGS: EntryKind[list[Diagnostic]] = EntryKind("run", encode_diagnostics, decode_diagnostics)
"""The findings of the whole-run checks, keyed by the facts they read."""
FIX_EDITS: EntryKind[dict[tuple[str, Span], tuple[Edit, ...]]] = EntryKind(
    "edits", encode_edits, decode_edits
)
"""The edits of each fixable finding of a file, by code and span (what the
json format shows), keyed by the file's own key."""


# -- the file -----------------------------------------------------------------------


def _header() -> dict[str, Json]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "slotguard": __version__,
        "code": code_fingerprint(),
    }


class _Store:
    """One file of the cache: its entries, read when first needed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, Json] | None = None
        """What the file holds: key → ``[kind, encoded value]``, decoded on use."""
        self.used: dict[str, Json] = {}
        """The entries this run read or wrote, kept first when writing."""
        self.changed = False

    @property
    def entries(self) -> dict[str, Json]:
        if self._entries is None:
            self._entries = _read(self.path)
        return self._entries

    def write(self) -> None:
        """The entries of this run, then older ones (the versions of files a
        branch switch may bring back) up to a bound that grows with the
        project, not with its history: every slow run reads the whole file."""
        entries = dict(self.used)
        bound = min(_MAX_ENTRIES, 2 * len(entries) + _KEPT_OLD_ENTRIES)
        # The file holds the last run's entries first: the most recent go on.
        for entry_key, stored in self.entries.items():
            if len(entries) >= bound:
                break
            entries.setdefault(entry_key, stored)
        import tempfile  # only a run that wrote something needs it

        directory = self.path.parent
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{self.path.stem}-")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                # ``dumps`` uses the C encoder; ``dump`` would not.
                stream.write(json.dumps({**_header(), "entries": entries}, separators=(",", ":")))
            os.replace(temporary, self.path)
            self.changed = False
        except BaseException:
            os.unlink(temporary)
            raise


class Cache:
    """The results cache of a run: two files, so that a run over an unchanged
    project reads only the small one (file statuses and the last run's
    outcomes, ``PROJECT_FILE``), and the entries of each file's analyses
    (``FILE_NAME``) only when a file changed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.hits = 0
        self._stores = {
            False: _Store(directory / PROJECT_FILE),
            True: _Store(directory / FILE_NAME),
        }

    def get(self, kind: EntryKind[_T], entry_key: str) -> _T | None:
        store = self._stores[kind.per_analysis]
        stored = store.entries.get(entry_key)
        if stored is None:
            return None
        try:
            name, data = _pair(stored)
            if name != kind.name:
                raise BadEntry(f"a {name} entry where a {kind.name} was expected")
            value = kind.decode(data)
        except (BadEntry, KeyError, TypeError, ValueError):
            # Written by hand, or by a slotguard that forgot to bump VERSION:
            # analyse again, and let the new entry replace it.
            del store.entries[entry_key]
            return None
        self.hits += 1
        store.used[entry_key] = stored
        return value

    def put(self, kind: EntryKind[_T], entry_key: str, value: _T) -> None:
        try:
            encoded = kind.encode(value)
        except (TypeError, ValueError):
            return  # not plain data: the value is simply not cached
        store = self._stores[kind.per_analysis]
        store.used[entry_key] = [kind.name, encoded]
        store.changed = True

    def save(self) -> None:
        """Write the files this run added to (nothing, when it added nothing)."""
        changed = [store for store in self._stores.values() if store.changed]
        if not changed:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            ignore = self.directory / ".gitignore"
            if not ignore.exists():
                ignore.write_text("# Created by slotguard.\n*\n")
            for store in changed:
                store.write()
        except OSError:
            # A read-only checkout still gets its findings.
            return


def _read(path: Path) -> dict[str, Json]:
    """The entries of a cache file, or none if it is missing, does not parse,
    or was written by another format, version or slotguard."""
    try:
        with open(path, encoding="utf-8") as stream:
            loaded = json.load(stream)
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(loaded, dict):
        return {}
    header = _header()
    if any(loaded.get(name) != value for name, value in header.items()):
        return {}
    entries = loaded.get("entries")
    return entries if isinstance(entries, dict) else {}
