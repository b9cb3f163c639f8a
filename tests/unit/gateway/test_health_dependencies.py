"""A lost dependency shows on ``/health/ready`` (named, with its error) and in the
``routeiq_dependency_up`` gauge, and the gateway stays ready to serve (200)."""

from __future__ import annotations

import re


def _gauge(text: str, name: str) -> float:
    match = re.search(rf'^routeiq_dependency_up\{{dependency="{name}"\}} (\S+)$', text, re.M)
    assert match, f"no gauge for {name}"
    return float(match.group(1))


def test_a_lost_dependency_degrades_readiness_and_its_gauge(wired) -> None:
    client, gateway, _ = wired
    redis = gateway.metrics.dependencies["redis"]
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["dependencies"]["redis"] == {"up": True}
    assert _gauge(client.get("/metrics").text, "redis") == 1

    redis.failed(ConnectionError("Error 111 connecting to 127.0.0.1:6379"))
    ready = client.get("/health/ready")
    assert ready.status_code == 200  # ready means "can serve": the default strategy still does
    body = ready.json()
    assert body["status"] == "degraded"
    lost = body["dependencies"]["redis"]
    assert lost["up"] is False
    assert lost["error"] == "Error 111 connecting to 127.0.0.1:6379"
    assert lost["down_for_s"] >= 0
    assert _gauge(client.get("/metrics").text, "redis") == 0
    # Serving is unaffected.
    chat = client.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}
    )
    assert chat.status_code == 200

    redis.recovered()
    body = client.get("/health/ready").json()
    assert body["status"] == "ready"
    assert body["dependencies"]["redis"] == {"up": True}
    assert _gauge(client.get("/metrics").text, "redis") == 1
