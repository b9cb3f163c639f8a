"""Registry fidelity through confluent-kafka's own client, against a private registry process
(its own ``_schemas_<uuid>`` topic on the stack's Kafka): field defaults checked, the
compatibility test's version semantics, ``compatibilityLevel`` in ``PUT /config``, modes kept
across a restart, and a poison record in the log skipped with one short error line.

Global levels and modes are changed only on these private registries, never on the stack's.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from integration import test_schema_registry as registry_tests
from integration.test_schema_registry import CONTENT, RegistryProcess
from routeiq.kafka import make_producer
from routeiq.settings import KafkaSettings

pytestmark = pytest.mark.integration

# The private registry processes and the stack's Kafka settings, as the registry's other
# integration tests get them.
start_registry = registry_tests.start_registry
registry = registry_tests.registry
kafka = registry_tests.kafka


def _record(*fields: dict[str, object]) -> Schema:
    return Schema(json.dumps({"type": "record", "name": "R", "fields": list(fields)}), "AVRO")


A = {"name": "a", "type": "int"}
C_DEFAULT = {"name": "c", "type": "int", "default": 0}
C = {"name": "c", "type": "int"}


def _sr_error(call: Callable[[], object]) -> SchemaRegistryError:
    with pytest.raises(SchemaRegistryError) as caught:
        call()
    return caught.value


def test_an_invalid_default_is_refused_with_42201(registry: RegistryProcess) -> None:
    client = SchemaRegistryClient({"url": registry.url})
    bad = _record({"name": "a", "type": "int", "default": "str"})
    error = _sr_error(lambda: client.register_schema("defaults-value", bad))
    assert (error.http_status_code, error.error_code) == (422, 42201)
    assert "Invalid default for field a" in error.error_message
    union = _record({"name": "u", "type": ["null", "string"], "default": "x"})
    assert _sr_error(lambda: client.register_schema("defaults-value", union)).error_code == 42201
    good = _record({"name": "u", "type": ["string", "null"], "default": "x"})
    assert client.register_schema("defaults-value", good) == 1


def test_compatibility_against_a_named_version_or_all(registry: RegistryProcess) -> None:
    client = SchemaRegistryClient({"url": registry.url})
    subject = "compat-value"
    # This client returns the whole answer of PUT /config/{subject}.
    assert client.set_compatibility(subject, "BACKWARD_TRANSITIVE") == {
        "compatibility": "BACKWARD_TRANSITIVE"
    }
    assert client.get_compatibility(subject) == "BACKWARD_TRANSITIVE"
    client.register_schema(subject, _record(A))
    client.register_schema(subject, _record(A, C_DEFAULT))
    candidate = _record(A, C)  # reads v2 data, not v1 data (no c, no default)
    # A named version is checked alone, even under a transitive level (Confluent's API doc).
    assert client.test_compatibility(subject, candidate, version=2) is True
    assert client.test_compatibility(subject, candidate, version="latest") is True
    assert client.test_compatibility(subject, candidate, version=1) is False
    # Without a version: the check a registration makes, against every version.
    assert client.test_compatibility_all_versions(subject, candidate) is False
    verbose = httpx.post(
        f"{registry.url}/compatibility/subjects/{subject}/versions?verbose=true",
        json={"schema": candidate.schema_str},
        headers=CONTENT,
    ).json()
    assert verbose["is_compatible"] is False
    assert any("version 1" in message for message in verbose["messages"])
    assert _sr_error(lambda: client.register_schema(subject, candidate)).http_status_code == 409


def test_put_config_accepts_compatibility_level(registry: RegistryProcess) -> None:
    put = httpx.put(f"{registry.url}/config", json={"compatibilityLevel": "FULL"}, headers=CONTENT)
    assert put.json() == {"compatibility": "FULL"}
    assert SchemaRegistryClient({"url": registry.url}).get_compatibility() == "FULL"


def test_modes_through_the_client_and_across_a_restart(
    start_registry: Callable[..., RegistryProcess],
) -> None:
    first = start_registry()
    client = SchemaRegistryClient({"url": first.url})
    assert client.get_global_mode() == "READWRITE"
    client.register_schema("kept-value", _record(A))

    assert client.update_mode("kept-value", "READONLY") == "READONLY"
    assert client.get_mode("kept-value") == "READONLY"
    refused = _sr_error(lambda: client.register_schema("kept-value", _record(A, C_DEFAULT)))
    assert (refused.http_status_code, refused.error_code) == (422, 42205)
    assert "Subject kept-value is in read-only mode" in refused.error_message
    assert _sr_error(lambda: client.delete_subject("kept-value")).error_code == 42205

    # IMPORT on a registry with subjects needs force; then ids are kept.
    assert _sr_error(lambda: client.update_global_mode("IMPORT")).error_code == 42205
    assert client.update_global_mode("IMPORT", force=True) == "IMPORT"
    imported = httpx.post(
        f"{first.url}/subjects/imported-value/versions",
        json={"schema": _record(A, C_DEFAULT).schema_str, "id": 500, "version": 7},
        headers=CONTENT,
    )
    assert imported.json() == {"id": 500, "version": 7}
    clash = httpx.post(
        f"{first.url}/subjects/other-value/versions",
        json={"schema": _record(C).schema_str, "id": 500},
        headers=CONTENT,
    )
    assert (clash.status_code, clash.json()["error_code"]) == (422, 42205)
    missing_id = _sr_error(lambda: client.register_schema("other-value", _record(C)))
    assert missing_id.error_code == 42205

    first.process.send_signal(signal.SIGKILL)
    first.process.wait(timeout=10)
    second = start_registry(topic=first.topic)
    again = SchemaRegistryClient({"url": second.url})
    assert again.get_global_mode() == "IMPORT"
    assert again.get_mode("kept-value") == "READONLY"
    assert again.get_version("imported-value", 7).schema_id == 500
    assert again.update_global_mode("READWRITE") == "READWRITE"
    assert again.delete_mode("kept-value") == "READONLY"
    error = _sr_error(lambda: again.get_mode("kept-value"))
    assert (error.http_status_code, error.error_code) == (404, 40409)
    # New ids continue after the imported one.
    d_default = {"name": "d", "type": "string", "default": ""}
    assert again.register_schema("kept-value", _record(A, d_default)) == 501


def test_a_poison_record_is_skipped_with_one_short_error_line(
    start_registry: Callable[..., RegistryProcess],
    kafka: KafkaSettings,
) -> None:
    first = start_registry()
    SchemaRegistryClient({"url": first.url}).register_schema("before-value", _record(A))
    stop = first.process
    stop.send_signal(signal.SIGTERM)
    stop.wait(timeout=20)

    producer = make_producer(kafka, client_id="test-registry-poison")
    # A 20 kB key that is JSON but not an object (its reason quotes it), and one nested too
    # deep for the JSON parser.
    producer.produce(first.topic, key=b"[" + b"1," * 10_000 + b"1]", value=b"{}")
    producer.produce(first.topic, key=b"[" * 50_000, value=None)
    assert producer.flush(30) == 0

    second = start_registry(topic=first.topic)
    client = SchemaRegistryClient({"url": second.url})
    assert client.get_subjects() == ["before-value"]
    assert client.register_schema("after-value", _record(A, C_DEFAULT)) == 2
    ready = httpx.get(f"{second.url}/health/ready").json()
    assert ready["records"]["poison"] == 2
    assert ready["dependencies"] == {"kafka": {"up": True}}
    # At most one ERROR line per record (routeiq.service's RepeatFilter may fold the second
    # into a later line), each cut short: the 20 kB key is not dumped.
    errors = [line for line in second.log().splitlines() if "skipping unreadable record" in line]
    assert 1 <= len(errors) <= 2
    assert "offset 2" in errors[0]
    assert all(len(line) < 1000 for line in errors)
