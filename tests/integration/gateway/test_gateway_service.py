"""The gateway as a process: the official openai client, events through the registry, admin."""

from __future__ import annotations

import uuid

import httpx
import openai
from routeiq.kafka import make_consumer
from routeiq.routing.datasets import load_gsm8k
from support.kafka import read_messages

from .conftest import ADMIN_KEY


def consume(stack, topic: str, serde, expected: int, timeout: float = 60.0) -> list[dict]:
    consumer = make_consumer(stack.kafka, group_id=f"test-{uuid.uuid4().hex[:8]}", client_id="test")
    consumer.subscribe([topic])
    messages = read_messages(consumer, expected, timeout=timeout, skip_errors=True)
    raw = [msg.value() for msg in messages]
    return [(msg.key(), serde.decode(msg.value())) for msg in messages], raw


def test_openai_client_gets_routed_answers_and_every_decision_is_on_kafka(
    stack, gateway_factory
) -> None:
    gw = gateway_factory()
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0)
    gsm8k = load_gsm8k()
    prompts = gsm8k.prompts[:3]
    headers_seen = []
    for prompt in prompts:
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": prompt}], user="tester"
        )
        completion = raw.parse()
        served = raw.headers["x-routeiq-model"]
        row = gsm8k.prompts.index(prompt)
        assert completion.choices[0].message.content == gsm8k.responses[row][served]
        assert completion.usage.total_tokens > 0
        headers_seen.append(
            (raw.headers["x-routeiq-decision-id"], served, raw.headers["x-routeiq-router-version"])
        )
    with client.chat.completions.with_streaming_response.create(
        model="auto", stream=True, messages=[{"role": "user", "content": prompts[0]}]
    ) as response:
        decision_id = response.headers["x-routeiq-decision-id"]
        served = response.headers["x-routeiq-model"]
        text = "".join(
            chunk.choices[0].delta.content or "" for chunk in response.parse() if chunk.choices
        )
    assert text == gsm8k.responses[0][served]
    headers_seen.append((decision_id, served, "none"))

    records, raw = consume(stack, gw.decisions_topic, gw.decision_serde, len(headers_seen))
    by_id = {event["event_id"]: (key, event) for key, event in records}
    assert set(by_id) == {h[0] for h in headers_seen}
    for decision_id, served, version in headers_seen:
        key, event = by_id[decision_id]
        assert key == decision_id.encode()
        assert event["selected_deployment"] == served
        assert (event["router_version"] or "none") == version
        assert len(event["query_embedding"]) == 384
        assert event["outcome"]["status"] == "SUCCESS"
        assert abs(sum(c["propensity"] for c in event["candidate_deployments"]) - 1) < 1e-9
    for value in raw:  # no prompt or answer text ever reaches a topic
        for prompt in prompts:
            assert prompt[:40].encode() not in value
        assert b"Janet" not in value
        assert b"farmers" not in value


def test_feedback_lands_on_its_topic_keyed_like_the_decision(stack, gateway_factory) -> None:
    gw = gateway_factory()
    r = httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": "What is 6*7?"}]},
        timeout=30,
    )
    decision_id = r.headers["x-routeiq-decision-id"]
    fb = httpx.post(
        f"{gw.url}/v1/feedback",
        json={
            "decision_id": decision_id,
            "score": 1.0,
            "source": "judge",
            "judge_model": "offline-judge",
        },
        timeout=10,
    )
    assert fb.status_code == 202
    unknown = httpx.post(
        f"{gw.url}/v1/feedback",
        json={"decision_id": "1-2.3", "score": 1.0, "source": "user"},
        timeout=10,
    )
    assert unknown.status_code == 404
    assert "decision" in unknown.json()["error"]["message"]
    [(key, record)], _ = consume(stack, gw.feedback_topic, gw.feedback_serde, 1)
    assert key == decision_id.encode()
    assert record["decision_id"] == decision_id
    assert record["source"] == "judge"
    assert record["score"] == 1.0


def test_admin_api_rejects_missing_and_wrong_keys(gateway_factory) -> None:
    gw = gateway_factory()
    assert httpx.get(f"{gw.url}/admin/router").status_code == 401
    assert (
        httpx.get(f"{gw.url}/admin/router", headers={"authorization": "Bearer nope"}).status_code
        == 403
    )
    assert (
        httpx.post(
            f"{gw.url}/admin/model/rollback",
            json={"version": "previous"},
            headers={"x-routeiq-admin-key": "nope"},
        ).status_code
        == 403
    )
    ok = httpx.get(f"{gw.url}/admin/router", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert ok.status_code == 200
    assert ok.json()["sync"]["router_name"] == "gsm8k-router"


def test_sigterm_shuts_down_cleanly(gateway_factory) -> None:
    gw = gateway_factory()
    httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert gw.process.stop() == 0
    assert "Traceback" not in gw.process.tail(200)
