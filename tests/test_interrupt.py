"""Ctrl-C during a parallel run: the workers stop, the run exits 130 with one
line and no traceback, every time, wherever the interrupt lands.

No timing is asserted but a generous bound on the exit: the machine may be
busy, and a hang is what this test is for.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SLOTGUARD = Path(sys.executable).with_name("slotguard")
TRIES = 20
HANG = 60.0
"""Seconds after which an interrupted run counts as hung."""

MODULE = """\
import asyncpg


async def load_{number}(pool: asyncpg.Pool, key):
    conn = await pool.acquire()
    if key is None:
        return None
    try:
        return await conn.fetchrow("select $1", key)
    finally:
        await pool.release(conn)
"""


def _gone(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def interruptible() -> Iterator[None]:
    """Children that take Ctrl-C. A shell starts a background job with
    SIGINT ignored, and an ignored signal stays ignored across ``exec``:
    slotguard run from such a job rightly ignores Ctrl-C, which is not what
    this test is about. A handled one is reset to the default in the child."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if previous is signal.SIG_IGN:
            signal.signal(signal.SIGINT, previous)


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups are POSIX")
@pytest.mark.usefixtures("interruptible")
def test_ctrl_c_stops_a_parallel_run_every_time(tmp_path: Path) -> None:
    (tmp_path / "slotguard.toml").write_text("")
    for number in range(400):
        (tmp_path / f"module_{number:03}.py").write_text(MODULE.format(number=number))
    command = [str(SLOTGUARD), "check", "--no-cache", "-j", "2", "-q", "."]
    start = time.monotonic()
    subprocess.run(command, cwd=tmp_path, capture_output=True, check=False, timeout=300)
    duration = time.monotonic() - start
    seed = random.randrange(1 << 30)
    chosen = random.Random(seed)
    interrupted = 0
    # The first run's duration bounds the delays; a run that ends before its
    # signal bounds them again (the machine may have been busier then).
    upper = max(0.3, duration * 0.9)
    for attempt in range(TRIES):
        # Ctrl-C signals the whole foreground process group: the workers too.
        run = subprocess.Popen(
            command,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        # After the interpreter has started (before, SIGINT simply kills it).
        started = time.monotonic()
        delay = chosen.uniform(0.25, upper)
        while run.poll() is None and time.monotonic() - started < delay:
            time.sleep(0.01)
        if run.poll() is not None:
            upper = max(0.3, (time.monotonic() - started) * 0.9)
        with_signal = f"attempt {attempt}, SIGINT after {delay:.2f} s (seed {seed})"
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGINT)
        try:
            _, stderr = run.communicate(timeout=HANG)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            run.communicate()
            pytest.fail(f"hung: {with_signal}")
        assert "Traceback" not in stderr, f"{with_signal}:\n{stderr}"
        if run.returncode in (1, -signal.SIGINT) and not stderr:
            # Finished before the signal came, or was on its way out (the
            # interpreter gives SIGINT back its default action as it ends,
            # which a shell also shows as 130): later signals come sooner.
            upper = max(0.3, min(upper, delay * 0.9))
            continue
        assert run.returncode == 130, f"{with_signal}: exit {run.returncode}\n{stderr}"
        assert stderr == "slotguard: interrupted\n", with_signal
        interrupted += 1
        deadline = time.monotonic() + HANG
        while not _gone(run.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(run.pid), f"workers left running: {with_signal}"
    assert interrupted >= TRIES // 2, f"most runs ended before their signal (seed {seed})"
