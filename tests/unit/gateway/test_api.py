"""The gateway's HTTP API end to end in-process: routing, headers, events, errors, admin."""

from __future__ import annotations

import json

import pytest
import yaml
from routeiq.contracts.catalog import ROUTER_DECISION
from routeiq.errors import ConfigError
from routeiq.routing.engine import Rollout
from routeiq.routing.strategies import BundleHolder
from routeiq_gateway.api.app import create_app
from routeiq_gateway.config import load_model_file
from routeiq_gateway.wiring import build_engine
from starlette.testclient import TestClient

from .conftest import ADMIN_KEY, CollectingPublisher, offline_gateway

PROMPT = "Please write a Python function def add(a, b) that adds two numbers"


def decode(gateway, value: bytes) -> dict:
    return gateway.decision_serde.decode(value)


def test_completion_routes_serves_and_logs_one_event(wired) -> None:
    client, gateway, publisher = wired
    r = client.post(
        "/v1/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": PROMPT}], "user": "alice"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["choices"][0]["message"]["content"] == "The answer is 4."
    assert r.headers["x-routeiq-model"] == "big"  # the policy's code rule
    assert r.headers["x-routeiq-router-version"] == "none"
    decision_id = r.headers["x-routeiq-decision-id"]
    [(topic, key, value)] = publisher.records
    assert (topic, key) == ("decisions", decision_id.encode())
    assert PROMPT.encode() not in value
    assert b"The answer" not in value
    event = decode(gateway, value)
    assert event["event_id"] == decision_id
    assert event["selected_deployment"] == "big"
    assert event["strategy"]["name"] == "policy"
    assert event["input"]["query_length"] == len(PROMPT)
    assert event["input"]["user_id"] not in (None, "alice")  # hashed with the salt
    assert {c["model_name"]: c["propensity"] for c in event["candidate_deployments"]} == {
        "big": 1.0,
        "small": 0.0,
    }
    assert event["outcome"]["status"] == "SUCCESS"
    assert event["outcome"]["total_tokens"] > 0
    assert event["outcome"]["cost_usd"] == pytest.approx(
        event["outcome"]["input_tokens"] * 1e-5 + event["outcome"]["output_tokens"] * 3e-5
    )


def test_streaming_sends_sse_and_logs_after_the_stream(wired) -> None:
    client, gateway, publisher = wired
    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={"model": "auto", "stream": True, "messages": [{"role": "user", "content": "hello"}]},
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    text = "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in lines[:-1]
        if json.loads(line[6:]).get("choices")
    )
    assert text == "4"
    event = decode(gateway, publisher.records[-1][2])
    assert event["selected_deployment"] == "small"
    assert event["outcome"]["status"] == "SUCCESS"


def test_a_model_named_directly_is_served_and_logged_as_direct(wired) -> None:
    client, gateway, publisher = wired
    r = client.post(
        "/v1/chat/completions",
        json={"model": "big", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200
    assert r.headers["x-routeiq-strategy"] == "direct"
    assert decode(gateway, publisher.records[-1][2])["strategy"]["name"] == "direct"


def _raw(body: str) -> dict:
    return {"content": body.encode(), "headers": {"content-type": "application/json"}}


def _chat(content: object = "What is 2+2?", **params: object) -> dict:
    return {"json": {"model": "auto", "messages": [{"role": "user", "content": content}], **params}}


@pytest.mark.parametrize(
    ("kwargs", "status", "fragment"),
    [
        (
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            "not valid JSON",
        ),
        ({"json": {"model": "auto"}}, 400, "'messages' is required"),
        ({"json": {"model": "auto", "messages": []}}, 400, "non-empty"),
        ({"json": {"model": "auto", "messages": [{"role": "robot", "content": "x"}]}}, 400, "role"),
        (
            {"json": {"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}},
            404,
            "not served here",
        ),
        (
            {
                "json": {
                    "model": "auto",
                    "stream": "yes",
                    "messages": [{"role": "user", "content": "x"}],
                }
            },
            400,
            "boolean",
        ),
        (
            {"json": {"model": "auto", "messages": [{"role": "user", "content": "x" * 5000}]}},
            413,
            "limit",
        ),
        (
            {"content": b"a=b", "headers": {"content-type": "application/x-www-form-urlencoded"}},
            415,
            "content-type",
        ),
        ({"json": [1, 2]}, 400, "JSON object"),
        # Found by a new user against the running stack: each was a 500 or a 502 after retries.
        (
            _raw('{"model": "auto", "messages": [{"role": "user", "content": "\\ud800"}]}'),
            400,
            "Unicode",
        ),
        (_raw('{"model": "auto", "x": ' + "[" * 100 + "]" * 100 + "}"), 400, "nested deeper"),
        (_raw('{"model": "auto", "temperature": NaN}'), 400, "NaN is not a JSON number"),
        (_chat(tools="x"), 400, "'tools'"),
        (_chat(tools=[{"type": "function"}]), 400, "tools[0]"),
        (_chat(tool_choice="sometimes"), 400, "tool_choice"),
        (_chat(temperature=99), 400, "'temperature' must be a number in [0, 2]"),
        (_chat(top_p=5), 400, "top_p"),
        (_chat(max_tokens=1e12), 400, "'max_tokens' must be an integer"),
        (_chat(n=0), 400, "'n'"),
        (_chat(stop=["a", "b", "c", "d", "e"]), 400, "'stop'"),
        (_chat(logit_bias={"50256": 101}), 400, "logit_bias"),
        (_chat(response_format={"type": "yaml"}), 400, "response_format"),
        (_chat(logprobs="yes"), 400, "'logprobs' must be a boolean"),
        (_chat(content=[{"type": "bogus"}]), 400, "messages[0].content[0]"),
        (_chat(content=[{"type": "text"}]), 400, "content[0].text"),
        (_chat(content=[{"type": "image_url", "image_url": "x"}]), 400, "image_url"),
    ],
)
def test_bad_requests_get_openai_style_4xx(wired, kwargs, status, fragment) -> None:
    client, _, publisher = wired
    r = client.post("/v1/chat/completions", **kwargs)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert fragment in error["message"]
    assert error["type"]
    assert publisher.records == []  # nothing was routed, nothing is logged


def test_feedback_is_validated_and_published_keyed_by_decision(wired) -> None:
    client, gateway, publisher = wired
    r = client.post(
        "/v1/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
    )
    decision_id = r.headers["x-routeiq-decision-id"]
    ok = client.post(
        "/v1/feedback",
        json={"decision_id": decision_id, "score": 0.75, "source": "user", "candidate": "big"},
    )
    assert ok.status_code == 202, ok.text
    topic, key, value = publisher.records[-1]
    assert (topic, key) == ("feedback", decision_id.encode())
    record = gateway.feedback_serde.decode(value)
    assert record["score"] == 0.75
    assert record["candidate"] == "big"
    forged = decision_id[:-1] + ("0" if decision_id[-1] != "0" else "1")
    cases = [
        ({"decision_id": forged, "score": 1}, 404, "unknown decision id"),
        ({"decision_id": decision_id, "score": 1.5}, 400, "[0, 1]"),
        ({"decision_id": decision_id, "score": "good"}, 400, "number"),
        ({"decision_id": decision_id, "score": 1, "candidate": "gpt-9"}, 400, "candidate"),
        ({"score": 1}, 400, "decision_id"),
        ({"decision_id": decision_id, "score": 1, "surprise": 1}, 400, "unknown field"),
        # Who graded it is part of the label (user, judge, benchmark): never guessed.
        ({"decision_id": decision_id, "score": 1, "source": None}, 400, "source"),
    ]
    for body, status, fragment in cases:
        body = {"source": "user", **body}
        bad = client.post("/v1/feedback", json={k: v for k, v in body.items() if v is not None})
        assert bad.status_code == status, (body, bad.text)
        assert fragment in bad.json()["error"]["message"]
    for raw, fragment in (
        (
            f'{{"decision_id": "{decision_id}", "score": 1, "source": "user", "latency_ms": NaN}}',
            "NaN",
        ),
        ('{"score": ' + "[" * 100 + "]" * 100 + "}", "nested deeper"),
    ):
        bad = client.post("/v1/feedback", **_raw(raw))
        assert bad.status_code == 400, bad.text
        assert fragment in bad.json()["error"]["message"]
    # 1e400 is valid JSON and parses to infinity.
    too_slow = (
        f'{{"decision_id": "{decision_id}", "score": 1, "source": "user", "latency_ms": 1e400}}'
    )
    assert "finite" in client.post("/v1/feedback", **_raw(too_slow)).text


def test_admin_endpoints_need_the_key(wired) -> None:
    client, _, _ = wired
    assert client.get("/admin/router").status_code == 401
    assert client.get("/admin/router", headers={"authorization": "Bearer wrong"}).status_code == 403
    r = client.get("/admin/strategies", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status_code == 200
    names = {s["name"] for s in r.json()["strategies"]}
    assert {"random", "cheapest", "strongest", "policy"} <= names


def test_strategies_can_be_registered_and_split_atomically(wired) -> None:
    client, gateway, _ = wired
    auth = {"authorization": f"Bearer {ADMIN_KEY}"}
    bad = client.put(
        "/admin/strategies",
        headers=auth,
        json={
            "register": [{"name": "t", "kind": "threshold", "params": {"strong": "big"}}],
            "default": "t",
        },
    )
    assert bad.status_code == 400
    assert "weak" in bad.json()["error"]["message"]
    assert gateway.engine.config.default == "policy"
    assert "t" not in gateway.registry.names()
    good = client.put(
        "/admin/strategies",
        headers=auth,
        json={
            "register": [
                {
                    "name": "t",
                    "kind": "threshold",
                    "params": {"strong": "big", "weak": "small", "threshold": 0.0},
                }
            ],
            "ab": {"t": 1, "cheapest": 1},
            "epsilon": 0.1,
        },
    )
    assert good.status_code == 200, good.text
    assert good.json()["config"]["ab"] == {"t": 1.0, "cheapest": 1.0}
    arms = set()
    for i in range(40):
        r = client.post(
            "/v1/chat/completions",
            headers={"x-routeiq-user": f"u{i}"},
            json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
        )
        arms.add(r.headers["x-routeiq-strategy"])
    assert arms == {"t", "cheapest"}


def test_health_and_metrics(wired) -> None:
    client, _, _ = wired
    assert client.get("/health/live").json() == {"status": "ok"}
    ready = client.get("/health/ready").json()
    assert ready["default_strategy"] == "policy"
    assert ready["kafka"]["producer_state"] == "up"
    client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    text = client.get("/metrics").text
    assert 'routeiq_gateway_requests_total{model="small",status="200"} 1.0' in text
    assert "routeiq_gateway_routing_seconds_bucket" in text
    assert ROUTER_DECISION.stem == "router_decision"


# Found by the schemathesis run (tests/unit/gateway/test_fuzz.py): each was a 502 after LiteLLM
# refused the message, i.e. a client mistake that reached the upstream.
@pytest.mark.parametrize(
    ("message", "param"),
    [
        ({"role": "user", "content": [{"type": "refusal", "refusal": "no"}]}, "content[0].type"),
        ({"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}, "type"),
        ({"role": "tool", "content": "42"}, "messages[0].tool_call_id"),
    ],
)
def test_content_parts_a_role_may_not_send_are_400s(wired, message, param) -> None:
    client, _, publisher = wired
    r = client.post("/v1/chat/completions", json={"model": "auto", "messages": [message]})
    assert r.status_code == 400, r.text
    assert param in r.json()["error"]["param"]
    assert publisher.records == []


def test_admin_bodies_are_validated_by_their_models(wired) -> None:
    client, gateway, _ = wired
    auth = {"authorization": f"Bearer {ADMIN_KEY}"}
    cases = [
        ({"epsilon": 1.5}, "epsilon", "[0, 1]"),
        ({"ab": {"cheapest": "1"}}, "ab.cheapest", "finite number"),
        ({"register": [{"name": "t"}]}, "register[0].kind", "required"),
        ({"defualt": "cheapest"}, "defualt", "unknown field"),
    ]
    for body, param, fragment in cases:
        r = client.put("/admin/strategies", headers=auth, json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["param"] == param
        assert fragment in r.json()["error"]["message"]
    assert gateway.engine.config.epsilon == 0.0
    bad_limit = client.get("/admin/audit?limit=lots", headers=auth)
    assert (bad_limit.status_code, bad_limit.json()["error"]["param"]) == (400, "limit")
    no_version = client.post("/admin/model/rollback", headers=auth, json={"reason": "x"})
    assert no_version.status_code == 400


def test_an_integer_too_long_for_python_is_a_400_not_a_500(model_file) -> None:
    # Within the default 1 MiB body limit, a 5,000-digit number made int() raise: a 500.
    gateway = offline_gateway(model_file, CollectingPublisher())
    client = TestClient(create_app(gateway, admin_key=ADMIN_KEY, max_body_bytes=1024 * 1024))
    for path in ("/v1/chat/completions", "/v1/feedback"):
        r = client.post(path, **_raw('{"model": "auto", "n": ' + "9" * 5000 + "}"))
        assert r.status_code == 400, r.text
        assert "not valid JSON" in r.json()["error"]["message"]


def test_rollout_flags_and_the_kill_switch_through_the_admin_api(wired) -> None:
    client, gateway, publisher = wired
    auth = {"authorization": f"Bearer {ADMIN_KEY}"}

    def strategy_for(team: str) -> tuple[str, str | None]:
        r = client.post(
            "/v1/chat/completions",
            headers={"x-routeiq-team": team},
            json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.status_code == 200, r.text
        event = decode(gateway, publisher.records[-1][2])
        return r.headers["x-routeiq-strategy"], event["ab_arm"]

    bad = client.put(
        "/admin/strategies",
        headers=auth,
        json={"rollout": {"strategy": "strongest", "percent": 150}},
    )
    assert (bad.status_code, bad.json()["error"]["param"]) == (400, "rollout.percent")
    r = client.put(
        "/admin/strategies",
        headers=auth,
        json={"rollout": {"strategy": "strongest", "percent": 0, "teams": ["red"]}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["config"]["rollout"]["teams"] == ["red"]
    assert strategy_for("red") == ("strongest", "rollout")
    assert strategy_for("blue") == ("policy", None)
    r = client.put("/admin/strategies", headers=auth, json={"kill_switch": True})
    assert r.json()["config"]["kill_switch"] is True
    assert strategy_for("red") == ("policy", "kill-switch")
    r = client.put("/admin/strategies", headers=auth, json={"kill_switch": False, "rollout": None})
    assert r.json()["config"]["rollout"] is None
    assert strategy_for("red") == ("policy", None)


def test_rollout_flags_from_the_model_file(model_file) -> None:
    raw = yaml.safe_load(model_file.read_text())
    raw["routeiq"]["rollout"] = {"strategy": "strongest", "percent": 10, "domains": ["law"]}
    raw["routeiq"]["kill_switch"] = True
    model_file.write_text(yaml.safe_dump(raw))
    config = build_engine(load_model_file(model_file), BundleHolder()).config
    assert config.rollout == Rollout(strategy="strongest", percent=10, domains=frozenset({"law"}))
    assert config.kill_switch
    raw["routeiq"]["rollout"] = {"strategy": "nope", "percent": 10}
    model_file.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="rollout strategy 'nope' is not registered"):
        build_engine(load_model_file(model_file), BundleHolder())
