"""The ``RetrainRequest`` record (``routeiq.retrain_request``): built over a set of shards.

Its id is a function of the shard set alone, so the labeler (and anyone else asking) can send
the same request twice and the trainer trains it once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from routeiq.shards import ShardManifest


def retrain_request_id(
    model_name: str, router_types: Iterable[str], shards: Iterable[tuple[str, str]]
) -> str:
    """sha256 over the model, its router types and each shard's (manifest key, sha256).

    A function of the shard set alone, so a repeated request for the same data is the same
    request and the trainer trains it once.
    """
    payload = json.dumps(
        {
            "model": model_name,
            "router_types": sorted(set(router_types)),
            "shards": sorted([key, sha] for key, sha in shards),
        },
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


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
    """A ``RetrainRequest`` record over ``shards`` ((manifest key, manifest) pairs)."""
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
