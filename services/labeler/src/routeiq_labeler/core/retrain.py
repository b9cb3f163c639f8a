"""Retrain requests: which shards to train on and an id that is a function of them.

A request names every shard manifest in the bucket at the time it is made (the trainer trains
on the whole labelled history, not only on what is new) and its id is a sha256 over the model
name, the router types and each shard's (manifest key, Parquet sha256). Asking twice for the
same shard set, after a crash or from the CLI, yields the same id, which the trainer uses to
train once; a shard rewritten with late rows changes its sha256 and so the id.

The record and its id are built by ``routeiq.shards.retrain_request``, which ``routeiq
retrain request`` shares; this module only chooses the shard set.
"""

from __future__ import annotations

from collections.abc import Sequence

from routeiq.shards import (
    ShardManifest,
    list_manifests,
    read_manifest,
)
from routeiq.storage import ArtifactStore


def shard_set(
    store: ArtifactStore, bucket: str, manifest_keys: Sequence[str] | None = None
) -> list[tuple[str, ShardManifest]]:
    """(manifest key, manifest) for the given keys, or for every shard in ``bucket``."""
    keys = list(manifest_keys) if manifest_keys else list_manifests(store, bucket)
    return [(key, read_manifest(store, bucket, key)) for key in sorted(set(keys))]
