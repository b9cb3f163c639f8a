"""Invariants of the log-backed state, over any sequence of operations (Hypothesis).

* Replaying the log rebuilds exactly the state the live registry holds (levels and modes too).
* So does the log Kafka's compaction leaves (latest record per key, with or without the
  tombstones), except that the largest id ever given is forgotten when the version holding it
  was permanently deleted (Confluent's registry has the same limit).
* One schema text has one id, one id one text; an id never changes while a version holds it,
  and a new id is always larger than every id given before.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from routeiq.contracts.compatibility import CompatibilityLevel
from routeiq.errors import RouteIQError
from routeiq_schema_registry.core import InMemorySchemaLog, SchemaRegistry
from unit.schema_registry.helpers import field, record, req

SUBJECTS = ["a", "b", "c"]
SCHEMAS = [
    record("R", field("x")),
    record("R", field("x"), field("y", "string", default="")),
    record("R", field("x"), field("y", "string")),
    record("R", field("x", "long")),
    record("R", field("z", "string", default="-")),
    '{"type": "record", "name": "R", "fields": [{"name": "x", "type": "int"}], "p": 1, "q": 2}',
    '{"type": "record", "name": "R", "fields": [{"name": "x", "type": "int"}], "q": 2, "p": 1}',
]
VERSIONS = st.one_of(st.integers(1, 4).map(str), st.just("latest"))

_register = st.tuples(
    st.just("register"), st.sampled_from(SUBJECTS), st.sampled_from(SCHEMAS), st.booleans()
)
operations = st.lists(
    st.one_of(
        # Registrations are drawn more often than the rest, so histories get long enough for
        # deletes and levels to matter.
        _register,
        _register,
        st.tuples(st.just("delete_version"), st.sampled_from(SUBJECTS), VERSIONS, st.booleans()),
        st.tuples(st.just("delete_subject"), st.sampled_from(SUBJECTS), st.booleans()),
        st.tuples(
            st.just("set_level"),
            st.sampled_from([None, *SUBJECTS]),
            st.sampled_from([level.value for level in CompatibilityLevel]),
        ),
        st.tuples(st.just("delete_level"), st.sampled_from([None, *SUBJECTS])),
        st.tuples(
            st.just("set_mode"),
            st.sampled_from([None, *SUBJECTS]),
            st.sampled_from(["READWRITE", "READONLY", "IMPORT"]),
        ),
        st.tuples(st.just("delete_mode"), st.sampled_from([None, *SUBJECTS])),
    ),
    max_size=25,
)


def _run(registry: SchemaRegistry, ops: list[tuple[Any, ...]]) -> list[int]:
    """Apply ``ops``, ignoring refusals (they are part of the behaviour); return new ids."""
    new_ids: list[int] = []
    for op, *args in ops:
        try:
            if op == "register":
                subject, text, normalize = args
                known = registry.snapshot()["max_id"]
                sv = registry.register(subject, req(text), normalize=normalize)
                if sv.schema_id > known:
                    new_ids.append(sv.schema_id)
            elif op == "delete_version":
                registry.delete_version(args[0], args[1], permanent=args[2])
            elif op == "delete_subject":
                registry.delete_subject(args[0], permanent=args[1])
            elif op == "set_level":
                registry.set_compatibility(args[0], args[1])
            elif op == "set_mode":
                registry.set_mode(args[0], args[1])
            elif op == "delete_mode":
                registry.delete_mode(args[0])
            else:
                registry.delete_compatibility(args[0])
        except RouteIQError:
            pass
    return new_ids


def _replay(log: InMemorySchemaLog) -> SchemaRegistry:
    registry = SchemaRegistry(log=log)
    registry.start(timeout_s=5)
    return registry


def _ids_by_text(snapshot: dict[str, Any]) -> dict[str, set[int]]:
    ids: dict[str, set[int]] = {}
    for versions in snapshot["versions"].values():
        for schema_id, text, _deleted in versions.values():
            ids.setdefault(text, set()).add(schema_id)
    return ids


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations)
def test_replay_and_compaction_rebuild_the_same_state(ops: list[tuple[Any, ...]]) -> None:
    log = InMemorySchemaLog()
    live = _replay(log)
    _run(live, ops)
    state = live.snapshot()

    assert _replay(log).snapshot() == state
    held = {i for ids in _ids_by_text(state).values() for i in ids}
    for compacted in (log.compacted(), log.compacted(drop_tombstones=True)):
        rebuilt = _replay(compacted).snapshot()
        assert {**rebuilt, "max_id": 0} == {**state, "max_id": 0}
        # Only a permanently deleted newest schema can take the largest id with it.
        assert rebuilt["max_id"] <= state["max_id"]
        if state["max_id"] in held:
            assert rebuilt["max_id"] == state["max_id"]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations)
def test_ids_are_one_to_one_with_texts_and_only_grow(ops: list[tuple[Any, ...]]) -> None:
    registry = _replay(InMemorySchemaLog())
    new_ids = _run(registry, ops)
    assert new_ids == sorted(set(new_ids))  # strictly increasing: never reused
    by_text = _ids_by_text(registry.snapshot())
    assert all(len(ids) == 1 for ids in by_text.values())
    all_ids = [i for ids in by_text.values() for i in ids]
    assert len(all_ids) == len(set(all_ids))
    for text, (schema_id,) in by_text.items():
        assert registry.schema_by_id(schema_id) == text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations, more=operations)
def test_a_replayed_registry_continues_exactly_like_the_original(
    ops: list[tuple[Any, ...]], more: list[tuple[Any, ...]]
) -> None:
    log = InMemorySchemaLog()
    original = _replay(log)
    _run(original, ops)
    # Two registries that replayed the same log take the same decisions afterwards.
    twin_log = InMemorySchemaLog((r.key, r.value) for r in log.records())
    twin = _replay(twin_log)
    _run(original, more)
    _run(twin, more)
    assert twin.snapshot() == original.snapshot()
