"""The control plane's reading side, without Kafka: versions applied in order on top of the
model file, a stale one ignored, one this replica cannot build refused with the reason while
the version it had keeps serving."""

from __future__ import annotations

import random
import threading
from typing import Any

from routeiq.contracts.records import RoutingConfigChange
from routeiq.routing.engine import RoutingConfig, RoutingEngine, StrategyRegistry
from routeiq.routing.strategies import BundleHolder
from routeiq_gateway.metrics import GatewayMetrics
from routeiq_gateway.sync.control import ControlPlane


def _base() -> RoutingEngine:
    registry = StrategyRegistry(holder=BundleHolder(), rng=random.Random(0))
    for kind in ("random", "cheapest", "strongest"):
        registry.register(kind, kind)
    return RoutingEngine(registry, RoutingConfig(default="cheapest", epsilon=0.0))


def _change(version: int, config: dict[str, Any]) -> RoutingConfigChange:
    return RoutingConfigChange(
        change_id=f"c{version}",
        fleet="default",
        version=version,
        action="UPDATE",
        config=config,
        change=config,
        author="ops",
        written_by="gw-0",
        changed_at_ms=1_700_000_000_000 + version,
    )


def _plane() -> ControlPlane:
    unused: Any = None  # writing needs Kafka and Redis; reading does not
    return ControlPlane(
        fleet="default",
        replica_id="gw-1",
        engine=_base(),
        base=_base,
        topics=unused,
        producer=unused,
        audit_consumer=unused,
        redis_client=unused,
        metrics=GatewayMetrics(),
        caught_up=threading.Event(),
    )


def test_versions_apply_in_order_and_a_stale_one_is_ignored() -> None:
    plane = _plane()
    assert plane.status()["version"] == 0
    plane.apply(_change(1, {"default": "strongest", "kill_switch": True}))
    plane.apply(_change(2, {"register": [{"name": "r", "kind": "random"}], "default": "r"}))
    plane.apply(_change(2, {"default": "strongest"}))  # a duplicate: ignored
    plane.apply(_change(1, {"default": "strongest"}))  # older: ignored
    assert plane.version == 2
    assert plane.engine.config.default == "r"
    # Version 2 is the whole configuration: version 1's kill switch is not in it.
    assert plane.engine.config.kill_switch is False
    assert plane.status()["applied"]["author"] == "ops"


def test_a_version_this_replica_cannot_build_is_refused_and_the_last_one_serves() -> None:
    plane = _plane()
    plane.apply(_change(1, {"default": "strongest"}))
    plane.apply(_change(2, {"register": [{"name": "x", "kind": "no-such-kind"}], "default": "x"}))
    status = plane.status()
    assert (status["version"], status["latest_version"]) == (1, 2)
    assert status["refused"]["version"] == 2
    assert "no-such-kind" in status["refused"]["reason"]
    assert plane.engine.config.default == "strongest"
    assert (
        plane.metrics.render().count(
            b'routeiq_gateway_control_versions_total{result="refused"} 1.0'
        )
        == 1
    )
    # The next good version serves and clears the refusal.
    plane.apply(_change(3, {}))
    assert plane.status()["refused"] is None
    assert plane.engine.config.default == "cheapest"
