"""The registry's state machine: what the log says, applied one record at a time.

``RegistryState.apply`` is the only code that changes state, and it runs for records read back
from the log, never for requests. A live registry and one rebuilt by replaying its log apply
the same records in the same order, so they hold the same subjects, versions, ids and levels.

Every record type has "set" semantics (a key's latest value is the whole truth for that key),
so the log Kafka leaves after compaction rebuilds the same state. The one exception is
``max_id``: it is the largest id any record ever carried, and a record removed by compaction
(a permanently deleted version) no longer counts; Confluent's registry has the same property.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from routeiq.contracts.compatibility import CompatibilityLevel

from routeiq_schema_registry.core.modes import Mode
from routeiq_schema_registry.core.records import (
    ConfigRecord,
    DeleteSubjectRecord,
    LogRecord,
    ModeRecord,
    NoopRecord,
    SchemaRecord,
    Unknown,
    decode,
)

logger = logging.getLogger(__name__)

# A skipped record is logged in one line with at most this much of its reason: a poison record
# can be megabytes, and the log must stay readable.
REASON_CHARS = 500


def _cut(text: str) -> str:
    return text if len(text) <= REASON_CHARS else f"{text[:REASON_CHARS]}... ({len(text)} chars)"


@dataclass(frozen=True)
class SchemaVersion:
    """One version of one subject."""

    subject: str
    version: int
    schema_id: int
    schema: str
    deleted: bool = False


class RegistryState:
    """Subjects, versions, schema ids and compatibility levels, rebuilt from records.

    Not thread-safe by itself: ``SchemaRegistry`` guards it with a lock.
    """

    def __init__(self) -> None:
        self._versions: dict[str, dict[int, SchemaVersion]] = {}
        self._levels: dict[str | None, CompatibilityLevel] = {}
        self._modes: dict[str | None, Mode] = {}
        # Indexes over _versions: which versions carry an id, the text of an id, ids of a text.
        self._holders: dict[int, set[tuple[str, int]]] = {}
        self._text_of_id: dict[int, str] = {}
        self._ids_of_text: dict[str, set[int]] = {}
        self.max_id = 0
        self.next_offset = 0
        # Records passed over: ``poison`` could not be read (malformed, or failed to apply),
        # ``skipped`` are well-formed but foreign (another key type, a non-AVRO schema).
        self.poison = 0
        self.skipped = 0

    # ------------------------------------------------------------------ applying records

    def apply(self, record: LogRecord) -> None:
        """Apply one record read from the log (at ``record.offset``).

        Never raises: a record that cannot be read or applied is skipped with one ERROR line
        and counted in ``poison``, and the replay goes on (the log is the registry's only
        store; stopping on one bad record would stop the whole registry, for good).
        """
        try:
            self._apply(decode(record.key, record.value), record.offset)
        except Exception as exc:  # noqa: BLE001 (the poison policy: skip, count, keep going)
            self._poison(record.offset, f"cannot apply: {type(exc).__name__}: {exc}")
        self.next_offset = max(self.next_offset, record.offset + 1)

    def _apply(self, decoded: object, offset: int) -> None:
        if isinstance(decoded, SchemaRecord):
            self._apply_schema(decoded)
        elif isinstance(decoded, ConfigRecord):
            self._set(self._levels, decoded.subject, decoded.level)
        elif isinstance(decoded, ModeRecord):
            self._set(self._modes, decoded.subject, decoded.mode)
        elif isinstance(decoded, DeleteSubjectRecord):
            for version, sv in list(self._versions.get(decoded.subject, {}).items()):
                if decoded.version is None or version <= decoded.version:
                    self._versions[decoded.subject][version] = replace(sv, deleted=True)
        elif isinstance(decoded, Unknown):
            if decoded.malformed:
                self._poison(offset, decoded.reason)
            else:
                self.skipped += 1
                logger.warning("skipping record at offset %d: %s", offset, _cut(decoded.reason))
        else:
            assert isinstance(decoded, NoopRecord)

    @staticmethod
    def _set(table: dict[str | None, Any], subject: str | None, value: object) -> None:
        if value is None:
            table.pop(subject, None)
        else:
            table[subject] = value

    def _poison(self, offset: int, reason: str) -> None:
        self.poison += 1
        logger.error("skipping unreadable record at offset %d: %s", offset, _cut(reason))

    def advance_to(self, offset: int) -> None:
        """The log has nothing (left) before ``offset``: a gap made by compaction."""
        self.next_offset = max(self.next_offset, offset)

    def _apply_schema(self, record: SchemaRecord) -> None:
        subject, version, value = record.subject, record.version, record.value
        old = self._versions.get(subject, {}).pop(version, None)
        if old is not None:
            self._unindex(old)
        if value is not None:
            # Ids are global across schema types, so a foreign type still reserves its id.
            self.max_id = max(self.max_id, value.schema_id)
            if value.schema_type != "AVRO":
                self.skipped += 1
                logger.warning(
                    "ignoring %s schema %s v%d (this registry serves AVRO only)",
                    value.schema_type,
                    subject,
                    version,
                )
            else:
                sv = SchemaVersion(subject, version, value.schema_id, value.schema, value.deleted)
                self._versions.setdefault(subject, {})[version] = sv
                self._index(sv)
        if subject in self._versions and not self._versions[subject]:
            del self._versions[subject]

    def _index(self, sv: SchemaVersion) -> None:
        self._holders.setdefault(sv.schema_id, set()).add((sv.subject, sv.version))
        previous = self._text_of_id.get(sv.schema_id)
        if previous is not None and previous != sv.schema:
            logger.warning("schema id %d carries two different texts in the log", sv.schema_id)
            self._ids_of_text.get(previous, set()).discard(sv.schema_id)
        self._text_of_id[sv.schema_id] = sv.schema
        self._ids_of_text.setdefault(sv.schema, set()).add(sv.schema_id)

    def _unindex(self, sv: SchemaVersion) -> None:
        holders = self._holders.get(sv.schema_id, set())
        holders.discard((sv.subject, sv.version))
        if holders:
            return
        self._holders.pop(sv.schema_id, None)
        text = self._text_of_id.pop(sv.schema_id, None)
        if text is not None:
            ids = self._ids_of_text.get(text, set())
            ids.discard(sv.schema_id)
            if not ids:
                self._ids_of_text.pop(text, None)

    # ------------------------------------------------------------------ queries

    def subjects(self) -> list[str]:
        """Every subject with at least one version, soft-deleted ones included."""
        return sorted(self._versions)

    def versions(self, subject: str) -> dict[int, SchemaVersion]:
        """All versions of ``subject`` (soft-deleted included), by version number (a copy)."""
        return dict(self._versions.get(subject, {}))

    def level(self, subject: str | None) -> CompatibilityLevel | None:
        """The level set for ``subject`` (None: the global one), or None if none is set."""
        return self._levels.get(subject)

    def mode(self, subject: str | None) -> Mode | None:
        """The mode set for ``subject`` (None: the global one), or None if none is set."""
        return self._modes.get(subject)

    def schema_text(self, schema_id: int) -> str | None:
        return self._text_of_id.get(schema_id)

    def id_of_text(self, text: str) -> int | None:
        """The id already given to exactly this schema text anywhere, if any (the smallest)."""
        ids = self._ids_of_text.get(text)
        return min(ids) if ids else None

    def holders(self, schema_id: int) -> list[SchemaVersion]:
        """Every version that carries ``schema_id``, by subject then version."""
        return sorted(
            (self._versions[s][v] for s, v in self._holders.get(schema_id, set())),
            key=lambda sv: (sv.subject, sv.version),
        )

    def snapshot(self) -> dict[str, Any]:
        """Everything the registry serves, as plain data (for comparisons and debugging)."""
        return {
            "versions": {
                s: {v: (sv.schema_id, sv.schema, sv.deleted) for v, sv in sorted(vs.items())}
                for s, vs in sorted(self._versions.items())
            },
            "levels": {
                str(k): v.value for k, v in sorted(self._levels.items(), key=lambda kv: str(kv[0]))
            },
            "modes": {
                str(k): v.value for k, v in sorted(self._modes.items(), key=lambda kv: str(kv[0]))
            },
            "max_id": self.max_id,
        }
