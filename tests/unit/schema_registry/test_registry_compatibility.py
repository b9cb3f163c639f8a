"""Registration under each of the seven levels, and the compatibility-test operation.

Two histories where the latest version accepts a candidate that an older one refuses, so the
transitive and non-transitive variants of a level give different answers.
"""

from __future__ import annotations

import pytest
from routeiq.contracts.compatibility import CompatibilityLevel
from routeiq.errors import IncompatibleSchemaError
from routeiq_schema_registry.core import SchemaRegistry
from routeiq_schema_registry.errors import SubjectNotFoundError, VersionNotFoundError
from unit.schema_registry.helpers import field, record, req

L = CompatibilityLevel

# History A: v2 adds c with a default; the candidate drops the default. Readers of the candidate
# can read v2 data (c is there) but not v1 data (no c, no default): BACKWARD yes, *_TRANSITIVE no.
HISTORY_A = [record("R", field("a")), record("R", field("a"), field("c", default=0))]
CANDIDATE_A = record("R", field("a"), field("c"))
# History B: v2 gives b a default; the candidate drops b. v2 readers fill b from the default,
# v1 readers cannot: FORWARD yes, FORWARD_TRANSITIVE no.
HISTORY_B = [record("R", field("a"), field("b")), record("R", field("a"), field("b", default=0))]
CANDIDATE_B = record("R", field("a"))
# A type change breaks every level but NONE.
HISTORY_C = [record("R", field("a"))]
CANDIDATE_C = record("R", field("a", "string"))

ACCEPTS = {
    # level: (A, B, C)
    L.NONE: (True, True, True),
    L.BACKWARD: (True, True, False),
    L.BACKWARD_TRANSITIVE: (False, True, False),
    L.FORWARD: (True, True, False),
    L.FORWARD_TRANSITIVE: (True, False, False),
    L.FULL: (True, True, False),
    L.FULL_TRANSITIVE: (False, False, False),
}
CASES = [(HISTORY_A, CANDIDATE_A), (HISTORY_B, CANDIDATE_B), (HISTORY_C, CANDIDATE_C)]


@pytest.mark.parametrize("level", list(CompatibilityLevel))
@pytest.mark.parametrize("case", [0, 1, 2], ids=["A", "B", "C"])
def test_register_enforces_the_subject_level(
    registry: SchemaRegistry, level: CompatibilityLevel, case: int
) -> None:
    history, candidate = CASES[case]
    registry.set_compatibility("s", level.value)
    for text in history:
        registry.register("s", req(text))
    expected = ACCEPTS[level][case]
    # No version: the check a registration makes (every version a transitive level asks for).
    verdict = registry.test_compatibility("s", req(candidate), None)
    assert (not verdict) is expected
    if expected:
        assert registry.register("s", req(candidate)).version == len(history) + 1
    else:
        with pytest.raises(IncompatibleSchemaError) as caught:
            registry.register("s", req(candidate))
        assert caught.value.reasons == verdict
        assert f"under {level.value}" in str(caught.value)
        assert registry.versions("s") == list(range(1, len(history) + 1))


def test_the_global_level_applies_without_a_subject_level(registry: SchemaRegistry) -> None:
    registry.set_compatibility(None, "BACKWARD_TRANSITIVE")
    for text in HISTORY_A:
        registry.register("s", req(text))
    with pytest.raises(IncompatibleSchemaError):
        registry.register("s", req(CANDIDATE_A))
    registry.set_compatibility("s", "BACKWARD")
    assert registry.register("s", req(CANDIDATE_A)).version == 3


def test_soft_deleted_versions_are_not_checked(registry: SchemaRegistry) -> None:
    registry.set_compatibility("s", "BACKWARD_TRANSITIVE")
    for text in HISTORY_A:
        registry.register("s", req(text))
    registry.delete_version("s", 1)
    assert registry.register("s", req(CANDIDATE_A)).version == 3


def test_checking_against_a_given_version(registry: SchemaRegistry) -> None:
    registry.set_compatibility("s", "BACKWARD")
    for text in HISTORY_A:
        registry.register("s", req(text))
    assert registry.test_compatibility("s", req(CANDIDATE_A), "2") == []
    (reason,) = registry.test_compatibility("s", req(CANDIDATE_A), 1)
    assert "version 1" in reason
    assert "c" in reason
    registry.set_compatibility("s", "BACKWARD_TRANSITIVE")
    # As Confluent documents it: a named version (or "latest") is checked alone, even under a
    # transitive level; without a version, every version the level asks for is checked.
    assert registry.test_compatibility("s", req(CANDIDATE_A), 2) == []
    assert registry.test_compatibility("s", req(CANDIDATE_A), "latest") == []
    (reason,) = registry.test_compatibility("s", req(CANDIDATE_A), None)
    assert "version 1" in reason
    (reason,) = registry.test_compatibility("s", req(CANDIDATE_A), 1)
    assert "version 1" in reason
    with pytest.raises(IncompatibleSchemaError):
        registry.register("s", req(CANDIDATE_A))
    with pytest.raises(VersionNotFoundError):
        registry.test_compatibility("s", req(CANDIDATE_A), 5)


@pytest.mark.parametrize("level", list(CompatibilityLevel))
def test_a_named_version_is_checked_in_the_levels_direction(
    registry: SchemaRegistry, level: CompatibilityLevel
) -> None:
    registry.set_compatibility("s", level.value)
    for text in HISTORY_B:
        registry.register("s", req(text))
    # Against v1 alone: the candidate drops b, which v1 readers need (no default there).
    refused_by_v1 = bool(registry.test_compatibility("s", req(CANDIDATE_B), 1))
    assert refused_by_v1 is (level.checks_forward and level is not L.NONE)
    assert registry.test_compatibility("s", req(CANDIDATE_B), 2) == []


def test_a_subject_without_versions_accepts_anything(registry: SchemaRegistry) -> None:
    assert registry.test_compatibility("new", req(CANDIDATE_C), "latest") == []
    assert registry.test_compatibility("new", req(CANDIDATE_C), None) == []
    with pytest.raises(VersionNotFoundError):
        registry.test_compatibility("new", req(CANDIDATE_C), 1)
    with pytest.raises(SubjectNotFoundError):
        registry.lookup("new", req(CANDIDATE_C))
