"""The per-subject and global settings of the registry: compatibility levels (``/config``) and
modes (``/mode``), with Confluent's semantics. Mixed into ``SchemaRegistry``.

Both are kept in the log like everything else (``CONFIG`` and ``MODE`` records), so replicas
and restarts agree on them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from routeiq.contracts.compatibility import CompatibilityLevel

from routeiq_schema_registry.core import records as rec
from routeiq_schema_registry.core.modes import Mode
from routeiq_schema_registry.core.replica import LogReplica, Records
from routeiq_schema_registry.core.requests import SchemaRequest, parse_level, parse_mode
from routeiq_schema_registry.core.state import RegistryState, SchemaVersion
from routeiq_schema_registry.errors import (
    InvalidSchemaError,
    OperationNotPermittedError,
    SubjectCompatibilityNotConfiguredError,
    SubjectModeNotConfiguredError,
    SubjectNotFoundError,
)

T = TypeVar("T")


class SubjectSettings:
    """Levels and modes over the registry's state (set up by ``SchemaRegistry.__init__``)."""

    _replica: LogReplica
    _state: RegistryState
    _state_lock: threading.RLock
    _default_level: CompatibilityLevel

    def _require_ready(self) -> None:
        self._replica.require_ready()

    def _writing(self, decide: Callable[[float], T]) -> T:
        return self._replica.writing(decide)

    def _write(self, records: Records, deadline: float) -> None:
        self._replica.write(records, deadline)

    # ------------------------------------------------------------------ compatibility levels

    def compatibility(
        self, subject: str | None = None, *, default_to_global: bool = False
    ) -> CompatibilityLevel:
        """The level of ``subject`` (None: the global level, or the configured default)."""
        return self._read(
            self._state.level, self._level_of, subject, default_to_global, "compatibility"
        )

    def _level_of(self, subject: str | None) -> CompatibilityLevel:
        """The level that applies to ``subject``: its own, else the global one, else default."""
        return _effective(self._state.level, subject, self._default_level)

    def set_compatibility(self, subject: str | None, level: object) -> CompatibilityLevel:
        """Set the level of ``subject`` (None: global)."""
        self._require_ready()
        parsed_level = parse_level(level)
        return self._put(self._state.level, rec.config_key, rec.config_value, subject, parsed_level)

    def delete_compatibility(self, subject: str | None) -> CompatibilityLevel:
        """Remove the level of ``subject`` (None: global, back to the default); return the
        level that applied before."""
        return self._remove(self._state.level, rec.config_key, subject, self._level_of)

    # ------------------------------------------------------------------ modes

    def mode(self, subject: str | None = None, *, default_to_global: bool = False) -> Mode:
        """The mode of ``subject`` (None: the global mode, READWRITE unless set)."""
        return self._read(self._state.mode, self._mode_of, subject, default_to_global, "mode")

    def _mode_of(self, subject: str | None) -> Mode:
        """The mode that applies to ``subject``: its own, else the global one, else READWRITE."""
        return _effective(self._state.mode, subject, Mode.READWRITE)

    def set_mode(self, subject: str | None, mode: object, *, force: bool = False) -> Mode:
        """Set the mode of ``subject`` (None: global). As Confluent: IMPORT only on an empty
        registry (global) or subject (no version ever, soft-deleted ones count), unless
        ``force``."""
        self._require_ready()
        parsed_mode = parse_mode(mode)

        def check() -> None:
            if parsed_mode is not Mode.IMPORT or force or self._mode_of(subject) is Mode.IMPORT:
                return
            subjects = self._state.subjects() if subject is None else [subject]
            if any(self._state.versions(s) for s in subjects):
                raise OperationNotPermittedError(
                    "Cannot import since found existing subjects"
                    + ("" if subject is None else f" ('{subject}' has versions)")
                    + "; delete them permanently first, or set the mode with force=true"
                )

        return self._put(
            self._state.mode, rec.mode_key, rec.mode_value, subject, parsed_mode, check=check
        )

    def delete_mode(self, subject: str | None) -> Mode:
        """Remove the mode of ``subject`` (None: global, back to READWRITE); return the mode
        that applied before."""
        return self._remove(self._state.mode, rec.mode_key, subject, self._mode_of)

    def _check_writable(self, subject: str) -> None:
        """Refuse (42205) a registration or delete in a subject that is read-only."""
        if self._mode_of(subject) is Mode.READONLY:
            raise OperationNotPermittedError(f"Subject {subject} is in read-only mode")

    # ------------------------------------------------------------------ registrations

    def _registration_mode(self, subject: str, request: SchemaRequest) -> Mode:
        """The subject's mode, if it allows this registration (Confluent's rules, 42205)."""
        mode = self._mode_of(subject)
        self._check_writable(subject)
        if request.schema_id is not None and mode is not Mode.IMPORT:
            raise OperationNotPermittedError(
                f"Subject {subject} is not in import mode; a schema id can only be given in "
                "IMPORT mode"
            )
        if request.schema_id is None and mode is Mode.IMPORT:
            raise OperationNotPermittedError(
                f"Subject {subject} is not in read-write mode; in IMPORT mode every "
                "registration must give the schema's id"
            )
        return mode

    def _check_next_version(
        self, subject: str, request: SchemaRequest, versions: dict[int, SchemaVersion]
    ) -> None:
        """Outside IMPORT mode, a version in the request must be the one it would get."""
        expected = max(versions, default=0) + 1
        if request.version is not None and request.version != expected:
            raise InvalidSchemaError(
                f"Version {request.version} is not one more than previous version of subject "
                f"'{subject}' (the next one is {expected})"
            )

    def _import_slot(
        self, subject: str, request: SchemaRequest, text: str
    ) -> tuple[SchemaVersion | None, int, int]:
        """Where an imported schema goes: (the version already holding exactly it, or None;
        its id; its version). Refuses (42205) an id or a version that holds another schema."""
        schema_id = request.schema_id
        assert schema_id is not None
        holder_text = self._state.schema_text(schema_id)
        if holder_text is not None and holder_text != text:
            raise OperationNotPermittedError(
                f"Overwrite new schema with id {schema_id} is not permitted: the id holds "
                "another schema"
            )
        versions = self._state.versions(subject)
        if request.version is None:
            same = [sv for sv in versions.values() if sv.schema_id == schema_id]
            if same:
                found = max(same, key=lambda sv: sv.version)
                return found, schema_id, found.version
            version = max(versions, default=0) + 1
        else:
            version = request.version
        existing = versions.get(version)
        if existing is not None:
            if existing.schema_id == schema_id and existing.schema == text:
                return existing, schema_id, version
            raise OperationNotPermittedError(
                f"Overwrite new schema for subject {subject} version {version} is not "
                f"permitted: it holds schema id {existing.schema_id}"
            )
        return None, schema_id, version

    # ------------------------------------------------------------------ shared

    def _read(
        self,
        current: Callable[[str | None], T | None],
        effective: Callable[[str | None], T],
        subject: str | None,
        default_to_global: bool,
        setting: str,
    ) -> T:
        """A subject's own setting (or, with ``default_to_global``, the global one); 40408 /
        40409 when it has none. Without a subject: the global setting or its default."""
        self._require_ready()
        with self._state_lock:
            if subject is None or default_to_global:
                return effective(subject)
            own = current(subject)
        if own is not None:
            return own
        error = (
            SubjectModeNotConfiguredError
            if setting == "mode"
            else SubjectCompatibilityNotConfiguredError
        )
        raise error(f"Subject '{subject}' does not have subject-level {setting} configured")

    def _put(
        self,
        current: Callable[[str | None], T | None],
        key: Callable[[str | None], bytes],
        value: Callable[[T], bytes],
        subject: str | None,
        new: T,
        *,
        check: Callable[[], None] = lambda: None,
    ) -> T:
        """Write ``new`` as the setting of ``subject`` unless it is already that."""

        def decide(deadline: float) -> T:
            with self._state_lock:
                check()
                unchanged = current(subject) == new
            if not unchanged:
                self._write([(key(subject), value(new))], deadline)
            return new

        return self._writing(decide)

    def _remove(
        self,
        current: Callable[[str | None], T | None],
        key: Callable[[str | None], bytes],
        subject: str | None,
        effective: Callable[[str | None], T],
    ) -> T:
        """Remove the setting of ``subject``; return what applied before (40401 when a subject
        has none)."""

        def decide(deadline: float) -> T:
            with self._state_lock:
                own = current(subject)
                before = effective(subject)
            if subject is not None and own is None:
                raise SubjectNotFoundError(f"Subject '{subject}' not found.")
            if own is not None:
                self._write([(key(subject), None)], deadline)
            return before

        return self._writing(decide)


def _effective(current: Callable[[str | None], T | None], subject: str | None, default: T) -> T:
    """A setting as it applies to ``subject``: its own, else the global one, else ``default``."""
    own = current(subject) if subject is not None else None
    if own is not None:
        return own
    glob = current(None)
    return default if glob is None else glob
