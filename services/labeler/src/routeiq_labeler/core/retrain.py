"""Retrain requests: which shards to train on and an id that is a function of them.

A request names every shard manifest in the bucket at the time it is made (the trainer trains
on the whole labelled history, not only on what is new) and its id is a sha256 over the model
name, the router types and each shard's (manifest key, Parquet sha256). Asking twice for the
same shard set, after a crash or from the CLI, yields the same id, which the trainer uses to
train once; a shard rewritten with late rows changes its sha256 and so the id.

``routeiq retrain request`` (cli/src/routeiq_cli/labeling.py) derives ids the same way; a unit
test holds the two implementations to the same answer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from routeiq.shards import ShardManifest, list_manifests, read_manifest
from routeiq.storage import ArtifactStore


def retrain_request_id(
    model_name: str, router_types: Iterable[str], shards: Iterable[tuple[str, str]]
) -> str:
    """sha256 over the model, its router types and the (manifest key, sha256) of each shard."""
    payload = json.dumps(
        {
            "model": model_name,
            "router_types": sorted(set(router_types)),
            "shards": sorted([key, sha] for key, sha in shards),
        },
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def shard_set(
    store: ArtifactStore, bucket: str, manifest_keys: Sequence[str] | None = None
) -> list[tuple[str, ShardManifest]]:
    """(manifest key, manifest) for the given keys, or for every shard in ``bucket``."""
    keys = list(manifest_keys) if manifest_keys else list_manifests(store, bucket)
    return [(key, read_manifest(store, bucket, key)) for key in sorted(set(keys))]


def retrain_request(
    shards: Sequence[tuple[str, ShardManifest]],
    *,
    model_name: str,
    router_types: Iterable[str],
    reason: str,
    requested_by: str,
    now_ms: int,
    params: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A ``RetrainRequest`` record for ``shards``."""
    types = sorted(set(router_types))
    return {
        "request_id": retrain_request_id(model_name, types, ((k, m.sha256) for k, m in shards)),
        "model_name": model_name,
        "router_types": types,
        "reason": reason,
        "requested_by": requested_by,
        "requested_at": now_ms,
        "shard_manifests": [k for k, _ in shards],
        "example_count": sum(m.rows for _, m in shards),
        "window_start": min((m.min_event_time for _, m in shards), default=None),
        "window_end": max((m.max_event_time for _, m in shards), default=None),
        "params": dict(params or {}),
    }
