"""``make faults``: break the running local stack one way at a time and count the damage.

Runs against the stack ``make up`` started (it restores every component it stops). Each test
adds a row; the table is printed at the end of the session, and a row with anything failed,
lost, duplicated or a 5xx fails its test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from faults.harness import Row, Stack, render
from routeiq_cli.stack import secrets
from routeiq_cli.stack.supervisor import Supervisor
from support.stack import running_stack

ROWS: list[Row] = []
# Consumers that must never die on their own: a row that kills one says so.
WATCHED = ("labeler", "analytics")


# Outages first (the stack is at its cleanest), then kills, then poison records and fuzzing.
ORDER = ("test_outages", "test_kills", "test_poison", "test_fuzz")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # It stops the stack's components: never as a side effect of a bare `pytest`.
    skip = None
    if os.environ.get("ROUTEIQ_FAULTS") != "1":
        skip = pytest.mark.skip(reason="breaks the running stack on purpose: run `make faults`")
    for item in items:
        item.add_marker(pytest.mark.faults)
        if skip is not None:
            item.add_marker(skip)
    rank = {name: i for i, name in enumerate(ORDER)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(ORDER)))


@pytest.fixture(scope="session")
def stack() -> Stack:
    settings, kafka = running_stack()
    return Stack(
        settings=settings,
        supervisor=Supervisor(settings),
        kafka=kafka,
        admin_key=secrets.load_or_create(settings).admin_key,
    )


@pytest.fixture
def row(request: pytest.FixtureRequest, stack: Stack) -> Iterator[Row]:
    """This test's row; afterwards, the watched consumers must still be the same processes
    (RUNNING, never restarted) unless the test killed them on purpose."""
    name = request.node.callspec.id if hasattr(request.node, "callspec") else request.node.name
    current = Row(fault=name.removeprefix("test_").replace("_", " "))
    ROWS.append(current)
    killed: set[str] = set(getattr(request.node.function, "kills", ()))
    pids = {c: stack.pid(c) for c in WATCHED}
    yield current
    for component in WATCHED:
        if component in killed:
            continue
        state, pid = stack.state(component), stack.pid(component)
        if state != "RUNNING" or pid != pids[component]:
            current.failed += 1
            current.notes.append(f"{component} {state}, pid {pids[component]} → {pid}")
    assert current.clean, render([current])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if ROWS:
        terminalreporter.write_sep("=", "faults")
        terminalreporter.write_line(render(ROWS))
