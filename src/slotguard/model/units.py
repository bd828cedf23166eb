"""Units of work, and how a unit's scoped session is torn down (SG106).

A ``scoped_session`` registry hands every thread (or task, with
``async_scoped_session``) its own session, and keeps it until ``remove()``.
A unit of work that uses the registry and ends without ``remove()`` leaves
its session, and the connection the session checked out, to the next unit
on the same thread: or, for a thread or task that ends, to nobody. These
tables say which functions are units of work, and which hooks remove the
registry at the end of every unit of their kind.
"""

from __future__ import annotations

import enum


class Unit(enum.Enum):
    REQUEST = "request handler"
    MIDDLEWARE = "request middleware"
    TASK = "task"
    JOB = "scheduled job"
    THREAD = "thread"
    COMMAND = "command"
    LOOP = "loop"
    """A function that loops forever (a worker or a CLI loop): each turn is a
    unit, and the loop never ends one."""

    @property
    def torn_down_by_hooks(self) -> bool:
        """Whether the application's teardown hooks run at the end of such a
        unit (a request's teardown, a task's post-run signal)."""
        return self in (Unit.REQUEST, Unit.MIDDLEWARE, Unit.TASK)


UNIT_DECORATORS: dict[str, Unit] = {
    "route": Unit.REQUEST,
    "get": Unit.REQUEST,
    "post": Unit.REQUEST,
    "put": Unit.REQUEST,
    "patch": Unit.REQUEST,
    "delete": Unit.REQUEST,
    "websocket": Unit.REQUEST,
    "api_route": Unit.REQUEST,
    "middleware": Unit.MIDDLEWARE,
    "before_request": Unit.MIDDLEWARE,
    "after_request": Unit.MIDDLEWARE,
    "task": Unit.TASK,
    "shared_task": Unit.TASK,
    "actor": Unit.TASK,
    "periodic_task": Unit.TASK,
    "scheduled_job": Unit.JOB,
    "command": Unit.COMMAND,
}
"""Decorators (by their last name: ``@app.route``, ``@celery.task``,
``@shared_task``, ``@scheduler.scheduled_job``, ``@click.command``) that make
a function a unit of work of some kind."""

UNIT_REGISTRATIONS: dict[str, tuple[Unit, int, str | None]] = {
    "add_job": (Unit.JOB, 0, "func"),
    "Thread": (Unit.THREAD, -1, "target"),
    "Timer": (Unit.THREAD, 1, "function"),
    "submit": (Unit.THREAD, 0, None),
    "add_url_rule": (Unit.REQUEST, 2, "view_func"),
}
"""Calls that register a function as a unit of work (by the call's last
name): the unit's kind, and where the function is passed (a position, -1
for none, and a keyword)."""

TEARDOWN_DECORATORS = frozenset(
    {"teardown_appcontext", "teardown_request", "after_this_request", "on_shutdown"}
)
"""Decorators whose function runs when a request ends (Flask's teardowns):
a ``remove()`` there tears down every request's session."""

TEARDOWN_SIGNALS = frozenset({"task_postrun", "task_failure", "worker_process_shutdown"})
"""Celery signals whose receivers (``@task_postrun.connect``) run when a task
ends."""

TEARDOWN_METHODS = frozenset({"after_return", "on_success", "on_failure", "teardown"})
"""Methods a task base class overrides to run after each task
(``Task.after_return``)."""
