"""Avro serde in Confluent's wire format: magic byte 0, 4-byte big-endian schema id, Avro body.

Encoding uses fastavro against the contract's parsed schema; the schema id comes from the
registry once per (subject, schema) and is cached, so the hot path is one fastavro call plus
a 5-byte header. Decoding resolves the writer's schema by id (cached) against our reader
schema, which is how a consumer keeps reading while producers move to newer versions.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import fastavro
import httpx
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro.read import SchemaResolutionError

from routeiq.contracts.catalog import Contract
from routeiq.contracts.floatarrays import FloatArrayWriter
from routeiq.contracts.topics import topic_subject_name
from routeiq.errors import ContractError, RegistryError, SerializationError

MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")


class SchemaIdResolver(Protocol):
    """Maps a (subject, schema) to its registry id and an id back to its schema text."""

    def id_for(self, subject: str, schema_text: str) -> int: ...

    def schema_for(self, schema_id: int) -> str: ...


class RegistryResolver:
    """``SchemaIdResolver`` over a Confluent-compatible registry, with caches.

    ``auto_register=False`` (the production default) only looks schemas up: contracts are
    registered by ``routeiq schemas register`` in CI/deploy, never implicitly by a service.
    """

    def __init__(self, client: SchemaRegistryClient, *, auto_register: bool = False) -> None:
        self._client = client
        self._auto_register = auto_register
        self._ids: dict[tuple[str, str], int] = {}
        self._texts: dict[int, str] = {}
        self._lock = threading.Lock()

    def id_for(self, subject: str, schema_text: str) -> int:
        key = (subject, schema_text)
        cached = self._ids.get(key)
        if cached is not None:
            return cached
        schema = Schema(schema_text, "AVRO")
        try:
            if self._auto_register:
                schema_id = int(self._client.register_schema(subject, schema))
            else:
                schema_id = int(self._client.lookup_schema(subject, schema).schema_id)
        except SchemaRegistryError as exc:
            raise _registry_error(f"schema for subject {subject!r} is not registered", exc) from exc
        except (httpx.HTTPError, OSError) as exc:
            raise _unreachable(exc) from exc
        with self._lock:
            self._ids[key] = schema_id
        return schema_id

    def schema_for(self, schema_id: int) -> str:
        cached = self._texts.get(schema_id)
        if cached is not None:
            return cached
        try:
            text = str(self._client.get_schema(schema_id).schema_str)
        except SchemaRegistryError as exc:
            if exc.http_status_code >= 500:
                # The registry is failing, not the record: callers must retry, not dead-letter.
                raise _registry_error(
                    f"schema registry error fetching id {schema_id}", exc
                ) from exc
            raise SerializationError(f"unknown schema id {schema_id}: {exc.error_message}") from exc
        except (httpx.HTTPError, OSError) as exc:
            raise _unreachable(exc) from exc
        with self._lock:
            self._texts[schema_id] = text
        return text


def _registry_error(what: str, exc: SchemaRegistryError) -> RegistryError:
    """The registry's own answer, its error code and HTTP status kept for the caller."""
    return RegistryError(
        f"{what}: {exc.error_message}", error_code=exc.error_code, http_status=exc.http_status_code
    )


def _unreachable(exc: Exception) -> RegistryError:
    """No answer from the registry at all: a 503 the caller retries."""
    return RegistryError(f"schema registry unreachable: {exc}", error_code=50002, http_status=503)


class AvroSerde:
    """Encode and decode one contract's records in Confluent wire format."""

    def __init__(
        self,
        *,
        subject: str,
        schema_text: str,
        resolver: SchemaIdResolver,
    ) -> None:
        self.subject = subject
        self._schema_text = schema_text
        self._resolver = resolver
        raw = json.loads(schema_text)
        self._schema = fastavro.parse_schema(raw)
        # Records with float arrays (feature vectors) are written with numpy packing them.
        self._fast = FloatArrayWriter.for_schema(raw) if isinstance(raw, dict) else None
        self._schema_id: int | None = None
        self._writers: dict[int, Any] = {}

    @classmethod
    def for_contract(
        cls, contract: Contract, *, subject: str, resolver: SchemaIdResolver
    ) -> AvroSerde:
        """Serde for a contract's working copy (the version this code writes and reads)."""
        return cls(subject=subject, schema_text=contract.working_text(), resolver=resolver)

    @classmethod
    def for_topic(cls, contract: Contract, topic: str, *, resolver: SchemaIdResolver) -> AvroSerde:
        """Serde for the values of ``topic`` (subject by TopicNameStrategy)."""
        return cls.for_contract(contract, subject=topic_subject_name(topic), resolver=resolver)

    @property
    def schema_id(self) -> int:
        """The registry id of our schema under ``subject`` (resolved on first use)."""
        if self._schema_id is None:
            self._schema_id = self._resolver.id_for(self.subject, self._schema_text)
        return self._schema_id

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """Record → wire bytes. Unknown or missing fields raise ``SerializationError``."""
        buffer = io.BytesIO()
        buffer.write(_HEADER.pack(MAGIC_BYTE, self.schema_id))
        try:
            if self._fast is not None:
                self._fast.write(buffer, record)
            else:
                fastavro.schemaless_writer(buffer, self._schema, record, strict_allow_default=True)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise SerializationError(f"cannot encode {self.subject} record: {exc}") from exc
        return buffer.getvalue()

    def decode(self, data: bytes | None) -> dict[str, Any]:
        """Wire bytes → record, resolving the writer's schema against ours."""
        if data is None or len(data) < _HEADER.size:
            raise SerializationError(
                f"{self.subject}: {0 if data is None else len(data)} bytes is too short for "
                "the Confluent wire format (magic byte + 4-byte schema id)"
            )
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != MAGIC_BYTE:
            raise SerializationError(f"{self.subject}: unknown magic byte {magic}, expected 0")
        writer = self._writer_schema(schema_id)
        try:
            result = fastavro.schemaless_reader(
                io.BytesIO(data[_HEADER.size :]), writer, self._schema
            )
        except SchemaResolutionError as exc:
            # A real id of another contract (a misconfigured producer): fastavro's message
            # embeds both schemas (kilobytes), so the reason names them instead.
            raise SerializationError(
                f"{self.subject}: schema id {schema_id} ({_schema_name(writer)}) does not "
                f"resolve to {_schema_name(self._schema)}"
            ) from exc
        except (
            ValueError,
            TypeError,
            KeyError,
            EOFError,
            IndexError,
            StopIteration,
            # fastavro's for a timestamp past year 9999, say.
            OverflowError,
        ) as exc:
            raise SerializationError(
                f"{self.subject}: cannot decode with schema id {schema_id}: {exc!r}"[:1000]
            ) from exc
        if not isinstance(result, dict):
            raise SerializationError(f"{self.subject}: decoded a non-record value")
        return result

    def _writer_schema(self, schema_id: int) -> Any:
        writer = self._writers.get(schema_id)
        if writer is None:
            try:
                writer = fastavro.parse_schema(json.loads(self._resolver.schema_for(schema_id)))
            except (ValueError, TypeError) as exc:
                raise SerializationError(f"schema id {schema_id} does not parse: {exc}") from exc
            self._writers[schema_id] = writer
        return writer


def _schema_name(schema: Any) -> str:
    """A parsed schema's full name (or its type, for an unnamed one), for error messages."""
    if isinstance(schema, dict):
        return str(schema.get("name") or schema.get("type"))
    return str(schema)[:80]


class LocalResolver:
    """An in-process ``SchemaIdResolver`` (ids assigned in order), for tools and offline tests."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._texts: dict[int, str] = {}
        self._lock = threading.Lock()

    def id_for(self, subject: str, schema_text: str) -> int:
        canonical = json.dumps(json.loads(schema_text), separators=(",", ":"))
        with self._lock:
            if canonical not in self._ids:
                new_id = len(self._ids) + 1
                self._ids[canonical] = new_id
                self._texts[new_id] = schema_text
            return self._ids[canonical]

    def schema_for(self, schema_id: int) -> str:
        try:
            return self._texts[schema_id]
        except KeyError as exc:
            raise SerializationError(f"unknown schema id {schema_id}") from exc


class PersistentResolver:
    """A resolver that remembers every id it learned in a JSON file and falls back to it.

    The gateway's data plane must keep producing when the registry is down; with the ids of
    its schemas cached on disk from an earlier start, it can encode (and decode announcements)
    without asking the registry again.
    """

    def __init__(self, inner: SchemaIdResolver, path: Path) -> None:
        self._inner = inner
        self._path = path
        self._lock = threading.Lock()
        self._ids: dict[str, int] = {}
        self._texts: dict[str, str] = {}
        if path.is_file():
            try:
                data = json.loads(path.read_text())
                self._ids = {str(k): int(v) for k, v in data.get("ids", {}).items()}
                self._texts = {str(k): str(v) for k, v in data.get("texts", {}).items()}
            except (ValueError, TypeError, AttributeError):
                self._ids, self._texts = {}, {}

    @staticmethod
    def _key(subject: str, schema_text: str) -> str:
        canonical = json.dumps(json.loads(schema_text), separators=(",", ":"), sort_keys=True)
        return subject + "\n" + hashlib.sha256(canonical.encode()).hexdigest()

    def _save(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"ids": self._ids, "texts": self._texts}))
        tmp.replace(self._path)

    def id_for(self, subject: str, schema_text: str) -> int:
        key = self._key(subject, schema_text)
        try:
            schema_id = self._inner.id_for(subject, schema_text)
        except ContractError:
            if key in self._ids:
                return self._ids[key]
            raise
        with self._lock:
            if self._ids.get(key) != schema_id:
                self._ids[key] = schema_id
                self._save()
        return schema_id

    def schema_for(self, schema_id: int) -> str:
        try:
            text = self._inner.schema_for(schema_id)
        except ContractError:
            cached = self._texts.get(str(schema_id))
            if cached is not None:
                return cached
            raise
        with self._lock:
            if self._texts.get(str(schema_id)) != text:
                self._texts[str(schema_id)] = text
                self._save()
        return text
