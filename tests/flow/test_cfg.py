"""The control-flow graph, construct by construct.

Each test builds the graph of a small function and states its edges, as
``"<source> -[<kind>]-> <target>"`` (see ``cfg_testing.name`` for how points
are named). Where several copies of a ``finally`` body or ``with`` exit share a
label, ``has_chain`` follows one of them edge by edge.
"""

from __future__ import annotations

import libcst as cst
import pytest
from cfg_testing import edges, graph_of, has_chain, names, parse, problems

from slotguard.flow.cfg import Graph, GraphTooLarge, PointKind, build


def well_formed(source: str) -> Graph:
    graph = graph_of(source)
    assert problems(graph) == []
    return graph


# -- branches and loops ------------------------------------------------------


def test_if_elif_else() -> None:
    graph = well_formed(
        """
        def f(x):
            if x > 0:
                a()
            elif x < 0:
                b()
            else:
                c()
            d()
        """
    )
    assert edges(graph) == {
        "entry -[normal]-> test x > 0",
        "test x > 0 -[true]-> a()",
        "test x > 0 -[false]-> test x < 0",
        "test x < 0 -[true]-> b()",
        "test x < 0 -[false]-> c()",
        "a() -[raise]-> raise-exit",
        "a() -[normal]-> d()",
        "b() -[raise]-> raise-exit",
        "b() -[normal]-> d()",
        "c() -[raise]-> raise-exit",
        "c() -[normal]-> d()",
        "d() -[raise]-> raise-exit",
        "d() -[normal]-> exit",
    }


def test_if_without_else_falls_through_on_false() -> None:
    graph = well_formed(
        """
        def f(x):
            if check(x):
                a()
        """
    )
    assert edges(graph) == {
        "entry -[normal]-> test check(x)",
        "test check(x) -[raise]-> raise-exit",
        "test check(x) -[true]-> a()",
        "test check(x) -[false]-> exit",
        "a() -[raise]-> raise-exit",
        "a() -[normal]-> exit",
    }


def test_long_elif_chain_does_not_exhaust_the_stack() -> None:
    """Regression: each ``elif`` used to cost a Python stack frame, so a
    chain of about a thousand (valid Python, found in generated dispatchers)
    raised RecursionError."""
    branches = 3_000
    source = "def f(x):\n    if x == 0:\n        a()\n" + "".join(
        f"    elif x == {i}:\n        a()\n" for i in range(1, branches)
    )
    graph = build(cst.parse_module(source).body[0])
    assert problems(graph) == []
    assert sum(point.kind is PointKind.BRANCH for point in graph.points) == branches
    assert "test x == 2999 -[false]-> exit" in edges(graph)


def test_while_with_else_break_and_continue() -> None:
    graph = well_formed(
        """
        def f():
            while more():
                if skip():
                    continue
                if done():
                    break
                step()
            else:
                exhausted()
            after()
        """
    )
    assert edges(graph) == {
        "entry -[normal]-> test more()",
        "test more() -[raise]-> raise-exit",
        "test more() -[true]-> test skip()",
        "test more() -[false]-> exhausted()",
        "test skip() -[raise]-> raise-exit",
        "test skip() -[true]-> continue",
        "test skip() -[false]-> test done()",
        "continue -[continue]-> test more()",
        "test done() -[raise]-> raise-exit",
        "test done() -[true]-> break",
        "test done() -[false]-> step()",
        "break -[break]-> after()",
        "step() -[raise]-> raise-exit",
        "step() -[normal]-> test more()",
        "exhausted() -[raise]-> raise-exit",
        "exhausted() -[normal]-> after()",
        "after() -[raise]-> raise-exit",
        "after() -[normal]-> exit",
    }


@pytest.mark.parametrize("test", ["True", "1"])
def test_while_true_has_no_false_edge(test: str) -> None:
    graph = well_formed(
        f"""
        def f():
            while {test}:
                if poll():
                    break
            else:
                never()
            after()
        """
    )
    assert edges(graph) == {
        f"entry -[normal]-> test {test}",
        f"test {test} -[true]-> test poll()",
        "test poll() -[raise]-> raise-exit",
        "test poll() -[true]-> break",
        f"test poll() -[false]-> test {test}",
        "break -[break]-> after()",
        "after() -[raise]-> raise-exit",
        "after() -[normal]-> exit",
    }
    assert "never()" not in names(graph)


def test_while_true_without_break_never_reaches_what_follows() -> None:
    graph = well_formed(
        """
        def f():
            while True:
                serve()
            unreachable()
        """
    )
    assert edges(graph) == {
        "entry -[normal]-> test True",
        "test True -[true]-> serve()",
        "serve() -[raise]-> raise-exit",
        "serve() -[normal]-> test True",
    }
    assert graph.exit.predecessors == []


def test_for_with_else_break_and_continue() -> None:
    graph = well_formed(
        """
        def f(items):
            for item in items:
                if skip(item):
                    continue
                if stop(item):
                    break
                use(item)
            else:
                exhausted()
            after()
        """
    )
    assert edges(graph) == {
        "entry -[normal]-> eval items",
        "eval items -[normal]-> for item in ...",
        "for item in ... -[raise]-> raise-exit",
        "for item in ... -[true]-> test skip(item)",
        "for item in ... -[false]-> exhausted()",
        "test skip(item) -[raise]-> raise-exit",
        "test skip(item) -[true]-> continue",
        "test skip(item) -[false]-> test stop(item)",
        "continue -[continue]-> for item in ...",
        "test stop(item) -[raise]-> raise-exit",
        "test stop(item) -[true]-> break",
        "test stop(item) -[false]-> use(item)",
        "break -[break]-> after()",
        "use(item) -[raise]-> raise-exit",
        "use(item) -[normal]-> for item in ...",
        "exhausted() -[raise]-> raise-exit",
        "exhausted() -[normal]-> after()",
        "after() -[raise]-> raise-exit",
        "after() -[normal]-> exit",
    }


def test_async_for_can_be_cancelled_at_each_step() -> None:
    graph = well_formed(
        """
        async def f(rows):
            async for row in rows:
                if row:
                    break
            else:
                exhausted()
        """
    )
    assert edges(graph) == {
        "entry -[normal]-> eval rows",
        "eval rows -[normal]-> for row in ...",
        "for row in ... -[raise]-> raise-exit",
        "for row in ... -[cancel]-> raise-exit",
        "for row in ... -[true]-> test row",
        "for row in ... -[false]-> exhausted()",
        "test row -[true]-> break",
        "test row -[false]-> for row in ...",
        "break -[break]-> exit",
        "exhausted() -[raise]-> raise-exit",
        "exhausted() -[normal]-> exit",
    }


def test_plain_for_is_not_cancelled() -> None:
    graph = well_formed(
        """
        def f(rows):
            for row in rows:
                pass
        """
    )
    assert "for row in ... -[raise]-> raise-exit" in edges(graph)
    assert "for row in ... -[cancel]-> raise-exit" not in edges(graph)


# -- with ----------------------------------------------------------------------


def test_with_several_items_exits_them_in_reverse_order() -> None:
    graph = well_formed(
        """
        def f():
            with a() as x, b() as y:
                body()
            after()
        """
    )
    assert edges(graph) == {
        "entry -[normal]-> enter a() as x",
        # Nothing is entered yet when the first item fails.
        "enter a() as x -[raise]-> raise-exit",
        "enter a() as x -[normal]-> enter b() as y",
        # The second item failing exits only the first.
        "enter b() as y -[raise]-> exit a() as x",
        "enter b() as y -[normal]-> body()",
        "body() -[raise]-> exit b() as y",
        "body() -[normal]-> exit b() as y",
        "exit b() as y -[raise]-> exit a() as x",
        "exit b() as y -[normal]-> exit a() as x",
        "exit b() as y -[normal]-> resume",
        "resume -[raise]-> exit a() as x",
        "exit a() as x -[raise]-> raise-exit",
        "exit a() as x -[normal]-> after()",
        "exit a() as x -[normal]-> resume",
        "resume -[raise]-> raise-exit",
        "after() -[raise]-> raise-exit",
        "after() -[normal]-> exit",
    }
    assert has_chain(
        graph,
        "enter b() as y -[normal]-> body()",
        "body() -[normal]-> exit b() as y",
        "exit b() as y -[normal]-> exit a() as x",
        "exit a() as x -[normal]-> after()",
    )
    # An exception in the body exits both items, then goes on.
    assert has_chain(
        graph,
        "body() -[raise]-> exit b() as y",
        "exit b() as y -[normal]-> resume",
        "resume -[raise]-> exit a() as x",
        "exit a() as x -[normal]-> resume",
        "resume -[raise]-> raise-exit",
    )
    assert not has_chain(
        graph, "body() -[raise]-> exit b() as y", "exit b() as y -[normal]-> exit a() as x"
    )


def test_async_with_can_be_cancelled_entering_and_exiting() -> None:
    graph = well_formed(
        """
        async def f():
            async with a() as x, b() as y:
                pass
        """
    )
    assert edges(graph) == {
        "entry -[normal]-> enter a() as x",
        "enter a() as x -[raise]-> raise-exit",
        "enter a() as x -[cancel]-> raise-exit",
        "enter a() as x -[normal]-> enter b() as y",
        "enter b() as y -[raise]-> exit a() as x",
        "enter b() as y -[cancel]-> exit a() as x",
        "enter b() as y -[normal]-> pass",
        "pass -[normal]-> exit b() as y",
        "exit b() as y -[raise]-> exit a() as x",
        "exit b() as y -[cancel]-> exit a() as x",
        "exit b() as y -[normal]-> exit a() as x",
        "exit a() as x -[raise]-> raise-exit",
        "exit a() as x -[cancel]-> raise-exit",
        "exit a() as x -[normal]-> exit",
        # The copies of ``a``'s exit that the failures of ``b`` lead to.
        "exit a() as x -[normal]-> resume",
        "resume -[raise]-> raise-exit",
        "resume -[cancel]-> raise-exit",
    }
    # A cancellation stays a cancellation through the exit.
    assert has_chain(
        graph,
        "enter b() as y -[cancel]-> exit a() as x",
        "exit a() as x -[normal]-> resume",
        "resume -[cancel]-> raise-exit",
    )
    assert not has_chain(
        graph,
        "enter b() as y -[cancel]-> exit a() as x",
        "exit a() as x -[normal]-> resume",
        "resume -[raise]-> raise-exit",
    )


def test_jumps_out_of_with_exit_it_first() -> None:
    graph = well_formed(
        """
        def f(items):
            for item in items:
                with lock:
                    if item:
                        break
                    return item
            after()
        """
    )
    assert has_chain(
        graph,
        "break -[break]-> exit lock",
        "exit lock -[normal]-> resume",
        "resume -[break]-> after()",
    )
    assert has_chain(
        graph,
        "return item -[return]-> exit lock",
        "exit lock -[normal]-> resume",
        "resume -[return]-> exit",
    )
    assert "break -[break]-> after()" not in edges(graph)
    assert "return item -[return]-> exit" not in edges(graph)


@pytest.mark.parametrize(
    ("imports", "manager"),
    [
        ("import contextlib", "contextlib.suppress(FileNotFoundError)"),
        ("from contextlib import suppress", "suppress(FileNotFoundError)"),
    ],
)
def test_suppress_carries_on_after_an_exception(imports: str, manager: str) -> None:
    graph = well_formed(
        f"""
        {imports}
        def f(path):
            with {manager}:
                remove(path)
            after()
        """
    )
    assert edges(graph) == {
        f"entry -[normal]-> enter {manager}",
        f"enter {manager} -[raise]-> raise-exit",
        f"enter {manager} -[normal]-> remove(path)",
        f"remove(path) -[raise]-> exit {manager}",
        f"remove(path) -[normal]-> exit {manager}",
        f"exit {manager} -[raise]-> raise-exit",
        f"exit {manager} -[normal]-> after()",
        # What it does not suppress goes on.
        f"exit {manager} -[normal]-> resume",
        "resume -[raise]-> raise-exit",
        "after() -[raise]-> raise-exit",
        "after() -[normal]-> exit",
    }
    assert has_chain(
        graph, f"remove(path) -[raise]-> exit {manager}", f"exit {manager} -[normal]-> after()"
    )


def test_other_context_managers_do_not_suppress() -> None:
    graph = well_formed(
        """
        def f(path):
            with open(path) as handle:
                read(handle)
            after()
        """
    )
    assert not has_chain(
        graph,
        "read(handle) -[raise]-> exit open(path) as handle",
        "exit open(path) -[normal]-> after()",
    )
    assert has_chain(
        graph,
        "read(handle) -[raise]-> exit open(path) as handle",
        "exit open(path) as handle -[normal]-> resume",
        "resume -[raise]-> raise-exit",
    )


# -- try -----------------------------------------------------------------------


def test_try_except_else_finally() -> None:
    graph = well_formed(
        """
        def f():
            try:
                body()
            except ValueError:
                handle()
            else:
                otherwise()
            finally:
                cleanup()
            after()
        """
    )
    assert edges(graph) == {
        "entry -[normal]-> body()",
        "body() -[raise]-> except ValueError",
        # ``except ValueError`` may not match: on to the finally body.
        "body() -[raise]-> finally",
        "body() -[normal]-> otherwise()",
        "except ValueError -[normal]-> handle()",
        "handle() -[raise]-> finally",
        "handle() -[normal]-> finally",
        # The else clause is not protected by the handlers.
        "otherwise() -[raise]-> finally",
        "otherwise() -[normal]-> finally",
        "finally -[normal]-> cleanup()",
        "cleanup() -[raise]-> raise-exit",
        "cleanup() -[normal]-> resume",
        "resume -[raise]-> raise-exit",
        "cleanup() -[normal]-> after()",
        "after() -[raise]-> raise-exit",
        "after() -[normal]-> exit",
    }
    assert sum(point.kind is PointKind.FINALLY for point in graph.points) == 2
    assert has_chain(
        graph,
        "otherwise() -[normal]-> finally",
        "finally -[normal]-> cleanup()",
        "cleanup() -[normal]-> after()",
    )
    assert has_chain(
        graph,
        "handle() -[raise]-> finally",
        "finally -[normal]-> cleanup()",
        "cleanup() -[normal]-> resume",
        "resume -[raise]-> raise-exit",
    )
    # Each copy goes on as it was entered.
    assert not has_chain(
        graph,
        "otherwise() -[normal]-> finally",
        "finally -[normal]-> cleanup()",
        "cleanup() -[normal]-> resume",
    )
    assert not has_chain(
        graph,
        "handle() -[raise]-> finally",
        "finally -[normal]-> cleanup()",
        "cleanup() -[normal]-> after()",
    )


def test_handlers_are_tried_in_order_until_one_surely_matches() -> None:
    graph = well_formed(
        """
        def f():
            try:
                body()
            except KeyError:
                missing()
            except Exception:
                failed()
            except ValueError:
                shadowed()
        """
    )
    assert edges(graph) == {
        "entry -[normal]-> body()",
        "body() -[raise]-> except KeyError",
        "body() -[raise]-> except Exception",
        "body() -[normal]-> exit",
        "except KeyError -[normal]-> missing()",
        "missing() -[raise]-> raise-exit",
        "missing() -[normal]-> exit",
        "except Exception -[normal]-> failed()",
        "failed() -[raise]-> raise-exit",
        "failed() -[normal]-> exit",
    }
    assert "except ValueError" not in names(graph)


def test_try_whose_body_cannot_raise_has_no_edges_into_its_handlers() -> None:
    graph = well_formed(
        """
        def f():
            try:
                x = 1
            except ValueError:
                handle()
            return x
        """
    )
    assert edges(graph) == {
        "entry -[normal]-> x = 1",
        "x = 1 -[normal]-> return x",
        "return x -[return]-> exit",
    }
    assert names(graph) == ["entry", "exit", "raise-exit", "x = 1", "return x"]


def test_except_star() -> None:
    graph = well_formed(
        """
        def f():
            try:
                body()
            except* ValueError:
                first()
            except* TypeError:
                second()
            after()
        """
    )
    assert edges(graph) == {
        "entry -[normal]-> body()",
        "body() -[raise]-> except* ValueError",
        "body() -[raise]-> except* TypeError",
        "body() -[raise]-> raise-exit",
        "body() -[normal]-> after()",
        "except* ValueError -[normal]-> first()",
        "first() -[raise]-> raise-exit",
        "first() -[normal]-> after()",
        # The rest of the group goes on to the later clauses, and what no
        # clause matches is raised after the last one.
        "first() -[normal]-> resume",
        "resume -[raise]-> except* TypeError",
        "resume -[raise]-> raise-exit",
        "except* TypeError -[normal]-> second()",
        "second() -[raise]-> raise-exit",
        "second() -[normal]-> after()",
        "second() -[normal]-> resume",
        "after() -[raise]-> raise-exit",
        "after() -[normal]-> exit",
    }
    assert has_chain(
        graph,
        "first() -[normal]-> resume",
        "resume -[raise]-> except* TypeError",
        "except* TypeError -[normal]-> second()",
        "second() -[normal]-> after()",
    )


def test_except_star_exception_leaves_cancellation_to_later_clauses() -> None:
    graph = well_formed(
        """
        async def f():
            try:
                await body()
            except* Exception:
                failed()
            except* asyncio.CancelledError:
                cancelled()
        """
    )
    found = edges(graph)
    assert "await body() -[raise]-> except* Exception" in found
    assert "await body() -[cancel]-> except* asyncio.CancelledError" in found
    assert "await body() -[cancel]-> except* Exception" not in found
    # Both clauses surely match their category: nothing else leaves.
    assert "await body() -[raise]-> raise-exit" not in found
    assert "await body() -[cancel]-> raise-exit" not in found
    # ``except* Exception`` leaves no Exception in the rest of the group.
    assert "resume" not in names(graph)


# -- return, break and continue through finally --------------------------------


def test_return_inside_try_goes_through_a_finally_copy() -> None:
    graph = well_formed(
        """
        def f():
            try:
                return value()
            finally:
                cleanup()
        """
    )
    assert edges(graph) == {
        "entry -[normal]-> return value()",
        "return value() -[raise]-> finally",
        "return value() -[return]-> finally",
        "finally -[normal]-> cleanup()",
        "cleanup() -[raise]-> raise-exit",
        "cleanup() -[normal]-> resume",
        "resume -[raise]-> raise-exit",
        "resume -[return]-> exit",
    }
    assert has_chain(
        graph,
        "return value() -[return]-> finally",
        "finally -[normal]-> cleanup()",
        "cleanup() -[normal]-> resume",
        "resume -[return]-> exit",
    )
    assert not has_chain(
        graph,
        "return value() -[return]-> finally",
        "finally -[normal]-> cleanup()",
        "cleanup() -[normal]-> resume",
        "resume -[raise]-> raise-exit",
    )


def test_return_goes_through_nested_finally_bodies_in_order() -> None:
    graph = well_formed(
        """
        def f():
            try:
                try:
                    return value
                finally:
                    inner()
            finally:
                outer()
        """
    )
    assert has_chain(
        graph,
        "return value -[return]-> finally",
        "finally -[normal]-> inner()",
        "inner() -[normal]-> resume",
        "resume -[return]-> finally",
        "finally -[normal]-> outer()",
        "outer() -[normal]-> resume",
        "resume -[return]-> exit",
    )
    assert not has_chain(graph, "return value -[return]-> finally", "finally -[normal]-> outer()")
    # An exception in the inner finally body still runs the outer one.
    assert has_chain(
        graph,
        "inner() -[raise]-> finally",
        "finally -[normal]-> outer()",
        "outer() -[normal]-> resume",
        "resume -[raise]-> raise-exit",
    )


def test_break_goes_through_nested_finally_bodies_and_with_exits() -> None:
    graph = well_formed(
        """
        def f(items):
            for item in items:
                try:
                    with lock:
                        break
                finally:
                    cleanup()
            after()
        """
    )
    assert has_chain(
        graph,
        "break -[break]-> exit lock",
        "exit lock -[normal]-> resume",
        "resume -[break]-> finally",
        "finally -[normal]-> cleanup()",
        "cleanup() -[normal]-> resume",
        "resume -[break]-> after()",
    )


def test_return_in_finally_swallows_the_exception() -> None:
    graph = well_formed(
        """
        def f():
            try:
                body()
            finally:
                return fallback
        """
    )
    assert edges(graph) == {
        "entry -[normal]-> body()",
        "body() -[raise]-> finally",
        "body() -[normal]-> finally",
        "finally -[normal]-> return fallback",
        "return fallback -[return]-> exit",
    }
    assert graph.raise_exit.predecessors == []


def test_break_and_continue_in_finally_swallow_what_led_there() -> None:
    graph = well_formed(
        """
        def f(items):
            for item in items:
                try:
                    if item:
                        return item
                    work(item)
                finally:
                    if last(item):
                        break
                    continue
            after()
        """
    )
    found = edges(graph)
    assert "continue -[continue]-> for item in ..." in found
    assert "break -[break]-> after()" in found
    # Neither the exception of work() nor the return gets past the finally body.
    assert "resume" not in names(graph)
    assert not any(edge.endswith("-> exit") and not edge.startswith("after()") for edge in found)
    assert has_chain(
        graph,
        "work(item) -[raise]-> finally",
        "finally -[normal]-> test last(item)",
        "test last(item) -[false]-> continue",
        "continue -[continue]-> for item in ...",
    )
    assert has_chain(
        graph,
        "return item -[return]-> finally",
        "finally -[normal]-> test last(item)",
        "test last(item) -[true]-> break",
        "break -[break]-> after()",
    )


# -- raise, assert -------------------------------------------------------------


def test_bare_raise_reraises_what_the_handler_catches() -> None:
    graph = well_formed(
        """
        async def f():
            try:
                try:
                    await work()
                except Exception:
                    raise
                try:
                    await work()
                except BaseException:
                    raise
            except asyncio.CancelledError:
                cancelled()
        """
    )
    assert has_chain(graph, "except Exception -[normal]-> raise", "raise -[raise]-> raise-exit")
    assert not has_chain(
        graph,
        "except Exception -[normal]-> raise",
        "raise -[raise]-> except asyncio.CancelledError",
    )
    assert not has_chain(
        graph,
        "except Exception -[normal]-> raise",
        "raise -[cancel]-> except asyncio.CancelledError",
    )
    # What ``except BaseException`` caught may be a cancellation.
    assert has_chain(
        graph,
        "except BaseException -[normal]-> raise",
        "raise -[cancel]-> except asyncio.CancelledError",
    )
    assert has_chain(graph, "except BaseException -[normal]-> raise", "raise -[raise]-> raise-exit")


def test_bare_raise_in_a_finally_body_reraises_what_entered_it() -> None:
    """Regression: a bare ``raise`` in the copy of a ``finally`` body entered
    by a cancellation re-raises the cancellation, not an ``Exception``."""
    graph = well_formed(
        """
        async def f():
            try:
                try:
                    await work()
                finally:
                    raise
            except Exception:
                failed()
        """
    )
    assert has_chain(
        graph,
        "await work() -[cancel]-> finally",
        "finally -[normal]-> raise",
        "raise -[cancel]-> raise-exit",
    )
    assert not has_chain(
        graph,
        "await work() -[cancel]-> finally",
        "finally -[normal]-> raise",
        "raise -[raise]-> except Exception",
    )
    # Entered normally, there is no exception to re-raise: RuntimeError.
    assert has_chain(
        graph,
        "await work() -[normal]-> finally",
        "finally -[normal]-> raise",
        "raise -[raise]-> except Exception",
    )


def test_raise_from() -> None:
    graph = well_formed(
        """
        async def f():
            try:
                parse()
            except ValueError as error:
                raise ConfigError("bad") from error
            except KeyError:
                raise asyncio.CancelledError() from None
            except TypeError:
                raise ConfigError("bad") from await describe()
        """
    )
    found = edges(graph)
    assert 'raise ConfigError("bad") from error -[raise]-> raise-exit' in found
    assert "raise asyncio.CancelledError() from None -[cancel]-> raise-exit" in found
    assert "raise asyncio.CancelledError() from None -[raise]-> raise-exit" in found
    # Regression: the cause is evaluated too, and an await there can be cancelled.
    assert 'raise ConfigError("bad") from await describe() -[cancel]-> raise-exit' in found
    assert not any(edge.startswith("raise") and "-[normal]->" in edge for edge in found)


def test_assert_may_raise() -> None:
    graph = well_formed(
        """
        def f(x):
            assert x
            assert valid(x), describe(x)
            return x
        """
    )
    assert edges(graph) == {
        "entry -[normal]-> assert x",
        "assert x -[raise]-> raise-exit",
        "assert x -[normal]-> assert valid(x), describe(x)",
        "assert valid(x), describe(x) -[raise]-> raise-exit",
        "assert valid(x), describe(x) -[normal]-> return x",
        "return x -[return]-> exit",
    }


# -- match ---------------------------------------------------------------------


def test_match_with_guards_and_a_wildcard() -> None:
    graph = well_formed(
        """
        def f(command):
            match command:
                case ["go", direction] if allowed(direction):
                    go(direction)
                case {"stop": when}:
                    stop(when)
                case _:
                    unknown()
            after()
        """
    )
    assert edges(graph) == {
        "entry -[normal]-> eval command",
        'eval command -[normal]-> case ["go", direction]',
        'case ["go", direction] -[raise]-> raise-exit',
        'case ["go", direction] -[true]-> go(direction)',
        'case ["go", direction] -[false]-> case {"stop": when}',
        'case {"stop": when} -[true]-> stop(when)',
        'case {"stop": when} -[false]-> case _',
        "case _ -[true]-> unknown()",
        "go(direction) -[raise]-> raise-exit",
        "go(direction) -[normal]-> after()",
        "stop(when) -[raise]-> raise-exit",
        "stop(when) -[normal]-> after()",
        "unknown() -[raise]-> raise-exit",
        "unknown() -[normal]-> after()",
        "after() -[raise]-> raise-exit",
        "after() -[normal]-> exit",
    }
    assert "case _ -[false]-> after()" not in edges(graph)


@pytest.mark.parametrize(
    ("case", "falls_through"),
    [
        ("case other", False),
        ("case _ as anything", False),
        ("case 0 | _", False),
        ("case Point()", True),
        ("case [_]", True),
    ],
)
def test_match_falls_through_unless_the_last_case_is_irrefutable(
    case: str, falls_through: bool
) -> None:
    graph = well_formed(
        f"""
        def f(command):
            match command:
                {case}:
                    handle()
            after()
        """
    )
    assert (f"{case} -[false]-> after()" in edges(graph)) is falls_through


def test_match_guard_makes_a_wildcard_refutable() -> None:
    graph = well_formed(
        """
        def f(command):
            match command:
                case _ if fallback():
                    handle()
            after()
        """
    )
    assert "case _ -[raise]-> raise-exit" in edges(graph)
    assert "case _ -[false]-> after()" in edges(graph)


# -- yield and await -----------------------------------------------------------


def test_yield_receives_exceptions_and_generator_exit() -> None:
    graph = well_formed(
        """
        def f():
            try:
                yield 1
            except GeneratorExit:
                closing()
                raise
            except Exception:
                thrown()
        """
    )
    assert edges(graph) == {
        "entry -[normal]-> yield 1",
        "yield 1 -[throw]-> except Exception",
        "yield 1 -[throw]-> except GeneratorExit",
        "yield 1 -[normal]-> exit",
        "except GeneratorExit -[normal]-> closing()",
        "closing() -[raise]-> raise-exit",
        "closing() -[normal]-> raise",
        "raise -[raise]-> raise-exit",
        "except Exception -[normal]-> thrown()",
        "thrown() -[raise]-> raise-exit",
        "thrown() -[normal]-> exit",
    }


def test_yield_from_is_left_by_generator_exit_that_except_exception_misses() -> None:
    graph = well_formed(
        """
        def f():
            try:
                result = yield from inner()
            except Exception:
                failed()
        """
    )
    found = edges(graph)
    assert "result = yield from inner() -[throw]-> except Exception" in found
    assert "result = yield from inner() -[throw]-> raise-exit" in found
    assert "result = yield from inner() -[raise]-> except Exception" in found
    assert "result = yield from inner() -[raise]-> raise-exit" not in found


@pytest.mark.parametrize(
    ("handler", "catches_errors"),
    [
        ("except BaseException", True),
        ("except", True),
        ("except asyncio.CancelledError", False),
        ("except (ValueError, asyncio.CancelledError)", True),
    ],
)
def test_await_cancellation_is_caught_by_base_exception_handlers(
    handler: str, catches_errors: bool
) -> None:
    graph = well_formed(
        f"""
        async def f():
            try:
                await work()
            {handler}:
                handled()
        """
    )
    found = edges(graph)
    assert f"await work() -[cancel]-> {handler}" in found
    assert "await work() -[cancel]-> raise-exit" not in found
    assert (f"await work() -[raise]-> {handler}" in found) is catches_errors


def test_except_exception_does_not_catch_cancellation() -> None:
    graph = well_formed(
        """
        async def f():
            try:
                await work()
            except Exception:
                failed()
        """
    )
    assert edges(graph) == {
        "entry -[normal]-> await work()",
        "await work() -[raise]-> except Exception",
        "await work() -[cancel]-> raise-exit",
        "await work() -[normal]-> exit",
        "except Exception -[normal]-> failed()",
        "failed() -[raise]-> raise-exit",
        "failed() -[normal]-> exit",
    }
    assert "await work() -[cancel]-> except Exception" not in edges(graph)


def test_walrus_in_conditions() -> None:
    graph = well_formed(
        """
        def f(stream):
            while (chunk := stream.read()):
                use(chunk)
            if (size := len(chunk)) > 10:
                big(size)
        """
    )
    assert edges(graph) == {
        "entry -[normal]-> test (chunk := stream.read())",
        "test (chunk := stream.read()) -[raise]-> raise-exit",
        "test (chunk := stream.read()) -[true]-> use(chunk)",
        "test (chunk := stream.read()) -[false]-> test (size := len(chunk)) > 10",
        "use(chunk) -[raise]-> raise-exit",
        "use(chunk) -[normal]-> test (chunk := stream.read())",
        "test (size := len(chunk)) > 10 -[raise]-> raise-exit",
        "test (size := len(chunk)) > 10 -[true]-> big(size)",
        "test (size := len(chunk)) > 10 -[false]-> exit",
        "big(size) -[raise]-> raise-exit",
        "big(size) -[normal]-> exit",
    }


# -- units: nested definitions, modules, classes, lambdas ----------------------


NESTED = """
    def outer():
        @decorate()
        def inner(x=default()):
            inner_call()
            return x
        class Inner(Base):
            attribute = compute()
        callback = lambda: hidden()
        return inner
    """


def test_nested_definitions_are_single_points() -> None:
    graph = well_formed(NESTED)
    assert edges(graph) == {
        "entry -[normal]-> def inner",
        # Decorators and defaults are evaluated where the function is defined.
        "def inner -[raise]-> raise-exit",
        "def inner -[normal]-> class Inner",
        "class Inner -[normal]-> callback = lambda: hidden()",
        # The lambda's call runs when it is called, not here.
        "callback = lambda: hidden() -[normal]-> return inner",
        "return inner -[return]-> exit",
    }


def test_nested_definitions_are_units_of_their_own() -> None:
    module = parse(NESTED)
    outer = module.body[0]
    assert isinstance(outer, cst.FunctionDef)
    inner, klass, assignment, _ = outer.body.body
    assert isinstance(inner, cst.FunctionDef) and isinstance(klass, cst.ClassDef)
    assert edges(build(inner)) == {
        "entry -[normal]-> inner_call()",
        "inner_call() -[raise]-> raise-exit",
        "inner_call() -[normal]-> return x",
        "return x -[return]-> exit",
    }
    assert edges(build(klass)) == {
        "entry -[normal]-> attribute = compute()",
        "attribute = compute() -[raise]-> raise-exit",
        "attribute = compute() -[normal]-> exit",
    }
    assert isinstance(assignment, cst.SimpleStatementLine)
    assert isinstance(assignment.body[0], cst.Assign)
    lambda_ = assignment.body[0].value
    assert isinstance(lambda_, cst.Lambda)
    assert edges(build(lambda_)) == {
        "entry -[normal]-> eval hidden()",
        "eval hidden() -[raise]-> raise-exit",
        "eval hidden() -[return]-> exit",
    }


def test_lambda_without_calls_cannot_raise() -> None:
    graph = well_formed("key = lambda item: item[0]")
    assert edges(graph) == {
        "entry -[normal]-> eval item[0]",
        "eval item[0] -[return]-> exit",
    }
    assert graph.raise_exit.predecessors == []


def test_module_body() -> None:
    module = parse(
        """
        import os
        CONFIG = load()
        def main():
            run()
        if __name__ == "__main__":
            main()
        """
    )
    graph = build(module)
    assert problems(graph) == []
    assert edges(graph) == {
        "entry -[normal]-> import os",
        "import os -[normal]-> CONFIG = load()",
        "CONFIG = load() -[raise]-> raise-exit",
        "CONFIG = load() -[normal]-> def main",
        'def main -[normal]-> test __name__ == "__main__"',
        'test __name__ == "__main__" -[true]-> main()',
        'test __name__ == "__main__" -[false]-> exit',
        "main() -[raise]-> raise-exit",
        "main() -[normal]-> exit",
    }


def test_only_units_have_graphs() -> None:
    with pytest.raises(TypeError, match="If"):
        build(parse("if x:\n    pass\n").body[0])


# -- pruning and size ----------------------------------------------------------


def test_code_after_return_raise_continue_and_break_is_not_in_the_graph() -> None:
    graph = well_formed(
        """
        def f(items):
            for item in items:
                if item:
                    continue
                    after_continue()
                else:
                    break
                    after_break()
            if items:
                raise Empty()
                after_raise()
            return
            after_return()
        """
    )
    assert not [name for name in names(graph) if name.startswith("after_")]


def test_graph_size_is_bounded() -> None:
    source = "def f():\n" + "".join(f"    step{i}()\n" for i in range(50))
    function = cst.parse_module(source).body[0]
    with pytest.raises(GraphTooLarge):
        build(function, max_points=40)
    assert len(build(function, max_points=53).points) == 53


def test_label_of_a_statement_too_deep_for_libcst_codegen() -> None:
    """Regression: libcst generates code recursively, and a label (hence the
    ``repr`` of a point) raised RecursionError on a long implicit string
    concatenation, as in the standard library's ``pydoc_data/topics.py``."""
    parts = "".join(f'        "part {i}"\n' for i in range(3_000))
    graph = build(cst.parse_module(f"def f():\n    text = (\n{parts}    )\n").body[0])
    assert names(graph) == ["entry", "exit", "raise-exit", "<Assign>"]
    assert repr(graph.points[3]) == "<Point 3 statement <Assign>>"
