"""A component that fails to start stops `make up` with the reason and its log tail.

Uses a real supervisord in a temporary state folder with a program that crashes, so the
shared stack is not touched and no network is needed.
"""

from __future__ import annotations

import sys

import pytest
from routeiq_cli.stack.components import Component
from routeiq_cli.stack.runner import StackError, _start
from routeiq_cli.stack.settings import StackSettings
from routeiq_cli.stack.supervisor import Supervisor, render_config
from support.processes import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def sandbox(tmp_path):
    settings = StackSettings.load(
        {"ROUTEIQ_STACK_STATE_DIR": str(tmp_path / "state"), "ROUTEIQ_STACK_START_TIMEOUT_S": "3"}
    )
    sup = Supervisor(settings)
    yield settings, sup
    sup.shutdown()


def _component(name: str, script: str, health) -> Component:
    return Component(
        name=name,
        title=name.title(),
        command=[sys.executable, "-c", script],
        ports=[],
        health=health,
        endpoint="-",
    )


@pytest.mark.parametrize(
    ("name", "script", "health", "expected"),
    [
        pytest.param(
            "crasher",
            "import sys; print('listening on nothing'); print('FATAL: bad config x=1', flush=True);"
            " sys.exit(3)",
            "not up",
            ["Crasher", "FATAL: bad config x=1"],
            id="crashes-with-its-log-tail",
        ),
        pytest.param(
            "hanger",
            "import time; print('warming up', flush=True); time.sleep(60)",
            "GET /health: HTTP 503",
            ["failed its health check within 3s (GET /health: HTTP 503)", "warming up"],
            id="never-healthy-times-out-with-the-reason",
        ),
    ],
)
def test_a_component_that_does_not_start_fails_with_the_reason_and_log_tail(
    sandbox, name: str, script: str, health: str, expected: list[str]
) -> None:
    settings, sup = sandbox
    component = _component(name, script, lambda: health)
    sup.ensure_started(render_config(settings, [component]))
    with pytest.raises(StackError) as info:
        _start(sup, component, settings)
    for text in expected:
        assert text in str(info.value)


def test_a_port_held_by_a_stranger_is_refused_before_starting(sandbox) -> None:
    import socket

    settings, sup = sandbox
    with socket.socket() as stranger:
        port = free_port()
        stranger.bind(("127.0.0.1", port))
        stranger.listen()
        comp = Component(
            name="clash",
            title="Clash",
            command=[sys.executable, "-c", "pass"],
            ports=[port],
            health=lambda: None,
            endpoint="-",
        )
        sup.ensure_started(render_config(settings, [comp]))
        with pytest.raises(StackError, match=f"port\\(s\\) \\[{port}\\].*already in use"):
            _start(sup, comp, settings)
