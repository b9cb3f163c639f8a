"""The dashboard page: one HTML document with inline CSS and server-rendered SVG charts.

No script, no external font, stylesheet or CDN: the page is complete as served, so it works
offline and in a headless browser without waiting for anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from routeiq_analytics.api.charts import Bar, Series, color_for, hbars, line_chart, stacked_bars
from routeiq_analytics.core.durations import format_duration

STYLE = """
:root{--bg:#f5f6f8;--card:#fff;--ink:#1d2330;--muted:#667085;--line:#e4e7ec;--good:#1a7f37;
--bad:#b42318;--accent:#4c78a8}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
header{display:flex;align-items:center;gap:16px;flex-wrap:wrap;padding:16px 28px;
background:#161b26;color:#fff}
header h1{font-size:18px;margin:0;font-weight:600;letter-spacing:.2px}
header .meta{color:#aab2c0;font-size:12px}
nav.windows{margin-left:auto;display:flex;gap:6px}
nav.windows a{color:#cfd6e3;text-decoration:none;padding:4px 12px;border-radius:999px;
border:1px solid #3a4353;font-size:13px}
nav.windows a.active{background:#fff;color:#161b26;border-color:#fff}
main{padding:20px 28px 40px;max-width:1320px;margin:0 auto}
.kpis{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:12px}
.kpi{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 14px}
.kpi .name{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.5px}
.kpi .value{font-size:20px;font-weight:650;margin-top:2px;font-variant-numeric:tabular-nums}
.kpi .sub{color:var(--muted);font-size:12px;margin-top:2px}
.kpi .good{color:var(--good)} .kpi .bad{color:var(--bad)}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:14px;
margin-top:14px}
.panel{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px}
.panel h2{font-size:14px;margin:0 0 2px;font-weight:600}
.panel .hint{color:var(--muted);font-size:12px;margin:0 0 6px}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px;color:var(--muted);
margin-bottom:4px}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px;
vertical-align:-1px}
svg.chart{width:100%;height:auto;display:block}
svg .grid{stroke:var(--line);stroke-width:1}
svg .axis,svg .note,svg .label{fill:var(--muted);font-size:11px}
svg .label{fill:var(--ink);font-size:12px}
svg .track{fill:#f0f2f5}
svg .empty{fill:var(--muted);font-size:13px}
table{width:100%;border-collapse:collapse;font-variant-numeric:tabular-nums;font-size:13px}
th,td{text-align:right;padding:6px 8px;border-bottom:1px solid var(--line)}
th:first-child,td:first-child{text-align:left}
th{color:var(--muted);font-weight:500;font-size:12px}
.swatch{display:inline-block;width:9px;height:9px;border-radius:2px;margin-right:6px}
footer{color:var(--muted);font-size:12px;margin-top:18px}
"""


def usd(value: float | None) -> str:
    """Dollars with enough digits to tell small amounts apart."""
    if value is None:
        return "—"
    sign = "-" if value < 0 else ""
    v = abs(value)
    if v >= 100:
        return f"{sign}${v:,.0f}"
    if v >= 1:
        return f"{sign}${v:,.2f}"
    if v == 0:
        return "$0"
    # Three significant digits in fixed notation: $0.0366, $0.000994.
    digits = min(max(2, 2 - math.floor(math.log10(v))), 10)
    return f"{sign}${v:.{digits}f}"


def pct(value: float | None, *, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def ms(value: float | None) -> str:
    if value is None:
        return "—"
    if value == 0:
        return "0 ms"
    return f"{value:.2f} ms" if value < 10 else f"{value:,.0f} ms"


def score(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _kpi(name: str, value: str, sub: str, *, tone: str = "") -> str:
    cls = f' class="value {tone}"' if tone else ' class="value"'
    return (
        f'<div class="kpi"><div class="name">{escape(name)}</div><div{cls}>{escape(value)}'
        f'</div><div class="sub">{escape(sub)}</div></div>'
    )


def _legend(series: Sequence[Series]) -> str:
    return (
        '<div class="legend">'
        + "".join(
            f'<span><i style="background:{s.color}"></i>{escape(s.name)}</span>' for s in series
        )
        + "</div>"
    )


def _panel(title: str, hint: str, body: str) -> str:
    return (
        f'<section class="panel"><h2>{escape(title)}</h2><p class="hint">{escape(hint)}</p>'
        f"{body}</section>"
    )


def _saved_kpi(name: str, block: Mapping[str, Any], sub: str) -> str:
    saved_usd = block["saved_usd"]
    if saved_usd is None:
        return _kpi(name, "—", sub)
    pct_text = "" if block["saved_pct"] is None else f" ({block['saved_pct']:.1f}%)"
    return _kpi(name, usd(saved_usd) + pct_text, sub, tone="good" if saved_usd >= 0 else "bad")


def _best_kpi(best: Mapping[str, Any]) -> str:
    if best["model"] is None:
        return _kpi("Saved vs best single model", "—", best["reason"])
    sub = (
        f"{best['model']} at {score(best['quality'])} (n={best['graded']}) vs routed "
        f"{score(best['routed_quality'])}: {usd(best['baseline_usd'])}"
    )
    if best["costs_more"]:
        pct_text = "" if best["saved_pct"] is None else f" ({-best['saved_pct']:.1f}%)"
        return _kpi(
            "Saved vs best single model",
            f"costs {usd(-best['saved_usd'])}{pct_text} more",
            sub,
            tone="bad",
        )
    return _saved_kpi("Saved vs best single model", best, sub)


def _always_table(
    savings: Mapping[str, Any],
    models: Mapping[str, Any],
    actual_usd: float,
    colors: Mapping[str, str],
) -> str:
    """Each priced candidate's always-X cost next to its quality: the single-model options."""
    always = savings["always_model_usd"]
    if not always:
        return '<p class="hint">no priced candidate in this window</p>'
    roles = (
        ("most expensive", savings["always_most_expensive"]["model"]),
        ("best", savings["best_single_model"]["model"]),
        ("strong", savings["strong_model"]),
        ("weak", savings["weak_model"]),
    )
    rows = "".join(
        "<tr>"
        f'<td><span class="swatch" style="background:{colors.get(name, "#999")}"></span>'
        f"{escape(name)}</td><td>{usd(cost)}</td><td>{usd(cost - actual_usd)}</td>"
        f"<td>{score(models.get(name, {}).get('quality', {}).get('mean'))}</td>"
        f"<td>{models.get(name, {}).get('quality', {}).get('count', 0)}</td>"
        f"<td>{escape(', '.join(r for r, m in roles if m == name))}</td></tr>"
        for name, cost in always.items()
    )
    notes = "".join(f'<p class="hint">{escape(note)}</p>' for note in savings["notes"])
    return (
        "<table><thead><tr><th>model</th><th>always</th><th>saved</th><th>quality</th>"
        "<th>graded</th><th>role</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>{notes}"
    )


def _group_table(groups: Mapping[str, Mapping[str, Any]], colors: Mapping[str, str]) -> str:
    if not groups:
        return '<p class="hint">none in this window</p>'
    rows = "".join(
        "<tr>"
        f'<td><span class="swatch" style="background:{colors.get(name, "#999")}"></span>'
        f"{escape(name)}</td>"
        f"<td>{g['requests']}</td><td>{pct(g['success_rate'])}</td><td>{usd(g['cost_usd'])}</td>"
        f"<td>{usd(g['cost_per_1k_requests_usd'])}</td><td>{score(g['quality']['mean'])}</td>"
        f"<td>{g['quality']['count']}</td></tr>"
        for name, g in groups.items()
    )
    return (
        "<table><thead><tr><th>name</th><th>requests</th><th>success</th><th>cost</th>"
        "<th>per 1k</th><th>quality</th><th>graded</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
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
    # Colours by name, so a model keeps its colour whatever the window's ranking.
    models = sorted(set(summary["models"]) | set(series["requests_by_model"]))
    model_colors = {name: color_for(i) for i, name in enumerate(models)}
    times, step = series["t"], series["step_s"]
    savings = summary["savings"]
    latency = summary["routing_latency_ms"]
    rnd = savings["random_equal_quality"]
    top = savings["always_most_expensive"]
    quality = summary["quality"]
    if savings["strong_model"] is None:
        strong_sub = rnd["reason"]
    else:
        strong_sub = (
            f"all on {savings['strong_model']}: {usd(savings['always_strong']['baseline_usd'])}"
        )
    if top["model"] is None:
        top_sub = "no priced candidate in this window"
    else:
        top_sub = f"all on {top['model']}: {usd(top['baseline_usd'])}" + (
            f" (tied with {len(top['tied'])})" if top["tied"] else ""
        )

    kpis = "".join(
        [
            _kpi(
                "Requests",
                f"{summary['requests']['total']:,}",
                f"{pct(summary['success_rate'])} success · "
                f"{pct(summary['exploration_share'])} exploration",
            ),
            _kpi(
                "Cost",
                usd(summary["cost"]["total_usd"]),
                f"{usd(summary['cost']['per_1k_requests_usd'])} per 1k requests",
            ),
            _saved_kpi("Saved vs always-strong", savings["always_strong"], strong_sub),
            _saved_kpi("Saved vs most expensive", top, top_sub),
            _best_kpi(savings["best_single_model"]),
            _saved_kpi(
                "Saved vs random, same quality",
                rnd,
                rnd["reason"]
                or f"{pct(rnd['strong_share'], digits=0)} strong reaches "
                f"{score(rnd['target_quality'])}"
                + ("" if rnd["reachable"] else " (best mix)"),
            ),
            _kpi(
                "Routing latency",
                f"{ms(latency['p50'])} / {ms(latency['p95'])}",
                f"p50 / p95 of {latency['observed']:,}"
                + ("" if latency["exact"] else " (sampled)"),
            ),
            _kpi(
                "Quality",
                score(quality["overall"]["mean"]),
                f"{quality['overall']['count']:,} graded answers",
            ),
        ]
    )

    mix = [
        Series(name, series["requests_by_model"][name], model_colors[name])
        for name in models
        if name in series["requests_by_model"]
    ]
    # Steps without requests are gaps, not points at $0.
    busy = [any(v[i] for v in series["requests_by_model"].values()) for i in range(len(times))]

    def when_busy(values: Sequence[float]) -> list[float | None]:
        return [v if b else None for v, b in zip(values, busy, strict=True)]

    cost_series = [Series("actual", when_busy(series["cost_usd"]), "#4c78a8")]
    if savings["strong_model"] is not None:
        cost_series += [
            Series(
                f"always {savings['strong_model']}",
                when_busy(series["always_strong_usd"]),
                "#e45756",
                "6 4",
            ),
            Series(
                f"always {savings['weak_model']}",
                when_busy(series["always_weak_usd"]),
                "#54a24b",
                "2 4",
            ),
        ]
    # The best single model's line, unless it is already drawn as strong or weak.
    best_model = savings["best_single_model"]["model"]
    if best_model in series["always_model_usd"] and best_model not in (
        savings["strong_model"],
        savings["weak_model"],
    ):
        cost_series.append(
            Series(
                f"always {best_model} (best)",
                when_busy(series["always_model_usd"][best_model]),
                "#b279a2",
                "8 3 2 3",
            )
        )
    latency_series = [
        Series("p50", series["latency_p50_ms"], "#4c78a8"),
        Series("p95", series["latency_p95_ms"], "#f58518"),
    ]
    rate_series = [
        Series("success rate", series["success_rate"], "#54a24b"),
        Series("quality (served)", series["quality"], "#b279a2"),
    ]
    strategy_bars = [
        Bar(name, g["quality"]["mean"], _graded(g["quality"]), color_for(i))
        for i, (name, g) in enumerate(quality["by_strategy"].items())
    ]
    arm_bars = [
        Bar(name, g["quality"]["mean"], _graded(g["quality"]), color_for(i + 4))
        for i, (name, g) in enumerate(quality["by_arm"].items())
    ]
    model_bars = [
        Bar(name, q["mean"], _graded(q), model_colors[name])
        for name, q in quality["by_model"].items()
    ]
    strategy_colors = {name: color_for(i) for i, name in enumerate(quality["by_strategy"])}
    arm_colors = {name: color_for(i + 4) for i, name in enumerate(quality["by_arm"])}
    step_text = format_duration(step)
    charts = "".join(
        [
            _panel(
                "Model mix over time",
                f"requests per {step_text}, by served model",
                _legend(mix)
                + stacked_bars("model-mix", "requests by model", times, step, mix, _count),
            ),
            _panel(
                "Cost over time",
                f"USD per {step_text}: actual vs the same tokens on one model",
                _legend(cost_series)
                + line_chart(
                    "cost", "cost over time", times, step, cost_series, usd, tick_fmt=_usd_tick
                ),
            ),
            _panel(
                "Routing latency",
                f"embedding + strategy, per {step_text}",
                _legend(latency_series)
                + line_chart(
                    "latency",
                    "routing latency",
                    times,
                    step,
                    latency_series,
                    ms,
                    tick_fmt=_ms_tick,
                ),
            ),
            _panel(
                "Success rate and quality",
                f"per {step_text}; quality is the mean feedback score on served answers",
                _legend(rate_series)
                + line_chart(
                    "rates", "success and quality", times, step, rate_series, _ratio, y_max=1.0
                ),
            ),
            _panel(
                "Quality by strategy",
                "mean feedback score on the answers each strategy served",
                hbars("quality-strategy", "quality by strategy", strategy_bars)
                + _group_table(quality["by_strategy"], strategy_colors),
            ),
            _panel(
                "Quality by A/B arm",
                "mean feedback score on the answers served in each arm",
                hbars("quality-arm", "quality by arm", arm_bars)
                + _group_table(quality["by_arm"], arm_colors),
            ),
            _panel(
                "Models",
                "quality includes shadow feedback (another model graded on the same request)",
                hbars("quality-model", "quality by model", model_bars)
                + _group_table(summary["models"], model_colors),
            ),
            _panel(
                "Always one model",
                "what these requests' tokens would have cost on each priced candidate, next "
                "to its observed quality (served and shadow)",
                _always_table(
                    savings, summary["models"], summary["cost"]["total_usd"], model_colors
                ),
            ),
        ]
    )
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
        f'{p["pending_feedback"]} · JSON: <a href="/api/summary?window='
        f'{format_duration(window_s)}">/api/summary</a>'
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<link rel="icon" href="data:,">{refresh}'
        f"<title>RouteIQ analytics · {format_duration(window_s)}</title>"
        f"<style>{STYLE}</style></head><body>"
        "<header><h1>RouteIQ analytics</h1>"
        f'<span class="meta">last {format_duration(window_s)} · {summary["requests"]["total"]:,}'
        f" requests</span>"
        f'<nav class="windows">{tabs}</nav></header>'
        f'<main><div class="kpis">{kpis}</div><div class="grid">{charts}</div>'
        f"<footer>{footer}</footer></main></body></html>"
    )


def _graded(quality: Mapping[str, Any]) -> str:
    return f"{score(quality['mean'])} · n={quality['count']}"


def _usd_tick(value: float) -> str:
    return f"${value:.6g}"


def _ms_tick(value: float) -> str:
    return f"{value:.6g} ms"


def _count(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def _ratio(value: float) -> str:
    return f"{value:.2f}"
