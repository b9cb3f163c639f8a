"""Artifact storage over the ``minio`` client: works against MinIO and SeaweedFS alike.

Every object is written with its sha256 in user metadata and verified on read, so a torn or
tampered download is an ``IntegrityError``, never a silently wrong model.
"""

from __future__ import annotations

import functools
import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import ParamSpec, TypeVar

import urllib3
from minio import Minio
from minio.commonconfig import ENABLED
from minio.error import S3Error
from minio.versioningconfig import VersioningConfig

from routeiq.errors import ArtifactNotFoundError, IntegrityError, StorageError
from routeiq.settings import S3Settings

_SHA_META = "sha256"

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _unreachable_is_storage_error(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """An endpoint that cannot be reached is a ``StorageError`` too, not a urllib3 error."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(*args, **kwargs)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StorageError(f"S3 unreachable during {method.__name__}: {exc}") from exc

    return wrapper


def make_minio(settings: S3Settings, *, timeout_s: float = 10.0) -> Minio:
    """A ``Minio`` client with bounded timeouts and retries (no hanging on a dead endpoint)."""
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s * 6),
        retries=urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)),
    )
    return Minio(
        settings.endpoint,
        access_key=settings.access_key.get_secret_value(),
        secret_key=settings.secret_key.get_secret_value(),
        secure=settings.secure,
        region=settings.region,
        http_client=http,
    )


@dataclass(frozen=True)
class StoredObject:
    """What was written: where, which version, and its content hash."""

    bucket: str
    key: str
    version_id: str | None
    sha256: str
    size: int
    last_modified: datetime | None = None


class ArtifactStore:
    """Put/get bytes with sha256 verification, on versioned or plain buckets."""

    def __init__(self, client: Minio) -> None:
        self._client = client

    @_unreachable_is_storage_error
    def ensure_bucket(self, bucket: str, *, versioned: bool = False) -> bool:
        """Create ``bucket`` if missing (and enable versioning); True when it was created."""
        try:
            created = False
            if not self._client.bucket_exists(bucket):
                self._client.make_bucket(bucket)
                created = True
            if versioned:
                status = self._client.get_bucket_versioning(bucket).status
                if status != ENABLED:
                    self._client.set_bucket_versioning(bucket, VersioningConfig(ENABLED))
            return created
        except S3Error as exc:
            raise StorageError(f"cannot prepare bucket {bucket}: {exc}") from exc

    @_unreachable_is_storage_error
    def is_versioned(self, bucket: str) -> bool:
        try:
            return bool(self._client.get_bucket_versioning(bucket).status == ENABLED)
        except S3Error as exc:
            raise StorageError(f"cannot read versioning of {bucket}: {exc}") from exc

    @_unreachable_is_storage_error
    def put_bytes(
        self, bucket: str, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> StoredObject:
        """Write ``data`` with its sha256 recorded in the object's metadata."""
        digest = hashlib.sha256(data).hexdigest()
        try:
            result = self._client.put_object(
                bucket,
                key,
                io.BytesIO(data),
                length=len(data),
                content_type=content_type,
                metadata={_SHA_META: digest},
            )
        except S3Error as exc:
            raise StorageError(f"cannot write s3://{bucket}/{key}: {exc}") from exc
        return StoredObject(bucket, key, result.version_id, digest, len(data))

    @_unreachable_is_storage_error
    def get_bytes(
        self,
        bucket: str,
        key: str,
        *,
        version_id: str | None = None,
        expected_sha256: str | None = None,
    ) -> bytes:
        """Read an object (optionally one version) and verify its sha256."""
        try:
            response = self._client.get_object(bucket, key, version_id=version_id)
            try:
                data = response.read()
                recorded = response.headers.get(f"x-amz-meta-{_SHA_META}")
            finally:
                response.close()
                response.release_conn()
        except S3Error as exc:
            if exc.code in {"NoSuchKey", "NoSuchVersion", "NoSuchBucket"}:
                raise ArtifactNotFoundError(f"s3://{bucket}/{key} not found: {exc.code}") from exc
            raise StorageError(f"cannot read s3://{bucket}/{key}: {exc}") from exc
        digest = hashlib.sha256(data).hexdigest()
        for label, wanted in (("expected", expected_sha256), ("recorded", recorded)):
            if wanted and wanted != digest:
                raise IntegrityError(
                    f"s3://{bucket}/{key}: sha256 {digest} does not match the {label} {wanted}"
                )
        return data

    def download_to(
        self,
        bucket: str,
        key: str,
        path: Path,
        *,
        version_id: str | None = None,
        expected_sha256: str | None = None,
        chunk_bytes: int = 1 << 20,
    ) -> int:
        """Stream an object into ``path`` verifying its sha256 on the way; returns its size.

        On a mismatch the partial file is removed and ``IntegrityError`` raised.
        """
        digest = hashlib.sha256()
        size = 0
        try:
            response = self._client.get_object(bucket, key, version_id=version_id)
            try:
                recorded = response.headers.get(f"x-amz-meta-{_SHA_META}")
                with path.open("wb") as fh:
                    for chunk in response.stream(chunk_bytes):
                        digest.update(chunk)
                        fh.write(chunk)
                        size += len(chunk)
            finally:
                response.close()
                response.release_conn()
        except S3Error as exc:
            path.unlink(missing_ok=True)
            if exc.code in {"NoSuchKey", "NoSuchVersion", "NoSuchBucket"}:
                raise ArtifactNotFoundError(f"s3://{bucket}/{key} not found: {exc.code}") from exc
            raise StorageError(f"cannot read s3://{bucket}/{key}: {exc}") from exc
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            path.unlink(missing_ok=True)
            raise StorageError(f"cannot download s3://{bucket}/{key}: {exc}") from exc
        actual = digest.hexdigest()
        for label, wanted in (("expected", expected_sha256), ("recorded", recorded)):
            if wanted and wanted != actual:
                path.unlink(missing_ok=True)
                raise IntegrityError(
                    f"s3://{bucket}/{key}: sha256 {actual} does not match the {label} {wanted}"
                )
        return size

    @_unreachable_is_storage_error
    def versions(self, bucket: str, key: str) -> list[StoredObject]:
        """Every stored version of ``key``, newest first (sha256 from metadata when present)."""
        try:
            found = [
                obj
                for obj in self._client.list_objects(bucket, prefix=key, include_version=True)
                if obj.object_name == key and not obj.is_delete_marker
            ]
        except S3Error as exc:
            raise StorageError(f"cannot list versions of s3://{bucket}/{key}: {exc}") from exc
        found.sort(key=lambda o: o.last_modified or datetime.min, reverse=True)
        return [
            StoredObject(
                bucket, key, o.version_id, (o.etag or "").strip('"'), o.size or 0, o.last_modified
            )
            for o in found
        ]

    @_unreachable_is_storage_error
    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Object keys under ``prefix`` (recursive)."""
        try:
            return [
                str(o.object_name)
                for o in self._client.list_objects(bucket, prefix=prefix, recursive=True)
            ]
        except S3Error as exc:
            raise StorageError(f"cannot list s3://{bucket}/{prefix}: {exc}") from exc
