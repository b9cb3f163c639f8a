"""``prepare_data``: past traffic, read back from Jaeger, labelled into training shards.

The gateway's routing span carries each decision (``routeiq.router_decision.v1`` event, with
the query embedding when the gateway logs embeddings). This reads a time range of them from
Jaeger's query API (``routeiq.traces``), joins each with its feedback from the feedback topic
(read from the range's start to the topic's end: grades arrive after the answer), labels it
with the labeler's own rules (``routeiq.labeling``) and writes the rows as shards under
``shards/router_decision.v1/jaeger/...``. They never overwrite the labeler's shards; the
trainer reads both and keeps one row per decision id (the one with the most feedback).

It is for traffic the labeler never saw (a gateway that ran without Kafka, a new labeler
configuration, a lost bucket). Keys depend only on (window, partition), so preparing the same
range twice rewrites the same objects. Decisions without an embedding (from gateways that do
not log them, or spans older than the event) are labelled but no router can train on them.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from confluent_kafka import KafkaException, Message
from confluent_kafka.schema_registry import SchemaRegistryClient
from routeiq.contracts.catalog import FEEDBACK
from routeiq.contracts.serde import AvroSerde, RegistryResolver
from routeiq.errors import ContractError, TransportError
from routeiq.kafka import make_consumer, read_since
from routeiq.labeling import DecisionFacts, LabelPolicy, decision_facts, feedback_facts
from routeiq.shards import ShardManifest, shard_keys, write_shard
from routeiq.storage import ArtifactStore
from routeiq.traces import JaegerClient, TraceQuery, TraceStats, read_decisions

from routeiq_trainer.config import TrainerSettings
from routeiq_trainer.errors import RequestError
from routeiq_trainer.wiring import build_store

ORIGIN = "jaeger"  # the shards' key segment: shards/router_decision.v1/jaeger/...
# Timestamps up to this far ahead of the clock pass (clock skew between hosts); the labeler's
# default. A decision further ahead is refused as invalid, as the labeler refuses it.
MAX_FUTURE_SKEW_MS = 300_000
# A decoded record missing a field the checks read raises one of these; like a ContractError
# it makes the record unusable, not the run.
_BAD_RECORD = (ContractError, KeyError, TypeError, ValueError)


@dataclass(frozen=True, kw_only=True)
class ShardLayout:
    """How rows are cut into shards: event-time windows, and partitions within a window."""

    window_ms: int = 3_600_000
    partitions: int = 1
    origin: str = ""

    def __post_init__(self) -> None:
        if self.window_ms < 1 or self.partitions < 1:
            raise RequestError("window and partitions must be positive")
        shard_keys(0, 0, origin=self.origin)  # an unusable origin fails here, before any work


def write_rows(
    store: ArtifactStore, bucket: str, rows: Iterable[Mapping[str, Any]], layout: ShardLayout
) -> dict[str, ShardManifest]:
    """Write labelled rows as shards, one per (window, partition): the manifests by key,
    oldest window first. A row's window is its event time's; its partition is a function of
    its decision id, so the same rows always land in the same objects."""
    groups: dict[tuple[int, int], list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        event_ms = int(row["event_time"].timestamp() * 1000)
        partition = uuid.uuid5(uuid.NAMESPACE_OID, str(row["decision_id"])).int % layout.partitions
        groups[(event_ms - event_ms % layout.window_ms, partition)].append(row)
    store.ensure_bucket(bucket)
    return {
        shard_keys(window, partition, origin=layout.origin)[1]: write_shard(
            store,
            bucket,
            group,
            window_start_ms=window,
            window_end_ms=window + layout.window_ms,
            partition=partition,
            origin=layout.origin,
        )
        for (window, partition), group in sorted(groups.items())
    }


@dataclass
class Prepared:
    """What one ``prepare_data`` run read, skipped and wrote."""

    decisions: int = 0  # decisions read from Jaeger and labelled
    with_embedding: int = 0  # of which carried a query embedding (trainable)
    with_feedback: int = 0  # of which had feedback on the topic
    feedback_read: int = 0  # feedback records read from the topic in the range
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    manifests: dict[str, ShardManifest] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def summary(self) -> dict[str, Any]:
        return {
            "decisions": self.decisions,
            "with_embedding": self.with_embedding,
            "with_feedback": self.with_feedback,
            "feedback_read": self.feedback_read,
            "rows": sum(m.rows for m in self.manifests.values()),
            "skipped": dict(sorted(self.skipped.items())),
            "manifests": list(self.manifests),
        }


def decisions_from(
    records: Iterable[Mapping[str, Any]], *, now_ms: int, report: Prepared
) -> list[DecisionFacts]:
    """The decisions read from traces, checked by the labeler's rules (an invalid one is
    skipped with its reason, as the labeler would dead-letter it)."""
    facts: list[DecisionFacts] = []
    for record in records:
        try:
            fact = decision_facts(
                record,
                key=str(record.get("event_id") or "").encode(),
                now_ms=now_ms,
                max_future_skew_ms=MAX_FUTURE_SKEW_MS,
            )
        except _BAD_RECORD as exc:
            report.skip(f"invalid decision: {exc}")
            continue
        facts.append(fact)
    return facts


def feedback_for(
    messages: Iterable[Message], *, serde: AvroSerde, wanted: set[str], report: Prepared
) -> dict[str, dict[str, dict[str, Any]]]:
    """Feedback on the ``wanted`` decisions, as the labeler keeps it: decision id → feedback
    id → the feedback's facts (a record seen twice counts once). Records that do not decode
    or break the labeler's rules are skipped with the reason: the labeler dead-letters them."""
    found: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for message in messages:
        report.feedback_read += 1
        try:
            facts = feedback_facts(serde.decode(message.value()), key=message.key())
        except _BAD_RECORD as exc:
            report.skip(f"invalid feedback: {exc}")
            continue
        if facts.decision_id in wanted:
            found[facts.decision_id][facts.feedback_id] = facts.to_state()
    return dict(found)


def prepare(
    decisions: Iterable[Mapping[str, Any]],
    read_feedback: Callable[[set[str]], Mapping[str, Mapping[str, Mapping[str, Any]]]],
    *,
    policy: LabelPolicy,
    store: ArtifactStore,
    bucket: str,
    layout: ShardLayout,
    now_ms: int,
    report: Prepared,
) -> Prepared:
    """Label ``decisions`` (records read from traces) with the feedback ``read_feedback``
    returns for their ids, and write them as shards. ``report`` is filled and returned."""
    facts = decisions_from(decisions, now_ms=now_ms, report=report)
    if not facts:
        raise RequestError(
            "no decision to prepare in that range (is the gateway exporting to this Jaeger?)"
        )
    feedback = read_feedback({f.decision_id for f in facts})
    rows = []
    for fact in facts:
        given = feedback.get(fact.decision_id)
        report.decisions += 1
        report.with_embedding += fact.embedding is not None
        report.with_feedback += bool(given)
        window = fact.event_time_ms - fact.event_time_ms % layout.window_ms
        rows.append(policy.row(fact, given, window_start_ms=window, late=False))
    report.manifests = write_rows(store, bucket, rows, layout)
    return report


def prepare_from_jaeger(
    settings: TrainerSettings,
    *,
    jaeger_url: str,
    query: TraceQuery,
    policy: LabelPolicy,
    layout: ShardLayout,
    bucket: str,
    timeout_s: float = 60.0,
) -> Prepared:
    """``prepare`` over the decisions ``query`` finds in Jaeger and the feedback topic (as
    ``settings`` names it) from the query's start to its end."""
    report = Prepared()
    stats = TraceStats()
    with httpx.Client(timeout=timeout_s) as http:
        records = list(read_decisions(JaegerClient(base_url=jaeger_url, http=http), query, stats))
    for reason, count in stats.skipped.items():
        report.skipped[f"span: {reason}"] = count
    resolver = RegistryResolver(SchemaRegistryClient(settings.registry.client_config()))
    serde = AvroSerde.for_topic(FEEDBACK, settings.feedback_topic, resolver=resolver)

    def read_feedback(wanted: set[str]) -> dict[str, dict[str, dict[str, Any]]]:
        # Assign-only reader: no group offsets move, so running this twice reads the same.
        reader = make_consumer(
            settings.kafka,
            group_id=f"{settings.consumer_group}.prepare-data",
            client_id=f"{settings.instance_id}.prepare-data",
        )
        try:
            messages = read_since(
                reader,
                settings.feedback_topic,
                since_ms=query.start_us // 1000,
                timeout_s=timeout_s,
            )
            return feedback_for(messages, serde=serde, wanted=wanted, report=report)
        except KafkaException as exc:
            raise TransportError(f"cannot read {settings.feedback_topic}: {exc}") from exc
        finally:
            reader.close()

    return prepare(
        records,
        read_feedback,
        policy=policy,
        store=build_store(settings),
        bucket=bucket,
        layout=layout,
        now_ms=time.time_ns() // 1_000_000,
        report=report,
    )
