"""Server-side SVG charts: small, dependency-free and safe to embed.

Every chart is a self-contained ``<svg class="chart">`` with a ``viewBox`` (it scales to its
container), ``data-chart`` naming it and ``data-points`` counting the values it draws, and one
``class="mark"`` element per drawn series or bar, so a browser test can check that charts
rendered with data. Every label is HTML-escaped: model and strategy names come from events.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

PALETTE = (
    "#4c78a8",
    "#f58518",
    "#54a24b",
    "#e45756",
    "#72b7b2",
    "#b279a2",
    "#eeca3b",
    "#9d755d",
    "#ff9da6",
    "#bab0ac",
)

WIDTH = 600
HEIGHT = 240
LEFT, RIGHT, TOP, BOTTOM = 58, 14, 14, 30


@dataclass(frozen=True)
class Series:
    """One named line or bar stack, with a value (or a gap) per time step."""

    name: str
    values: Sequence[float | None]
    color: str
    dash: str | None = None


@dataclass(frozen=True)
class TimeChart:
    """A chart over time: its name (``data-chart``), label, step start times and series."""

    name: str
    label: str
    times: Sequence[int]
    step_s: int
    series: Sequence[Series]


@dataclass(frozen=True)
class Bar:
    """One horizontal bar: a label, a value in [0, max] (or none) and a note."""

    label: str
    value: float | None
    note: str
    color: str


def color_for(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def nice_ticks(high: float, count: int = 4) -> list[float]:
    """0 and up to ``count`` evenly spaced round values covering ``[0, high]``."""
    if high <= 0 or not math.isfinite(high):
        return [0.0, 1.0]
    raw = high / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    ticks = [0.0]
    while ticks[-1] < high - 1e-12 * high:
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def _time_label(epoch_s: int, step_s: int) -> str:
    moment = datetime.fromtimestamp(epoch_s, UTC)
    return moment.strftime("%H:%M:%S" if step_s < 60 else "%H:%M")


def _frame(name: str, points: int, label: str, body: list[str], *, height: int = HEIGHT) -> str:
    return (
        f'<svg class="chart" data-chart="{escape(name)}" data-points="{points}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(label)}" '
        'xmlns="http://www.w3.org/2000/svg">' + "".join(body) + "</svg>"
    )


def _empty(name: str, label: str) -> str:
    return _frame(
        name,
        0,
        label,
        [
            f'<text class="empty" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">'
            "no data in this window</text>"
        ],
    )


def _axes(
    times: Sequence[int], step_s: int, ticks: list[float], fmt: Callable[[float], str]
) -> tuple[list[str], Callable[[float], float], Callable[[int], float], float]:
    """Grid, y labels and x labels; returns them with the y and x scales and the slot width."""
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    top = ticks[-1] or 1.0
    slot = plot_w / max(len(times), 1)

    def y(value: float) -> float:
        return TOP + plot_h * (1 - value / top)

    def x(index: int) -> float:
        return LEFT + slot * (index + 0.5)

    parts = []
    for tick in ticks:
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" '
            f'y2="{y(tick):.1f}"/>'
            f'<text class="axis" x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">'
            f"{escape(fmt(tick))}</text>"
        )
    every = max(1, math.ceil(len(times) / 5))
    for i in range(0, len(times), every):
        parts.append(
            f'<text class="axis" x="{x(i):.1f}" y="{HEIGHT - 10}" text-anchor="middle">'
            f"{_time_label(times[i], step_s)}</text>"
        )
    return parts, y, x, slot


def line_chart(
    chart: TimeChart,
    fmt: Callable[[float], str],
    *,
    y_max: float | None = None,
    tick_fmt: Callable[[float], str] | None = None,
) -> str:
    """Lines over time; ``None`` values leave gaps. ``y_max`` fixes the scale (e.g. 1.0)."""
    values = [v for s in chart.series for v in s.values if v is not None]
    if not values:
        return _empty(chart.name, chart.label)
    ticks = nice_ticks(y_max if y_max is not None else max(values))
    parts, y, x, _ = _axes(chart.times, chart.step_s, ticks, tick_fmt or fmt)
    for s in chart.series:
        segments: list[list[tuple[float, float]]] = [[]]
        for i, v in enumerate(s.values):
            if v is None:
                if segments[-1]:
                    segments.append([])
                continue
            segments[-1].append((x(i), y(v)))
        path = " ".join(
            "M" + " L".join(f"{px:.1f},{py:.1f}" for px, py in seg) for seg in segments if seg
        )
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        parts.append(
            f'<g class="mark" data-series="{escape(s.name)}">'
            f'<path d="{path}" fill="none" stroke="{s.color}" stroke-width="2"{dash}/>'
            + "".join(
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.4" fill="{s.color}">'
                f"<title>{escape(s.name)}: {escape(fmt(v))}</title></circle>"
                for (px, py), v in zip(
                    [(x(i), y(v)) for i, v in enumerate(s.values) if v is not None],
                    [v for v in s.values if v is not None],
                    strict=True,
                )
            )
            + "</g>"
        )
    return _frame(chart.name, len(values), chart.label, parts)


def stacked_bars(chart: TimeChart, fmt: Callable[[float], str]) -> str:
    """Stacked bars per time step (e.g. requests per model)."""
    totals = [sum(s.values[i] or 0.0 for s in chart.series) for i in range(len(chart.times))]
    if not any(totals):
        return _empty(chart.name, chart.label)
    ticks = nice_ticks(max(totals))
    parts, y, x, slot = _axes(chart.times, chart.step_s, ticks, fmt)
    width = max(slot * 0.72, 1.0)
    drawn = 0
    for s in chart.series:
        rects = []
        for i in range(len(chart.times)):
            value = s.values[i] or 0.0
            if value <= 0:
                continue
            below = sum(other.values[i] or 0.0 for other in chart.series[: chart.series.index(s)])
            top, bottom = y(below + value), y(below)
            rects.append(
                f'<rect x="{x(i) - width / 2:.1f}" y="{top:.1f}" width="{width:.1f}" '
                f'height="{max(bottom - top, 0.5):.1f}" fill="{s.color}">'
                f"<title>{escape(s.name)}: {escape(fmt(value))}</title></rect>"
            )
            drawn += 1
        if rects:
            parts.append(
                f'<g class="mark" data-series="{escape(s.name)}">' + "".join(rects) + "</g>"
            )
    return _frame(chart.name, drawn, chart.label, parts)


def hbars(name: str, label: str, bars: Sequence[Bar], *, max_value: float = 1.0) -> str:
    """Horizontal bars with a label on the left and a note on the right (e.g. quality)."""
    shown = [b for b in bars if b.value is not None]
    if not shown:
        return _empty(name, label)
    row = 30
    height = TOP + row * len(shown) + 6
    label_w = 150
    note_w = 120
    plot_w = WIDTH - label_w - note_w
    parts = []
    for i, bar in enumerate(shown):
        assert bar.value is not None
        top = TOP + i * row
        length = max(plot_w * min(bar.value / max_value, 1.0), 1.0)
        text = bar.label if len(bar.label) <= 22 else bar.label[:21] + "…"
        parts.append(
            f'<text class="label" x="{label_w - 8}" y="{top + 15}" text-anchor="end">'
            f"{escape(text)}<title>{escape(bar.label)}</title></text>"
            f'<rect class="track" x="{label_w}" y="{top + 3}" width="{plot_w}" height="16" '
            'rx="3"/>'
            f'<rect class="mark" x="{label_w}" y="{top + 3}" width="{length:.1f}" height="16" '
            f'rx="3" fill="{bar.color}"><title>{escape(bar.label)}: {escape(bar.note)}</title>'
            "</rect>"
            f'<text class="note" x="{label_w + plot_w + 8}" y="{top + 15}">'
            f"{escape(bar.note)}</text>"
        )
    return _frame(name, len(shown), label, parts, height=height)
