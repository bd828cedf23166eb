"""Run proof scenarios under slotguard.runtime and record what the tracker shows.

    python under_tracker.py RECORD SCRIPT [SCRIPT ...] -- SCENARIO-ARGS

runs each scenario program in turn in this process (``runpy``, as
``__main__``), with a tracker watching checkouts and idle transactions, and
writes to RECORD, as JSON, what the tracker held at each of the programs'
checkpoints (see :mod:`proof.observe`): every connection out (with, after
its taking frames, those that created its session, if a session took it), and
every transaction idle at that moment, each with its stack as frames (the shape
:class:`slotguard.runtime.static.StaticCheck` reads). The programs are not
paused: the tracker is the observer here, not the server.

A leaking program and its fixed version share one process (they do not share
module state: ``runpy`` gives each its own globals), which halves the number
of interpreters started; the record says which program each checkpoint
belongs to, and the test looks only at stacks through that program.
"""

from __future__ import annotations

import json
import runpy
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from proof.observe import ScenarioArgs
from slotguard.runtime import Stack, track

IDLE_THRESHOLD = 0.001
"""A wait seen at a checkpoint is there because the program waits: any length is one."""


def frames(stack: Stack) -> list[dict[str, Any]]:
    return [{**asdict(frame), "lines": sorted(frame.lines)} for frame in stack.frames()]


def main() -> None:
    separator = sys.argv.index("--")
    record, *scripts = sys.argv[1:separator]
    arguments = sys.argv[separator + 1 :]
    seen: list[dict[str, Any]] = []
    original = ScenarioArgs.checkpoint
    with track(idle_threshold=IDLE_THRESHOLD) as tracker:
        program = ""

        def checkpoint(self: ScenarioArgs, name: str, **data: Any) -> None:
            held = tracker.checked_out() + tracker.abandoned()
            idle = [i for i in tracker.idle_transactions() if i.ongoing]
            seen.append(
                {
                    "program": program,
                    "checkpoint": name,
                    "held": [
                        {
                            "what": c.what,
                            "frames": frames(c.stack) + (frames(c.created) if c.created else []),
                        }
                        for c in held
                    ],
                    "idle": [{"what": i.library, "frames": frames(i.stack)} for i in idle],
                }
            )
            original(self, name, **data)

        ScenarioArgs.checkpoint = checkpoint  # type: ignore[method-assign]
        try:
            for program in scripts:
                sys.argv = [program, *arguments]
                runpy.run_path(program, run_name="__main__")
        finally:
            ScenarioArgs.checkpoint = original  # type: ignore[method-assign]
            Path(record).write_text(json.dumps(seen))


if __name__ == "__main__":
    main()
