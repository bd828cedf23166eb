"""Where source text becomes a libcst tree, without ever crashing the process.

libcst's native parser recurses on the machine stack and kills the process
(SIGSEGV) on deeply nested input: about 3,000 nested calls or 10,000 chained
``and``/``or`` on an 8 MiB stack. So, before libcst sees a file:

1. CPython's own parser (``ast.parse``, about 6% of libcst's parse time)
   checks it. CPython refuses nesting beyond its limits (200 brackets, about
   3,000 levels of expression) with an exception, and libcst survives
   everything below those limits (measured; see ``tests/test_parse.py``).
   The ``ast`` tree of that check is kept (``check_syntax``): the screen
   (``slotguard.screen``) reads it to decide whether libcst is needed at all.
2. CPython keeps ``a and b and c ...`` flat whatever its length, but libcst
   nests it; a file with many boolean operators is parsed on a thread with a
   large stack, and one with absurdly many is refused.
3. A file CPython rejects with an ordinary syntax error may still be valid
   for a newer Python than the one running slotguard; libcst gets to try, in
   a forked child first, so that a crash takes only the child with it.
"""

from __future__ import annotations

import ast
import os
import re
import threading
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from slotguard.source import SourceError

if TYPE_CHECKING:
    import libcst as cst

MAX_BYTES = 8 * 1024 * 1024
_BOOLEAN_OPERATOR = re.compile(r"\b(?:and|or)\b")
_MAIN_THREAD_BOOLEANS = 3_000
_BIG_STACK_BOOLEANS = 60_000
_BIG_STACK = 512 * 1024 * 1024
_TOO_DEEP = "nesting is too deep to analyse"


@dataclass(frozen=True, slots=True)
class Syntax:
    """What CPython's parser made of a text: its tree, or the syntax error
    to report if libcst agrees that the text is broken."""

    tree: ast.Module | None
    error: SourceError | None


def check_syntax(text: str) -> Syntax:
    """CPython's verdict on a text; raises ``SourceError`` if the text is too
    large or too deeply nested for anyone."""
    if len(text) > MAX_BYTES:
        raise SourceError(
            f"it is too large to analyse ({len(text) / 1048576:.1f} MiB; the limit is "
            f"{MAX_BYTES // 1048576} MiB)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Syntax(ast.parse(text), None)
    except (RecursionError, MemoryError):
        raise SourceError(_TOO_DEEP) from None
    except SyntaxError as error:
        if "too many nested" in (error.msg or ""):
            raise SourceError(f"{_TOO_DEEP} ({error.msg})", error.lineno or 1) from None
        reason = f"syntax error: {error.msg}"
        return Syntax(None, SourceError(reason, error.lineno or 1, max(1, error.offset or 1)))
    except ValueError as error:
        return Syntax(None, SourceError(str(error)))


def parse(text: str) -> cst.Module:
    """Parse a module, or raise ``SourceError`` saying why it cannot be."""
    return parse_checked(text, check_syntax(text).error)


def parse_checked(text: str, cpython_error: SourceError | None) -> cst.Module:
    """``parse`` for a text ``check_syntax`` has seen: ``cpython_error`` is its
    error (None when CPython accepts the text)."""
    booleans = len(_BOOLEAN_OPERATOR.findall(text))
    if booleans > _BIG_STACK_BOOLEANS:
        raise SourceError(f"{_TOO_DEEP} ({booleans} boolean operators)")
    if cpython_error is not None and not _survives_libcst(text):
        raise cpython_error
    if booleans > _MAIN_THREAD_BOOLEANS:
        return _on_big_stack(text, cpython_error)
    return _libcst_parse(text, cpython_error)


def _libcst_parse(text: str, cpython_error: SourceError | None) -> cst.Module:
    import libcst as cst

    try:
        return cst.parse_module(text)
    except cst.ParserSyntaxError as error:
        if cpython_error is not None:
            raise cpython_error from None
        raise SourceError(
            f"syntax error: {error.message}", error.raw_line, error.raw_column + 1
        ) from None
    except RecursionError:
        raise SourceError(_TOO_DEEP) from None
    except Exception as error:
        # libcst's own limits (``CSTLogicError`` on syntax it does not know yet).
        reason = f"libcst cannot parse it ({type(error).__name__}: {error})"
        raise SourceError(cpython_error.reason if cpython_error else reason) from None


def _on_big_stack(text: str, cpython_error: SourceError | None) -> cst.Module:
    outcome: list[cst.Module | SourceError] = []

    def run() -> None:
        try:
            outcome.append(_libcst_parse(text, cpython_error))
        except SourceError as error:
            outcome.append(error)

    previous = threading.stack_size(_BIG_STACK)
    try:
        worker = threading.Thread(target=run, name="slotguard-parse", daemon=True)
        worker.start()
    finally:
        threading.stack_size(previous)
    worker.join()
    result = outcome[0]
    if isinstance(result, SourceError):
        raise result
    return result


def _survives_libcst(text: str) -> bool:
    """Whether libcst can parse the text without crashing: tried in a forked
    child where the platform allows it."""
    if not hasattr(os, "fork"):
        return True
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            import libcst as cst

            threading.stack_size(_BIG_STACK)
            cst.parse_module(text)
        except BaseException:
            pass
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status)
