"""Event contracts: Avro schemas, their compatibility rules, topic declarations and serde."""

from routeiq.contracts.catalog import CONTRACTS, Contract, schemas_dir
from routeiq.contracts.compatibility import (
    CompatibilityLevel,
    Incompatibility,
    canonical_text,
    check_compatibility,
    parse_schema,
)
from routeiq.contracts.topics import TOPICS, TopicSpec, topic

__all__ = [
    "CONTRACTS",
    "TOPICS",
    "CompatibilityLevel",
    "Contract",
    "Incompatibility",
    "TopicSpec",
    "canonical_text",
    "check_compatibility",
    "parse_schema",
    "schemas_dir",
    "topic",
]
