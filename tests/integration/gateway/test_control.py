"""The fleet's routing configuration on the control topic, with three real gateway replicas on
real Kafka, registry and Redis: one ``PUT`` reaches all three, a replica restarted afterwards
comes up with it, an invalid change never reaches the topic, the kill switch takes all the
traffic to the default under load with no failed request, a rollback restores an earlier
version everywhere, and every version is in the audit topic with who, when, what and why.

How fast a change spreads is measured by ``bench/control.py``, not asserted here."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from typing import Any

import httpx
from click.testing import CliRunner
from routeiq.contracts.catalog import ROUTING_CONFIG
from routeiq.contracts.records import RoutingConfigChange
from routeiq.contracts.serde import AvroSerde, RegistryResolver
from routeiq.kafka import make_consumer
from routeiq_cli.__main__ import cli
from support.kafka import read_messages

from .conftest import ADMIN_KEY

# The gateway_factory fixture's handles (tests/integration/gateway/conftest.py).
GatewayHandle = Any

OPERATOR = {"x-routeiq-operator": "oncall@example.com"}
PROMPT = "Natalia sold clips to 48 of her friends in April. How many clips did she sell?"


def _admin(gw: GatewayHandle, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {**gw.admin_headers, **OPERATOR}
    return httpx.request(method, f"{gw.url}{path}", headers=headers, timeout=30, **kwargs)


def _state(gw: GatewayHandle) -> dict[str, Any]:
    response = _admin(gw, "GET", "/admin/router")
    response.raise_for_status()
    state: dict[str, Any] = response.json()
    return state


def _wait_version(gateways: list[GatewayHandle], version: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while True:
        states = [_state(gw) for gw in gateways]
        if all(s["control"]["version"] == version for s in states):
            return states
        assert time.monotonic() < deadline, [s["control"] for s in states]
        time.sleep(0.05)


def _strategies(gw: GatewayHandle) -> dict[str, Any]:
    body: dict[str, Any] = _admin(gw, "GET", "/admin/strategies").json()
    return body


def _names(gw: GatewayHandle) -> list[str]:
    return [s["name"] for s in _strategies(gw)["strategies"]]


def test_one_change_reaches_every_replica_survives_restarts_and_rolls_back(
    stack, registry_client, gateway_factory
) -> None:
    gws = [gateway_factory(name=f"r{i}") for i in range(3)]
    assert [_state(gw)["control"]["version"] for gw in gws] == [0, 0, 0]

    # Version 1: a strategy registered and rolled out to 10% of users, written through r0.
    change = {
        "register": [{"name": "strong-only", "kind": "strongest"}],
        "rollout": {"strategy": "strong-only", "percent": 10},
        "reason": "phase 2: 10% of users",
    }
    response = _admin(gws[0], "PUT", "/admin/strategies", json=change)
    assert response.status_code == 200, response.text
    written = response.json()["control"]["written"]
    assert (written["version"], written["action"]) == (1, "UPDATE")
    assert written["author"] == "oncall@example.com"
    assert written["reason"] == "phase 2: 10% of users"
    for state in _wait_version(gws, 1):
        assert state["routing"]["rollout"]["strategy"] == "strong-only"
    assert all("strong-only" in _names(gw) for gw in gws)

    # An invalid change is refused by the replica that receives it and never written.
    bad = _admin(gws[1], "PUT", "/admin/strategies", json={"default": "no-such-strategy"})
    assert bad.status_code == 400
    assert "no-such-strategy" in bad.json()["error"]["message"]

    # Version 2 through another replica builds on version 1 (its rollout stays).
    response = _admin(gws[1], "PUT", "/admin/strategies", json={"epsilon": 0.0})
    assert response.status_code == 200, response.text
    for state in _wait_version(gws, 2):
        assert state["routing"]["epsilon"] == 0.0
        assert state["routing"]["rollout"]["percent"] == 10

    # A replica started afterwards serves version 2 from its first answer.
    gws[2].process.stop()
    gws[2] = gateway_factory(name="r2b")
    state = _state(gws[2])
    assert state["control"]["version"] == 2
    assert state["routing"] == _state(gws[0])["routing"]
    assert _strategies(gws[2]) == _strategies(gws[0])

    # Roll back to version 0 (the model file's configuration), through the new replica.
    response = _admin(
        gws[2], "POST", "/admin/config/rollback", json={"version": 0, "reason": "drill over"}
    )
    assert response.status_code == 200, response.text
    for state in _wait_version(gws, 3):
        assert state["routing"]["rollout"] is None
        assert state["routing"]["epsilon"] == 0.05
    assert all(
        "strong-only" not in [s["name"] for s in _strategies(gw)["strategies"]] for gw in gws
    )
    # ... and back to version 1 by its number.
    response = _admin(gws[0], "POST", "/admin/config/rollback", json={"version": 1})
    assert response.status_code == 200, response.text
    for state in _wait_version(gws, 4):
        assert state["routing"]["rollout"]["strategy"] == "strong-only"
        assert state["routing"]["epsilon"] == 0.05

    # The audit: every version, in order, with who, when, what and why, in Kafka.
    history = _admin(gws[1], "GET", "/admin/config/history").json()["versions"]
    assert [(v["version"], v["action"], v["rollback_to"]) for v in history] == [
        (1, "UPDATE", None),
        (2, "UPDATE", None),
        (3, "ROLLBACK", 0),
        (4, "ROLLBACK", 1),
    ]
    assert history[1]["change"] == {"epsilon": 0.0}
    assert [v["written_by"] for v in history] == [
        gws[0].process.env["ROUTEIQ_GATEWAY_REPLICA_ID"],
        gws[1].process.env["ROUTEIQ_GATEWAY_REPLICA_ID"],
        gws[2].process.env["ROUTEIQ_GATEWAY_REPLICA_ID"],
        gws[0].process.env["ROUTEIQ_GATEWAY_REPLICA_ID"],
    ]
    assert all(v["author"] == "oncall@example.com" for v in history)
    for topic in (gws[0].control_audit_topic, gws[0].control_topic):
        serde = AvroSerde.for_topic(
            ROUTING_CONFIG, topic, resolver=RegistryResolver(registry_client)
        )
        consumer = make_consumer(stack.kafka, group_id=f"t-{uuid.uuid4().hex[:8]}", client_id="t")
        consumer.subscribe([topic])
        records = read_messages(consumer, 4, timeout=30)
        versions = [
            RoutingConfigChange.from_record(serde.decode(m.value())).version for m in records
        ]
        assert versions == [1, 2, 3, 4]
        # Keyed by fleet: compaction keeps the fleet's latest version on the control topic.
        assert {m.key() for m in records} == {b"default"}


def test_kill_switch_under_load_sends_everything_to_the_default_and_fails_nothing(
    gateway_factory,
) -> None:
    gws = [gateway_factory(name=f"k{i}") for i in range(3)]
    # Phase 3: everyone on the "strongest" strategy; then the emergency.
    response = _admin(gws[0], "PUT", "/admin/strategies", json={"ab": {"strongest": 1.0}})
    assert response.status_code == 200, response.text
    _wait_version(gws, 1)

    stop = threading.Event()
    outcomes: Counter[tuple[int, str, bool]] = Counter()
    switched_at: list[float] = []

    def load(gw: GatewayHandle, user: int) -> None:
        with httpx.Client(base_url=gw.url, timeout=30) as client:
            while not stop.is_set():
                sent = time.monotonic()
                r = client.post(
                    "/v1/chat/completions",
                    json={"model": "auto", "messages": [{"role": "user", "content": PROMPT}]},
                    headers={"x-routeiq-user": f"user-{user}"},
                )
                after = bool(switched_at) and sent > switched_at[0]
                outcomes[(r.status_code, r.headers.get("x-routeiq-strategy", ""), after)] += 1

    threads = [threading.Thread(target=load, args=(gw, i)) for i, gw in enumerate(gws * 2)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        # Through the CLI, as the runbook says.
        where = ["--url", gws[1].url, "--admin-key", ADMIN_KEY, "--operator", "oncall"]
        switched = CliRunner().invoke(
            cli, ["config", "kill-switch", "on", "--reason", "incident", *where]
        )
        assert switched.exit_code == 0, switched.output
        assert "version 2 written" in switched.output
        _wait_version(gws, 2)
        switched_at.append(time.monotonic())
        time.sleep(1.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert all(status == 200 for status, _, _ in outcomes), outcomes
    history = CliRunner().invoke(cli, ["config", "history", *where[:4]])
    assert history.exit_code == 0, history.output
    assert "v2" in history.output
    assert "oncall via k1" in history.output
    assert "(incident)" in history.output
    before = {s for (_, s, after) in outcomes if not after}
    after = Counter(s for (_, s, after_) in outcomes.elements() if after_)
    assert "strongest" in before
    # Every request sent once all three replicas applied the switch went to the default.
    assert set(after) == {"threshold"}, after
    assert sum(after.values()) > 0
