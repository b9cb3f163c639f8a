"""The log reader's poison policy and how a lost log is reported.

* A record that cannot be read is skipped with exactly one ERROR line (its reason cut to a few
  hundred characters), counted, and the replay goes on: no bytes in the log stop the registry.
* A lost log is logged once at WARNING (``routeiq.dependencies``: then a reminder at most every
  minute, and one line when it is back), not once per retry; ``/health/ready`` names it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from routeiq.dependencies import Dependency
from routeiq_schema_registry.core import InMemorySchemaLog, SchemaRegistry
from routeiq_schema_registry.core import records as rec
from routeiq_schema_registry.core.state import REASON_CHARS, RegistryState
from routeiq_schema_registry.errors import StoreError
from unit.schema_registry.helpers import SlowStartLog, field, record, replayed, req

if TYPE_CHECKING:
    from starlette.testclient import TestClient

V1 = record("R", field("a"))


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def at(self, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == level]


def _collect(name: str) -> Iterator[_Collect]:
    handler = _Collect()
    logger = logging.getLogger(name)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def state_log() -> Iterator[_Collect]:
    yield from _collect("routeiq_schema_registry.core.state")


@pytest.fixture
def health_log() -> Iterator[_Collect]:
    yield from _collect("routeiq_schema_registry.core.registry")


# ---------------------------------------------------------------- poison records

_bytes = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"", b"{}", b"[]", b"null", b"[" * 5000, b'{"keytype":"SCHEMA"}']),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(junk=st.lists(st.tuples(_bytes, st.one_of(st.none(), _bytes)), max_size=6))
def test_no_bytes_in_the_log_stop_the_replay(junk: list[tuple[bytes, bytes | None]]) -> None:
    log = InMemorySchemaLog()
    log.append(rec.schema_key("before", 1), rec.schema_value("before", 1, 1, '"int"', False))
    for key, value in junk:
        log.append(key, value)
    log.append(rec.schema_key("after", 1), rec.schema_value("after", 1, 2, '"long"', False))
    handler = _Collect()
    logging.getLogger("routeiq_schema_registry.core.state").addHandler(handler)
    try:
        registry = replayed(log)
    finally:
        logging.getLogger("routeiq_schema_registry.core.state").removeHandler(handler)
    # The records around the junk are applied, and the registry still takes writes.
    assert {"before", "after"} <= set(registry.subjects())
    assert registry.register("new", req(V1)).schema_id > 2
    records = registry.progress()["records"]
    # One ERROR line per unreadable record, never more, never longer than the cut.
    errors = handler.at(logging.ERROR)
    assert len(errors) == records["poison"]
    assert all(len(line) < REASON_CHARS + 120 for line in errors)


def test_a_huge_poison_record_is_one_short_error_line(
    log: InMemorySchemaLog, state_log: _Collect
) -> None:
    log.append(rec.schema_key("s", 1), b'{"schema": "' + b"x" * 20_000)
    log.append(b"\xff" * 30_000, b"{}")
    log.append(rec.schema_key("s", 2), rec.schema_value("s", 2, 3, '"int"', False))
    registry = replayed(log)
    assert registry.versions("s") == [2]
    errors = state_log.at(logging.ERROR)
    assert len(errors) == 2
    assert all(len(line) < 700 for line in errors)
    assert "offset 0" in errors[0]
    assert registry.progress()["records"] == {"poison": 2, "skipped": 0}


def test_foreign_records_are_skipped_with_a_warning_not_counted_as_poison(
    log: InMemorySchemaLog, state_log: _Collect
) -> None:
    log.append(b'{"keytype":"CLEAR_SUBJECT","subject":"s","magic":0}', b"{}")
    registry = replayed(log)
    assert registry.progress()["records"] == {"poison": 0, "skipped": 1}
    assert state_log.at(logging.ERROR) == []
    assert len(state_log.at(logging.WARNING)) == 1


class _FailingState(RegistryState):
    """A state whose schema records fail to apply (a bug, or a value nobody foresaw)."""

    def _apply_schema(self, record: rec.SchemaRecord) -> None:
        raise KeyError(record.subject)


def test_a_record_that_fails_to_apply_is_skipped_too(state_log: _Collect) -> None:
    state = _FailingState()
    state.apply(rec.LogRecord(0, rec.schema_key("s", 1), rec.schema_value("s", 1, 1, "1", False)))
    state.apply(rec.LogRecord(1, rec.config_key(None), b'{"compatibilityLevel":"NONE"}'))
    assert state.poison == 1
    assert state.next_offset == 2
    assert state.level(None) is not None
    (line,) = state_log.at(logging.ERROR)
    assert "cannot apply: KeyError" in line


# ---------------------------------------------------------------- a lost log


def test_start_retries_quietly(health_log: _Collect) -> None:
    # Twenty failed tries: one warning when the log is found missing, one line when it is back
    # (not one per retry); reminders are ``routeiq.dependencies``' business (once a minute).
    registry = SchemaRegistry(log=SlowStartLog(failures=20), sleep=lambda _s: None)
    registry.start(timeout_s=30, retry_interval_s=0.01)
    assert health_log.at(logging.WARNING) == ["log unavailable: connection refused"]
    assert health_log.at(logging.INFO) == ["log available again after 0 s"]


class _FlakyLog(InMemorySchemaLog):
    """A log that can be switched off, as Kafka stopped under a running registry."""

    def __init__(self) -> None:
        super().__init__()
        self.lost = threading.Event()

    def end_offset(self, *, timeout_s: float = 0.0) -> int:
        if self.lost.is_set():
            raise StoreError("cannot read the end offset of _schemas: broker down")
        return super().end_offset(timeout_s=timeout_s)


def _ready(client: TestClient) -> dict[str, Any]:
    response = client.get("/health/ready")
    assert response.status_code == 200  # reads are still served from memory
    body: dict[str, Any] = response.json()
    return body


def test_readiness_names_the_lost_log(client_for: Any) -> None:
    log = _FlakyLog()
    kafka = Dependency(name="kafka", log=logging.getLogger("test.registry.kafka"))
    registry = SchemaRegistry(log=log, log_health=kafka)
    registry.start(timeout_s=5)
    with client_for(registry) as client:
        assert _ready(client)["dependencies"] == {"kafka": {"up": True}}
        log.lost.set()
        failed = client.post("/subjects/s/versions", json={"schema": V1})
        assert (failed.status_code, failed.json()["error_code"]) == (500, 50001)
        state = _ready(client)["dependencies"]["kafka"]
        assert state["up"] is False
        assert "broker down" in state["error"]
        assert client.get("/subjects").json() == []
        log.lost.clear()
        assert client.post("/subjects/s/versions", json={"schema": V1}).status_code == 200
        assert _ready(client)["dependencies"] == {"kafka": {"up": True}}


def test_watch_notices_a_lost_log_without_writes() -> None:
    log = _FlakyLog()
    kafka = Dependency(name="kafka", log=logging.getLogger("test.registry.kafka"))
    registry = SchemaRegistry(log=log, log_health=kafka)
    registry.start(timeout_s=5)
    log.lost.set()
    watcher = threading.Thread(target=registry.watch, kwargs={"interval_s": 0.01})
    watcher.start()
    try:
        assert _wait_for(lambda: not kafka.up)
        log.lost.clear()
        assert _wait_for(lambda: kafka.up)
    finally:
        registry.close()
        watcher.join(timeout=5)
    assert not watcher.is_alive()


def _wait_for(condition: Any, attempts: int = 500) -> bool:
    ticker = threading.Event()
    for _ in range(attempts):
        if condition():
            return True
        ticker.wait(0.01)
    return bool(condition())
