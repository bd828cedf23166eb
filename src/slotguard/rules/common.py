"""Phrases and questions several rules share."""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Callable, Iterator

import libcst as cst

from slotguard.analysis.infer import FunctionInfo, ModuleInfo
from slotguard.analysis.lifetimes import last_statement
from slotguard.flow.cfg import Point, PointKind
from slotguard.flow.held import FunctionFlow, Leak, Site
from slotguard.model import Model
from slotguard.model.catalog import BUILTIN, RECLAIMING_HARNESSES
from slotguard.model.vocabulary import Kind
from slotguard.rules.base import Context

_EMPTY = cst.Module([])
_MAX_CODE = 60


def code(node: cst.CSTNode, limit: int = _MAX_CODE) -> str:
    """Source text of a node on one line, shortened for a message. Comments
    of a node written over several lines are left out, and the spaces its
    line breaks leave inside brackets are closed up."""
    source = _EMPTY.code_for_node(node)
    if "\n" in source:
        source = _BRACKET_SPACE.sub(r"\1\2", " ".join(_without_comments(source).split()))
    text = " ".join(source.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


_BRACKET_SPACE = re.compile(r"([(\[{]) | ([)\]}])")


def _without_comments(source: str) -> str:
    if "#" not in source:
        return source
    lines = source.splitlines(keepends=True)
    try:
        comments = [
            token.start
            for token in tokenize.generate_tokens(io.StringIO(source).readline)
            if token.type == tokenize.COMMENT
        ]
    except (tokenize.TokenError, SyntaxError):
        return source
    for row, column in comments:
        line = lines[row - 1]
        ending = line[len(line.rstrip("\r\n")) :]
        lines[row - 1] = line[:column] + ending
    return "".join(lines)


def flows(context: Context) -> Iterator[FunctionFlow]:
    """The held-resource analysis of every function that acquires something."""
    for function in context.module.functions:
        flow = context.flow(function)
        if flow is not None:
            yield flow


def in_a_test(function: FunctionInfo | None) -> bool:
    """Whether the function is a test (``test*``) or nested in one: what it
    creates ends with the test."""
    while function is not None:
        if function.name.startswith("test"):
            return True
        function = function.parent
    return False


def reclaimed_elsewhere(context: Context, site: Site) -> bool:
    """Whether something outside the function's own code owns what the site
    acquires, so leaving it open is not a leak of this function's:

    - the module is part of the library that defines the resource type
      (``sqlalchemy.orm.session`` handling sessions, ``asyncpg.pool`` handling
      pooled connections): code that implements a resource is judged by its
      own internal bookkeeping, which is not the public API the model knows
      (SPEC section 1);
    - the module runs under a test harness that takes back every resource of
      that kind after each test (``RECLAIMING_HARNESSES``).
    """
    return site.type.kind in reclaimed_kinds(context.module)


def reclaimed_kinds(module: ModuleInfo) -> frozenset[Kind]:
    """The kinds of resource something outside the module's own code takes
    back (see ``reclaimed_elsewhere``)."""
    return module.cached("reclaimed-kinds", lambda: _reclaimed_kinds(module))


# Only the libraries of the built-in table: a wrapper the configuration adds
# lives in the user's own package, which is exactly the code to check.
_BUILT_IN_LIBRARIES = Model(BUILTIN).libraries()


def _reclaimed_kinds(module: ModuleInfo) -> frozenset[Kind]:
    name = module.module_name
    if name is not None and name.split(".", 1)[0] in _BUILT_IN_LIBRARIES:
        return frozenset(Kind)
    imported = module.imports.qualified_names()
    kinds: set[Kind] = set()
    for harness, reclaimed in RECLAIMING_HARNESSES:
        prefix = harness + "."
        if any(q == harness or q.startswith(prefix) for q in imported):
            kinds |= reclaimed
    return frozenset(kinds)


def builds_a_context_manager(function: FunctionInfo) -> bool:
    """Code that a context manager, a dependency provider or a pool is made of:
    it acquires by hand because it *is* the managed form (SPEC section 1)."""
    if function.is_context_manager or function.lends_what_it_yields or function.is_fixture:
        return True
    if function.is_generator and function.yielded_type() is not None:
        return True
    if function.cls is not None:
        methods = set(function.cls.methods)
        if methods & {"__exit__", "__aexit__", "release", "putconn", "close", "aclose"}:
            return True
    return False


def subject(site: Site) -> str:
    """``conn`` in backquotes, or a description when the result is unnamed."""
    if site.name is not None:
        return f"`{site.name}`"
    return f"the {site.type.kind.value} from `{code(site.node)}`"


def context_manager_form(site: Site) -> str | None:
    """How the acquisition reads as a context manager, or None if its type
    has no context manager that releases it."""
    resource = site.type
    if not resource.with_releases:
        # A separate context-manager factory, such as a configured wrapper's.
        if resource.context_manager_form:
            target = f" as {site.name}" if site.name else ""
            return resource.context_manager_form + target
        return None
    produced = site.produced
    call = produced.call
    method = produced.method
    if method is not None and method.context_manager and isinstance(call.func, cst.Attribute):
        renamed = call.func.with_changes(attr=cst.Name(method.context_manager))
        call = call.with_changes(func=renamed)
    keep_await = resource.kind is Kind.CONNECTION and isinstance(produced.expression, cst.Await)
    expression: cst.BaseExpression = cst.Await(call) if keep_await else call
    prefix = "async with" if resource.is_async else "with"
    target = f" as {site.name}" if site.name else ""
    entered = code(expression)
    if resource.closing_form:
        entered = f"contextlib.closing({entered})"
    return f"{prefix} {entered}{target}"


def exit_description(
    point: Point | None, context: Context, function: FunctionInfo
) -> tuple[str, cst.CSTNode]:
    """How a normal exit reads in a message, and the node to point at."""
    if point is None:
        last = last_statement(function.node.body)
        return f"when `{function.name}` ends at line {context.line(last)}", last
    node = point_node(point, function)
    kind = point.kind
    if kind is PointKind.STATEMENT and isinstance(node, cst.Return):
        return f"when returning at line {context.line(node)}", node
    if kind is PointKind.STATEMENT and isinstance(node, cst.Break):
        return f"when breaking out of the loop at line {context.line(node)}", node
    if kind is PointKind.STATEMENT and isinstance(node, cst.Continue):
        return f"when continuing the loop at line {context.line(node)}", node
    return f"on the path through line {context.line(node)}", node


def point_node(point: Point, function: FunctionInfo) -> cst.CSTNode:
    """A node to show for a point (points without one fall back to the function)."""
    node = point.node
    if node is None or isinstance(node, cst.Finally):
        return function.node.name
    return node


def report_leaks(
    context: Context,
    wanted: Callable[[Leak], bool],
    describe: Callable[[Leak, FunctionInfo], tuple[str, cst.CSTNode, str] | None],
) -> None:
    """Report, once per acquisition, the first leak ``wanted`` selects, for
    acquisitions that some path does release or hand off (SG2's scope).

    ``describe`` gives the end of the message ("when returning at line 12"),
    the node where it leaks, and that node's label in the code frame.
    """
    for flow in flows(context):
        for outcome in flow.outcomes:
            if not outcome.managed or reclaimed_elsewhere(context, outcome.site):
                continue
            for leak in outcome.leaks:
                if not wanted(leak):
                    continue
                described = describe(leak, flow.function)
                if described is None:
                    continue
                path, node, label = described
                site = outcome.site
                acquired = f"acquired at line {context.line(site.node)}"
                context.report(
                    site.node,
                    f"{subject(site)} {acquired} is not released {path}",
                    related=[(site.node, f"{subject(site)} acquired here"), (node, label)],
                )
                break
