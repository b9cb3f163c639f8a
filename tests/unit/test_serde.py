"""Avro serde in Confluent wire format: exact round trips, evolution, and clear refusals."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from routeiq.contracts import CONTRACTS
from routeiq.contracts.catalog import ROUTER_DECISION
from routeiq.contracts.serde import AvroSerde, LocalResolver
from routeiq.errors import SerializationError
from support.avro_strategies import records


def _serde(contract, resolver=None) -> AvroSerde:
    return AvroSerde.for_contract(
        contract, subject=f"{contract.stem}-value", resolver=resolver or LocalResolver()
    )


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.stem)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_contract_round_trips_exactly(contract, data) -> None:
    record = data.draw(records(json.loads(contract.working_text())))
    serde = _serde(contract)
    wire = serde.encode(record)
    magic, schema_id = struct.unpack(">bI", wire[:5])
    assert (magic, schema_id) == (0, serde.schema_id)
    assert serde.decode(wire) == record


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_events_written_with_v1_are_read_with_v2_defaults(data) -> None:
    resolver = LocalResolver()
    v1_text = ROUTER_DECISION.released()[0][1]
    old = data.draw(records(json.loads(v1_text)))
    writer = AvroSerde(subject="rd-value", schema_text=v1_text, resolver=resolver)
    reader = _serde(ROUTER_DECISION, resolver)
    decoded = reader.decode(writer.encode(old))
    assert decoded["router_version"] is None
    assert decoded["exploration"] is False
    assert decoded["query_embedding"] is None
    assert all(c["propensity"] is None for c in decoded["candidate_deployments"])
    assert {k: decoded[k] for k in old if k not in {"candidate_deployments", "outcome"}} == {
        k: v for k, v in old.items() if k not in {"candidate_deployments", "outcome"}
    }


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_events_written_with_v2_are_read_by_v1_consumers(data) -> None:
    resolver = LocalResolver()
    v1_text = ROUTER_DECISION.released()[0][1]
    new = data.draw(records(json.loads(ROUTER_DECISION.working_text())))
    old_reader = AvroSerde(subject="rd-value", schema_text=v1_text, resolver=resolver)
    decoded = old_reader.decode(_serde(ROUTER_DECISION, resolver).encode(new))
    assert "router_version" not in decoded
    assert decoded["event_id"] == new["event_id"]
    assert decoded["outcome"]["status"] == new["outcome"]["status"]


def _feedback() -> dict:
    return {
        "feedback_id": "f",
        "decision_id": "d",
        "score": 1.0,
        "source": "user",
        "created_at": 1_700_000_000_000,
    }


def test_unknown_field_is_refused_so_no_text_can_sneak_in() -> None:
    from routeiq.contracts.catalog import FEEDBACK

    with pytest.raises(SerializationError, match="more fields than the schema"):
        _serde(FEEDBACK).encode({**_feedback(), "prompt": "secret"})


def test_missing_required_field_is_refused() -> None:
    from routeiq.contracts.catalog import FEEDBACK

    record = _feedback()
    del record["decision_id"]
    with pytest.raises(SerializationError, match="decision_id"):
        _serde(FEEDBACK).encode(record)


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (None, "too short"),
        (b"\x00\x00", "too short"),
        (b"\x01\x00\x00\x00\x01\x02", "magic byte"),
        (b"\x00\x00\x00\x03\xe7\x02", "unknown schema id"),
        (b"\x00\x00\x00\x00\x01\x02", "cannot decode"),
    ],
)
def test_bad_bytes_are_serialization_errors_with_a_reason(wire, reason) -> None:
    from routeiq.contracts.catalog import FEEDBACK

    serde = _serde(FEEDBACK)
    assert serde.schema_id == 1
    with pytest.raises(SerializationError, match=reason):
        serde.decode(wire)


def test_a_real_id_of_another_contract_is_a_short_serialization_error() -> None:
    """A misconfigured producer writes a Feedback id onto the decisions topic: fastavro's
    SchemaResolutionError (whose message dumps both schemas) becomes one short reason."""
    from routeiq.contracts.catalog import FEEDBACK

    resolver = LocalResolver()
    wire = _serde(FEEDBACK, resolver).encode(_feedback())
    with pytest.raises(SerializationError, match="does not resolve") as caught:
        _serde(ROUTER_DECISION, resolver).decode(wire)
    assert len(str(caught.value)) < 300


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_bytes_and_no_registered_id_escape_as_anything_but_a_serialization_error(
    data,
) -> None:
    """The poison policy's premise: whatever a topic holds (arbitrary bytes, or the framing of
    any registered schema id with an arbitrary or another contract's body), decoding either
    yields a record or raises ``SerializationError`` — never an exception a consumer would
    die of."""
    resolver = LocalResolver()
    serdes = {c.stem: _serde(c, resolver) for c in CONTRACTS}
    ids = [s.schema_id for s in serdes.values()]
    reader = serdes[data.draw(st.sampled_from(sorted(serdes)), label="reader")]
    body = data.draw(
        st.one_of(
            st.binary(max_size=64),
            st.builds(
                lambda schema_id, rest: struct.pack(">bI", 0, schema_id) + rest,
                st.sampled_from([*ids, max(ids) + 1]),
                st.binary(max_size=64),
            ),
            st.sampled_from(CONTRACTS).flatmap(
                lambda c: records(json.loads(c.working_text())).map(serdes[c.stem].encode)
            ),
        ),
        label="wire",
    )
    reason = ""
    try:
        decoded = reader.decode(body)
    except SerializationError as exc:
        reason = str(exc)
        decoded = None
    assert isinstance(decoded, dict) or reason


def test_a_timestamp_past_year_9999_is_a_serialization_error() -> None:
    """fastavro raises OverflowError converting such a timestamp-millis (a producer may write
    the raw long): wrapped like every other decoding failure."""
    from routeiq.contracts.catalog import FEEDBACK

    serde = _serde(FEEDBACK)
    wire = serde.encode({**_feedback(), "created_at": 2**62})
    with pytest.raises(SerializationError, match="cannot decode"):
        serde.decode(wire)
