"""The consumer's rules that need no broker: where partitions start, what is transient."""

from __future__ import annotations

import httpx
from confluent_kafka.schema_registry.error import SchemaRegistryError
from routeiq.errors import RegistryError, SerializationError
from routeiq_analytics.consumer import registry_unavailable, start_offset


def test_start_offsets() -> None:
    # A partition this process already applied resumes where it stopped.
    assert start_offset(position=42, committed=10, by_time=5, high=50) == 42
    # Without rebuild the group decides (committed offset or auto.offset.reset).
    assert start_offset(position=None, committed=10, by_time=None, high=50) is None
    # Rebuild: back to the retention's first record, even below the committed offset...
    assert start_offset(position=None, committed=30, by_time=12, high=50) == 12
    # ...but never past a committed offset that is older (those records still need work).
    assert start_offset(position=None, committed=7, by_time=12, high=50) == 7
    # A new group rebuilds from the retention's first record; nothing that recent: the end.
    assert start_offset(position=None, committed=-1001, by_time=12, high=50) == 12
    assert start_offset(position=None, committed=-1001, by_time=-1, high=50) == 50
    assert start_offset(position=None, committed=30, by_time=-1, high=50) == 30


def _wrapped(cause: BaseException) -> SerializationError:
    """A SerializationError the way the serde raises it: ``raise ... from cause``."""
    exc = SerializationError("unknown schema id 7")
    exc.__cause__ = cause
    return exc


def test_registry_outages_are_transient_and_bad_records_are_not() -> None:
    assert registry_unavailable(RegistryError("registry unreachable", error_code=50002))
    assert registry_unavailable(_wrapped(SchemaRegistryError(500, 50001, "store failed")))
    assert registry_unavailable(_wrapped(SchemaRegistryError(503, 50003, "not ready")))
    assert not registry_unavailable(_wrapped(SchemaRegistryError(404, 40403, "no such id")))
    assert not registry_unavailable(SerializationError("unknown magic byte 123"))
    # Only the registry's own answers count as its outage.
    assert not registry_unavailable(_wrapped(httpx.ConnectError("refused")))
