"""From bytes to text: encodings, BOMs and line endings, with clear failures.

Every way a file can fail to become text is reported as a ``SourceError`` with
a reason a person can act on; nothing here raises anything else.
"""

from __future__ import annotations

import codecs
import io
import re
import tokenize
from dataclasses import dataclass


class SourceError(Exception):
    """The file cannot be analysed; the message says why and where."""

    def __init__(self, reason: str, line: int = 1, column: int = 1) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line
        self.column = column


@dataclass(frozen=True, slots=True)
class SourceText:
    """Decoded source, with what is needed to write it back byte for byte."""

    text: str
    encoding: str
    bom: bool
    newline: str

    def encode(self, text: str) -> bytes:
        data = text.encode(self.encoding)
        return codecs.BOM_UTF8 + data if self.bom else data


_NEWLINE = re.compile(r"\r\n|\r|\n")


def decode(data: bytes) -> SourceText:
    """Decode source bytes as Python does (PEP 263), strictly."""
    if b"\x00" in data:
        offset = data.index(b"\x00")
        line, column = _byte_position(data, offset)
        raise SourceError(
            "it contains a NUL byte, so it is not Python source (a binary file?)", line, column
        )
    bom = data.startswith(codecs.BOM_UTF8)
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as error:
        # The tokenizer says "invalid or missing encoding declaration" also
        # when a byte of the first two lines is simply not UTF-8: say which.
        if "missing encoding declaration" in str(error):
            encoding = "utf-8-sig"
        else:
            raise SourceError(f"bad encoding declaration: {error}") from None
    if encoding == "utf-8-sig":
        encoding = "utf-8"
    body = data[len(codecs.BOM_UTF8) :] if bom else data
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as error:
        offset = error.start + (len(codecs.BOM_UTF8) if bom else 0)
        line, column = _byte_position(data, offset)
        hint = "; declare it, as `# coding: latin-1`" if encoding == "utf-8" else ""
        shown = "UTF-8" if encoding == "utf-8" else encoding
        raise SourceError(
            f"not valid {shown}: byte 0x{body[error.start]:02x} at line {line}, "
            f"column {column}{hint}",
            line,
            column,
        ) from None
    match = _NEWLINE.search(text)
    newline = match.group(0) if match else "\n"
    return SourceText(text=text, encoding=encoding, bom=bom, newline=newline)


def _byte_position(data: bytes, offset: int) -> tuple[int, int]:
    line_start = data.rfind(b"\n", 0, offset) + 1
    return data.count(b"\n", 0, offset) + 1, offset - line_start + 1
