"""`routeiq report`: the analytics service's summary of one window, printed as tables.

It reads the same JSON the dashboard is drawn from (``GET /api/summary?window=...``), so the
terminal, the dashboard and Prometheus show the same numbers; then each team's spend today and
this month against its budget, from the gateway's ``GET /admin/budgets`` (the Redis ledger the
gateway enforces). The CLI's ``__main__`` registers the ``report`` command.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import click
import httpx

from routeiq_cli.keys import admin_get, call_json, gateway_client

DEFAULT_URL = "http://127.0.0.1:8095"


def fetch_summary(url: str, window: str, *, timeout_s: float = 10.0) -> dict[str, Any]:
    """``GET {url}/api/summary?window=...``; ``click.ClickException`` with the reason if not."""
    endpoint = f"{url.rstrip('/')}/api/summary"
    return call_json(
        lambda: httpx.get(endpoint, params={"window": window}, timeout=timeout_s),
        service="the analytics service",
        url=url,
        what=endpoint,
    )


# ---------------------------------------------------------------------------- formatting


def _usd(value: float | None) -> str:
    if value is None:
        return "—"
    sign = "-" if value < 0 else ""
    v = abs(value)
    if v >= 1 or v == 0:
        return f"{sign}${v:,.2f}"
    digits = min(max(2, 2 - math.floor(math.log10(v))), 10)
    return f"{sign}${v:.{digits}f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} ms"


def _score(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Plain-text columns: the first left-aligned, the others right-aligned."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        return "  ".join(
            [first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))]
        ).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _groups(title: str, groups: Mapping[str, Mapping[str, Any]]) -> list[str]:
    if not groups:
        return [f"{title}: none in this window"]
    rows = [
        [
            name,
            str(g["requests"]),
            _pct(g["success_rate"]),
            _usd(g["cost_usd"]),
            _usd(g["cost_per_1k_requests_usd"]),
            _score(g["quality"]["mean"]),
            str(g["quality"]["count"]),
        ]
        for name, g in groups.items()
    ]
    return _table([title, "requests", "success", "cost", "per 1k", "quality", "graded"], rows)


def _saved(block: Mapping[str, Any]) -> str:
    """``$S (P%) of $B``; a negative saving reads ``costs $X (P%) more than $B``."""
    if block["saved_usd"] is None:
        return "—"
    if block["saved_usd"] < 0:
        share = "" if block["saved_pct"] is None else f" ({-block['saved_pct']:.1f}%)"
        return f"costs {_usd(-block['saved_usd'])}{share} more than {_usd(block['baseline_usd'])}"
    share = "" if block["saved_pct"] is None else f" ({block['saved_pct']:.1f}%)"
    return f"{_usd(block['saved_usd'])}{share} of {_usd(block['baseline_usd'])}"


def _most_expensive_note(block: Mapping[str, Any]) -> str:
    if block["model"] is None:
        return "no priced candidate model in this window"
    tied = block["tied"]
    return f"always {block['model']}" + (
        f", tied with {len(tied)} other{'s' if len(tied) > 1 else ''} at the same cost"
        if tied
        else ""
    )


def _best_note(block: Mapping[str, Any]) -> str:
    if block["model"] is None:
        return str(block["reason"])
    return (
        f"always {block['model']}: quality {_score(block['quality'])} on {block['graded']:,} "
        f"graded; routed {_score(block['routed_quality'])}"
    )


def _always_table(
    savings: Mapping[str, Any], models: Mapping[str, Any], actual_usd: float
) -> list[str]:
    """One row per priced candidate: what always using it would have cost, and its quality."""
    always = savings["always_model_usd"]
    if not always:
        return ["always one model: no priced candidate in this window"]
    roles = (
        ("most expensive", savings["always_most_expensive"]["model"]),
        ("best", savings["best_single_model"]["model"]),
        ("strong", savings["strong_model"]),
        ("weak", savings["weak_model"]),
    )
    rows = []
    for name, usd in always.items():
        graded = models.get(name, {}).get("quality", {})
        difference = usd - actual_usd
        rows.append(
            [
                name,
                _usd(usd),
                # Negative: routing cost more than always using this model.
                _usd(difference) + ("" if not usd else f" ({difference / usd * 100:.1f}%)"),
                _score(graded.get("mean")),
                str(graded.get("count", 0)),
                ", ".join(role for role, model in roles if model == name),
            ]
        )
    return _table(["always one model", "cost", "saved", "quality", "graded", "role"], rows)


def render_report(summary: Mapping[str, Any]) -> str:
    """The summary as the overview lines and per-model, per-strategy and per-arm tables."""
    s = summary
    savings = s["savings"]
    strong, rnd = savings["always_strong"], savings["random_equal_quality"]
    latency = s["routing_latency_ms"]
    quality = s["quality"]
    saved = _saved

    if rnd["reason"]:
        random_note = rnd["reason"]
    else:
        random_note = (
            f"{_pct(rnd['strong_share'])} strong reaches quality {_score(rnd['target_quality'])}"
            + ("" if rnd["reachable"] else " (the best mix; the router's quality is higher)")
        )
    top, best = savings["always_most_expensive"], savings["best_single_model"]
    if savings["strong_model"] is None:
        strong_line = ["saved vs always-strong", f"—  [{rnd['reason']}]"]
    else:
        pair = "" if savings["pair"] == "configured" else "  [auto pair]"
        strong_line = [f"saved vs always {savings['strong_model']}", saved(strong) + pair]
    overview = [
        ["requests", f"{s['requests']['total']:,}"],
        ["success rate", _pct(s["success_rate"])],
        ["exploration", _pct(s["exploration_share"])],
        ["fallbacks", _pct(s["fallback_share"])],
        ["cost", _usd(s["cost"]["total_usd"])],
        ["cost per 1k requests", _usd(s["cost"]["per_1k_requests_usd"])],
        strong_line,
        [
            "saved vs the most expensive",
            f"{saved(top)}  [{_most_expensive_note(top)}]",
        ],
        ["saved vs the best single model", f"{saved(best)}  [{_best_note(best)}]"],
        ["saved vs random, same quality", f"{saved(rnd)}  [{random_note}]"],
        [
            "routing latency p50 / p95",
            f"{_ms(latency['p50'])} / {_ms(latency['p95'])}"
            + f"  ({latency['observed']:,} requests{'' if latency['exact'] else ', sampled'})",
        ],
        [
            "quality (served answers)",
            f"{_score(quality['overall']['mean'])}  ({quality['overall']['count']:,} graded)",
        ],
    ]
    width = max(len(k) for k, _ in overview)
    lines = [f"RouteIQ analytics, last {s['window']} ({s['from']} → {s['to']})", ""]
    lines += [f"{k.ljust(width)}  {v}" for k, v in overview]
    lines.append("")
    models = s["models"]
    if models:
        lines += _table(
            ["model", "requests", "share", "success", "cost", "per 1k", "quality", "graded"],
            [
                [
                    name,
                    str(m["requests"]),
                    _pct(m["share"]),
                    _pct(m["success_rate"]),
                    _usd(m["cost_usd"]),
                    _usd(m["cost_per_1k_requests_usd"]),
                    _score(m["quality"]["mean"]),
                    f"{m['quality']['served_count']}+{m['quality']['shadow_count']} shadow",
                ]
                for name, m in models.items()
            ],
        )
    else:
        lines.append("model: none in this window")
    lines.append("")
    lines += _always_table(savings, models, s["cost"]["total_usd"])
    lines += [f"note: {note}" for note in savings["notes"]]
    lines.append("")
    lines += _groups("strategy", quality["by_strategy"])
    lines.append("")
    lines += _groups("A/B arm", quality["by_arm"])
    p = s["pipeline"]
    lines += [
        "",
        f"pipeline: {p['dead_lettered']} dead-lettered, {p['pending_feedback']} feedback "
        f"waiting for its decision, {p['feedback_late']} late, {p['feedback_expired']} expired",
    ]
    return "\n".join(lines)


def render_budgets(answer: Mapping[str, Any]) -> list[str]:
    """Each team's spend against its daily and monthly budget, and where it stands."""
    if not answer.get("enabled"):
        return ["budgets: the gateway counts no spend (no virtual keys nor routeiq.budgets)"]
    teams = answer.get("teams") or []
    if not teams:
        return ["budgets: no team has spent anything this month"]

    def against(spent: float, limit: float | None) -> str:
        if limit is None:
            return _usd(spent)
        return f"{_usd(spent)} of {_usd(limit)} ({spent / limit * 100:.1f}%)"

    states = {"ok": "ok", "soft": "downgraded", "hard": "refused"}
    rows = [
        [
            t["team"],
            against(t["day_usd"], t["daily_usd"]),
            against(t["month_usd"], t["monthly_usd"]),
            states.get(t["level"], t["level"]),
        ]
        for t in teams
    ]
    return _table(["team", "today", "this month", "state"], rows)


def budget_lines(url: str | None, admin_key: str | None) -> list[str]:
    """The budget table, or why it is missing: a gateway that does not answer must not cost
    the analytics report above it."""
    try:
        with gateway_client(url, admin_key) as client:
            return render_budgets(admin_get(client, "/admin/budgets"))
    except click.ClickException as exc:
        return [f"budgets: {exc.message}"]


@click.command("report")
@click.option(
    "--url", default=DEFAULT_URL, show_default=True, help="The analytics service's base URL."
)
@click.option(
    "--window", default="1h", show_default=True, help="Window to report: 30s, 5m, 1h, ..."
)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON summary instead.")
@click.option(
    "--gateway-url", default=None, help="The gateway whose budgets to show (default: local stack)."
)
@click.option(
    "--admin-key", envvar="ROUTEIQ_ADMIN_KEY", default=None, help="The gateway's admin key."
)
@click.option("--budgets/--no-budgets", default=True, help="Show spend against team budgets.")
def report(
    url: str,
    window: str,
    as_json: bool,
    gateway_url: str | None,
    admin_key: str | None,
    budgets: bool,
) -> None:
    """Cost, savings, model mix, success, routing latency and quality of the last WINDOW,
    and each team's spend against its budget."""
    summary = fetch_summary(url, window)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(render_report(summary))
    if budgets:
        click.echo("\n" + "\n".join(budget_lines(gateway_url, admin_key)))
