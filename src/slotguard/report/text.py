"""The ``full`` and ``concise`` text formats.

``concise`` is one line per finding. ``full`` adds a code frame that marks
the finding and its related places (where the resource was acquired, where it
leaks) and a line saying whether ``slotguard fix`` can fix it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from slotguard.diagnostic import Diagnostic, Span

SourceLines = Callable[[str], Sequence[str] | None]

_GAP = 3
"""Lines between two marked places printed in full; a longer gap is elided."""


def concise_line(diagnostic: Diagnostic) -> str:
    return (
        f"{diagnostic.path}:{diagnostic.line}:{diagnostic.column}: "
        f"{diagnostic.code} {diagnostic.message}"
    )


def format_concise(diagnostics: Iterable[Diagnostic], sources: SourceLines) -> str:
    return "".join(concise_line(d) + "\n" for d in diagnostics)


def format_full(diagnostics: Iterable[Diagnostic], sources: SourceLines) -> str:
    blocks = []
    for diagnostic in diagnostics:
        lines = sources(diagnostic.path)
        block = [concise_line(diagnostic)]
        if lines and diagnostic.code != "SG000":
            block.extend(_frame(diagnostic, lines))
        block.append(f"  = {fix_line(diagnostic)}")
        blocks.append("\n".join(block) + "\n")
    return "\n".join(blocks)


def fix_line(diagnostic: Diagnostic) -> str:
    if diagnostic.fix is None:
        return "fix: none available"
    return f"fix ({diagnostic.fix.applicability.value}): {diagnostic.fix.message}"


def _frame(diagnostic: Diagnostic, lines: Sequence[str]) -> list[str]:
    marks: dict[int, list[tuple[Span, str]]] = {}
    primary_label = diagnostic.code
    for related in diagnostic.related:
        if related.path not in (None, diagnostic.path):
            continue  # another file's lines are not in this frame
        if related.span == diagnostic.span:
            primary_label = f"{diagnostic.code}: {related.message}"
        else:
            marks.setdefault(related.span.line, []).append((related.span, related.message))
    marks.setdefault(diagnostic.span.line, []).insert(0, (diagnostic.span, primary_label))
    shown = sorted(line for line in marks if 1 <= line <= len(lines))
    if not shown:
        return []
    width = len(str(shown[-1]))
    gutter = " " * width + " |"
    out = [gutter]
    previous = None
    for line in shown:
        if previous is not None:
            if line - previous - 1 <= _GAP:
                for between in range(previous + 1, line):
                    out.append(_source_row(between, lines, width))
            else:
                out.append(" " * width + " :")
        out.append(_source_row(line, lines, width))
        for span, label in marks[line]:
            out.append(_marker_row(span, lines[line - 1], label, width))
        previous = line
    out.append(gutter)
    return out


def _source_row(line: int, lines: Sequence[str], width: int) -> str:
    text = lines[line - 1].rstrip("\r\n").expandtabs(4)
    return f"{line:>{width}} | {text}".rstrip()


def _marker_row(span: Span, text: str, label: str, width: int) -> str:
    prefix = text[: span.column - 1].expandtabs(4)
    start = len(prefix)
    if span.end_line == span.line:
        length = max(1, len(text[: span.end_column - 1].expandtabs(4)) - start)
    else:
        # The span goes on below: mark the rest of this line's code.
        end = _code_end(text, span.column - 1)
        length = max(1, len(text[:end].expandtabs(4)) - start)
    return f"{' ' * width} | {' ' * start}{'^' * length} {label}"


def _code_end(text: str, start: int) -> int:
    """Where the code of a source line ends, from ``start``: before a
    trailing comment and the spaces before it. Strings are skipped, so a
    ``#`` inside one is not taken for a comment; a string still open at the
    end of the line (triple-quoted) runs to the end."""
    position = start
    quote = ""
    while position < len(text):
        char = text[position]
        if quote:
            if char == "\\":
                position += 1
            elif text.startswith(quote, position):
                position += len(quote) - 1
                quote = ""
        elif char in "'\"":
            quote = char * 3 if text.startswith(char * 3, position) else char
            position += len(quote) - 1
        elif char == "#":
            break
        position += 1
    return len(text[:position].rstrip())
