"""`routeiq replay` through a real gateway: feedback and shadow outcomes land on Kafka."""

from __future__ import annotations

import asyncio

from routeiq.routing.datasets import load_gsm8k
from routeiq_cli.replay import Replayer

from .test_gateway_service import consume


def test_replay_posts_recorded_feedback_and_shadow_outcomes(
    stack, gateway_factory, upstream
) -> None:
    gw = gateway_factory()
    ds = load_gsm8k()
    rows = list(range(20))
    stats = asyncio.run(
        Replayer(
            ds, gateway=gw.url, upstream=upstream, concurrency=4, shadow_fraction=1.0, seed=1
        ).run(rows)
    )
    assert (stats.ok, stats.errors, stats.feedback, stats.shadow) == (20, 0, 20, 20)
    records, _ = consume(stack, gw.feedback_topic, gw.feedback_serde, 40)
    decisions, _ = consume(stack, gw.decisions_topic, gw.decision_serde, 20)
    served = {e["event_id"]: e["selected_deployment"] for _, e in decisions}
    assert len(records) == 40
    assert len(served) == 20
    by_prompt_quality = {}
    for _, fb in records:
        model = fb["candidate"] or served[fb["decision_id"]]
        by_prompt_quality.setdefault(fb["decision_id"], {})[model] = fb["score"]
        if fb["candidate"]:
            assert fb["source"] == "shadow"
            assert fb["cost_usd"] > 0
    # Every decision has both models graded: a full-information row, matching the data.
    assert all(len(v) == 2 for v in by_prompt_quality.values())
    assert sorted(q for v in by_prompt_quality.values() for q in v.values()) == sorted(
        float(x) for x in ds.scores[rows].ravel()
    )
