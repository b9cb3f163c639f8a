"""The one declaration of RouteIQ's topics: names, partitions, configs and value contracts.

``routeiq topics apply`` creates these idempotently; ``routeiq schemas register`` registers each
value contract under ``<topic>-value`` (TopicNameStrategy) with the declared compatibility level.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from routeiq.contracts.catalog import (
    DEAD_LETTER,
    FEEDBACK,
    MODEL_ANNOUNCEMENT,
    RETRAIN_REQUEST,
    ROUTER_DECISION,
    ROUTING_CONFIG,
    Contract,
)
from routeiq.contracts.compatibility import CompatibilityLevel


def topic_subject_name(topic: str, *, is_key: bool = False) -> str:
    """The subject of a topic's values (or keys): Confluent's TopicNameStrategy, as
    confluent-kafka's ``topic_subject_name_strategy`` names it. The one place that spells it."""
    return f"{topic}-{'key' if is_key else 'value'}"


# Decisions and feedback are joined by decision id in the labeler: same key, same partition
# count, so the join is co-partitioned (Faust tables require it).
JOIN_PARTITIONS = 6


@dataclass(frozen=True)
class TopicSpec:
    """A topic RouteIQ owns and the contract of its values."""

    name: str
    partitions: int
    contract: Contract
    key: str
    configs: dict[str, str] = field(default_factory=dict)
    replication_factor: int = 1
    # FULL_TRANSITIVE: every consumer, old or new, reads every event ever written.
    compatibility: CompatibilityLevel = CompatibilityLevel.FULL_TRANSITIVE

    @property
    def value_subject(self) -> str:
        """Subject name under Confluent's TopicNameStrategy."""
        return topic_subject_name(self.name)

    def with_name(self, name: str) -> TopicSpec:
        """Same spec under another name (tests create private copies of real topics)."""
        return TopicSpec(
            name=name,
            partitions=self.partitions,
            contract=self.contract,
            key=self.key,
            configs=dict(self.configs),
            replication_factor=self.replication_factor,
            compatibility=self.compatibility,
        )


_WEEK_MS = str(7 * 24 * 3600 * 1000)
_MONTH_MS = str(30 * 24 * 3600 * 1000)


def _joined(name: str, contract: Contract) -> TopicSpec:
    """A topic the labeler joins on decision id: co-partitioned with the other side of the
    join, kept a week (the join's horizon), stored as the producer compressed it."""
    return TopicSpec(
        name=name,
        partitions=JOIN_PARTITIONS,
        contract=contract,
        key="decision id",
        configs={"retention.ms": _WEEK_MS, "compression.type": "producer"},
    )


def _occasional(name: str, contract: Contract, *, key: str) -> TopicSpec:
    """A low-volume topic (requests, failures): three partitions, kept a month."""
    return TopicSpec(
        name=name, partitions=3, contract=contract, key=key, configs={"retention.ms": _MONTH_MS}
    )


ROUTER_DECISIONS = _joined("routeiq.router_decision.v1", ROUTER_DECISION)
FEEDBACK_EVENTS = _joined("routeiq.feedback.v1", FEEDBACK)
RETRAIN_REQUESTS = _occasional("routeiq.retrain.requests.v1", RETRAIN_REQUEST, key="model name")


def _fleet_state(name: str, contract: Contract, *, key: str) -> TopicSpec:
    """A desired state every gateway follows: one partition, so every replica reads every
    record in order; compacted, so the latest per key stays and a starting gateway learns the
    current state from the log."""
    return TopicSpec(
        name=name,
        partitions=1,
        contract=contract,
        key=key,
        configs={
            "cleanup.policy": "compact",
            "min.compaction.lag.ms": "0",
            "segment.ms": str(3600 * 1000),
            "min.cleanable.dirty.ratio": "0.1",
        },
    )


MODEL_ANNOUNCEMENTS = _fleet_state(
    "routeiq.model.announcements.v1", MODEL_ANNOUNCEMENT, key="model name"
)
ROUTING_CONFIGS = _fleet_state("routeiq.routing.config.v1", ROUTING_CONFIG, key="fleet")
# Every version of every fleet's configuration, kept for good: the audit trail and what a
# rollback to an earlier version reads.
ROUTING_CONFIG_AUDIT = TopicSpec(
    name="routeiq.routing.config.audit.v1",
    partitions=1,
    contract=ROUTING_CONFIG,
    key="fleet",
    configs={"retention.ms": "-1"},
)
DEAD_LETTERS = _occasional(
    "routeiq.deadletter.v1", DEAD_LETTER, key="source topic/partition/offset"
)

TOPICS: tuple[TopicSpec, ...] = (
    ROUTER_DECISIONS,
    FEEDBACK_EVENTS,
    RETRAIN_REQUESTS,
    MODEL_ANNOUNCEMENTS,
    DEAD_LETTERS,
    ROUTING_CONFIGS,
    ROUTING_CONFIG_AUDIT,
)


def topic(name: str) -> TopicSpec:
    """Look a declared topic up by name."""
    for spec in TOPICS:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown topic {name!r}; declared: {', '.join(t.name for t in TOPICS)}")
