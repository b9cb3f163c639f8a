"""The dashboard's HTML pieces: KPI cards, panels, legends and tables.

Every name that comes from an event (models, strategies, arms, notes) is HTML-escaped here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

from routeiq_analytics.api.charts import Series
from routeiq_analytics.api.formats import ms, pct, score, usd

# Swatch colour of a name the chart colours do not know.
UNKNOWN_COLOR = "#999"


def kpi(name: str, value: str, sub: str, *, tone: str = "") -> str:
    cls = f' class="value {tone}"' if tone else ' class="value"'
    return (
        f'<div class="kpi"><div class="name">{escape(name)}</div><div{cls}>{escape(value)}'
        f'</div><div class="sub">{escape(sub)}</div></div>'
    )


def legend(series: Sequence[Series]) -> str:
    return (
        '<div class="legend">'
        + "".join(
            f'<span><i style="background:{s.color}"></i>{escape(s.name)}</span>' for s in series
        )
        + "</div>"
    )


def panel(title: str, hint: str, body: str) -> str:
    return (
        f'<section class="panel"><h2>{escape(title)}</h2><p class="hint">{escape(hint)}</p>'
        f"{body}</section>"
    )


def _saved_kpi(name: str, block: Mapping[str, Any], sub: str) -> str:
    saved_usd = block["saved_usd"]
    if saved_usd is None:
        return kpi(name, "—", sub)
    pct_text = "" if block["saved_pct"] is None else f" ({block['saved_pct']:.1f}%)"
    return kpi(name, usd(saved_usd) + pct_text, sub, tone="good" if saved_usd >= 0 else "bad")


def _best_kpi(best: Mapping[str, Any]) -> str:
    if best["model"] is None:
        return kpi("Saved vs best single model", "—", best["reason"])
    sub = (
        f"{best['model']} at {score(best['quality'])} (n={best['graded']}) vs routed "
        f"{score(best['routed_quality'])}: {usd(best['baseline_usd'])}"
    )
    if best["costs_more"]:
        pct_text = "" if best["saved_pct"] is None else f" ({-best['saved_pct']:.1f}%)"
        return kpi(
            "Saved vs best single model",
            f"costs {usd(-best['saved_usd'])}{pct_text} more",
            sub,
            tone="bad",
        )
    return _saved_kpi("Saved vs best single model", best, sub)


def kpis(summary: Mapping[str, Any]) -> str:
    """The row of headline numbers: traffic, cost, each saving, latency, quality."""
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
    return "".join(
        [
            kpi(
                "Requests",
                f"{summary['requests']['total']:,}",
                f"{pct(summary['success_rate'])} success · "
                f"{pct(summary['exploration_share'])} exploration",
            ),
            kpi(
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
            kpi(
                "Routing latency",
                f"{ms(latency['p50'])} / {ms(latency['p95'])}",
                f"p50 / p95 of {latency['observed']:,}"
                + ("" if latency["exact"] else " (sampled)"),
            ),
            kpi(
                "Quality",
                score(quality["overall"]["mean"]),
                f"{quality['overall']['count']:,} graded answers",
            ),
        ]
    )


def _table(
    headers: Sequence[str], rows: Iterable[tuple[str, Sequence[object]]], colors: Mapping[str, str]
) -> str:
    """A table whose first column is a name with its colour swatch, then ``rows``' cells."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join(
        f'<tr><td><span class="swatch" style="background:{colors.get(name, UNKNOWN_COLOR)}">'
        f"</span>{escape(name)}</td>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"
        for name, cells in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def always_table(
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

    def cells(name: str, cost: float) -> list[object]:
        quality = models.get(name, {}).get("quality", {})
        role = ", ".join(r for r, m in roles if m == name)
        return [
            usd(cost),
            usd(cost - actual_usd),
            score(quality.get("mean")),
            quality.get("count", 0),
            escape(role),
        ]

    rows = ((name, cells(name, cost)) for name, cost in always.items())
    notes = "".join(f'<p class="hint">{escape(note)}</p>' for note in savings["notes"])
    headers = ("model", "always", "saved", "quality", "graded", "role")
    return _table(headers, rows, colors) + notes


def group_table(groups: Mapping[str, Mapping[str, Any]], colors: Mapping[str, str]) -> str:
    """Requests, success, cost and quality per strategy, arm or model."""
    if not groups:
        return '<p class="hint">none in this window</p>'
    rows = (
        (
            name,
            [
                g["requests"],
                pct(g["success_rate"]),
                usd(g["cost_usd"]),
                usd(g["cost_per_1k_requests_usd"]),
                score(g["quality"]["mean"]),
                g["quality"]["count"],
            ],
        )
        for name, g in groups.items()
    )
    headers = ("name", "requests", "success", "cost", "per 1k", "quality", "graded")
    return _table(headers, rows, colors)
