"""slotguard's pytest plugin: a test that ends with connections it took still
checked out fails (or warns), naming the line that took each one.

Off until asked for: ``--slotguard-leaks=fail|warn|off`` on the command line,
or ``leaks = "fail"`` in ``[tool.slotguard.runtime]`` (with ``depth``, the
frames shown per stack, and ``idle-threshold``, the seconds a transaction may
idle between statements before the test is told). Off, the plugin registers
its option and its marker and nothing else: no database library is imported,
no hook is installed, no test is wrapped.

On, a :class:`~slotguard.runtime.tracker.Tracker` runs for the whole session
and every checkout records who was running: the test (its setup, call and
teardown, function-scoped fixtures included), or the wider-scoped fixture
being set up (module, class, package, session), whose connections are not any
test's. After each test's teardown, what the test took and did not give back
turns its teardown report into a failure (``ERROR at teardown``) or a warning
(``SlotguardLeakWarning``), with the taking stack and, when ``slotguard check``
reports one of its lines, the rule and its message. The marker
``@pytest.mark.slotguard_leaks("warn")`` (or ``"fail"``, ``"off"``) changes the
verdict for one test.

Under pytest-xdist each worker checks its own tests; the controller runs none
and tracks nothing. An error inside the plugin becomes a warning, never a
traceback in place of the test's result.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest

if TYPE_CHECKING:
    from collections.abc import Generator

    from slotguard.runtime.stack import Stack
    from slotguard.runtime.static import StaticCheck
    from slotguard.runtime.tracker import Checkout, IdleTransaction, Tracker

MODES = ("fail", "warn", "off")
MARKER = "slotguard_leaks"
PLUGIN_NAME = "slotguard-leak-check"


class SlotguardLeakWarning(pytest.PytestWarning):
    """A test ended with connections it took still checked out (``--slotguard-leaks=warn``)."""


class Settings(NamedTuple):
    leaks: str = "off"
    depth: int | None = None
    idle_threshold: float | None = None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("slotguard", "slotguard: database connection leaks")
    group.addoption(
        "--slotguard-leaks",
        choices=MODES,
        default=None,
        dest="slotguard_leaks",
        help="fail (or warn about) each test that ends with database connections it took "
        "still checked out; default: [tool.slotguard.runtime] leaks, else off",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(mode): how slotguard's leak check treats this test: 'fail', 'warn' or 'off'",
    )
    settings = _settings(config)
    if settings.leaks == "off" or _is_xdist_controller(config):
        return
    config.pluginmanager.register(LeakCheck(config, settings), PLUGIN_NAME)


def pytest_unconfigure(config: pytest.Config) -> None:
    check = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if isinstance(check, LeakCheck):
        check.close()
        config.pluginmanager.unregister(check, PLUGIN_NAME)


def _settings(config: pytest.Config) -> Settings:
    """The command line's mode, else the configuration's; the configuration is
    read (and validated) only when it has a ``runtime`` table."""
    option = config.getoption("slotguard_leaks")
    if option == "off":
        return Settings()
    found = _configuration_file(Path(config.rootpath))
    if found is None:
        return Settings(leaks=option or "off")
    from slotguard.config import ConfigError, load

    try:
        runtime = load(found).runtime
    except ConfigError as error:
        raise pytest.UsageError(f"slotguard: {error}") from None
    return Settings(
        leaks=option or runtime.leaks, depth=runtime.depth, idle_threshold=runtime.idle_threshold
    )


def _configuration_file(start: Path) -> Path | None:
    """The file ``slotguard.config.discover`` would pick, if it has a runtime table.

    Looked for by bytes, without importing ``slotguard.config`` (which loads the
    resource model), so that a session with the plugin off pays nothing.
    """
    for directory in (start, *start.parents):
        for name, needs_table in (("slotguard.toml", False), ("pyproject.toml", True)):
            try:
                data = (directory / name).read_bytes()
            except OSError:
                continue
            if needs_table and b"tool.slotguard" not in data:
                continue
            return directory / name if b"runtime" in data else None
    return None


def _is_xdist_controller(config: pytest.Config) -> bool:
    """With ``-n``, the controller only distributes; its workers run the tests."""
    if hasattr(config, "workerinput"):
        return False
    return bool(getattr(config.option, "numprocesses", None)) and (
        getattr(config.option, "dist", "no") != "no"
    )


class LeakCheck:
    """The plugin's working half, registered only when the check is on."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        from slotguard.runtime.stack import DEFAULT_DEPTH
        from slotguard.runtime.tracker import Tracker

        self.mode = settings.leaks
        self.root = str(config.rootpath)
        self.idle_threshold = settings.idle_threshold
        self.tracker: Tracker = Tracker(
            depth=settings.depth or DEFAULT_DEPTH, idle_threshold=settings.idle_threshold
        ).start()
        self._static: StaticCheck | None = None

    def close(self) -> None:
        self.tracker.stop()

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, Any, None]:
        self.tracker.owner = item.nodeid
        try:
            yield
        finally:
            self.tracker.owner = None

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef: Any) -> Generator[None, Any, None]:
        if fixturedef.scope == "function":
            yield
            return
        previous = self.tracker.owner
        self.tracker.owner = f"fixture {fixturedef.argname} ({fixturedef.scope} scope)"
        try:
            yield
        finally:
            self.tracker.owner = previous

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, Any, None]:
        outcome = yield
        if call.when != "teardown":
            return
        try:
            report = outcome.get_result()
            self._judge(item, report)
        except Exception as error:
            _say(item, f"slotguard: the leak check of this test failed: {error!r}")

    def _judge(self, item: pytest.Item, report: pytest.TestReport) -> None:
        owner = item.nodeid
        leaks = self.tracker.checked_out(owner=owner) + self.tracker.abandoned(owner=owner)
        idles = [i for i in self.tracker.idle_transactions(owner=owner) if not i.ongoing]
        self.tracker.forget(owner)
        mode = _mode(item, self.mode)
        if mode == "off" or not (leaks or idles):
            return
        message = self.message(leaks, idles)
        if mode == "warn":
            try:
                item.warn(SlotguardLeakWarning(message))
                return
            except SlotguardLeakWarning:  # -W error: the warning is an error, so fail
                pass
        if report.passed:
            report.outcome = "failed"
            report.longrepr = message
        else:
            report.sections.append(("slotguard: connections not given back", message))

    def message(self, leaks: list[Checkout], idles: list[IdleTransaction]) -> str:
        parts: list[str] = []
        if leaks:
            count = "1 connection" if len(leaks) == 1 else f"{len(leaks)} connections"
            parts.append(f"slotguard: this test took {count} and did not give it back")
            parts.extend(self._leak(number, leak) for number, leak in enumerate(leaks, 1))
        if idles:
            count = "1 transaction" if len(idles) == 1 else f"{len(idles)} transactions"
            parts.append(
                f"slotguard: this test kept {count} idle longer than {self.idle_threshold:g} s"
            )
            parts.extend(self._idle(number, idle) for number, idle in enumerate(idles, 1))
        return "\n\n".join(parts)

    def _leak(self, number: int, leak: Checkout) -> str:
        frame = leak.taken_at
        where = frame.location(self.root) if frame is not None else "an unknown place"
        created = leak.created.taken_at if leak.created is not None else None
        if created is not None:
            where += f" by a session created at {created.location(self.root)}"
        state = f"held {leak.held_for:.2f} s"
        if leak.lost:
            state += (
                ", garbage-collected without being returned: its pool counts it as out for good"
            )
        elif leak.abandoned:
            state += ", never given back: closed only when its pool was terminated"
        lines = [
            f"{number}. {leak.what} taken at {where} ({state})",
            *self._static_lines(leak.stack, leak.created),
            "   Stack of the code that took it (most recent call last):",
            leak.stack.format(self.root, indent="     "),
        ]
        if leak.created is not None:
            lines.append("   Stack that created the session (most recent call last):")
            lines.append(leak.created.format(self.root, indent="     "))
        return "\n".join(lines)

    def _idle(self, number: int, idle: IdleTransaction) -> str:
        frame = idle.at
        where = frame.location(self.root) if frame is not None else "an unknown place"
        return "\n".join(
            [
                f"{number}. {idle.library} transaction idle for {idle.idle_for:.2f} s, "
                f"until the statement at {where}",
                *self._static_lines(idle.stack),
                "   Stack of the statement that ended the wait (most recent call last):",
                idle.stack.format(self.root, indent="     "),
            ]
        )

    def _static_lines(self, stack: Stack, created: Stack | None = None) -> list[str]:
        """What ``slotguard check`` reports on the stacks (the session's creation after
        the statement that took the connection)."""
        if self._static is None:
            from slotguard.runtime.static import StaticCheck

            self._static = StaticCheck()
        frames = stack.frames() + (created.frames() if created is not None else ())
        lines = []
        for finding in self._static.findings(frames):
            path = Path(finding.filename)
            where = f"{_relative(path, self.root)}:{finding.line}"
            lines.append(
                f"   slotguard check reports {finding.code} {finding.relation} "
                f"({where}): {finding.message}"
            )
        return lines


def _mode(item: pytest.Item, default: str) -> str:
    marker = item.get_closest_marker(MARKER)
    if marker is None or not marker.args:
        return default
    mode = marker.args[0]
    if mode not in MODES:
        _say(
            item, f"slotguard: @pytest.mark.{MARKER} takes one of {', '.join(MODES)}, not {mode!r}"
        )
        return default
    return str(mode)


def _relative(path: Path, root: str) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _say(item: pytest.Item, message: str) -> None:
    """A warning about the plugin itself, which must not hide the test's result."""
    with contextlib.suppress(Exception):  # -W error: nowhere left to say it
        item.warn(pytest.PytestWarning(message))
