"""Broker down under load: requests keep succeeding, events spool, and after the broker is
back every event arrives exactly once (by decision id). The loss is shown on
``/health/ready`` and logged as state changes, not once per event."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from routeiq.contracts.topics import FEEDBACK_EVENTS, ROUTER_DECISIONS
from routeiq.kafka import apply_topics, make_admin, make_consumer
from routeiq.settings import KafkaSettings
from support.processes import PrivateKafka, wait_until


@pytest.fixture
def private_kafka(tmp_path: Path):
    broker = PrivateKafka(tmp_path / "kafka-state")
    broker.start()
    yield broker
    broker.stop()


def test_events_spool_while_kafka_is_down_and_arrive_exactly_once(
    private_kafka: PrivateKafka, gateway_factory
) -> None:
    kafka = KafkaSettings(bootstrap_servers=private_kafka.bootstrap, session_timeout_ms=6000)
    gw = gateway_factory(
        kafka_bootstrap=private_kafka.bootstrap,
        ROUTEIQ_GATEWAY_SYNC_ENABLED="false",
        # This broker has none of the stack's topics; the control plane is tested elsewhere.
        ROUTEIQ_GATEWAY_CONTROL_ENABLED="false",
    )
    apply_topics(
        make_admin(kafka),
        [
            ROUTER_DECISIONS.with_name(gw.decisions_topic),
            FEEDBACK_EVENTS.with_name(gw.feedback_topic),
        ],
    )
    ids: list[str] = []
    failures: list[str] = []
    lock = threading.Lock()
    phase = {"name": "up"}
    states: set[str] = set()

    def one(i: int) -> None:
        try:
            r = httpx.post(
                f"{gw.url}/v1/chat/completions",
                timeout=30,
                json={
                    "model": "auto",
                    "messages": [{"role": "user", "content": f"Compute {i} + 1"}],
                },
            )
            with lock:
                if r.status_code == 200:
                    ids.append(r.headers["x-routeiq-decision-id"])
                else:
                    failures.append(f"{phase['name']}: {r.status_code} {r.text[:200]}")
        except httpx.HTTPError as exc:
            with lock:
                failures.append(f"{phase['name']}: {exc!r}")

    def health() -> dict:
        return httpx.get(f"{gw.url}/health/ready", timeout=5).json()

    def ready() -> dict:
        return health()["kafka"]

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(0, 60)))
        phase["name"] = "down"
        private_kafka.stop()
        list(pool.map(one, range(60, 180)))
        wait_until(
            lambda: ready()["producer_state"] == "down",
            timeout=30,
            what="the gateway to notice the broker is down",
        )
        states.add(ready()["producer_state"])
        down = health()
        assert down["status"] == "degraded"
        assert down["dependencies"]["kafka-events"]["up"] is False
        list(pool.map(one, range(180, 240)))
        assert ready()["spool_depth"] > 0
        phase["name"] = "back"
        private_kafka.start()
        list(pool.map(one, range(240, 300)))
    wait_until(
        lambda: ready()["producer_state"] == "up" and ready()["spool_depth"] == 0,
        timeout=90,
        what="the spool to drain",
    )

    assert failures == []
    assert len(ids) == 300
    assert "down" in states
    assert health()["dependencies"]["kafka-events"] == {"up": True}
    # Events spooled by the hundred, yet one line when Kafka was lost and one when it came
    # back (a broker that flaps while starting may add a pair).
    log = (gw.workdir / "gateway.log").read_text()
    lost = log.count("kafka-events unavailable")
    assert 1 <= lost <= 2
    assert log.count("kafka-events available again") == lost
    consumer = make_consumer(kafka, group_id=f"check-{uuid.uuid4().hex[:8]}", client_id="t")
    consumer.subscribe([gw.decisions_topic])
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(seen) < len(ids):
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            seen.append(msg.key().decode())
    # A little longer: anything beyond the expected count would be a duplicate.
    end = time.monotonic() + 3
    while time.monotonic() < end:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            seen.append(msg.key().decode())
    consumer.close()
    assert sorted(seen) == sorted(ids), (len(seen), len(set(seen)), len(ids))
    metrics = httpx.get(f"{gw.url}/metrics").text
    spooled = float(metrics.split('routeiq_gateway_events_total{fate="spooled"} ')[1].split()[0])
    replayed = float(metrics.split('routeiq_gateway_events_total{fate="replayed"} ')[1].split()[0])
    assert spooled > 0
    assert replayed == spooled
