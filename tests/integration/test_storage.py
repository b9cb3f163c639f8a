"""ArtifactStore against the real S3 server (SeaweedFS locally, MinIO elsewhere)."""

from __future__ import annotations

import hashlib

import pytest
from routeiq.errors import ArtifactNotFoundError, IntegrityError
from routeiq.storage import ArtifactStore, make_minio

pytestmark = pytest.mark.integration


@pytest.fixture
def store(stack) -> ArtifactStore:
    return ArtifactStore(make_minio(stack.s3))


def test_bytes_round_trip_with_their_sha256(store, stack, unique) -> None:
    key = f"{unique('test')}/blob.bin"
    data = bytes(range(256)) * 100
    stored = store.put_bytes(stack.settings.shards_bucket, key, data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert store.get_bytes(stack.settings.shards_bucket, key, expected_sha256=stored.sha256) == data


def test_every_version_stays_readable_in_the_versioned_bucket(store, stack, unique) -> None:
    bucket, key = stack.settings.models_bucket, f"{unique('models/test')}/manifest.json"
    first = store.put_bytes(bucket, key, b'{"v": 1}')
    second = store.put_bytes(bucket, key, b'{"v": 2}')
    assert first.version_id
    assert second.version_id
    assert first.version_id != second.version_id
    assert [v.version_id for v in store.versions(bucket, key)] == [
        second.version_id,
        first.version_id,
    ]
    assert store.get_bytes(bucket, key, version_id=first.version_id) == b'{"v": 1}'
    assert store.get_bytes(bucket, key) == b'{"v": 2}'


def test_a_hash_mismatch_is_an_integrity_error(store, stack, unique) -> None:
    key = f"{unique('test')}/x"
    store.put_bytes(stack.settings.shards_bucket, key, b"abc")
    with pytest.raises(IntegrityError, match="does not match the expected"):
        store.get_bytes(stack.settings.shards_bucket, key, expected_sha256="0" * 64)


def test_missing_objects_are_named(store, stack, unique) -> None:
    with pytest.raises(ArtifactNotFoundError, match="not found"):
        store.get_bytes(stack.settings.shards_bucket, unique("missing"))


def test_ensure_bucket_is_idempotent_and_enables_versioning(store, unique) -> None:
    bucket = unique("test-bucket")
    assert store.ensure_bucket(bucket, versioned=True) is True
    assert store.ensure_bucket(bucket, versioned=True) is False
    assert store.is_versioned(bucket)
