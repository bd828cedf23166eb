"""The pytest plugin when things go wrong: its own error, Ctrl-C, warnings made
errors, a bad configuration. None may hide the test's own result behind a
traceback of slotguard's.

The inner runs use SQLite; the plugin's full behaviour against PostgreSQL is
in ``tests/proof/test_runtime_plugin.py``. A run that reports a leak runs
``slotguard check`` on the taking file, which imports the analysis lazily:
such runs are subprocesses, since pytester forgets, after an in-process run,
the modules the run imported, and later tests of this process would then mix
two copies of them. The other runs are in-process (cheap), with every module
they touch imported here first.
"""

from __future__ import annotations

import asyncpg.pool  # noqa: F401
import psycopg  # noqa: F401
import psycopg2.pool  # noqa: F401
import psycopg_pool  # noqa: F401
import pytest
import sqlalchemy.orm  # noqa: F401

import slotguard.config
import slotguard.runtime.tracker  # noqa: F401

pytest_plugins = ["pytester"]

QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:xdist")
"""Plugins an inner run needs not load (in-process, it would import them afresh)."""

LEAKING_TEST = """
from sqlalchemy import create_engine

engine = create_engine("sqlite://")
kept = []


def test_leaks():
    kept.append(engine.connect())
"""


@pytest.fixture(autouse=True)
def quiet_asyncio(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")


def test_an_error_inside_the_plugin_is_a_warning_and_the_test_keeps_its_result(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        """
from slotguard.runtime.pytest_plugin import LeakCheck


def broken(self, leaks, idles):
    raise RuntimeError("boom")


LeakCheck.message = broken
"""
    )
    pytester.makepyfile(test_leaks=LEAKING_TEST)
    pytester.makepyprojecttoml('[tool.slotguard.runtime]\nleaks = "fail"\n')
    result = pytester.runpytest_subprocess(*QUIET)
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        ["*PytestWarning: slotguard: the leak check of this test failed: RuntimeError('boom')"]
    )
    assert "Traceback" not in result.stdout.str()


def test_a_leak_warning_made_an_error_fails_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_leaks=LEAKING_TEST)
    result = pytester.runpytest_subprocess(
        "--slotguard-leaks=warn",
        "-W",
        "error::slotguard.runtime.pytest_plugin.SlotguardLeakWarning",
        *QUIET,
    )
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*slotguard: this test took 1 connection and did not give it*"])


def test_ctrl_c_ends_the_run_without_a_traceback_of_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_interrupted="""
from sqlalchemy import create_engine

engine = create_engine("sqlite://")


def test_interrupted():
    connection = engine.connect()
    raise KeyboardInterrupt
"""
    )
    result = pytester.runpytest_inprocess("--slotguard-leaks=fail", *QUIET, no_reraise_ctrlc=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    output = result.stdout.str()
    assert "KeyboardInterrupt" in output
    assert "slotguard:" not in output and "slotguard/runtime" not in output


def test_a_bad_runtime_table_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml('[tool.slotguard.runtime]\nleaks = "fial"\n')
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = pytester.runpytest_inprocess(*QUIET)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*`runtime.leaks`: must be one of fail, warn, off*`fail`?"])


def test_the_command_line_turns_a_configured_check_off(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml('[tool.slotguard.runtime]\nleaks = "fail"\n')
    pytester.makepyfile(test_leaks=LEAKING_TEST)
    result = pytester.runpytest_inprocess("--slotguard-leaks=off", *QUIET)
    result.assert_outcomes(passed=1)
