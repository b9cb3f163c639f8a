"""Every kind of poison record on every topic a service consumes: each consumer writes exactly
one dead letter per record, keeps running, and writes no second one after a SIGKILL and the
replay that follows (the labeler re-reads what it had not committed; analytics re-reads its
last hour on every start)."""

from __future__ import annotations

import struct
import time
from collections import Counter
from datetime import UTC, datetime

from confluent_kafka.schema_registry import SchemaRegistryClient
from faults.harness import Ledger, Row, Stack, kills, wait_for
from routeiq.contracts.catalog import FEEDBACK
from routeiq.contracts.serde import AvroSerde, RegistryResolver
from routeiq.contracts.topics import (
    DEAD_LETTERS,
    FEEDBACK_EVENTS,
    MODEL_ANNOUNCEMENTS,
    RETRAIN_REQUESTS,
    ROUTER_DECISIONS,
    TopicSpec,
)
from routeiq.kafka import make_producer
from support.records import decision_record

# Who reads each topic, by the dead-letter consumer name's prefix.
READERS = {
    ROUTER_DECISIONS.name: ("routeiq-labeler", "routeiq-analytics"),
    FEEDBACK_EVENTS.name: ("routeiq-labeler", "routeiq-analytics"),
    RETRAIN_REQUESTS.name: ("routeiq-trainer",),
    MODEL_ANNOUNCEMENTS.name: ("routeiq-gateway",),
}


def poison(stack: Stack, spec: TopicSpec) -> dict[str, bytes | None]:
    """The kinds of record a consumer of ``spec`` cannot use, by name."""
    registry = SchemaRegistryClient(stack.settings.registry.client_config())
    resolver = RegistryResolver(registry)
    decision = AvroSerde.for_topic(
        ROUTER_DECISIONS.contract, ROUTER_DECISIONS.name, resolver=resolver
    )
    valid = decision.encode(decision_record())
    if spec.name == ROUTER_DECISIONS.name:
        # A real id of another contract: what a misconfigured producer writes.
        foreign = AvroSerde.for_topic(FEEDBACK, FEEDBACK_EVENTS.name, resolver=resolver).encode(
            {
                "feedback_id": "f-1",
                "decision_id": "d-1",
                "score": 1.0,
                "source": "faults",
                "created_at": datetime.now(UTC),
                "candidate": None,
                "judge_model": None,
                "cost_usd": None,
                "latency_ms": None,
                "trace_id": None,
            }
        )
    else:
        foreign = valid
    kinds: dict[str, bytes | None] = {
        "garbage": b"\x13\x37 not avro at all",
        "empty": b"",
        "truncated": valid[: len(valid) // 2],
        "unknown schema id": b"\x00" + struct.pack(">I", 987_654) + b"\x02\x04",
        "another contract's id": foreign,
    }
    if spec.name != MODEL_ANNOUNCEMENTS.name:  # on the compacted topic a null is a deletion
        kinds["null"] = None
    return kinds


@kills("labeler", "analytics")
def test_poison_records_on_every_topic(stack: Stack, row: Row) -> None:
    ledger = Ledger(stack.kafka, [DEAD_LETTERS.name])
    producer = make_producer(stack.kafka, client_id="faults")
    expected: Counter[tuple[str, str]] = Counter()
    positions: list[str] = []

    def delivered(error, message) -> None:
        assert error is None, error
        positions.append(f"{message.topic()}/{message.partition()}/{message.offset()}")

    for topic, readers in READERS.items():
        spec = next(
            s
            for s in (ROUTER_DECISIONS, FEEDBACK_EVENTS, RETRAIN_REQUESTS, MODEL_ANNOUNCEMENTS)
            if s.name == topic
        )
        for kind, value in poison(stack, spec).items():
            before = len(positions)
            producer.produce(
                topic, key=f"faults-{kind}".encode(), value=value, on_delivery=delivered
            )
            producer.flush(30)
            assert len(positions) == before + 1
            for reader in readers:
                expected[(reader, positions[-1])] += 1
    row.sent = len(positions)

    def written() -> Counter[tuple[str, str]]:
        out: Counter[tuple[str, str]] = Counter()
        for (consumer, key), n in ledger.dead_letters(DEAD_LETTERS.name).items():
            reader = next(
                (r for rs in READERS.values() for r in rs if consumer.startswith(r)), consumer
            )
            out[(reader, key)] += n
        return out

    wait_for(
        lambda: all(written()[pair] >= 1 for pair in expected),
        timeout_s=180,
        what="one dead letter per poison record from every consumer",
    )
    # Crash both consumers right after: what they had not committed is read again, and
    # analytics replays its last hour on start.
    for component in ("labeler", "analytics"):
        old = stack.kill(component)
        wait_for(
            lambda c=component, o=old: stack.state(c) == "RUNNING" and stack.pid(c) != o,
            timeout_s=90,
            what=f"{component} to restart",
        )
    stack.wait_healthy(["labeler", "analytics"])
    time.sleep(15)
    final = written()
    row.dead_letters = sum(final.values())
    row.lost = sum(1 for pair in expected if final[pair] == 0)
    row.duplicated = sum(final[pair] - 1 for pair in expected if final[pair] > 1)
    strays = [pair for pair in final if pair not in expected and pair[1] in positions]
    if row.lost or row.duplicated or strays:
        row.notes.append(
            f"missing {[p for p in expected if final[p] == 0][:5]}, "
            f"repeated {[p for p in expected if final[p] > 1][:5]}, strays {strays[:5]}"
        )
    for component in ("labeler", "analytics", "trainer", "gateway"):
        if stack.state(component) != "RUNNING":
            row.failed += 1
            row.notes.append(f"{component} is {stack.state(component)}")
