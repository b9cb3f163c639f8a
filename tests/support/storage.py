"""An in-process artifact store for the unit tier."""

from __future__ import annotations

import hashlib
from pathlib import Path

from routeiq.errors import ArtifactNotFoundError, IntegrityError
from routeiq.storage import StoredObject


class MemoryStore:
    """An in-process stand-in for ``ArtifactStore`` (put/get/list with sha256), so the labeler
    sink's merge logic and the trainer's shard reading run in unit tests without S3. libs has
    no in-memory store (``ArtifactStore`` wraps a MinIO client); its method signatures are
    copied here on purpose. Integration tests use the real store."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.puts: list[str] = []

    def put_bytes(
        self, bucket: str, key: str, data: bytes, *, content_type: str = ""
    ) -> StoredObject:
        self.objects[(bucket, key)] = bytes(data)
        self.puts.append(key)
        return StoredObject(bucket, key, None, hashlib.sha256(data).hexdigest(), len(data))

    def get_bytes(
        self,
        bucket: str,
        key: str,
        *,
        version_id: str | None = None,
        expected_sha256: str | None = None,
    ) -> bytes:
        try:
            data = self.objects[(bucket, key)]
        except KeyError as exc:
            raise ArtifactNotFoundError(f"{key} not found") from exc
        if expected_sha256 and hashlib.sha256(data).hexdigest() != expected_sha256:
            raise IntegrityError(key)
        return data

    def download_to(self, bucket: str, key: str, path: Path, **pin: str | None) -> int:
        """``get_bytes`` (``version_id``, ``expected_sha256`` as there) written to ``path``."""
        data = self.get_bytes(bucket, key, **pin)
        path.write_bytes(data)
        return len(data)

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        return sorted(k for b, k in self.objects if b == bucket and k.startswith(prefix))
