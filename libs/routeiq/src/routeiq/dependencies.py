"""Degrade quietly: a lost dependency is logged once, reminded about rarely, and visible.

A service that loses Kafka, Redis or the registry keeps serving what it can; what it must not
do is write one log line per retry (the labeler once wrote 274,600 lines in 50 s of a Kafka
outage and rotated its own log away). ``Dependency`` turns a stream of failures into state
changes: one WARNING when it is lost, a reminder at most every ``remind_every_s`` while it
stays lost (with how many failures were folded into it), one INFO when it is back; the state
is a gauge (``routeiq_dependency_up``) and part of ``/health/ready``. ``RepeatFilter`` does the
same for third-party loggers (librdkafka, aiokafka) whose retry loops log on their own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

REMIND_EVERY_S = 60.0


@dataclass(kw_only=True, eq=False)
class Dependency:
    """One dependency's state as this process sees it, changed by ``failed``/``recovered``."""

    name: str
    log: logging.Logger
    remind_every_s: float = REMIND_EVERY_S
    clock: Callable[[], float] = time.monotonic
    on_change: Callable[[str, bool], None] | None = None
    _up: bool = field(init=False, default=True)
    _lost_at: float = field(init=False, default=0.0)
    _reminded_at: float = field(init=False, default=0.0)
    _folded: int = field(init=False, default=0)
    _last_error: str = field(init=False, default="")
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    @property
    def up(self) -> bool:
        return self._up

    def failed(self, error: object) -> None:
        """Record one failure; logs only when the state changes or a reminder is due."""
        now = self.clock()
        text = _short(error)
        with self._lock:
            self._last_error = text
            if self._up:
                self._up, self._lost_at, self._reminded_at, self._folded = False, now, now, 0
                changed = True
            else:
                self._folded += 1
                changed = False
                if now - self._reminded_at < self.remind_every_s:
                    return
                self._reminded_at, folded = now, self._folded
                self._folded = 0
        if changed:
            self.log.warning("%s unavailable: %s", self.name, text)
            self._notify(False)
        else:
            self.log.warning(
                "%s still unavailable after %.0f s (%d more failures): %s",
                self.name,
                now - self._lost_at,
                folded,
                text,
            )

    def recovered(self) -> None:
        """Record a success; logs once if the dependency was lost."""
        with self._lock:
            if self._up:
                return
            self._up = True
            down_for = self.clock() - self._lost_at
        self.log.info("%s available again after %.0f s", self.name, down_for)
        self._notify(True)

    def _notify(self, up: bool) -> None:
        if self.on_change is not None:
            self.on_change(self.name, up)

    def state(self) -> dict[str, Any]:
        """What ``/health/ready`` shows for this dependency."""
        with self._lock:
            if self._up:
                return {"up": True}
            return {
                "up": False,
                "down_for_s": round(self.clock() - self._lost_at, 1),
                "error": self._last_error,
            }


@dataclass(kw_only=True, eq=False)
class Dependencies:
    """A service's dependencies: each one's state, a gauge per dependency, and readiness."""

    log: logging.Logger
    registry: CollectorRegistry | None = None
    remind_every_s: float = REMIND_EVERY_S
    clock: Callable[[], float] = time.monotonic
    _items: dict[str, Dependency] = field(init=False, default_factory=dict)
    _gauge: Gauge | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.registry is not None:
            self._gauge = Gauge(
                "routeiq_dependency_up",
                "1 while the dependency answers, 0 while it is lost",
                ["dependency"],
                registry=self.registry,
            )

    def __getitem__(self, name: str) -> Dependency:
        item = self._items.get(name)
        if item is None:
            item = Dependency(
                name=name,
                log=self.log,
                remind_every_s=self.remind_every_s,
                clock=self.clock,
                on_change=self._set_gauge,
            )
            self._items[name] = item
            self._set_gauge(name, True)
        return item

    def __iter__(self) -> Iterator[Dependency]:
        return iter(list(self._items.values()))

    def _set_gauge(self, name: str, up: bool) -> None:
        if self._gauge is not None:
            self._gauge.labels(name).set(1 if up else 0)

    @property
    def ready(self) -> bool:
        return all(item.up for item in self)

    def states(self) -> dict[str, dict[str, Any]]:
        return {item.name: item.state() for item in self}


class RepeatFilter(logging.Filter):
    """Lets the first WARNING-or-worse record of each (logger, message template) through,
    then at most one per ``every_s``, noting how many were folded into it. Lower levels pass:
    only failure loops flood, and an INFO line is never a retry."""

    def __init__(
        self, every_s: float = REMIND_EVERY_S, *, clock: Callable[[], float] = time.monotonic
    ):
        super().__init__()
        self.every_s = every_s
        self._clock = clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        with self._lock:
            last = self._seen.get(key)
            if last is not None and now - last[0] < self.every_s:
                self._seen[key] = (last[0], last[1] + 1)
                return False
            folded = last[1] if last is not None else 0
            self._seen[key] = (now, 0)
            if len(self._seen) > 10_000:  # templates are few; arguments never enter the key
                self._seen.clear()
        if folded:
            record.msg = f"{record.msg} [{folded} similar messages folded since the last one]"
        return True


def fold_repeats(handlers: Iterable[logging.Handler]) -> None:
    """Put a ``RepeatFilter`` on each of ``handlers`` that has none."""
    for handler in handlers:
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            handler.addFilter(RepeatFilter())


def _short(error: object, limit: int = 500) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= limit else text[:limit] + "…"
