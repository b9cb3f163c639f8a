"""Tumbling event-time windows aligned to the epoch (1 h windows start on the hour, UTC)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WindowSpec:
    """Window size and allowed lateness, in milliseconds."""

    size_ms: int
    lateness_ms: int = 0

    def __post_init__(self) -> None:
        if self.size_ms <= 0 or self.lateness_ms < 0:
            raise ValueError("window size must be positive and lateness not negative")

    def start(self, ts_ms: int) -> int:
        """Start of the window holding ``ts_ms``."""
        return ts_ms - ts_ms % self.size_ms

    def end(self, start_ms: int) -> int:
        """Exclusive end of the window starting at ``start_ms``."""
        return start_ms + self.size_ms

    def closable_until(self, watermark_ms: int) -> int:
        """Every window starting before the returned time may close at ``watermark_ms``:
        its end plus the allowed lateness is not after the watermark."""
        return self.start(watermark_ms - self.lateness_ms)
