"""Tumbling event-time windows: membership and when a window may close."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from routeiq_labeler.core.windows import WindowSpec

sizes = st.integers(min_value=1, max_value=10**7)
times = st.integers(min_value=-(10**13), max_value=10**13)


@given(size=sizes, ts=times)
def test_every_timestamp_is_in_exactly_its_window(size, ts) -> None:
    spec = WindowSpec(size)
    start = spec.start(ts)
    assert start <= ts < spec.end(start)
    assert start % size == 0


@given(size=sizes, lateness=st.integers(0, 10**7), watermark=times)
def test_closable_windows_ended_lateness_before_the_watermark(size, lateness, watermark) -> None:
    spec = WindowSpec(size, lateness)
    until = spec.closable_until(watermark)
    last_closed = until - size
    assert spec.end(last_closed) + lateness <= watermark
    # The first window that may not close yet has not passed its lateness.
    assert spec.end(until) + lateness > watermark


def test_hour_windows_start_on_the_hour() -> None:
    spec = WindowSpec(3_600_000)
    assert spec.start(1_763_028_000_000 + 59 * 60_000) == 1_763_028_000_000


def test_nonsense_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        WindowSpec(0)
