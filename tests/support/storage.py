"""An in-process artifact store for the unit tier."""

from __future__ import annotations

import io
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

from minio.error import S3Error
from routeiq.storage import ArtifactStore


class _Response:
    """What ``Minio.get_object`` returns, as far as ``ArtifactStore`` reads it."""

    def __init__(self, data: bytes, headers: dict[str, str]) -> None:
        self._data = data
        self.headers = headers

    def read(self) -> bytes:
        return self._data

    def stream(self, amt: int) -> Iterator[bytes]:
        for start in range(0, len(self._data), amt):
            yield self._data[start : start + amt]

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


class _MemoryMinio:
    """The calls ``ArtifactStore`` makes on a ``Minio`` client, over a dict (no versions)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.metadata: dict[tuple[str, str], dict[str, str]] = {}
        self.puts: list[str] = []

    def put_object(
        self,
        bucket: str,
        key: str,
        data: io.BytesIO,
        *,
        length: int,
        content_type: str,
        metadata: dict[str, str],
    ) -> SimpleNamespace:
        self.objects[(bucket, key)] = data.read(length)
        self.metadata[(bucket, key)] = dict(metadata)
        self.puts.append(key)
        return SimpleNamespace(version_id=None)

    def get_object(self, bucket: str, key: str, version_id: str | None = None) -> _Response:
        try:
            data = self.objects[(bucket, key)]
        except KeyError:
            raise _not_found(bucket, key) from None
        meta = self.metadata.get((bucket, key), {})
        return _Response(data, {f"x-amz-meta-{k}": v for k, v in meta.items()})

    def list_objects(self, bucket: str, prefix: str = "", **_: Any) -> list[SimpleNamespace]:
        keys = sorted(k for b, k in self.objects if b == bucket and k.startswith(prefix))
        return [SimpleNamespace(object_name=k) for k in keys]


def _not_found(bucket: str, key: str) -> S3Error:
    return S3Error(
        code="NoSuchKey",
        message="The specified key does not exist.",
        resource=f"/{bucket}/{key}",
        request_id="",
        host_id="",
        response=None,
        bucket_name=bucket,
        object_name=key,
    )


class MemoryStore(ArtifactStore):
    """The real ``ArtifactStore`` over an in-process client, so the labeler sink's merge logic
    and the trainer's shard reading run in unit tests without S3, and the sha256 checks they
    rely on are the ones production runs. Integration tests use a real MinIO."""

    def __init__(self) -> None:
        client = _MemoryMinio()
        super().__init__(client)  # type: ignore[arg-type]  # duck-typed: the calls used only
        # The client's own dict and log, exposed for tests that look at or remove objects.
        self.objects = client.objects
        self.puts = client.puts
