"""Analytics as a process against the real stack: exact numbers, dead letters, restarts."""

from __future__ import annotations

import math
import re
import struct
import time

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from confluent_kafka import TopicPartition
from integration.analytics.helpers import (
    AnalyticsTopics,
    consume_all,
    decision_record,
    feedback_record,
)
from routeiq.kafka import make_consumer
from routeiq.routing.datasets import GPT4, MIXTRAL
from routeiq_cli.report import report

pytestmark = pytest.mark.integration

# $ per million tokens (the service's default price table: RouteLLM's).
PRICE = {GPT4: (10.0, 30.0), MIXTRAL: (0.6, 0.6)}


def _price(model: str, tokens_in: int, tokens_out: int) -> float:
    per_in, per_out = PRICE[model]
    return (tokens_in * per_in + tokens_out * per_out) / 1e6


def _traffic(now: float) -> tuple[list[dict], list[dict]]:
    decisions = [
        decision_record("d1", at=now - 40, model=GPT4, arm="A", input_tokens=1200,
                        output_tokens=300, embedding_ms=2.5, strategy_ms=0.25),
        decision_record("d2", at=now - 35, model=MIXTRAL, arm="A", input_tokens=800,
                        output_tokens=400, embedding_ms=1.0, strategy_ms=0.125),
        decision_record("d3", at=now - 30, model=MIXTRAL, strategy="learned", arm="B",
                        exploration=True, input_tokens=500, output_tokens=500,
                        cost_usd=0.0007, embedding_ms=3.0, strategy_ms=1.0),
        decision_record("d4", at=now - 25, model=GPT4, strategy="learned", arm="B",
                        status="ERROR", input_tokens=0, output_tokens=0, embedding_ms=0.5,
                        strategy_ms=0.5, fallback=True),
        decision_record("d5", at=now - 20, model=MIXTRAL, strategy="learned", input_tokens=300,
                        output_tokens=900, embedding_ms=4.0, strategy_ms=2.0),
        decision_record("d6", at=now - 15, model=GPT4, strategy="threshold", arm="A",
                        input_tokens=100, output_tokens=1000, embedding_ms=0.75,
                        strategy_ms=0.25),
    ]  # fmt: skip
    feedback = [
        feedback_record("f1", "d1", 1.0),
        feedback_record("f2", "d2", 0.0),
        feedback_record("f3", "d2", 1.0, candidate=GPT4),  # shadow answer of the strong model
        feedback_record("f4", "d3", 0.5),
        feedback_record("f5", "d5", 1.0, candidate=MIXTRAL),  # names the served model
        feedback_record("f6", "d5", 0.0, candidate=GPT4),  # shadow
        feedback_record("f1", "d1", 1.0),  # redelivered
    ]
    return decisions, feedback


def _expected(decisions: list[dict], feedback: list[dict], early: dict) -> dict:
    """The window's numbers from the raw events, computed the plain way."""
    cost = strong = weak = 0.0
    for d in decisions:
        o = d["outcome"]
        model = d["selected_deployment"]
        cost += (
            o["cost_usd"]
            if o["cost_usd"] is not None
            else _price(model, o["input_tokens"], o["output_tokens"])
        )
        strong += _price(GPT4, o["input_tokens"], o["output_tokens"])
        weak += _price(MIXTRAL, o["input_tokens"], o["output_tokens"])
    served_by = {d["event_id"]: d for d in decisions}
    unique = {f["feedback_id"]: f for f in [early, *feedback]}.values()
    served, by_model = [], {GPT4: [], MIXTRAL: []}
    by_strategy: dict[str, list[float]] = {}
    for f in unique:
        d = served_by[f["decision_id"]]
        model = f["candidate"] or d["selected_deployment"]
        by_model[model].append(f["score"])
        if model == d["selected_deployment"]:
            served.append(f["score"])
            by_strategy.setdefault(d["strategy"]["name"], []).append(f["score"])
    q, q_s, q_w = (float(np.mean(v)) for v in (served, by_model[GPT4], by_model[MIXTRAL]))
    share = min(max((q - q_w) / (q_s - q_w), 0.0), 1.0)
    routing = [d["timings"]["embedding_ms"] + d["timings"]["strategy_ms"] for d in decisions]
    return {
        "cost": cost,
        "strong": strong,
        "weak": weak,
        "quality": q,
        "strong_quality": q_s,
        "weak_quality": q_w,
        "share": share,
        "random": share * strong + (1 - share) * weak,
        "p50": float(np.quantile(routing, 0.5, method="inverted_cdf")),
        "p95": float(np.quantile(routing, 0.95, method="inverted_cdf")),
        "by_strategy": {k: (float(np.mean(v)), len(v)) for k, v in by_strategy.items()},
        "served_count": len(served),
    }


def test_window_numbers_dead_letters_and_a_restart_that_rebuilds(
    stack, analytics_topics: AnalyticsTopics, analytics_factory
) -> None:
    topics = analytics_topics
    service = analytics_factory()
    now = time.time()
    decisions, feedback = _traffic(now)

    # Feedback first: it must wait for its decision, then count.
    early = feedback_record("f0", "d6", 0.5)
    topics.feedback(early)
    service.wait_for(
        lambda s: s["pipeline"]["pending_feedback"] == 1, what="feedback waiting for d6"
    )
    for record in decisions:
        topics.decision(record)
    # The two topics are fetched independently: without this wait a batch may hold feedback
    # ahead of its decision, and only the early record above is meant to wait.
    service.wait_for(lambda s: s["requests"]["total"] == 6, what="the 6 decisions")
    for record in feedback:
        topics.feedback(record)
    # Poison: not the wire format; a schema id the registry never issued; a valid record
    # analytics cannot use (score outside [0, 1]).
    garbage = topics.raw(topics.decisions_topic, b"d-garbage", b"\x7bnot avro at all")
    unknown_id = topics.raw(
        topics.feedback_topic, b"d1", struct.pack(">bI", 0, 2_000_000_000) + b"\x02\x04"
    )
    out_of_range = topics.feedback(feedback_record("f-bad", "d1", 1.5))

    s = service.wait_for(
        lambda s: (
            s["requests"]["total"] == 6
            and s["pipeline"]["dead_lettered"] == 3
            and s["quality"]["overall"]["count"] == 5
        ),
        what="6 decisions, 3 dead letters and 5 served grades",
    )
    want = _expected(decisions, feedback, early)
    exact = pytest.approx

    assert s["requests"]["by_model"] == {GPT4: 3, MIXTRAL: 3}
    assert s["requests"]["by_status"] == {"ERROR": 1, "SUCCESS": 5}
    assert s["success_rate"] == exact(5 / 6, rel=1e-12)
    assert s["exploration_share"] == exact(1 / 6, rel=1e-12)
    assert s["fallback_share"] == exact(1 / 6, rel=1e-12)
    assert s["cost"]["total_usd"] == exact(want["cost"], rel=1e-12)
    assert s["cost"]["per_1k_requests_usd"] == exact(want["cost"] / 6 * 1000, rel=1e-12)
    assert s["savings"]["always_strong"]["baseline_usd"] == exact(want["strong"], rel=1e-12)
    assert s["savings"]["always_strong"]["saved_usd"] == exact(
        want["strong"] - want["cost"], rel=1e-12
    )
    assert s["savings"]["always_weak_usd"] == exact(want["weak"], rel=1e-12)
    rnd = s["savings"]["random_equal_quality"]
    assert rnd["target_quality"] == exact(want["quality"], rel=1e-12)
    assert rnd["strong_quality"] == exact(want["strong_quality"], rel=1e-12)
    assert rnd["weak_quality"] == exact(want["weak_quality"], rel=1e-12)
    assert rnd["strong_share"] == exact(want["share"], rel=1e-12)
    assert rnd["baseline_usd"] == exact(want["random"], rel=1e-12)
    assert rnd["saved_usd"] == exact(want["random"] - want["cost"], rel=1e-12)
    assert s["routing_latency_ms"]["p50"] == want["p50"]
    assert s["routing_latency_ms"]["p95"] == want["p95"]
    assert s["routing_latency_ms"]["exact"] is True
    assert {
        name: (row["quality"]["mean"], row["quality"]["count"])
        for name, row in s["quality"]["by_strategy"].items()
    } == {k: (exact(v[0], rel=1e-12), v[1]) for k, v in want["by_strategy"].items()}
    assert s["quality"]["by_arm"]["A"]["requests"] == 3
    assert s["quality"]["by_arm"]["B"]["requests"] == 2
    assert s["quality"]["by_model"][GPT4]["shadow_count"] == 2
    assert s["pipeline"]["feedback_waited"] == 1
    assert s["pipeline"]["feedback_duplicate"] == 1

    # Each poison record is on the dead-letter topic with its coordinates and the reason.
    letters = consume_all(stack, topics.deadletter_topic, topics.deadletter_serde)
    by_offset = {(r["source_topic"], r["source_partition"], r["source_offset"]): (m, r)
                 for m, r in letters}  # fmt: skip
    assert len(letters) == 3
    for poison, error_type, reason in (
        (garbage, "SerializationError", "unknown magic byte"),
        (unknown_id, "SerializationError", "unknown schema id 2000000000"),
        (out_of_range, "InvalidRecordError", "score=1.5 is outside [0.0, 1.0]"),
    ):
        message, letter = by_offset[(poison.topic(), poison.partition(), poison.offset())]
        # Keyed by source position (was: topic), so a replayed one is recognised.
        assert message.key() == (
            f"{poison.topic()}/{poison.partition()}/{poison.offset()}".encode()
        )
        assert letter["value"] == poison.value()
        assert letter["key"] == poison.key()
        assert letter["error_type"] == error_type
        assert reason in letter["reason"]
        assert letter["consumer"] == f"routeiq-analytics/{service.group_id}"

    # The group committed everything it processed.
    reader = make_consumer(stack.kafka, group_id=service.group_id, client_id="test-offsets")
    try:
        positions = {
            (tp.topic, tp.partition): tp.offset
            for tp in reader.committed(
                [TopicPartition(m.topic(), m.partition()) for m in topics.delivered], timeout=10
            )
        }
    finally:
        reader.close()
    for m in topics.delivered:
        assert positions[(m.topic(), m.partition())] >= m.offset() + 1

    # A restart in the same group rebuilds the window from Kafka (the last hour), and does
    # not dead-letter the poison again.
    assert service.process.stop() == 0
    again = analytics_factory(group_id=service.group_id)
    rebuilt = again.wait_for(
        lambda r: r["requests"]["total"] == 6 and r["quality"]["overall"]["count"] == 5,
        what="the rebuilt window",
    )
    for key in ("requests", "cost", "savings", "routing_latency_ms", "quality", "models"):
        assert rebuilt[key] == s[key], key
    assert rebuilt["pipeline"]["dead_lettered"] == 0
    assert len(consume_all(stack, topics.deadletter_topic, topics.deadletter_serde)) == 3

    # `routeiq report` prints the same window; a bad window is refused with the reason.
    printed = CliRunner().invoke(report, ["--url", again.url, "--window", "5m"])
    assert printed.exit_code == 0, printed.output
    assert re.search(r"^requests +6$", printed.output, re.MULTILINE)
    assert re.search(r"^success rate +83\.3%$", printed.output, re.MULTILINE)
    refused = CliRunner().invoke(report, ["--url", again.url, "--window", "3h"])
    assert refused.exit_code == 1
    assert "longer than the retention (1h)" in refused.output

    # Metrics tell the same story.
    text = httpx.get(f"{again.url}/metrics", timeout=10).text
    assert f'routeiq_analytics_window_requests{{model="{GPT4}",window="5m"}} 3.0' in text
    assert 'routeiq_analytics_records_total{kind="feedback",outcome="poison_replayed"} 2.0' in text
    assert math.isclose(
        float(
            next(
                line.split()[-1]
                for line in text.splitlines()
                if line.startswith('routeiq_analytics_window_cost_usd{window="5m"}')
            )
        ),
        want["cost"],
        rel_tol=1e-12,
    )


def test_an_unregistered_dead_letter_subject_stops_the_start_with_the_reason(
    analytics_factory, unique
) -> None:
    service = analytics_factory(
        wait_ready=False,
        ROUTEIQ_ANALYTICS_DEADLETTER_TOPIC=unique("never-registered"),
        ROUTEIQ_ANALYTICS_STARTUP_TIMEOUT_S="2",
    )
    assert service.process.proc is not None
    assert service.process.proc.wait(60) == 1
    assert "did not resolve within 2s" in service.process.log.read_text()
