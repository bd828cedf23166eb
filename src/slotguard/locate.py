"""Line and column of the nodes a finding points at, computed only when needed.

libcst's ``PositionProvider`` records a range for every node of the tree and
costs more than parsing. Findings are rare, so slotguard regenerates the code
once per file that has findings and records ranges only for the nodes asked
for (and the child nodes their ranges are defined by).
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Iterator
from contextlib import contextmanager

import libcst as cst
from libcst._nodes.internal import CodegenState

from slotguard.diagnostic import Span


class _RecordingState(CodegenState):
    """Codegen that tracks the character offset and remembers wanted ranges."""

    def __init__(self, module: cst.Module, wanted: Collection[cst.CSTNode]) -> None:
        super().__init__(
            default_indent=module.default_indent, default_newline=module.default_newline
        )
        self.offset = 0
        self.wanted = {id(node) for node in wanted}
        self.ranges: dict[int, tuple[int, int]] = {}
        self.starts: dict[int, int] = {}

    def add_token(self, value: str) -> None:
        self.tokens.append(value)
        self.offset += len(value)

    def add_indent_tokens(self) -> None:
        for token in self.indent_tokens:
            self.add_token(token)

    def pop_trailing_newline(self) -> None:
        if self.tokens:
            self.offset -= len(self.tokens.pop())

    def before_codegen(self, node: cst.CSTNode) -> None:
        if id(node) in self.wanted:
            self.starts[id(node)] = self.offset

    def after_codegen(self, node: cst.CSTNode) -> None:
        key = id(node)
        if key in self.wanted and key not in self.ranges:
            self.ranges[key] = (self.starts.get(key, self.offset), self.offset)

    @contextmanager
    def record_syntactic_position(
        self,
        node: cst.CSTNode,
        *,
        start_node: cst.CSTNode | None = None,
        end_node: cst.CSTNode | None = None,
    ) -> Iterator[None]:
        key = id(node)
        if key not in self.wanted:
            yield
            return
        for helper in (start_node, end_node):
            if helper is not None:
                self.wanted.add(id(helper))
        start = self.offset
        yield
        end = self.offset
        if start_node is not None and id(start_node) in self.ranges:
            start = self.ranges[id(start_node)][0]
        if end_node is not None and id(end_node) in self.ranges:
            end = self.ranges[id(end_node)][1]
        # The syntactic range wins over the whitespace-inclusive one.
        self.ranges[key] = (start, end)


class Locator:
    """Spans (1-based lines and columns) of chosen nodes of one module."""

    def __init__(self, module: cst.Module, nodes: Collection[cst.CSTNode]) -> None:
        state = _RecordingState(module, nodes)
        module._codegen(state)
        code = "".join(state.tokens)
        self._line_starts = starts = [0]
        find = code.find
        index = find("\n")
        while index != -1:
            starts.append(index + 1)
            index = find("\n", index + 1)
        self._ranges = state.ranges
        self.code = code

    def span(self, node: cst.CSTNode) -> Span:
        start, end = self._ranges.get(id(node), (0, 0))
        line, column = self._position(start)
        end_line, end_column = self._position(end)
        return Span(line, column, end_line, end_column)

    def line(self, node: cst.CSTNode) -> int:
        return self.span(node).line

    def _position(self, offset: int) -> tuple[int, int]:
        index = bisect.bisect_right(self._line_starts, offset) - 1
        return index + 1, offset - self._line_starts[index] + 1
