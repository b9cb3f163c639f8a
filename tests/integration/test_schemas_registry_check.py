"""`routeiq schemas check` against the running registry explains incompatibilities."""

from __future__ import annotations

import json

import pytest
from confluent_kafka.schema_registry import Schema
from routeiq.contracts.compatibility import CompatibilityLevel, parse_schema
from routeiq.contracts.topics import FEEDBACK_EVENTS, TOPICS
from routeiq_cli import schemas as schema_ops

pytestmark = pytest.mark.integration


def test_the_committed_working_copies_pass_against_the_registry(stack) -> None:
    findings = schema_ops.check(TOPICS, stack.registry.url)
    assert all(f.ok for f in findings), [f.message for f in findings if not f.ok]
    assert sum("registry: working copy is compatible" in f.message for f in findings) == len(TOPICS)


def test_an_incompatible_working_copy_is_refused_with_the_reason(
    stack, registry_client, unique
) -> None:
    spec = FEEDBACK_EVENTS.with_name(unique("test.feedback"))
    registry_client.set_compatibility(spec.value_subject, CompatibilityLevel.FULL_TRANSITIVE.value)
    registry_client.register_schema(
        spec.value_subject, Schema(spec.contract.working_text(), "AVRO")
    )
    doc = json.loads(spec.contract.working_text())
    doc["fields"] = [f for f in doc["fields"] if f["name"] != "score"]
    doc["fields"].append({"name": "rubric", "type": "string"})
    findings = schema_ops._check_registry(stack.registry.url, spec, parse_schema(json.dumps(doc)))
    verdict = next(f for f in findings if "working copy is" in f.message)
    assert not verdict.ok
    assert "INCOMPATIBLE under FULL_TRANSITIVE" in verdict.message
    assert "rubric" in verdict.message or "score" in verdict.message


def test_a_missing_subject_is_reported(stack, unique) -> None:
    spec = FEEDBACK_EVENTS.with_name(unique("test.nosubject"))
    (finding,) = schema_ops._check_registry(
        stack.registry.url, spec, spec.contract.working_schema()
    )
    assert not finding.ok
    assert "not registered" in finding.message
