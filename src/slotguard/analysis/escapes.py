"""What an expression's value holds on to: the names that escape with it.

``return conn``, ``self.conn = conn`` and ``items.append((conn, 1))`` all hand
``conn`` to something that outlives the statement; ``conn.fetch()`` and
``helper(conn)`` (whose results are data) do not. The held-resource analysis
reads hand-offs this way, and so do the pool and lifetime analyses.
"""

from __future__ import annotations

import libcst as cst

from slotguard.model.catalog import HOLDING_METHODS, SELF_RETURNING_METHODS
from slotguard.syntax import is_class_name, last_name


def escaping_leaves(expression: cst.BaseExpression) -> list[cst.BaseExpression]:
    """The sub-expressions whose values the expression's value holds on to.

    ``conn``, ``(conn, 1)``, ``{"c": conn}``, ``Wrapper(conn)``,
    ``a if c else conn`` and ``[c for c in conns]`` hold on to ``conn``; ``conn.fetch()``,
    ``conn.closed`` and ``helper(conn)`` (whose result is data) do not.
    """
    leaves: list[cst.BaseExpression] = []
    stack: list[cst.BaseExpression] = [expression]
    while stack:
        node = stack.pop()
        leaves.append(node)
        if isinstance(node, cst.Tuple | cst.List | cst.Set):
            stack.extend(element.value for element in node.elements)
        elif isinstance(node, cst.Dict):
            for element in node.elements:
                if isinstance(element, cst.DictElement):
                    stack.extend((element.key, element.value))
                else:
                    stack.append(element.value)
        elif isinstance(node, cst.IfExp):
            stack.extend((node.body, node.orelse))
        elif isinstance(node, cst.BooleanOperation):
            stack.extend((node.left, node.right))
        elif isinstance(node, cst.NamedExpr):
            stack.append(node.value)
        elif isinstance(node, cst.ListComp | cst.SetComp | cst.GeneratorExp):
            # The collection keeps every element it is built from.
            stack.append(node.elt)
        elif isinstance(node, cst.DictComp):
            stack.extend((node.key, node.value))
        elif isinstance(node, cst.Call) and is_class_name(last_name(node.func)):
            stack.extend(arg.value for arg in node.args)
        elif (
            isinstance(node, cst.Call)
            and isinstance(node.func, cst.Attribute)
            and node.func.attr.value in SELF_RETURNING_METHODS
        ):
            stack.append(node.func.value)
    return leaves


def escaping(expression: cst.BaseExpression) -> set[str]:
    """Names whose values the expression's value holds on to."""
    return {n.value for n in escaping_leaves(expression) if isinstance(n, cst.Name)}


def handed_over(expression: cst.BaseExpression) -> set[str]:
    """Names a returned or yielded value hands to its receiver: those it holds
    on to (``escaping``), and the objects behind what it holds when that keeps
    them (``return conn.cursor()`` hands ``conn`` over with its cursor)."""
    names = escaping(expression)
    for leaf in escaping_leaves(expression):
        if (
            isinstance(leaf, cst.Call)
            and isinstance(leaf.func, cst.Attribute)
            and leaf.func.attr.value in HOLDING_METHODS
        ):
            names |= escaping(leaf.func.value)
    return names
