"""Labelling: a routing decision plus its feedback → one training-shard row.

The labeler applies it to live traffic from Kafka; the trainer's ``prepare_data`` applies it to
past traffic read back from Jaeger. One implementation, so both paths label alike.
"""

from routeiq.labeling.facts import (
    DecisionFacts,
    FeedbackFacts,
    decision_facts,
    feedback_facts,
)
from routeiq.labeling.labels import NO_LABEL, LabelPolicy, QualitySource, utc

__all__ = [
    "NO_LABEL",
    "DecisionFacts",
    "FeedbackFacts",
    "LabelPolicy",
    "QualitySource",
    "decision_facts",
    "feedback_facts",
    "utc",
]
