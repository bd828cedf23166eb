"""
## What it does
Adds up the largest size of every pool the checked files create, as far as
the constructor calls tell (SQLAlchemy `pool_size` + `max_overflow`, 5 + 10
by default; asyncpg `max_size`, 10 by default; psycopg_pool `max_size`,
`min_size` when not given), multiplies by the number of worker processes,
and compares the total with what the server allows:
`max-connections - reserved-connections`.

Opt-in, and configured in `pyproject.toml`:

```toml
[tool.slotguard.budget]
max-connections = 100      # the server's max_connections
reserved-connections = 3   # superuser_reserved_connections (default 3)
workers = 4                # processes that each open every pool (default 1)
```

The pools of every module of the run are summed (each module notes its
pools; the sum is made once the whole run is known). Pools in test
fixtures and test functions are left out; pools whose size the call does
not tell (a size from a variable, `max_overflow=-1`, `NullPool`) are not
counted and are listed as such. The message shows the arithmetic, reported
at the largest pool; the code frame gives each pool's size and how it was
read (`pool_size default 5 + max_overflow default 10`), those of other files
and those not counted.

## Why is this bad?
Every pool may grow to its largest size under load, in every worker. When
their sum exceeds the slots the server gives ordinary users, the
connections past the limit fail with `FATAL: remaining connection slots are
reserved for non-replicated superuser connections` (or `too many clients
already`) exactly when the application is busiest, and not in development,
where one worker never fills its pools.

## Example
```python
# 4 workers x (asyncpg max_size 20 + SQLAlchemy 5 + 10) = 140 > 100 - 3
pool = await asyncpg.create_pool(DSN, max_size=20)
engine = create_engine(URL)
```

## Use instead
```python
# 4 workers x (asyncpg max_size 10 + SQLAlchemy 5 + 5) = 80 <= 97
pool = await asyncpg.create_pool(DSN, max_size=10)
engine = create_engine(URL, max_overflow=5)
```

## Fix safety
There is no automatic fix: the budget is shared by pools, workers and the
server's configuration, and only a person can choose which to change.

## At runtime
`tracker.summary()` (from `slotguard.runtime.install()`) gives how many
connections each process holds, per library, for a health endpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import libcst as cst

from slotguard.analysis.infer import FunctionInfo
from slotguard.analysis.ownership import in_a_test
from slotguard.analysis.pools import size_of
from slotguard.diagnostic import Diagnostic, Related
from slotguard.facts import Fact
from slotguard.model.lifecycle import POOL_SIZES
from slotguard.rules.base import Context, Rule
from slotguard.rules.common import code
from slotguard.syntax import dotted_name

_CONSTRUCTOR_NAMES = frozenset(
    name.rsplit(".", 1)[-1] for entry in POOL_SIZES for name in entry.constructors
)

if TYPE_CHECKING:
    from slotguard.settings import Settings
_TOPIC = "pool"
_TERMS_SHOWN = 4
"""Pools whose sizes the first line of the message adds up one by one."""


class PoolBudgetExceeded(Rule):
    code = "SG504"
    name = "pool-budget-exceeded"
    summary = "The pools of all workers together can open more connections than the server allows."
    default = False

    def check(self, context: Context) -> None:
        if context.settings.budget is None:
            return
        module = context.module
        functions: list[FunctionInfo | None] = [None, *module.functions]
        for function in functions:
            if in_a_test(function):
                continue
            scope = function.scope if function is not None else module.module_scope
            for call in scope.of_type(cst.Call):
                assert isinstance(call, cst.Call)
                func = call.func
                last = func.attr.value if isinstance(func, cst.Attribute) else None
                if isinstance(func, cst.Name):
                    last = func.value
                if last not in _CONSTRUCTOR_NAMES:
                    continue
                size = size_of(call, module)
                if size is None or not size.keeps_connections:
                    continue
                shown = dotted_name(func) or code(func)
                context.note(_TOPIC, call, shown, size.connections, size.detail)

    @classmethod
    def check_run(cls, facts: Sequence[Fact], settings: Settings) -> list[Diagnostic]:
        budget = settings.budget
        if budget is None:
            return []
        pools = sorted(
            (fact for fact in facts if fact.topic == _TOPIC),
            key=lambda fact: (fact.path, fact.span.line, fact.span.column),
        )
        counted = [fact for fact in pools if isinstance(fact.value[1], int)]
        uncounted = [fact for fact in pools if not isinstance(fact.value[1], int)]
        per_worker = sum(_connections(fact) for fact in counted)
        total = budget.workers * per_worker
        allowed = budget.max_connections - budget.reserved_connections
        shown = [fact for fact in counted if not fact.suppressed]
        if total <= allowed or not shown:
            return []
        # The largest pool is where a change helps most.
        at = max(shown, key=_connections)
        workers = f"{budget.workers} worker{'s' if budget.workers != 1 else ''}"
        if len(counted) == 1:
            terms = str(per_worker)
        elif len(counted) <= _TERMS_SHOWN:
            terms = "(" + " + ".join(str(_connections(fact)) for fact in counted) + ")"
        else:
            terms = f"{per_worker} per worker"
        message = (
            f"{workers} x {terms} = {total} connections > {allowed} allowed "
            f"(max-connections {budget.max_connections} - reserved {budget.reserved_connections})"
        )
        related = [
            Related(fact.span, _per_worker(fact))
            for fact in counted
            if fact is not at and fact.path == at.path
        ]
        elsewhere = [_term(fact) for fact in counted if fact.path != at.path]
        label = _per_worker(at)
        if elsewhere:
            label += "; also counted: " + ", ".join(elsewhere)
        if uncounted:
            label += "; not counted: " + ", ".join(_uncounted(fact) for fact in uncounted)
        related.insert(0, Related(at.span, label))
        return [Diagnostic(cls.code, cls.name, message, at.path, at.span, related=tuple(related))]


def _per_worker(fact: Fact) -> str:
    """``create_engine: 15 per worker (pool_size default 5 + max_overflow default 10)``."""
    name, connections, detail = fact.value
    return f"{name}: {connections} per worker ({detail})"


def _connections(fact: Fact) -> int:
    value = fact.value[1]
    assert isinstance(value, int)
    return value


def _term(fact: Fact) -> str:
    """``create_engine at app/db.py:7 (pool_size default 5 + max_overflow default 10) = 15``."""
    name, connections, detail = fact.value
    return f"{name} at {fact.path}:{fact.span.line} ({detail}) = {connections}"


def _uncounted(fact: Fact) -> str:
    name, _, detail = fact.value
    return f"{name} at {fact.path}:{fact.span.line} ({detail})"
