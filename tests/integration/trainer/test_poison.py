"""The poison policy against the real stack: every kind of poison record on the trainer's
(private) requests topic is exactly one dead letter keyed by its source position, the worker
keeps running and trains the good request after them, and a restarted worker that reads them
all again (a crash between the flush and the commit) writes no second dead letter."""

from __future__ import annotations

import struct
from collections import Counter

import pytest
from routeiq.contracts.catalog import ROUTER_DECISION
from routeiq.contracts.serde import AvroSerde, RegistryResolver
from routeiq_trainer.wiring import build_services
from support.records import router_decision

pytestmark = pytest.mark.integration

# An id the registry never handed out (ids are assigned from 1 upwards).
UNKNOWN_ID = 2**31 - 7


def _counter(services, name: str, **labels: str) -> float:
    return services.metrics.registry.get_sample_value(name, labels or None) or 0.0


def _decision(registry_client, subject: str) -> bytes:
    """A real RouterDecision under its real registered id: what a misconfigured producer
    (the gateway pointed at the wrong topic) would write."""
    serde = AvroSerde.for_contract(
        ROUTER_DECISION,
        subject=subject,
        resolver=RegistryResolver(registry_client, auto_register=True),
    )
    return serde.encode(router_decision().to_record())


def test_every_poison_kind_is_one_dead_letter_and_a_restart_writes_none_again(
    harness_factory, registry_client, unique
) -> None:
    harness = harness_factory()
    first = harness.start_worker()
    request_serde = harness.serdes["request"]
    good = harness.request()
    body = request_serde.encode(good.to_record())
    invalid = dict(harness.request().to_record(), model_name="../etc")
    poison: list[tuple[bytes | None, str, str]] = [
        (b"not avro at all", "SerializationError", "unknown magic byte"),
        (b"", "SerializationError", "0 bytes is too short"),
        (None, "SerializationError", "0 bytes is too short"),
        (body[:8], "SerializationError", "cannot decode"),
        (struct.pack(">bI", 0, UNKNOWN_ID) + body[5:], "SerializationError", "unknown schema id"),
        (
            _decision(registry_client, unique("test.decisions") + "-value"),
            "SerializationError",
            "(io.routeiq.events.RouterDecision) does not resolve to",
        ),
        (request_serde.encode(invalid), "RequestError", "model name '../etc' is not allowed"),
    ]
    for value, _, _ in poison:
        harness.produce(value)  # keyed by the model name: one partition, in this order
    harness.produce(good)
    harness.wait_handled(len(poison) + 1)

    letters = harness.read("dead_letter", expect=len(poison))
    topic = harness.settings.requests_topic
    (partition,) = {d["source_partition"] for d in letters}
    offsets = sorted(d["source_offset"] for d in letters)
    keys = Counter(d["_key"] for d in letters)
    assert keys == Counter(f"{topic}/{partition}/{offset}" for offset in offsets)
    assert set(keys.values()) == {1}  # exactly one per poison record
    letters.sort(key=lambda d: d["source_offset"])
    for letter, (value, error_type, reason) in zip(letters, poison, strict=True):
        assert letter["source_topic"] == topic
        assert letter["error_type"] == error_type
        assert reason in letter["reason"]
        assert letter["value"] == value
        assert letter["consumer"] == harness.services.consumer_name
    # The good request after them was trained, and every offset is committed.
    (version,) = harness.services.registry.versions(harness.model_name)
    assert version.version == good.version
    assert harness.committed_offset() == len(poison) + 1
    assert _counter(harness.services, "routeiq_trainer_dead_letters_total") == len(poison)
    assert (
        _counter(
            harness.services, "routeiq_trainer_poison_records_total", error_type="RequestError"
        )
        == 1
    )
    assert first.state.error is None
    assert first.state.partitions
    assert first.dependencies.ready

    # Restart after a crash between the flush and the commit: every record is read again by
    # a worker with fresh clients; its sink recalls the dead letters, the request id makes
    # the good request a duplicate.
    harness.stop_worker()
    harness.rewind()
    assert harness.committed_offset() == 0
    services = build_services(harness.settings)
    second = harness.restart_worker(services)
    harness.wait_handled(len(poison) + 1)
    assert harness.committed_offset() == len(poison) + 1
    assert len(harness.read("dead_letter", expect=len(poison))) == len(poison)
    assert _counter(services, "routeiq_trainer_dead_letters_total") == 0
    assert _counter(services, "routeiq_trainer_requests_total", outcome="duplicate") == 1
    assert second.state.failed == len(poison)
    assert second.state.error is None
    assert len(harness.services.registry.versions(harness.model_name)) == 1
    services.close()
