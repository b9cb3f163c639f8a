"""When the labeler asks for retraining: by count first, then by time, never without news."""

from __future__ import annotations

from routeiq_labeler.core.retrain import retrain_reason


def _reason(new: int, *, since_ms: int, threshold: int = 100, interval_s: float = 60.0):
    return retrain_reason(
        new_examples=new,
        now_ms=1_000_000 + since_ms,
        last_request_ms=1_000_000,
        threshold=threshold,
        interval_s=interval_s,
    )


def test_enough_new_examples_ask_at_once() -> None:
    assert _reason(100, since_ms=0) == "THRESHOLD"
    assert _reason(99, since_ms=0) is None


def test_the_timer_asks_only_when_something_is_new() -> None:
    assert _reason(1, since_ms=60_000) == "TIMER"
    assert _reason(1, since_ms=59_999) is None
    assert _reason(0, since_ms=10**9) is None


def test_zero_disables_either_trigger() -> None:
    assert _reason(10**6, since_ms=0, threshold=0) is None
    assert _reason(1, since_ms=10**9, interval_s=0) is None
    assert _reason(10**6, since_ms=10**9, threshold=0) == "TIMER"
