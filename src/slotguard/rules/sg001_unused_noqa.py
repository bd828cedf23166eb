"""
## What it does
Reports a `# noqa: SG...` comment (or a `# slotguard: noqa: SG...` file
directive) naming slotguard codes that suppress nothing: no finding of those
codes is reported where the comment applies. Other tools' codes and bare
`# noqa` are left alone.

## Why is this bad?
A suppression outlives the leak it excused: after the code is fixed, the
comment stays, and the next leak on that line is silenced without anyone
deciding to. Removing unused suppressions keeps every remaining one a
deliberate, current decision.

## Example
```python
async def load(pool):
    async with pool.acquire() as conn:  # noqa: SG101
        return await conn.fetch("select 1")
```

## Use instead
```python
async def load(pool):
    async with pool.acquire() as conn:
        return await conn.fetch("select 1")
```

## Notes
Opt-in: select it with `--extend-select SG001`. A code naming only rules that
did not run on the file is not reported, since nothing could have used it.

## Fix safety
There is no automatic fix yet.
"""

from __future__ import annotations

from slotguard.rules.base import Context, Rule


class UnusedNoqa(Rule):
    code = "SG001"
    name = "unused-noqa"
    summary = "A `# noqa` comment names slotguard codes that suppress nothing."
    default = False

    def check(self, context: Context) -> None:
        """Reported by the engine, which sees the findings before and after
        suppression."""
