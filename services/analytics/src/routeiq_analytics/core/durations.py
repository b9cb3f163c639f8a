"""Window lengths as people write them: ``30s``, ``5m``, ``1h``, ``7d``."""

from __future__ import annotations

import re

_DURATION = re.compile(r"(\d{1,9})([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """``"5m"`` → 300. Raises ``ValueError`` naming the accepted form."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None or int(match.group(1)) == 0:
        raise ValueError(
            f"not a duration: {text!r} (a positive whole number and a unit s, m, h or d: "
            "30s, 5m, 1h)"
        )
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def format_duration(seconds: int) -> str:
    """300 → ``"5m"``; the largest unit that divides the value exactly."""
    for unit in ("d", "h", "m"):
        if seconds % _UNIT_S[unit] == 0:
            return f"{seconds // _UNIT_S[unit]}{unit}"
    return f"{seconds}s"
