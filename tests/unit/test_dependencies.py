"""Degrade quietly: state changes logged once, reminders rate-limited, state in a gauge."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry
from routeiq.dependencies import Dependencies, RepeatFilter


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_lost_dependency_is_logged_once_then_reminded_then_restored(caplog) -> None:
    clock, registry = _Clock(), CollectorRegistry()
    deps = Dependencies(
        log=logging.getLogger("t.deps"), registry=registry, remind_every_s=60, clock=clock
    )
    kafka = deps["kafka"]
    assert deps.ready
    assert registry.get_sample_value("routeiq_dependency_up", {"dependency": "kafka"}) == 1
    caplog.set_level(logging.INFO, "t.deps")
    for _ in range(10_000):  # a retry loop's worth of failures within a second
        kafka.failed(ConnectionError("broker down"))
    assert [r.getMessage() for r in caplog.records] == ["kafka unavailable: broker down"]
    assert not deps.ready
    assert registry.get_sample_value("routeiq_dependency_up", {"dependency": "kafka"}) == 0
    clock.now += 61
    kafka.failed("still")
    assert caplog.records[-1].getMessage() == (
        "kafka still unavailable after 61 s (10000 more failures): still"
    )
    assert deps.states() == {"kafka": {"up": False, "down_for_s": 61.0, "error": "still"}}
    clock.now += 5
    kafka.recovered()
    kafka.recovered()
    assert caplog.records[-1].getMessage() == "kafka available again after 66 s"
    assert len(caplog.records) == 3
    assert deps.ready
    assert deps.states() == {"kafka": {"up": True}}
    assert registry.get_sample_value("routeiq_dependency_up", {"dependency": "kafka"}) == 1


def test_long_errors_are_cut() -> None:
    deps = Dependencies(log=logging.getLogger("t.deps"))
    deps["s3"].failed("x" * 20_000)
    assert len(deps.states()["s3"]["error"]) <= 501


def _record(msg: str, level: int = logging.ERROR, name: str = "aiokafka") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, ("arg",), None)


def test_repeat_filter_folds_a_flood_of_one_template() -> None:
    clock = _Clock()
    repeat = RepeatFilter(every_s=60, clock=clock)
    assert repeat.filter(_record("Unable connect to %s"))
    assert sum(repeat.filter(_record("Unable connect to %s")) for _ in range(5000)) == 0
    assert repeat.filter(_record("another failure %s"))  # another template passes
    assert repeat.filter(_record("Unable connect to %s", name="other"))  # another logger too
    clock.now += 60
    folded = _record("Unable connect to %s")
    assert repeat.filter(folded)
    assert (
        folded.getMessage()
        == "Unable connect to arg [5000 similar messages folded since the last one]"
    )


@pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO])
def test_repeat_filter_passes_every_line_below_warning(level) -> None:
    repeat = RepeatFilter(every_s=60, clock=_Clock())
    assert all(repeat.filter(_record("progress %s", level)) for _ in range(100))
