"""Small pieces of the Faust wiring that need no broker."""

from __future__ import annotations

import faust
import pytest
from confluent_kafka.schema_registry.error import SchemaRegistryError
from routeiq.errors import SerializationError
from routeiq_labeler.app import PartitionedTable
from routeiq_labeler.poison import registry_outage


def test_table_keys_route_changes_to_their_own_partition() -> None:
    app = faust.App("labeler-unit", broker="kafka://127.0.0.1:1", store="memory://")
    table = PartitionedTable(app, name="t", partitions=6)
    assert table.partition_for_key("4/decision-id") == 4
    assert table.partition_for_key("0/closed") == 0
    with pytest.raises(ValueError, match="partition"):
        table.partition_for_key("decision-id")


def _wrapped(status: int | None) -> SerializationError:
    try:
        raise SchemaRegistryError(status, 0, "boom")
    except SchemaRegistryError as cause:
        try:
            raise SerializationError("unknown schema id 7") from cause
        except SerializationError as exc:
            return exc


def test_registry_outages_are_not_blamed_on_the_record() -> None:
    assert registry_outage(_wrapped(503))
    assert registry_outage(_wrapped(-1))
    assert not registry_outage(_wrapped(404))
    assert not registry_outage(SerializationError("bad bytes"))
