"""Ports outside the ephemeral range: the tests' picker, the stack's settings and its free check.

Loopback sockets only: the kernel is the thing under test (which ports it lets a process bind).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from routeiq.errors import ConfigError
from routeiq_cli.stack import runner
from routeiq_cli.stack.components import components
from routeiq_cli.stack.components.base import port_taken
from routeiq_cli.stack.runner import StackError
from routeiq_cli.stack.settings import (
    FALLBACK_EPHEMERAL_RANGES,
    EphemeralPorts,
    StackSettings,
    ephemeral_ports,
)
from support.ports import PRIVATE_STACK_PORTS, NoFreePort, PortPicker, free_port, stack_ports

WINDOW = (20000, 20100)


def _range_file(folder: Path, text: str) -> Path:
    path = folder / "ip_local_port_range"
    path.write_text(text)
    return path


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(low=st.integers(19990, 20110), span=st.integers(0, 120))
def test_the_picker_never_hands_out_a_port_in_the_range_it_reads(
    tmp_path: Path, low: int, span: int
) -> None:
    high = low + span
    picker = PortPicker(range_file=_range_file(tmp_path, f"{low}\t{high}\n"), window=WINDOW)
    if low <= WINDOW[0] and high >= WINDOW[1]:
        with pytest.raises(NoFreePort, match=f"none in 20000-20100 .*{low}-{high}"):
            picker.pick()
        return
    for _ in range(5):
        try:
            port = picker.pick()
        except NoFreePort:
            # Every port left outside the range was handed out already.
            assert len(picker.handed_out) == (WINDOW[1] - WINDOW[0] + 1) - _overlap(low, high)
            break
        assert WINDOW[0] <= port <= WINDOW[1]
        assert not low <= port <= high


def _overlap(low: int, high: int) -> int:
    return max(0, min(high, WINDOW[1]) - max(low, WINDOW[0]) + 1)


def test_without_the_range_file_linux_and_iana_ranges_are_both_avoided(tmp_path: Path) -> None:
    ephemeral = ephemeral_ports(tmp_path / "absent")
    assert ephemeral.ranges == FALLBACK_EPHEMERAL_RANGES
    assert all(ephemeral.covers(p) for p in (32768, 49151, 60999, 61000, 65535))
    assert not ephemeral.covers(32767)
    picker = PortPicker(range_file=tmp_path / "absent", window=(32760, 65535))
    ports = {picker.pick() for _ in range(5)}
    assert ports <= set(range(32760, 32768))


def test_a_malformed_range_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = _range_file(tmp_path, "32768\n")
    with pytest.raises(ConfigError, match=f"{path}: expected two port numbers"):
        ephemeral_ports(path)


def test_the_picker_never_repeats_and_says_when_all_are_handed_out(tmp_path: Path) -> None:
    range_file = _range_file(tmp_path, "20005 60999")
    picker = PortPicker(range_file=range_file, window=(20000, 20010))
    ports = [picker.pick() for _ in range(5)]
    assert sorted(ports) == [20000, 20001, 20002, 20003, 20004]
    with pytest.raises(NoFreePort, match=r"all 5 in 20000-20010 .* are handed out already"):
        picker.pick()


def test_reserved_ports_are_never_handed_out(tmp_path: Path) -> None:
    picker = PortPicker(
        range_file=_range_file(tmp_path, "20003 60999"),
        window=(20000, 20010),
        reserved=[20000, 20002],
    )
    assert picker.pick() == 20001
    with pytest.raises(NoFreePort, match="handed out already or reserved"):
        picker.pick()


def test_the_shared_and_private_stacks_ports_are_reserved() -> None:
    reserved = stack_ports()
    assert {9092, 8081, 8333, 18333, 19333, 5000} <= reserved
    assert set(PRIVATE_STACK_PORTS.values()) <= reserved
    assert PRIVATE_STACK_PORTS["S3_MASTER_PORT"] + 10000 in reserved


@pytest.mark.parametrize("held_on", ["127.0.0.1", "127.0.0.2"])
def test_a_port_bound_on_any_local_address_is_not_handed_out(tmp_path: Path, held_on: str) -> None:
    # 127.0.0.2 is not where services listen, but a bind on 0.0.0.0 would clash with it.
    port = free_port()
    picker = PortPicker(range_file=_range_file(tmp_path, "32768 60999"), window=(port, port))
    with socket.socket() as holder:
        holder.bind((held_on, port))
        with pytest.raises(NoFreePort, match=f"the 1 tried \\({port}-{port}\\) were all taken"):
            picker.pick()
    assert picker.pick() == port


def test_free_port_is_outside_this_machines_range_and_bindable() -> None:
    ephemeral = ephemeral_ports()
    ports = [free_port() for _ in range(20)]
    assert len(set(ports)) == len(ports)
    assert not any(ephemeral.covers(p) for p in ports)
    for port in ports:
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))


# The stack's own settings.

LINUX = EphemeralPorts(((32768, 60999),), "test")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"MLFLOW_PORT": "35000"}, "mlflow_port=35000 [ROUTEIQ_STACK_MLFLOW_PORT] is inside"),
        (
            {"S3_MASTER_PORT": "25000"},
            "s3_master_port=25000 (gRPC: 35000) [ROUTEIQ_STACK_S3_MASTER_PORT] is inside",
        ),
        (
            {"GATEWAY_PORT": "32766", "GATEWAY_REPLICAS": "3"},
            "gateway_port=32766 (replica 3: 32768) [ROUTEIQ_STACK_GATEWAY_PORT] is inside",
        ),
    ],
)
def test_stack_settings_refuse_a_port_in_the_ephemeral_range(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    stack = StackSettings.load(
        {f"ROUTEIQ_STACK_{k}": v for k, v in env.items()}
        | {"ROUTEIQ_STACK_STATE_DIR": str(tmp_path)}
    )
    with pytest.raises(ConfigError) as info:
        stack.refuse_ephemeral_ports(LINUX)
    assert expected in str(info.value)
    assert "ephemeral port range 32768-60999 (test)" in str(info.value)


def test_the_stack_defaults_are_outside_every_ephemeral_range(tmp_path: Path) -> None:
    defaults = StackSettings.load({"ROUTEIQ_STACK_STATE_DIR": str(tmp_path)})
    for ephemeral in (LINUX, ephemeral_ports(), ephemeral_ports(tmp_path / "absent")):
        defaults.refuse_ephemeral_ports(ephemeral)
    StackSettings.load(
        {f"ROUTEIQ_STACK_{k}": str(v) for k, v in PRIVATE_STACK_PORTS.items()}
    ).refuse_ephemeral_ports(LINUX)


def test_up_refuses_an_ephemeral_port_before_starting_anything(tmp_path: Path) -> None:
    inside = ephemeral_ports().ranges[0][0]  # this machine's range, whatever it is
    state = tmp_path / "state"
    stack = StackSettings.load(
        {"ROUTEIQ_STACK_STATE_DIR": str(state), "ROUTEIQ_STACK_REDIS_PORT": str(inside)}
    )
    with pytest.raises(ConfigError, match=f"redis_port={inside} \\[ROUTEIQ_STACK_REDIS_PORT\\]"):
        runner.up(stack, echo=lambda _: None)
    assert not state.exists()


# The stack's check that a port is free before a component starts.


def test_a_port_held_as_a_client_port_is_taken_though_nothing_listens() -> None:
    # What happened to MLflow: the gateway's connection to Kafka held its port as client port.
    with socket.socket() as server:
        server.bind(("127.0.0.1", free_port()))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            accepted, _ = server.accept()
            with accepted:
                client_port = client.getsockname()[1]
                assert port_taken("127.0.0.1", client_port)


def test_a_listening_port_is_taken_and_a_stopped_servers_time_wait_is_not() -> None:
    port = free_port()
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the stack's servers do
    server.bind(("127.0.0.1", port))
    server.listen()
    assert port_taken("127.0.0.1", port)
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    # The server closes first, so its side of the connection lingers in TIME_WAIT.
    accepted.close()
    client.close()
    server.close()
    assert not port_taken("127.0.0.1", port)


def test_a_host_that_is_not_local_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"cannot bind 192\.0\.2\.1:"):
        port_taken("192.0.2.1", free_port())


class _Stopped:
    """A supervisord whose programs are all stopped: ``_start`` checks ports before starting."""

    def state(self, name: str) -> str:
        return "STOPPED"

    def start(self, name: str) -> None:
        raise AssertionError(f"{name} was started on a taken port")


def test_up_names_the_component_port_and_setting_when_a_port_is_taken(tmp_path: Path) -> None:
    port = free_port()
    stack = StackSettings.load(
        {"ROUTEIQ_STACK_STATE_DIR": str(tmp_path), "ROUTEIQ_STACK_REDIS_PORT": str(port)}
    )
    redis = next(c for c in components(stack) if c.name == "redis")
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", port))
        stranger.listen()
        with pytest.raises(StackError) as info:
            runner._start(_Stopped(), redis, stack)
    assert f"Redis: port(s) [{port}] on 127.0.0.1 are already in use" in str(info.value)
    assert "ROUTEIQ_STACK_REDIS_PORT" in str(info.value)
