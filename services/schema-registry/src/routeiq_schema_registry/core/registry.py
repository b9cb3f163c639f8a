"""The schema registry's operations (Confluent semantics), over a ``SchemaLog``. No HTTP here.

Every operation reads the state of a ``LogReplica``; a write decides under the replica's writer
lock and appends records, which change the state only once read back from the log. Levels and
modes are in ``core.subject_settings``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from routeiq.contracts.compatibility import CompatibilityLevel, check_compatibility
from routeiq.dependencies import Dependency
from routeiq.errors import IncompatibleSchemaError

from routeiq_schema_registry.core import records as rec
from routeiq_schema_registry.core.log import SchemaLog
from routeiq_schema_registry.core.modes import Mode
from routeiq_schema_registry.core.replica import LogReplica, Records
from routeiq_schema_registry.core.requests import LATEST, SchemaRequest, parse_version
from routeiq_schema_registry.core.schema_text import parsed, same_schema, stored_text
from routeiq_schema_registry.core.state import SchemaVersion
from routeiq_schema_registry.core.subject_settings import SubjectSettings
from routeiq_schema_registry.errors import (
    SchemaNotFoundError,
    SubjectNotFoundError,
    SubjectNotSoftDeletedError,
    SubjectSoftDeletedError,
    VersionNotFoundError,
    VersionNotSoftDeletedError,
    VersionSoftDeletedError,
)

_logger = logging.getLogger(__name__)


class SchemaRegistry(SubjectSettings):
    """Subjects, versions, ids, compatibility levels and modes, kept in a ``SchemaLog``."""

    def __init__(
        self,
        *,
        log: SchemaLog,
        default_compatibility: CompatibilityLevel = CompatibilityLevel.BACKWARD,
        write_timeout_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        log_health: Dependency | None = None,
    ) -> None:
        self._replica = LogReplica(
            log=log,
            write_timeout_s=write_timeout_s,
            clock=clock,
            sleep=sleep,
            log_health=log_health or Dependency(name="log", log=_logger, clock=clock),
        )
        self._state = self._replica.state
        self._state_lock = self._replica.lock
        self._default_level = default_compatibility

    # ------------------------------------------------------------------ lifecycle

    def start(self, *, timeout_s: float = 60.0, retry_interval_s: float = 1.0) -> None:
        """Prepare the log and replay it to its end; then the registry is ready."""
        self._replica.start(timeout_s=timeout_s, retry_interval_s=retry_interval_s)

    @property
    def ready(self) -> bool:
        """True once the log has been replayed to its end."""
        return self._replica.ready

    def progress(self) -> dict[str, Any]:
        """How far the replay is, whether the log answers, how many records were skipped."""
        return self._replica.progress()

    def watch(self, *, interval_s: float = 5.0) -> None:
        """Probe the log until ``close`` (see ``LogReplica.watch``); blocks: run it in a thread."""
        self._replica.watch(interval_s=interval_s)

    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain data (tests compare a live and a replayed registry)."""
        return self._replica.snapshot()

    def close(self, *, timeout_s: float = 5.0) -> None:
        """Close the log once no write or replay uses it (see ``LogReplica.close``)."""
        self._replica.close(timeout_s=timeout_s)

    # ------------------------------------------------------------------ subjects and versions

    def subjects(self, *, deleted: bool = False, deleted_only: bool = False) -> list[str]:
        """Subjects with a live version; ``deleted`` adds soft-deleted ones, ``deleted_only``
        lists only those."""
        self._require_ready()
        with self._state_lock:
            out = []
            for subject in self._state.subjects():
                live = any(not sv.deleted for sv in self._state.versions(subject).values())
                if (deleted_only and not live) or (not deleted_only and (live or deleted)):
                    out.append(subject)
            return out

    def versions(
        self, subject: str, *, deleted: bool = False, deleted_only: bool = False
    ) -> list[int]:
        """Version numbers of ``subject`` (40401 when there is none to show)."""
        self._require_ready()
        with self._state_lock:
            all_versions = self._state.versions(subject)
        if deleted_only:
            shown = [v for v, sv in all_versions.items() if sv.deleted]
        else:
            shown = [v for v, sv in all_versions.items() if deleted or not sv.deleted]
        if not shown and not (deleted_only and all_versions):
            raise SubjectNotFoundError(f"Subject '{subject}' not found.")
        return sorted(shown)

    def version(self, subject: str, version: str | int, *, deleted: bool = False) -> SchemaVersion:
        """One version (``latest`` / ``-1``: the newest visible one)."""
        self._require_ready()
        number = parse_version(version)
        with self._state_lock:
            visible = self._visible(subject, deleted=deleted)
        if number is None:
            return visible[max(visible)]
        if number not in visible:
            raise VersionNotFoundError(f"Version {number} not found.")
        return visible[number]

    def _visible(self, subject: str, *, deleted: bool) -> dict[int, SchemaVersion]:
        versions = {
            v: sv for v, sv in self._state.versions(subject).items() if deleted or not sv.deleted
        }
        if not versions:
            raise SubjectNotFoundError(f"Subject '{subject}' not found.")
        return versions

    def referenced_by(self, subject: str, version: str | int) -> list[int]:
        """Ids of schemas referencing this version: none, as references are not supported."""
        self.version(subject, version)
        return []

    def lookup(
        self,
        subject: str,
        request: SchemaRequest,
        *,
        normalize: bool = False,
        deleted: bool = False,
    ) -> SchemaVersion:
        """The version of ``subject`` holding this schema (40401 / 40403 when there is none)."""
        self._require_ready()
        # As Confluent: a lookup finds stored schemas, so their defaults are not judged again.
        schema = request.parse(new=False)
        text = stored_text(schema, normalize=normalize)
        with self._state_lock:
            candidates = self._visible(subject, deleted=deleted)
        matches = [
            sv for sv in candidates.values() if same_schema(text, sv.schema, normalize=normalize)
        ]
        if not matches:
            raise SchemaNotFoundError("Schema not found")
        return max(matches, key=lambda sv: (not sv.deleted, sv.version))

    def register(
        self, subject: str, request: SchemaRequest, *, normalize: bool = False
    ) -> SchemaVersion:
        """Register a schema under ``subject``; return the version that holds it.

        A schema already live in the subject returns that version (no new one). Otherwise the
        subject's level is checked against its live versions, the id of an identical schema
        anywhere is reused (else the largest id + 1) and the next version number is taken.
        In IMPORT mode the request's id (and version) are kept instead (``_import_slot``).
        """
        self._require_ready()
        schema = request.parse()
        text = stored_text(schema, normalize=normalize)

        def decide(deadline: float) -> SchemaVersion:
            with self._state_lock:
                mode = self._registration_mode(subject, request)
                versions = self._state.versions(subject)
                if mode is Mode.IMPORT:
                    found, schema_id, version = self._import_slot(subject, request, text)
                    if found is not None:
                        return found
                else:
                    live = [versions[v] for v in sorted(versions) if not versions[v].deleted]
                    for sv in reversed(live):
                        if same_schema(text, sv.schema, normalize=normalize):
                            return sv
                    self._check_next_version(subject, request, versions)
                    level = self._level_of(subject)
                    problems = check_compatibility(
                        schema, [(sv.version, parsed(sv.schema)) for sv in live], level
                    )
                    if problems:
                        reasons = [p.explain() for p in problems]
                        raise IncompatibleSchemaError(
                            "Schema being registered is incompatible with an earlier schema for "
                            f'subject "{subject}" under {level.value}: ' + "; ".join(reasons),
                            reasons=reasons,
                        )
                    existing_id = self._state.id_of_text(text)
                    schema_id = existing_id if existing_id is not None else self._state.max_id + 1
                    version = max(versions, default=0) + 1
            self._write(
                [
                    (
                        rec.schema_key(subject, version),
                        rec.schema_value(subject, version, schema_id, text, False),
                    )
                ],
                deadline,
            )
            with self._state_lock:
                return self._state.versions(subject)[version]

        return self._writing(decide)

    def delete_subject(self, subject: str, *, permanent: bool = False) -> list[int]:
        """Soft-delete every live version (and the subject's level), or with ``permanent``
        remove every version of a subject soft-deleted before; return the versions."""

        def decide(deadline: float) -> list[int]:
            with self._state_lock:
                self._check_writable(subject)
                versions = self._state.versions(subject)
                level = self._state.level(subject)
            if not versions:
                raise SubjectNotFoundError(f"Subject '{subject}' not found.")
            live = sorted(v for v, sv in versions.items() if not sv.deleted)
            if permanent:
                if live:
                    raise SubjectNotSoftDeletedError(
                        f"Subject '{subject}' was not deleted first before being permanently "
                        "deleted"
                    )
                self._write(
                    [(rec.schema_key(subject, v), None) for v in sorted(versions)], deadline
                )
                return sorted(versions)
            if not live:
                raise SubjectSoftDeletedError(
                    f"Subject '{subject}' was soft deleted.Set permanent=true to delete permanently"
                )
            records: Records = [
                (
                    rec.delete_subject_key(subject),
                    rec.delete_subject_value(subject, max(versions)),
                )
            ]
            for v in live:
                sv = versions[v]
                records.append(
                    (
                        rec.schema_key(subject, v),
                        rec.schema_value(subject, v, sv.schema_id, sv.schema, True),
                    )
                )
            if level is not None:
                # As Confluent does: a deleted subject's own level goes with it.
                records.append((rec.config_key(subject), None))
            self._write(records, deadline)
            return live

        return self._writing(decide)

    def delete_version(self, subject: str, version: str | int, *, permanent: bool = False) -> int:
        """Soft-delete one version, or remove a soft-deleted one with ``permanent``."""
        number = parse_version(version)

        def decide(deadline: float) -> int:
            with self._state_lock:
                self._check_writable(subject)
                versions = self._visible(subject, deleted=permanent)
            target = max(versions) if number is None else number
            sv = versions.get(target)
            if sv is None:
                with self._state_lock:
                    soft = self._state.versions(subject).get(target)
                if soft is not None:
                    raise VersionSoftDeletedError(
                        f"Subject '{subject}' Version {target} was soft deleted.Set "
                        "permanent=true to delete permanently"
                    )
                raise VersionNotFoundError(f"Version {target} not found.")
            if permanent:
                if not sv.deleted:
                    raise VersionNotSoftDeletedError(
                        f"Subject '{subject}' Version {target} was not deleted first before "
                        "being permanently deleted"
                    )
                self._write([(rec.schema_key(subject, target), None)], deadline)
            else:
                self._write(
                    [
                        (
                            rec.schema_key(subject, target),
                            rec.schema_value(subject, target, sv.schema_id, sv.schema, True),
                        )
                    ],
                    deadline,
                )
            return target

        return self._writing(decide)

    # ------------------------------------------------------------------ schemas by id

    def schema_by_id(self, schema_id: int) -> str:
        """The schema text of an id (soft-deleted versions still serve their id)."""
        self._require_ready()
        with self._state_lock:
            text = self._state.schema_text(schema_id)
        if text is None:
            raise SchemaNotFoundError(f"Schema {schema_id} not found")
        return text

    def versions_of_id(self, schema_id: int, *, deleted: bool = False) -> list[SchemaVersion]:
        """Every (subject, version) carrying ``schema_id``."""
        self._require_ready()
        with self._state_lock:
            holders = self._state.holders(schema_id)
        if not holders:
            raise SchemaNotFoundError(f"Schema {schema_id} not found")
        return [sv for sv in holders if deleted or not sv.deleted]

    # ------------------------------------------------------------------ compatibility

    def test_compatibility(
        self,
        subject: str,
        request: SchemaRequest,
        version: str | int | None = LATEST,
        *,
        normalize: bool = False,
    ) -> list[str]:
        """Why ``request`` could not be registered next to ``version`` under the subject's
        level (empty: compatible).

        As Confluent documents it: None (``POST /compatibility/subjects/{s}/versions``)
        performs the check a registration would, against every live version the level asks for
        (all of them under a ``*_TRANSITIVE`` level); a named version (a number, or ``latest``)
        is checked alone, whatever the level, in the level's direction(s). A subject without
        versions accepts anything.
        """
        self._require_ready()
        number = None if version is None else parse_version(version)
        schema = request.parse()
        if normalize:
            schema = parsed(stored_text(schema, normalize=True))
        with self._state_lock:
            versions = self._state.versions(subject)
            live = [versions[v] for v in sorted(versions) if not versions[v].deleted]
            level = self._level_of(subject)
        if number is not None:
            if number not in {sv.version for sv in live}:
                raise VersionNotFoundError(f"Version {number} not found.")
            live = [sv for sv in live if sv.version == number]
        elif version is not None:
            live = live[-1:]
        problems = check_compatibility(
            schema, [(sv.version, parsed(sv.schema)) for sv in live], level
        )
        return [p.explain() for p in problems]
