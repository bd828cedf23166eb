"""What a rule is: a code, a name, its documentation, and a check over a module.

A rule module's docstring is its user documentation (``slotguard explain``);
its ``check`` is short because the model (``slotguard.model``) and the flow
analysis (``slotguard.flow``) do the heavy lifting.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import libcst as cst

from slotguard.diagnostic import Diagnostic, Fix
from slotguard.facts import Fact

if TYPE_CHECKING:
    from slotguard.analysis.infer import FunctionInfo, ModuleInfo
    from slotguard.fixes.base import Plan
    from slotguard.flow.held import FunctionFlow
    from slotguard.model import Model
    from slotguard.settings import Settings


class Rule:
    """Base class of every rule; subclasses live one per module in ``rules/``."""

    code: ClassVar[str]
    name: ClassVar[str]
    summary: ClassVar[str]
    """One line: what the rule finds."""
    default: ClassVar[bool] = True
    """Runs without configuration; opt-in rules run only when selected."""

    def check(self, context: Context) -> None:
        raise NotImplementedError

    @classmethod
    def check_run(cls, facts: Sequence[Fact], settings: Settings) -> list[Diagnostic]:
        """Findings about the whole run, from the facts the rule noted in each
        module (``Context.note``); most rules have none."""
        return []

    @classmethod
    def documentation(cls) -> str:
        """The rule's user documentation: its module's docstring."""
        module = sys.modules[cls.__module__]
        return inspect.cleandoc(module.__doc__ or cls.summary)


@dataclass(slots=True)
class RawFinding:
    """A finding that still points into the tree; the engine turns it into a
    ``Diagnostic`` once positions are known."""

    rule: type[Rule]
    node: cst.CSTNode
    message: str
    related: tuple[tuple[cst.CSTNode, str], ...]
    fix: Fix | None
    pending: str | None = None
    """Reported only if no module of the run settles this key."""


@dataclass(slots=True)
class RawFact:
    rule: type[Rule]
    topic: str
    value: tuple[object, ...]
    node: cst.CSTNode | None


_LINE_MARK = "\x00line:{}\x00"


class Context:
    """Everything a rule may ask about the module it checks, and ``report``."""

    def __init__(
        self,
        module: ModuleInfo,
        settings: Settings,
        path: str,
        path_object: Path | None = None,
    ) -> None:
        self.module = module
        self.path_object = path_object if path_object is not None else Path(path)
        self.tree = module.tree
        self.model: Model = module.model
        self.settings = settings
        self.path = path
        self.findings: list[RawFinding] = []
        self.plans: dict[int, Plan] = {}
        """Fix plans, by ``id`` of the finding they fix."""
        self.unfixable: dict[int, str] = {}
        """Why a finding whose rule has a fixer could not be fixed."""
        self.facts: list[RawFact] = []
        self.settled: set[str] = set()
        self.marked_nodes: list[cst.CSTNode] = []
        self._rule: type[Rule] | None = None

    def for_rule(self, rule: type[Rule]) -> Context:
        self._rule = rule
        return self

    def line(self, node: cst.CSTNode) -> str:
        """A placeholder for ``node``'s line number, for use inside a message:
        ``f"acquired at line {context.line(node)}"``."""
        self.marked_nodes.append(node)
        return _LINE_MARK.format(len(self.marked_nodes) - 1)

    def report(
        self,
        node: cst.CSTNode,
        message: str,
        *,
        related: Iterable[tuple[cst.CSTNode, str]] = (),
        fix: Fix | None = None,
        pending: str | None = None,
    ) -> None:
        """Report a finding at ``node``. With ``pending``, the finding stands
        only if no module of the run calls ``settle`` with the same key (a
        pool created here may be closed in another module)."""
        assert self._rule is not None, "report() called outside a rule's check"
        self.findings.append(RawFinding(self._rule, node, message, tuple(related), fix, pending))

    def settle(self, key: str) -> None:
        """Withdraw every pending finding of the run that waits on ``key``."""
        self.settled.add(key)

    def note(self, topic: str, node: cst.CSTNode | None, *value: object) -> None:
        """Record a fact for the rule's whole-run check (``Rule.check_run``).
        Without a node the fact has no place (and costs no locating): for
        facts whose rule reads only their value."""
        assert self._rule is not None, "note() called outside a rule's check"
        self.facts.append(RawFact(self._rule, topic, value, node))

    def flow(self, function: FunctionInfo | None) -> FunctionFlow | None:
        """The held-resource analysis of a function (None: the module body),
        computed once and shared by the rules; None if it cannot be built."""
        from slotguard.flow.held import flow_of

        return flow_of(self.module, function)

    @staticmethod
    def resolve_lines(message: str, line_of: Callable[[int], int]) -> str:
        """Replace the line placeholders of a message by line numbers."""
        if "\x00" not in message:
            return message
        parts = message.split("\x00")
        for index in range(1, len(parts), 2):
            kind, _, number = parts[index].partition(":")
            if kind == "line":
                parts[index] = str(line_of(int(number)))
        return "".join(parts)
