"""Confluent's ``_schemas`` record format: JSON keys and values, one record per fact.

Keys (fields always in this order, so the same logical key is always the same bytes and log
compaction keeps only its latest value)::

    {"keytype":"SCHEMA","subject":s,"version":v,"magic":1}  -> {"subject","version","id","schema","deleted"}
    {"keytype":"CONFIG","subject":s|null,"magic":0}         -> {"compatibilityLevel": L}
    {"keytype":"DELETE_SUBJECT","subject":s,"magic":0}      -> {"subject": s, "version": latest}
    {"keytype":"MODE","subject":s|null,"magic":0}           -> {"mode": M}
    {"keytype":"NOOP","magic":0}                            -> null

A null value is a tombstone: a permanently deleted version, or a removed level or mode.
Records this registry does not understand (Confluent's contexts, keys it does not use) and
malformed ones are decoded as ``Unknown`` with the reason and skipped by the state machine.
"""  # noqa: E501

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from routeiq.contracts.compatibility import CompatibilityLevel

from routeiq_schema_registry.core.modes import Mode


@dataclass(frozen=True)
class LogRecord:
    """One record of the log as stored: its offset and raw key and value bytes."""

    offset: int
    key: bytes
    value: bytes | None


@dataclass(frozen=True)
class SchemaRecord:
    """A version of a subject (``value`` None: the version was permanently deleted)."""

    subject: str
    version: int
    value: SchemaValue | None


@dataclass(frozen=True)
class SchemaValue:
    schema_id: int
    schema: str
    deleted: bool
    schema_type: str = "AVRO"


@dataclass(frozen=True)
class ConfigRecord:
    """A compatibility level (subject None: the global one; level None: removed)."""

    subject: str | None
    level: CompatibilityLevel | None


@dataclass(frozen=True)
class ModeRecord:
    """A mode (subject None: the global one; mode None: removed)."""

    subject: str | None
    mode: Mode | None


@dataclass(frozen=True)
class DeleteSubjectRecord:
    """Every version up to ``version`` of ``subject`` is soft-deleted."""

    subject: str
    version: int | None


@dataclass(frozen=True)
class NoopRecord:
    """A marker written at start to learn the end of the log."""


@dataclass(frozen=True)
class Unknown:
    """A record this registry ignores, with the reason; ``malformed`` False: a well-formed
    record of a kind this registry does not use (another registry's key type)."""

    reason: str
    malformed: bool = True


Record = SchemaRecord | ConfigRecord | ModeRecord | DeleteSubjectRecord | NoopRecord | Unknown


def _dump(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def schema_key(subject: str, version: int) -> bytes:
    return _dump({"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1})


def schema_value(subject: str, version: int, schema_id: int, schema: str, deleted: bool) -> bytes:
    return _dump(
        {
            "subject": subject,
            "version": version,
            "id": schema_id,
            "schema": schema,
            "deleted": deleted,
        }
    )


def config_key(subject: str | None) -> bytes:
    return _dump({"keytype": "CONFIG", "subject": subject, "magic": 0})


def config_value(level: CompatibilityLevel) -> bytes:
    return _dump({"compatibilityLevel": level.value})


def mode_key(subject: str | None) -> bytes:
    return _dump({"keytype": "MODE", "subject": subject, "magic": 0})


def mode_value(mode: Mode) -> bytes:
    return _dump({"mode": mode.value})


def delete_subject_key(subject: str) -> bytes:
    return _dump({"keytype": "DELETE_SUBJECT", "subject": subject, "magic": 0})


def delete_subject_value(subject: str, version: int) -> bytes:
    return _dump({"subject": subject, "version": version})


NOOP_KEY = _dump({"keytype": "NOOP", "magic": 0})


def decode(key: bytes | None, value: bytes | None) -> Record:
    """Decode one record; anything malformed or foreign becomes ``Unknown`` with the reason."""
    try:
        key_doc = json.loads(key) if key else None
        value_doc = json.loads(value) if value is not None else None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: JSON nested deeper than the parser's stack (a hostile record).
        return Unknown(f"not JSON: {type(exc).__name__}: {exc}")
    if not isinstance(key_doc, dict):
        return Unknown(f"key is not a JSON object: {key!r}")
    if value_doc is not None and not isinstance(value_doc, dict):
        return Unknown(f"value is not a JSON object: {value!r}")
    keytype = key_doc.get("keytype")
    subject = key_doc.get("subject")
    if keytype == "NOOP":
        return NoopRecord()
    if keytype == "CONFIG":
        return _setting(
            "CONFIG", subject, value_doc, "compatibilityLevel", CompatibilityLevel, ConfigRecord
        )
    if keytype == "MODE":
        return _setting("MODE", subject, value_doc, "mode", Mode, ModeRecord)
    if not isinstance(subject, str):
        return Unknown(f"{keytype} key without a subject: {key!r}")
    if keytype == "SCHEMA":
        return _schema(subject, key_doc.get("version"), value_doc)
    if keytype == "DELETE_SUBJECT":
        version = (value_doc or {}).get("version")
        return DeleteSubjectRecord(subject, version if _is_int(version) else None)
    return Unknown(f"keytype {keytype!r} is not used by this registry", malformed=False)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _schema(subject: str, version: object, doc: dict[str, Any] | None) -> Record:
    if not _is_int(version):
        return Unknown(f"SCHEMA key of {subject!r} without an integer version")
    assert isinstance(version, int)
    if doc is None:
        return SchemaRecord(subject, version, None)
    schema_id, schema, deleted = doc.get("id"), doc.get("schema"), doc.get("deleted", False)
    if not _is_int(schema_id) or not isinstance(schema, str) or not isinstance(deleted, bool):
        return Unknown(f"SCHEMA value of {subject!r} v{version} lacks id, schema or deleted")
    assert isinstance(schema_id, int)
    schema_type = doc.get("schemaType") or "AVRO"
    return SchemaRecord(
        subject, version, SchemaValue(schema_id, schema, deleted, str(schema_type).upper())
    )


def _setting(
    keytype: str,
    subject: object,
    doc: dict[str, Any] | None,
    name: str,
    kind: type[StrEnum],
    make: Callable[[str | None, Any], Record],
) -> Record:
    """A CONFIG or MODE record: a subject's (None: the global) setting, or its removal."""
    if subject is not None and not isinstance(subject, str):
        return Unknown(f"{keytype} key with a non-string subject: {subject!r}")
    if doc is None:
        return make(subject, None)
    value = doc.get(name)
    try:
        return make(subject, kind(str(value).upper()))
    except ValueError:
        return Unknown(f"{keytype} value with a {name} this registry does not know: {value!r}")
