"""Phrases and questions several rules share."""

from __future__ import annotations

import io
import re
import tokenize

import libcst as cst

from slotguard.analysis.infer import FunctionInfo
from slotguard.analysis.lifetimes import last_statement
from slotguard.flow.cfg import EdgeKind, Point, PointKind
from slotguard.flow.held import Leak, LeakKind, Site
from slotguard.flow.leaks import Judged, Verdict, judged_for
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


def subject(site: Site, limit: int = _MAX_CODE) -> str:
    """``conn`` in backquotes, or a description when the result is unnamed."""
    if site.name is not None:
        return f"`{site.name}`"
    return f"the {site.type.kind.value} from `{code(site.node, limit)}`"


def context_manager_form(site: Site) -> str | None:
    """How the acquisition reads as a context manager, or None if its type
    has no context manager that releases it."""
    resource = site.type
    if site.produced.via_project:
        # A project's wrapper: whether it has a context-manager form is its own.
        return None
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


def report_judged(context: Context, code_of_rule: str) -> None:
    """Report the acquisitions the leak verdicts give to ``code_of_rule``
    (``slotguard.flow.leaks``): one finding per acquisition, the deciding
    path in the message, the other leaking paths in ``related``."""
    for verdict in judged_for(context.module, code_of_rule):
        message, related = describe_verdict(context, verdict)
        context.report(verdict.outcome.site.node, message, related=related)


_MAX_OTHER_PATHS = 3


def describe_verdict(
    context: Context, verdict: Judged
) -> tuple[str, list[tuple[cst.CSTNode, str]]]:
    """The message (what leaks, where, at most about 100 characters) and the
    related places of a verdict."""
    site = verdict.outcome.site
    function = verdict.function
    what = subject(site, limit=36)
    form = context_manager_form(site)
    advice = f"use `{form}`" if form else "release it in a `finally`"
    if verdict.verdict is Verdict.BARE:
        if verdict.reclaimed_by_refcount:
            message = f"{what} is left for the garbage collector to close"
            label = (
                f"opened here; close it in a `finally` or {advice}"
                if form
                else ("opened here; close it in a `finally`")
            )
        else:
            message = f"{what} is released by hand, not by a context manager"
            label = f"acquired here; {advice}"
        return message, [(site.node, label)]
    if verdict.verdict is Verdict.NEVER_RELEASED:
        verb = "released" if site.type.kind is Kind.POOLED_CONNECTION else "closed"
        snippet = code(site.node, 40)
        named = f"`{site.name}` from `{snippet}`" if site.name else f"`{snippet}`"
        return f"{named} is never {verb}", [(site.node, f"acquired here; {advice}")]
    deciding, *others = verdict.leaks
    path, node, label = describe_leak(context, deciding, function)
    acquired = f"acquired at line {context.line(site.node)}"
    related: list[tuple[cst.CSTNode, str]] = [
        (site.node, f"acquired here; {advice}"),
        (node, label),
    ]
    seen = {id(node)}
    for leak in others:
        if len(related) > _MAX_OTHER_PATHS + 1:
            break
        _, other, other_label = describe_leak(context, leak, function)
        if id(other) not in seen:
            seen.add(id(other))
            related.append((other, f"also {other_label}"))
    return f"{what} {acquired} is not released {path}", related


def describe_leak(
    context: Context, leak: Leak, function: FunctionInfo
) -> tuple[str, cst.CSTNode, str]:
    """How a leaking path ends a message ("when returning at line 12"), the
    node it leaves at, and that node's label in the code frame."""
    if leak.kind is LeakKind.LOST and leak.at is not None and leak.via is None:
        node = point_node(leak.at, function)
        line = context.line(node)
        return (
            f"before its last reference is overwritten at line {line}",
            node,
            "loses its last reference here",
        )
    if not leak.skipped_by_exception or leak.via is None:
        path, node = exit_description(leak.via, context, function)
        return path, node, "leaves without releasing it"
    node = point_node(leak.via, function)
    line = context.line(node)
    if leak.via_kind is EdgeKind.THROW:
        return f"if the consumer stops at the `yield` on line {line}", node, "suspends here"
    if isinstance(node, cst.Raise):
        return f"when raising at line {line}", node, "raises here"
    if leak.via_kind is EdgeKind.CANCEL:
        return f"if the `await` at line {line} is cancelled", node, "cancellation leaves here"
    return f"if `{code(node, 30)}` at line {line} raises", node, "may raise here"
