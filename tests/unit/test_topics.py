"""The topic declaration encodes the design's invariants."""

from __future__ import annotations

from routeiq.contracts.compatibility import CompatibilityLevel
from routeiq.contracts.topics import (
    FEEDBACK_EVENTS,
    MODEL_ANNOUNCEMENTS,
    ROUTER_DECISIONS,
    TOPICS,
    topic,
)


def test_decisions_and_feedback_are_co_partitioned() -> None:
    assert ROUTER_DECISIONS.partitions == FEEDBACK_EVENTS.partitions
    assert ROUTER_DECISIONS.key == FEEDBACK_EVENTS.key == "decision id"


def test_announcements_are_compacted_and_totally_ordered() -> None:
    assert MODEL_ANNOUNCEMENTS.configs["cleanup.policy"] == "compact"
    assert MODEL_ANNOUNCEMENTS.partitions == 1


def test_subjects_follow_topic_name_strategy_and_levels_are_transitive() -> None:
    for spec in TOPICS:
        assert spec.value_subject == f"{spec.name}-value"
        assert spec.compatibility in {
            CompatibilityLevel.BACKWARD_TRANSITIVE,
            CompatibilityLevel.FULL_TRANSITIVE,
        }


def test_names_are_unique_and_versioned() -> None:
    names = [spec.name for spec in TOPICS]
    assert len(names) == len(set(names))
    assert all(name.startswith("routeiq.") and name.endswith(".v1") for name in names)
    assert topic("routeiq.feedback.v1") is FEEDBACK_EVENTS


def test_with_name_copies_everything_but_the_name() -> None:
    copy = ROUTER_DECISIONS.with_name("t-123")
    assert copy.name == "t-123"
    assert copy.value_subject == "t-123-value"
    assert (copy.partitions, copy.configs, copy.contract) == (
        ROUTER_DECISIONS.partitions,
        ROUTER_DECISIONS.configs,
        ROUTER_DECISIONS.contract,
    )
