"""
## What it does
Finds a request-scoped session or connection handed to work that runs after
its scope has ended:

- `background_tasks.add_task(send_email, db)` (positional or keyword
  arguments), Starlette's and Litestar's `BackgroundTask(...)`;
- `asyncio.create_task(work(db))`, `asyncio.ensure_future`,
  `loop.create_task`, `TaskGroup.create_task` and `start_soon` on a task
  group that outlives the resource;
- `loop.run_in_executor(None, work, db)` and `executor.submit(work, db)`
  left running, `threading.Thread(target=work, args=(db,))`,
  `loop.call_soon`/`call_later`;
- a closure, lambda or `functools.partial` that captures the resource and is
  scheduled that way.

A resource is request-scoped when a dependency injects it
(`Depends(get_db)`, `Annotated[Session, Depends(...)]`, a dependency
provider that yields it, Litestar's `dependencies={"db": Provide(...)}`),
when an enclosing `with`/`async with` binds it, or when the function that
acquired it releases it afterwards. A session received as an annotated
parameter is borrowed from the caller, who may close it as soon as the call
returns, so handing it to background work is reported too.

Work that is waited for inside the scope is not reported: `await work(db)`,
`await asyncio.create_task(...)`, `await loop.run_in_executor(...)`, a task
or thread joined later in the scope (`await task`, `asyncio.gather(*tasks)`,
`thread.join()`), or a task group or executor entered inside the scope (its
block waits for its work). Nor is work that receives only IDs, or that opens
its own session.

## Why is this bad?
FastAPI closes a `yield` dependency's session when the request ends, before
its background tasks run; a `with` block closes its session at the end of
the block, while the task or thread it started is still running. The task
then uses a closed session: SQLAlchemy quietly checks a new connection out of
the pool for it, which nobody will return, or the task fails with
"connection is closed", or two tasks use one connection at once. Under load
the pool drains and every request waits.

The message says where the resource's scope ends and where it escapes.

## Example
```python
@router.post("/users")
def create_user(payload: UserIn, tasks: BackgroundTasks, db: Session = Depends(get_db)):
    user = save_user(db, payload)
    tasks.add_task(send_welcome_email, db, user.id)
    return user
```

## Use instead
```python
def send_welcome_email(user_id: int) -> None:
    with SessionLocal() as db:
        ...


@router.post("/users")
def create_user(payload: UserIn, tasks: BackgroundTasks, db: Session = Depends(get_db)):
    user = save_user(db, payload)
    tasks.add_task(send_welcome_email, user.id)
    return user
```

## Fix safety
There is no automatic fix: the work has to be changed to open its own
session.

## At runtime
`pytest --slotguard-leaks=fail` fails the test whose background work is left
holding the connection; the session's creation stack names the request that
handed it over.
"""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from slotguard.analysis import lifetimes
from slotguard.analysis.infer import FunctionInfo, ModuleInfo, Origin
from slotguard.analysis.lifetimes import Held, Resources, Scheduler, is_local, module_resources
from slotguard.model.vocabulary import Kind
from slotguard.rules.base import Context, Rule
from slotguard.rules.common import code
from slotguard.rules.sg301_stored_on_long_lived_object import scope_end
from slotguard.syntax import dotted_name, is_class_name, walk

Passed = tuple[str, str | None, str | None]
"""A name the work receives: (name, the method of it the work calls, the
closure that captures it)."""


class PassedToBackgroundWork(Rule):
    code = "SG302"
    name = "passed-to-background-work"
    summary = "A request-scoped session or connection is handed to work that outlives its scope."

    def check(self, context: Context) -> None:
        module = context.module
        resources = module_resources(module)
        for function in module.functions:
            # The scope lists an ``await`` before the call it awaits.
            awaited: set[int] = set()
            for node in function.scope.of_type(cst.Await, cst.Call):
                if isinstance(node, cst.Await):
                    awaited.add(id(node.expression))
                    continue
                if not isinstance(node, cst.Call):
                    continue
                scheduler = _scheduler(module, node)
                if scheduler is None:
                    continue
                if scheduler.joined_when_awaited and id(node) in awaited:
                    continue
                self._check_call(context, resources, function, node, scheduler)

    def _check_call(
        self,
        context: Context,
        resources: Resources,
        function: FunctionInfo,
        call: cst.Call,
        scheduler: Scheduler,
    ) -> None:
        for name, method, closure in _work_names(resources.module, function, call, scheduler):
            held = resources.held_by(function, name)
            if held is None or (method is not None and method in held.type.release_methods):
                continue
            if not _outlives(resources, held, function, call, scheduler):
                continue
            scope, related = scope_end(resources, held, context, call)
            how = f"`{held.name}`"
            if closure == "lambda":
                how = f"a lambda using `{held.name}`"
            elif closure:
                how = f"`{closure}`, which uses `{held.name}`,"
            when = (
                "it runs after the response is sent"
                if scheduler.after_response
                else "it can still be running then"
            )
            noun = "session" if held.type.kind is Kind.SESSION else "connection"
            advice = f"pass the IDs the work needs and let it open its own {noun}"
            if held.origin is not Origin.INJECTED:
                advice = "wait for the work inside the scope, or " + advice
            context.report(
                call,
                f"`{code(call.func, 24)}` hands {how} to {scheduler.runs} ({scope})",
                related=[*related, (call, f"escapes here: {when}; {advice}")],
            )
            return


def _scheduler(module: ModuleInfo, call: cst.Call) -> Scheduler | None:
    callee = dotted_name(call.func)
    qualified = module.qualify(callee) if callee else None
    if qualified is not None:
        found = lifetimes.scheduler_for_function(qualified)
        if found is not None:
            return found
    if isinstance(call.func, cst.Attribute):
        return lifetimes.scheduler_for_method(call.func.attr.value)
    return None


def _work_names(
    module: ModuleInfo, function: FunctionInfo, call: cst.Call, scheduler: Scheduler
) -> Iterator[Passed]:
    """The names the scheduled work receives or captures."""
    position = 0
    for arg in call.args:
        if arg.keyword is not None:
            is_work = arg.keyword.value in lifetimes.WORK_KEYWORDS
        else:
            is_work = not arg.star and position == scheduler.work_index
            position += 1
        yield from _passed(module, function, arg.value, is_work=is_work)


def _passed(
    module: ModuleInfo, function: FunctionInfo, expression: cst.BaseExpression, *, is_work: bool
) -> Iterator[Passed]:
    """Names whose values ``expression`` hands to the work.

    The work itself (``is_work``: the coroutine, the callable) runs later, so
    a method of the resource it calls (``db.commit``) and every argument of
    the call that builds it (``work(db)``, ``partial(work, db)``) go with it.
    Elsewhere, what is evaluated now and passed on as data (``db.info``,
    ``make_payload(db)``) keeps nothing; names, containers of them and
    objects that wrap them (``Repository(db)``) do.
    """
    if isinstance(expression, cst.Name):
        closure = _nested_function(module, function, expression.value)
        if closure is not None:
            for name in _free_names(closure):
                yield name, None, closure.name
        else:
            yield expression.value, None, None
    elif isinstance(expression, cst.Lambda):
        params = {p.name.value for p in expression.params.params}
        for name in _used(expression.body) - params:
            yield name, None, "lambda"
    elif isinstance(expression, cst.Tuple | cst.List | cst.Set):
        for element in expression.elements:
            yield from _passed(module, function, element.value, is_work=False)
    elif isinstance(expression, cst.Dict):
        for item in expression.elements:
            yield from _passed(module, function, item.value, is_work=False)
    elif isinstance(expression, cst.Attribute) and is_work:
        if isinstance(expression.value, cst.Name):
            yield expression.value.value, expression.attr.value, None
        else:
            # A method of an object built here: ``Mailer(db).send``.
            yield from _passed(module, function, expression.value, is_work=False)
    elif isinstance(expression, cst.Call):
        func = expression.func
        last = func.attr.value if isinstance(func, cst.Attribute) else dotted_name(func) or ""
        builds_work = is_work or last == "partial"
        if not builds_work and not is_class_name(last.rsplit(".", 1)[-1]):
            return
        if is_work:
            yield from _passed(module, function, func, is_work=True)
        for arg in expression.args:
            yield from _passed(module, function, arg.value, is_work=False)


def _nested_function(module: ModuleInfo, function: FunctionInfo, name: str) -> FunctionInfo | None:
    """A function defined inside ``function`` (or an enclosing one) under ``name``."""
    outer: FunctionInfo | None = function
    while outer is not None:
        for candidate in module.functions:
            if candidate.parent is outer and candidate.name == name:
                return candidate
        outer = outer.parent
    return None


def _free_names(closure: FunctionInfo) -> set[str]:
    """Names a nested function uses from its enclosing scopes."""
    return {name for name in _used(closure.node.body) if not is_local(closure, name)}


def _used(body: cst.CSTNode) -> set[str]:
    """Names code uses as themselves (``work(db)``) or calls a method of
    (``db.commit()``); reading a plain attribute (``session.info``) does not
    touch the connection, and an attribute's or keyword's own name
    (``x.session``, ``f(session=1)``) names nothing in scope."""
    ignored: set[int] = set()
    for node in walk(body):
        if isinstance(node, cst.Attribute):
            ignored.add(id(node.attr))
            if isinstance(node.value, cst.Name):
                ignored.add(id(node.value))
        elif isinstance(node, cst.Arg) and node.keyword is not None:
            ignored.add(id(node.keyword))
    for node in walk(body):
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
            ignored.discard(id(node.func.value))
    return {n.value for n in walk(body) if isinstance(n, cst.Name) and id(n) not in ignored}


# -- does the work outlive the scope? ------------------------------------------


def _outlives(
    resources: Resources,
    held: Held,
    function: FunctionInfo,
    call: cst.Call,
    scheduler: Scheduler,
) -> bool:
    """Whether the work scheduled by ``call`` can still run after the scope
    of ``held`` has ended."""
    entered_after: list[cst.WithItem] = []
    if held.origin is Origin.ENTERED:
        assert held.block is not None
        region: cst.CSTNode = held.block.body
        if not any(node is call for node in walk(region)):
            return False
        # ``with Session() as s, Executor() as e:`` exits ``e`` before ``s``.
        items = list(held.block.items)
        position = next((i for i, item in enumerate(items) if item is held.node), len(items))
        entered_after = items[position + 1 :]
    else:
        region = function.node.body
    if held.origin is Origin.ACQUIRED and resources.release_of(held, after=call) is None:
        # Nothing here releases it: the work takes it over.
        return False
    if scheduler.joined_by_its_block and _receiver_entered_in(call, region, entered_after):
        return False
    handles = _handles(function, call)
    if held.origin is Origin.PARAMETER and _returned(function, call, handles):
        # The caller, who owns the resource, gets the task to wait for.
        return False
    return not (handles and _joined(resources.module, region, handles))


def _receiver_entered_in(call: cst.Call, region: cst.CSTNode, also: list[cst.WithItem]) -> bool:
    """``tg.create_task(...)`` where ``tg`` is bound by a ``with`` inside the
    region (or by one of ``also``): that block waits for the work before the
    region ends."""
    if not isinstance(call.func, cst.Attribute) or not isinstance(call.func.value, cst.Name):
        return False
    receiver = call.func.value.value
    for node in [*also, *walk(region)]:
        if (
            isinstance(node, cst.WithItem)
            and node.asname is not None
            and isinstance(node.asname.name, cst.Name)
            and node.asname.name.value == receiver
        ):
            return True
    return False


def _handles(function: FunctionInfo, call: cst.Call) -> set[str]:
    """Names that hold the task, thread or future ``call`` creates:
    ``task = create_task(...)``, ``tasks = [create_task(...) for ...]``,
    ``tasks.append(create_task(...))``."""
    found: set[str] = set()
    for node in function.scope.of_type(cst.Assign, cst.Call):
        if isinstance(node, cst.Assign) and _contains(node.value, call):
            found.update(t.target.value for t in node.targets if isinstance(t.target, cst.Name))
        elif (
            isinstance(node, cst.Call)
            and isinstance(node.func, cst.Attribute)
            and node.func.attr.value in lifetimes.STORING_METHODS
            and isinstance(node.func.value, cst.Name)
            and any(_contains(arg.value, call) for arg in node.args)
        ):
            found.add(node.func.value.value)
    return found


def _returned(function: FunctionInfo, call: cst.Call, handles: set[str]) -> bool:
    """Whether the function returns the task (or the list of tasks) itself."""
    for node in function.scope.of_type(cst.Return):
        if not isinstance(node, cst.Return) or node.value is None:
            continue
        value = node.value
        elements = (
            [e.value for e in value.elements]
            if isinstance(value, cst.Tuple | cst.List)
            else [value]
        )
        for element in elements:
            if element is call or (isinstance(element, cst.Name) and element.value in handles):
                return True
    return False


def _joined(module: ModuleInfo, region: cst.CSTNode, handles: set[str]) -> bool:
    """Whether the region waits for a handle: awaits it, joins it, gathers it
    (also through a loop over a list of handles)."""
    names = set(handles)
    for node in walk(region):
        if isinstance(node, cst.For) and _mentions(node.iter, names):
            names.update(n.value for n in walk(node.target) if isinstance(n, cst.Name))
    for node in walk(region):
        if isinstance(node, cst.Await) and _mentions(node.expression, names):
            return True
        if not isinstance(node, cst.Call):
            continue
        func = node.func
        if (
            isinstance(func, cst.Attribute)
            and func.attr.value in lifetimes.JOIN_METHODS
            and _mentions(func.value, names)
        ):
            return True
        callee = dotted_name(func)
        qualified = module.qualify(callee) if callee else None
        if qualified in lifetimes.JOIN_FUNCTIONS and any(
            _mentions(arg.value, names) for arg in node.args
        ):
            return True
    return False


def _contains(expression: cst.CSTNode, node: cst.CSTNode) -> bool:
    return any(sub is node for sub in walk(expression))


def _mentions(expression: cst.CSTNode, names: set[str]) -> bool:
    return any(isinstance(sub, cst.Name) and sub.value in names for sub in walk(expression))
