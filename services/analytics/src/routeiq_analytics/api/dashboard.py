"""The dashboard page: one HTML document with inline CSS and server-rendered SVG charts.

No script, no external font, stylesheet or CDN: the page is complete as served, so it works
offline and in a headless browser without waiting for anything. The numbers' formats live in
``formats``, the cards and tables in ``panels``, the SVG in ``charts``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from routeiq_analytics.api.charts import (
    Bar,
    Series,
    TimeChart,
    color_for,
    hbars,
    line_chart,
    stacked_bars,
)
from routeiq_analytics.api.formats import count, graded, ms, ms_tick, ratio, usd, usd_tick
from routeiq_analytics.api.panels import always_table, group_table, kpis, legend, panel
from routeiq_analytics.api.style import STYLE
from routeiq_analytics.core.durations import format_duration

# Palette offset of the A/B arms, so an arm does not share a colour with a strategy.
ARM_COLOR_OFFSET = 4


def _quality_panel(
    kind: str, title: str, hint: str, groups: Mapping[str, Any], color_offset: int
) -> str:
    """Bars of mean served quality per strategy or arm, over their table."""
    colors = {name: color_for(i + color_offset) for i, name in enumerate(groups)}
    bars = [
        Bar(name, g["quality"]["mean"], graded(g["quality"]), colors[name])
        for name, g in groups.items()
    ]
    return panel(
        title,
        hint,
        hbars(f"quality-{kind}", f"quality by {kind}", bars) + group_table(groups, colors),
    )


def _cost_series(series: Mapping[str, Any], savings: Mapping[str, Any]) -> list[Series]:
    """Actual cost per step against the same tokens on the strong, weak and best model."""
    # Steps without requests are gaps, not points at $0.
    busy = [
        any(v[i] for v in series["requests_by_model"].values()) for i in range(len(series["t"]))
    ]

    def when_busy(values: Sequence[float]) -> list[float | None]:
        return [v if b else None for v, b in zip(values, busy, strict=True)]

    lines = [Series("actual", when_busy(series["cost_usd"]), "#4c78a8")]
    strong, weak = savings["strong_model"], savings["weak_model"]
    if strong is not None:
        lines += [
            Series(f"always {strong}", when_busy(series["always_strong_usd"]), "#e45756", "6 4"),
            Series(f"always {weak}", when_busy(series["always_weak_usd"]), "#54a24b", "2 4"),
        ]
    # The best single model's line, unless it is already drawn as strong or weak.
    best = savings["best_single_model"]["model"]
    if best in series["always_model_usd"] and best not in (strong, weak):
        lines.append(
            Series(
                f"always {best} (best)",
                when_busy(series["always_model_usd"][best]),
                "#b279a2",
                "8 3 2 3",
            )
        )
    return lines


def _charts(summary: Mapping[str, Any], series: Mapping[str, Any]) -> str:
    """Every chart panel for one window."""
    # Colours by name, so a model keeps its colour whatever the window's ranking.
    models = sorted(set(summary["models"]) | set(series["requests_by_model"]))
    model_colors = {name: color_for(i) for i, name in enumerate(models)}
    times, step = series["t"], series["step_s"]
    savings, quality = summary["savings"], summary["quality"]
    mix = [
        Series(name, series["requests_by_model"][name], model_colors[name])
        for name in models
        if name in series["requests_by_model"]
    ]
    cost_series = _cost_series(series, savings)
    latency_series = [
        Series("p50", series["latency_p50_ms"], "#4c78a8"),
        Series("p95", series["latency_p95_ms"], "#f58518"),
    ]
    rate_series = [
        Series("success rate", series["success_rate"], "#54a24b"),
        Series("quality (served)", series["quality"], "#b279a2"),
    ]
    model_bars = [
        Bar(name, q["mean"], graded(q), model_colors[name])
        for name, q in quality["by_model"].items()
    ]
    per = f"per {format_duration(step)}"

    def over_time(name: str, label: str, lines: Sequence[Series]) -> TimeChart:
        return TimeChart(name, label, times, step, lines)

    return "".join(
        [
            panel(
                "Model mix over time",
                f"requests {per}, by served model",
                legend(mix) + stacked_bars(over_time("model-mix", "requests by model", mix), count),
            ),
            panel(
                "Cost over time",
                f"USD {per}: actual vs the same tokens on one model",
                legend(cost_series)
                + line_chart(
                    over_time("cost", "cost over time", cost_series), usd, tick_fmt=usd_tick
                ),
            ),
            panel(
                "Routing latency",
                f"embedding + strategy, {per}",
                legend(latency_series)
                + line_chart(
                    over_time("latency", "routing latency", latency_series), ms, tick_fmt=ms_tick
                ),
            ),
            panel(
                "Success rate and quality",
                f"{per}; quality is the mean feedback score on served answers",
                legend(rate_series)
                + line_chart(
                    over_time("rates", "success and quality", rate_series), ratio, y_max=1.0
                ),
            ),
            _quality_panel(
                "strategy",
                "Quality by strategy",
                "mean feedback score on the answers each strategy served",
                quality["by_strategy"],
                0,
            ),
            _quality_panel(
                "arm",
                "Quality by A/B arm",
                "mean feedback score on the answers served in each arm",
                quality["by_arm"],
                ARM_COLOR_OFFSET,
            ),
            panel(
                "Models",
                "quality includes shadow feedback (another model graded on the same request)",
                hbars("quality-model", "quality by model", model_bars)
                + group_table(summary["models"], model_colors),
            ),
            panel(
                "Always one model",
                "what these requests' tokens would have cost on each priced candidate, next "
                "to its observed quality (served and shadow)",
                always_table(
                    savings, summary["models"], summary["cost"]["total_usd"], model_colors
                ),
            ),
        ]
    )


def render(
    summary: Mapping[str, Any],
    series: Mapping[str, Any],
    *,
    windows: Sequence[int],
    window_s: int,
    refresh_s: int,
    ready: bool,
) -> str:
    """The whole page for one window."""
    window = format_duration(window_s)
    tabs = "".join(
        f'<a href="?window={format_duration(w)}"'
        + (' class="active"' if w == window_s else "")
        + f">{format_duration(w)}</a>"
        for w in windows
    )
    refresh = f'<meta http-equiv="refresh" content="{refresh_s}">' if refresh_s else ""
    p = summary["pipeline"]
    footer = (
        f"window {escape(summary['from'])} → {escape(summary['to'])} · buckets of "
        f"{summary['bucket_s']}s · consumer {'ready' if ready else 'catching up'} · "
        f"dead-lettered {p['dead_lettered']} · feedback waiting for its decision "
        f'{p["pending_feedback"]} · JSON: <a href="/api/summary?window={window}">'
        "/api/summary</a>"
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<link rel="icon" href="data:,">{refresh}'
        f"<title>RouteIQ analytics · {window}</title>"
        f"<style>{STYLE}</style></head><body>"
        "<header><h1>RouteIQ analytics</h1>"
        f'<span class="meta">last {window} · {summary["requests"]["total"]:,} requests</span>'
        f'<nav class="windows">{tabs}</nav></header>'
        f'<main><div class="kpis">{kpis(summary)}</div>'
        f'<div class="grid">{_charts(summary, series)}</div>'
        f"<footer>{footer}</footer></main></body></html>"
    )
