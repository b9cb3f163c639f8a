"""Ports for what tests start: outside the kernel's ephemeral range, and free when checked.

``bind(("127.0.0.1", 0))`` gets a port from the ephemeral range, the range every outgoing
connection on the machine also draws its client port from: between the probe socket closing
and the test's process binding, any connection (the shared stack's gateway to Kafka, say) may
take it, and the process dies with "address already in use". Ports are drawn from outside that
range instead, so only a listener could hold them, and the bind check sees listeners.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterable
from pathlib import Path

from routeiq_cli.stack.settings import SEAWEED_GRPC_OFFSET, StackSettings, ephemeral_ports

# Where test ports are drawn from, less the ephemeral range: above the well-known service ports
# and the shared stack's defaults (5000-19333, gRPC included).
WINDOW = (20000, 65535)

# The private stack of tests/e2e/test_stack_lifecycle.py. Fixed, as a user's settings would be;
# below Linux's default ephemeral range (32768-60999), gRPC ports (S3 + 10000) included, and
# distinct from the shared stack's defaults and their gRPC ports (18333, 19333, ...).
PRIVATE_STACK_PORTS = {
    "KAFKA_PORT": 29092,
    "KAFKA_CONTROLLER_PORT": 29093,
    "REGISTRY_PORT": 28081,
    "S3_PORT": 17333,
    "S3_MASTER_PORT": 17334,
    "S3_VOLUME_PORT": 17380,
    "S3_FILER_PORT": 17888,
    "REDIS_PORT": 26379,
    "MLFLOW_PORT": 25000,
    "JAEGER_PORT": 26686,
    "JAEGER_GRPC_PORT": 26685,
    "OTLP_GRPC_PORT": 24317,
    "OTLP_HTTP_PORT": 24318,
    "UPSTREAM_PORT": 28090,
    "GATEWAY_PORT": 28000,
    "LABELER_PORT": 26066,
    "TRAINER_PORT": 28092,
    "ANALYTICS_PORT": 28095,
}


class NoFreePort(RuntimeError):
    """No port could be handed out: none lies outside the ephemeral range, or every one tried
    was taken."""


def stack_ports() -> set[int]:
    """Ports a stack may bind while tests run: the shared stack's defaults and the lifecycle
    test's private stack, gRPC ports included."""
    defaults = {p.port for p in StackSettings.model_construct().listen_ports()}
    private = set(PRIVATE_STACK_PORTS.values())
    grpc = {
        port + SEAWEED_GRPC_OFFSET
        for name, port in PRIVATE_STACK_PORTS.items()
        if name.startswith("S3_")
    }
    return defaults | private | grpc


def bindable(port: int) -> bool:
    """True when ``port`` can be bound on 127.0.0.1 and on 0.0.0.0 now. SO_REUSEADDR stays
    off, so a socket lingering in TIME_WAIT counts as taken too."""
    for host in ("127.0.0.1", "0.0.0.0"):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
            try:
                probe.bind((host, port))
            except OSError:
                return False
    return True


def _outside(window: tuple[int, int], excluded: Iterable[tuple[int, int]]) -> list[range]:
    """``window`` (inclusive) less every ``excluded`` span (inclusive), as ranges."""
    spans = [range(window[0], window[1] + 1)]
    for low, high in excluded:
        spans = [
            piece
            for span in spans
            for piece in (
                range(span.start, min(span.stop, low)),
                range(max(span.start, high + 1), span.stop),
            )
            if piece
        ]
    return spans


def _nth(spans: list[range], index: int) -> int:
    for span in spans:
        if index < len(span):
            return span[index]
        index -= len(span)
    raise IndexError(index)


class PortPicker:
    """Hands out ports outside the ephemeral range (read at each pick from ``range_file``,
    Linux's ``ip_local_port_range`` by default), free when checked, never one of ``reserved``
    and never the same twice."""

    def __init__(
        self,
        *,
        range_file: Path | None = None,
        window: tuple[int, int] = WINDOW,
        reserved: Iterable[int] = (),
        tries: int = 50,
        rng: random.Random | None = None,
    ) -> None:
        self.range_file = range_file
        self.window = window
        self.reserved = set(reserved)
        self.tries = tries
        self.rng = rng or random.Random()
        self.handed_out: set[int] = set()

    def pick(self) -> int:
        ephemeral = ephemeral_ports(self.range_file)
        spans = _outside(self.window, ephemeral.ranges)
        size = sum(len(span) for span in spans)
        where = f"{self.window[0]}-{self.window[1]} outside the ephemeral range {ephemeral}"
        if size == 0:
            raise NoFreePort(f"no port to hand out: none in {where}")
        # Enough draws that `tries` of them are neither handed out nor reserved, when there are.
        draws = min(size, self.tries + len(self.handed_out) + len(self.reserved))
        fresh = [
            port
            for port in (_nth(spans, i) for i in self.rng.sample(range(size), draws))
            if port not in self.handed_out and port not in self.reserved
        ][: self.tries]
        for port in fresh:
            if bindable(port):
                self.handed_out.add(port)
                return port
        if not fresh:
            raise NoFreePort(
                f"no port to hand out: all {size} in {where} are handed out already or reserved"
            )
        raise NoFreePort(
            f"no free port in {where}: the {len(fresh)} tried ({min(fresh)}-{max(fresh)}) "
            "were all taken"
        )


# One picker per test process, so no two callers are ever handed the same port.
_PICKER = PortPicker(reserved=stack_ports())


def free_port() -> int:
    """A port for a test's process to listen on: outside the ephemeral range, free on
    127.0.0.1 and 0.0.0.0 when checked, not handed out before in this process."""
    return _PICKER.pick()
