"""Which rules run: ``select``, ``extend-select``, ``ignore`` and per-file ignores.

A selector is a code (``SG201``) or a prefix of one (``SG2``, ``SG``). Prefix
selectors include opt-in rules: ``--select SG`` runs everything.
"""

from __future__ import annotations

from collections.abc import Iterable

from slotguard.rules import RuleInfo, rule_index

ANALYSIS_ERROR = "SG000"
"""Always reported: a file that cannot be analysed is never silently skipped."""


class SelectionError(ValueError):
    pass


def all_codes() -> list[str]:
    return [rule.code for rule in rule_index()]


def check_selector(selector: str) -> str:
    """The normalised selector, or a ``SelectionError`` with a suggestion."""
    normalised = selector.strip().upper()
    codes = all_codes()
    if normalised and any(code.startswith(normalised) for code in codes):
        return normalised
    by_name = {rule.name: rule.code for rule in rule_index()}
    if selector.strip().lower() in by_name:
        code = by_name[selector.strip().lower()]
        raise SelectionError(f"`{selector}` is a rule name; did you mean {code}?")
    if not normalised.startswith("SG"):
        # Another linter's code (E501, F401): a close SG code would mislead.
        raise SelectionError(
            f"`{selector}` is not a slotguard rule code: slotguard's codes start with SG "
            "(`slotguard rules` lists them)"
        )
    import difflib  # only for a hint on an error

    close = difflib.get_close_matches(normalised, codes, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else "; `slotguard rules` lists the codes"
    raise SelectionError(f"unknown rule selector `{selector}`{hint}")


def find_rule(text: str) -> RuleInfo | None:
    """The rule a code (any case) or a name stands for."""
    wanted = text.strip()
    for rule in rule_index():
        if rule.code == wanted.upper() or rule.name == wanted.lower():
            return rule
    return None


def split_selectors(values: Iterable[str]) -> list[str]:
    """Selectors from repeated and comma-separated option values."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def matches(code: str, selectors: Iterable[str]) -> bool:
    return any(code.startswith(selector.upper()) for selector in selectors)


def selected_codes(
    select: Iterable[str] | None,
    extend_select: Iterable[str] = (),
    ignore: Iterable[str] = (),
) -> frozenset[str]:
    """The codes that run. Without ``select``, the default rules run."""
    chosen: set[str] = set()
    for rule in rule_index():
        picked = rule.default if select is None else matches(rule.code, select)
        if picked or matches(rule.code, extend_select):
            chosen.add(rule.code)
    chosen = {code for code in chosen if not matches(code, ignore)}
    chosen.add(ANALYSIS_ERROR)
    return frozenset(chosen)
