"""Numbers as the dashboard prints them: dollars, shares, milliseconds, scores, axis ticks.

``None`` (nothing to show in this window) prints as an em dash.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

NONE = "—"


def usd(value: float | None) -> str:
    """Dollars with enough digits to tell small amounts apart."""
    if value is None:
        return NONE
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
    return NONE if value is None else f"{value * 100:.{digits}f}%"


def ms(value: float | None) -> str:
    if value is None:
        return NONE
    if value == 0:
        return "0 ms"
    return f"{value:.2f} ms" if value < 10 else f"{value:,.0f} ms"


def score(value: float | None) -> str:
    return NONE if value is None else f"{value:.3f}"


def graded(quality: Mapping[str, Any]) -> str:
    """A quality block (``mean``, ``count``) as "0.750 · n=12"."""
    return f"{score(quality['mean'])} · n={quality['count']}"


def usd_tick(value: float) -> str:
    return f"${value:.6g}"


def ms_tick(value: float) -> str:
    return f"{value:.6g} ms"


def count(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def ratio(value: float) -> str:
    return f"{value:.2f}"
