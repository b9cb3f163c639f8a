"""The gateway's announcement reader against the real broker and registry: every poison kind
on its (private) announcements topic becomes one dead letter, the good announcement after
them is still acted on, and a restarted gateway, which re-reads the whole log, writes no
second one."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from confluent_kafka import TopicPartition
from routeiq.contracts.catalog import DEAD_LETTER
from routeiq.contracts.records import CONSUMER_HEADER
from routeiq.contracts.serde import AvroSerde, RegistryResolver
from routeiq.contracts.topics import DEAD_LETTERS
from routeiq.kafka import make_consumer, make_producer
from routeiq_trainer.announce import PROMOTE, announcement_record
from routeiq_trainer.bundles import BundleLocation
from support.kafka import read_messages
from support.processes import wait_until

pytestmark = pytest.mark.integration

ROUTER = "gsm8k-router"  # the router services/gateway/config/local.yaml follows
CONSUMER = "routeiq-gateway/announcements"


def announcement(version: str) -> dict[str, Any]:
    """What the trainer announces (its own builder), for a bundle that is not there."""
    return announcement_record(
        model_name=ROUTER,
        version=version,
        action=PROMOTE,
        router_type="knn",
        bundle=BundleLocation(
            bucket="routeiq-models",
            prefix=f"models/{ROUTER}/{version}/",
            manifest_sha256="0" * 64,
            size_bytes=1,
            manifest_version_id=None,
        ),
        signature={"algorithm": "ed25519", "key_id": "k", "value": "c2ln"},
        metrics={},
        previous_version=None,
        mlflow_run_id=None,
        mlflow_model_version=None,
        reason="poison test",
        announced_by="tests",
    )


def poison_records(gw) -> dict[str, bytes | None]:
    good = gw.announcement_serde.encode(announcement("v-shape"))
    feedback = gw.feedback_serde.encode(
        {
            "feedback_id": "f-1",
            "decision_id": "d-1",
            "score": 1.0,
            "source": "user",
            "created_at": 1,
            "candidate": None,
            "judge_model": None,
            "cost_usd": None,
            "latency_ms": None,
            "trace_id": None,
        }
    )
    return {
        "garbage bytes": b"\xde\xad\xbe\xef not an announcement",
        "empty value": b"",
        "null value": None,  # a tombstone for the router's key
        "truncated body": good[:9],
        "unknown schema id": b"\x00\x7f\xff\xff\xf0" + good[5:],
        "another contract's real id": feedback,
        "fails validation": gw.announcement_serde.encode(announcement("../../escape")),
    }


def ready(gw) -> dict[str, Any]:
    return httpx.get(f"{gw.url}/health/ready", timeout=5).json()


def dead_letters(stack, topic: str, at_least: int) -> list[Any]:
    """Every dead letter in ``topic`` (read until ``at_least`` arrived and a little after)."""
    reader = make_consumer(stack.kafka, group_id=f"dl-{uuid.uuid4().hex[:8]}", client_id="dl")
    reader.assign([TopicPartition(topic, p, 0) for p in range(DEAD_LETTERS.partitions)])
    return read_messages(reader, at_least + 1, timeout=10 if at_least else 5)


def test_every_poison_kind_is_dead_lettered_once_also_after_a_restart(
    stack, registry_client, gateway_factory
) -> None:
    gw = gateway_factory(name="poison")
    wait_until(lambda: ready(gw)["sync"]["caught_up"], timeout=60, what="the reader caught up")
    poison = poison_records(gw)
    producer = make_producer(stack.kafka, client_id="poison-test")
    for value in poison.values():
        producer.produce(gw.announcements_topic, key=ROUTER.encode(), value=value)
    good_version = f"v-good-{uuid.uuid4().hex[:6]}"
    producer.produce(
        gw.announcements_topic,
        key=ROUTER.encode(),
        value=gw.announcement_serde.encode(announcement(good_version)),
    )
    assert producer.flush(30) == 0

    # The good announcement after the poison is acted on: there is no bundle behind it, so
    # model sync tries to download it and rejects it, keeping the router it has.
    wait_until(
        lambda: ready(gw)["sync"]["last"].get("version") == good_version,
        timeout=60,
        what="the good announcement",
    )
    assert ready(gw)["sync"]["last"]["stage"] == "download"
    letters = dead_letters(stack, gw.deadletter_topic, len(poison))
    keys = sorted(m.key() for m in letters)
    assert keys == sorted(f"{gw.announcements_topic}/0/{o}".encode() for o in range(len(poison)))
    assert all(dict(m.headers())[CONSUMER_HEADER] == CONSUMER.encode() for m in letters)
    serde = AvroSerde.for_topic(
        DEAD_LETTER, gw.deadletter_topic, resolver=RegistryResolver(registry_client)
    )
    by_offset = {serde.decode(m.value())["source_offset"]: serde.decode(m.value()) for m in letters}
    for offset, (kind, value) in enumerate(poison.items()):
        assert by_offset[offset]["value"] == value, kind
        assert by_offset[offset]["reason"], kind
    assert "resolve" in by_offset[5]["reason"]  # another contract: named, not a schema dump
    assert len(by_offset[5]["reason"]) < 400
    metrics = httpx.get(f"{gw.url}/metrics", timeout=5).text
    assert f"routeiq_gateway_dead_letters_total {float(len(poison))}" in metrics
    assert gw.process.alive()

    # A restart re-reads the whole log from the beginning; the recall keeps it from writing
    # the dead letters again.
    gw.process.stop()
    again = gateway_factory(name="poison")
    wait_until(lambda: ready(again)["sync"]["caught_up"], timeout=60, what="the replay")
    assert ready(again)["sync"]["last"].get("version") == good_version
    assert len(dead_letters(stack, gw.deadletter_topic, len(poison))) == len(poison)
    metrics = httpx.get(f"{again.url}/metrics", timeout=5).text
    assert "routeiq_gateway_dead_letters_total 0.0" in metrics
    assert ready(again)["status"] == "ready"
