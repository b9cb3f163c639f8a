"""End to end: a real gateway writes decisions and feedback to private topics while it serves
GSM8K prompts from the stack's offline upstream; analytics reports the same traffic."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from integration.analytics.helpers import AnalyticsTopics, consume_all
from routeiq.routing.datasets import load_gsm8k
from support.processes import ServiceProcess, free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
PROMPTS = 8


def _gateway(stack, topics: AnalyticsTopics, workdir: Path) -> tuple[str, ServiceProcess]:
    upstream = f"http://{stack.settings.host}:{stack.settings.upstream_port}/v1"
    config = yaml.safe_load((REPO / "services/gateway/config/local.yaml").read_text())
    for deployment in config["model_list"]:
        deployment["litellm_params"]["api_base"] = upstream
    model_file = workdir / "models.yaml"
    model_file.write_text(yaml.safe_dump(config))
    port = free_port()
    process = ServiceProcess(
        "routeiq_gateway",
        {
            "ROUTEIQ_GATEWAY_PORT": str(port),
            "ROUTEIQ_GATEWAY_REPLICA_ID": f"analytics-e2e-{port}",
            "ROUTEIQ_GATEWAY_CONFIG_PATH": str(model_file),
            "ROUTEIQ_GATEWAY_ADMIN_KEY": "analytics-e2e-admin-key",
            "ROUTEIQ_GATEWAY_DECISION_KEY": "analytics-e2e-decision-key",
            "ROUTEIQ_GATEWAY_USER_SALT": "analytics-e2e-salt",
            "ROUTEIQ_GATEWAY_KAFKA__BOOTSTRAP_SERVERS": stack.kafka.bootstrap_servers,
            "ROUTEIQ_GATEWAY_REGISTRY__URL": stack.registry.url,
            "ROUTEIQ_GATEWAY_S3__ENDPOINT": stack.s3.endpoint,
            "ROUTEIQ_GATEWAY_REDIS__URL": stack.redis.url,
            "ROUTEIQ_GATEWAY_DECISIONS_TOPIC": topics.decisions_topic,
            "ROUTEIQ_GATEWAY_FEEDBACK_TOPIC": topics.feedback_topic,
            "ROUTEIQ_GATEWAY_SYNC_ENABLED": "false",
            "ROUTEIQ_GATEWAY_SPOOL_DIR": str(workdir / "spool"),
            "ROUTEIQ_GATEWAY_MODEL_CACHE_DIR": str(workdir / "cache"),
            "ROUTEIQ_GATEWAY_AUDIT_LOG": str(workdir / "audit.jsonl"),
            "ROUTEIQ_UPSTREAM_API_KEY": "offline",
        },
        workdir / "gateway.log",
        health_url=f"http://127.0.0.1:{port}/health/ready",
    ).start(timeout=180)
    return f"http://127.0.0.1:{port}", process


def test_analytics_reports_what_the_gateway_served(
    stack, analytics_topics: AnalyticsTopics, analytics_factory, tmp_path: Path
) -> None:
    service = analytics_factory()
    url, gateway = _gateway(stack, analytics_topics, tmp_path)
    try:
        served: Counter[str] = Counter()
        strategies: set[str] = set()
        scores: list[float] = []
        with httpx.Client(base_url=url, timeout=60) as client:
            for i, prompt in enumerate(load_gsm8k().prompts[:PROMPTS]):
                r = client.post(
                    "/v1/chat/completions",
                    json={"model": "auto", "messages": [{"role": "user", "content": prompt}]},
                )
                assert r.status_code == 200, r.text
                served[r.headers["x-routeiq-model"]] += 1
                strategies.add(r.headers["x-routeiq-strategy"])
                if i % 2 == 0:
                    score = float(i % 4 == 0)
                    fb = client.post(
                        "/v1/feedback",
                        json={
                            "decision_id": r.headers["x-routeiq-decision-id"],
                            "score": score,
                            "source": "user",
                        },
                    )
                    assert fb.status_code == 202, fb.text
                    scores.append(score)
    finally:
        gateway.stop()

    s = service.wait_for(
        lambda s: (
            s["requests"]["total"] == PROMPTS and s["quality"]["overall"]["count"] == len(scores)
        ),
        what="the gateway's traffic in analytics",
    )
    assert s["requests"]["by_model"] == dict(served.most_common())
    assert s["success_rate"] == 1.0
    assert set(s["quality"]["by_strategy"]) == strategies
    assert s["quality"]["overall"]["mean"] == pytest.approx(float(np.mean(scores)))

    # The numbers match the events themselves (the gateway priced each request).
    events = [r for _, r in consume_all(stack, analytics_topics.decisions_topic,
                                        analytics_topics.decision_serde)]  # fmt: skip
    assert len(events) == PROMPTS
    assert s["cost"]["total_usd"] == pytest.approx(
        sum(e["outcome"]["cost_usd"] for e in events), rel=1e-12
    )
    routing = [e["timings"]["embedding_ms"] + e["timings"]["strategy_ms"] for e in events]
    assert s["routing_latency_ms"]["p95"] == float(
        np.quantile(routing, 0.95, method="inverted_cdf")
    )
    assert s["savings"]["always_strong"]["saved_usd"] >= 0
