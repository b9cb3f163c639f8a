"""`routeiq report`: the summary JSON as tables, and clear errors when analytics is not there."""

from __future__ import annotations

from click.testing import CliRunner
from routeiq.routing.datasets import ModelPrice
from routeiq_cli.report import render_report, report
from support.processes import free_port
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


def _n_model_summary(min_graded: int) -> dict:
    prices = {"big": ModelPrice(10, 30), "mid": ModelPrice(1, 2), "tiny": ModelPrice(0.1, 0.1)}
    agg = aggregator(Clock(T0 + 5), pair=None, prices=prices, best_model_min_graded=min_graded)
    for i in range(6):
        model = ["big", "mid", "tiny"][i % 3]
        agg.add_decision(
            decision(
                f"d{i}",
                model=model,
                candidates=("big", "mid", "tiny", "ghost"),
                input_tokens=1000,
                output_tokens=500,
            )
        )
        agg.add_feedback(feedback(f"f{i}", f"d{i}", 0.5 + 0.1 * (i % 3)))
        agg.add_feedback(feedback(f"g{i}", f"d{i}", 0.9, candidate="mid"))
    return agg.summary(300)


def test_report_shows_the_n_model_baselines() -> None:
    # 6000 in, 3000 out: always big $0.15, mid $0.012, tiny $0.0009; actual $0.0543. mid
    # grades 0.825 over 8 answers (4 served, 4 shadow) and is the best single model: cheaper
    # than routing, so routing "costs more".
    text = render_report(_n_model_summary(min_graded=8))
    lines = text.splitlines()
    assert "saved vs always big             $0.0957 (63.8%) of $0.150  [auto pair]" in lines
    assert "saved vs the most expensive     $0.0957 (63.8%) of $0.150  [always big]" in lines
    assert (
        "saved vs the best single model  costs $0.0423 (352.5%) more than $0.0120  "
        "[always mid: quality 0.825 on 8 graded; routed 0.675]"
    ) in lines
    always = {line.split()[0]: line for line in lines if line.startswith(("big ", "mid ", "tiny "))}
    assert "most expensive, strong" in always["big"]
    assert always["mid"].split()[1:3] == ["$0.0120", "-$0.0423"]
    assert always["mid"].endswith("best")
    assert always["tiny"].endswith("weak")
    assert any(line.startswith("note: no price for ghost") for line in lines)


def test_report_says_when_no_model_has_enough_grades() -> None:
    text = render_report(_n_model_summary(min_graded=9))
    assert (
        "saved vs the best single model  —  [no candidate has 9 graded answers in this window "
        "(most: mid with 8)]"
    ) in text


def test_unreachable_service_is_a_clear_error() -> None:
    port = free_port()  # nothing listens there
    result = CliRunner().invoke(report, ["--url", f"http://127.0.0.1:{port}"])
    assert result.exit_code == 1
    assert f"cannot reach the analytics service at http://127.0.0.1:{port}" in result.output
