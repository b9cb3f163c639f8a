"""`routeiq report`: the summary JSON as tables, and clear errors when analytics is not there."""

from __future__ import annotations

import socket

from click.testing import CliRunner
from routeiq_cli.report import render_report, report
from unit.analytics.helpers import STRONG, T0, WEAK, Clock, aggregator, decision, feedback


def _summary() -> dict:
    agg = aggregator(Clock(T0 + 5))
    agg.add_decision(
        decision(
            "d1", model=STRONG, ab_arm="A", input_tokens=1000, output_tokens=1000, routing_ms=2.0
        )
    )
    agg.add_decision(
        decision(
            "d2",
            model=WEAK,
            strategy="learned",
            ab_arm="B",
            input_tokens=1000,
            output_tokens=1000,
            routing_ms=4.0,
        )
    )
    agg.add_feedback(feedback("f1", "d1", 1.0))
    agg.add_feedback(feedback("f2", "d2", 0.5))
    agg.add_feedback(feedback("f3", "d2", 1.0, candidate=STRONG))  # fmt: skip
    return agg.summary(300)


def test_report_prints_the_overview_and_the_tables() -> None:
    text = render_report(_summary())
    lines = text.splitlines()
    assert lines[0].startswith("RouteIQ analytics, last 5m (")
    # Actual $0.04 + $0.0012; always-strong $0.08 → saved $0.0388 (48.5%).
    assert any(line.startswith("cost  ") and line.endswith("$0.0412") for line in lines)
    assert f"saved vs always {STRONG}" in text
    assert "$0.0388 (48.5%) of $0.0800" in text
    assert "routing latency p50 / p95" in text
    assert "2.00 ms / 4.00 ms  (2 requests)" in text
    assert "0.750  (2 graded)" in text
    model_rows = [line for line in lines if line.startswith((STRONG, WEAK))]
    assert model_rows[0].split()[:3] == [STRONG, "1", "50.0%"]
    assert "1+1 shadow" in model_rows[0]  # the strong model: one served, one shadow grade
    assert any(line.split()[:2] == ["learned", "1"] for line in lines)
    assert any(line.split()[:2] == ["B", "1"] for line in lines)
    assert lines[-1].startswith("pipeline: 0 dead-lettered, 0 feedback waiting")


def test_an_empty_window_still_prints() -> None:
    text = render_report(aggregator(Clock(T0)).summary(3600))
    assert "model: none in this window" in text
    assert "strategy: none in this window" in text
    assert "no feedback on served answers, feedback on the strong model" in text


def test_unreachable_service_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    result = CliRunner().invoke(report, ["--url", f"http://127.0.0.1:{port}"])
    assert result.exit_code == 1
    assert f"cannot reach the analytics service at http://127.0.0.1:{port}" in result.output
