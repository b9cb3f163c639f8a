"""Publishing ``RetrainRequest`` records when ``core.retrain`` says it is time.

The request names every shard manifest in the bucket (listed from S3 off the event loop) and
is flushed to Kafka before it counts as made, so a crash in between asks again (with the same
id, which the trainer turns into a no-op).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from routeiq.contracts.retrain import retrain_request
from routeiq.contracts.serde import AvroSerde
from routeiq.dependencies import Dependency
from routeiq.shards import ShardManifest, list_manifests, read_manifest
from routeiq.storage import ArtifactStore

from routeiq_labeler.config import LabelerSettings
from routeiq_labeler.core.retrain import retrain_reason
from routeiq_labeler.metrics import LabelerMetrics
from routeiq_labeler.sink import S3_ERRORS

logger = logging.getLogger("routeiq_labeler")


def shard_set(
    store: ArtifactStore, bucket: str, manifest_keys: Sequence[str] | None = None
) -> list[tuple[str, ShardManifest]]:
    """(manifest key, manifest) for the given keys, or for every shard in ``bucket``."""
    keys = list(manifest_keys) if manifest_keys else list_manifests(store, bucket)
    return [(key, read_manifest(store, bucket, key)) for key in sorted(set(keys))]


@dataclass(kw_only=True)
class RetrainRequester:
    """Asks the trainer to retrain, by example count or by time since the last request."""

    settings: LabelerSettings
    store: ArtifactStore
    app: Any  # the Faust app, whose producer is flushed after each request
    topic: Any  # the Faust topic requests go to
    serde: AvroSerde
    metrics: LabelerMetrics
    requested_by: str
    clock_ms: Callable[[], int]
    s3: Dependency  # a failed listing is logged once per outage, not once per tick
    _last_request_ms: int = field(init=False)

    def __post_init__(self) -> None:
        # The interval counts from the start: a restarted worker does not ask at once.
        self._last_request_ms = self.clock_ms()

    async def maybe_request(self, new: Mapping[str, int]) -> bool:
        """Publish a request if ``new`` (new labelled rows per shard manifest key since the
        last request) warrants it; True once it is acknowledged."""
        settings = self.settings
        now = self.clock_ms()
        count = sum(new.values())
        self.metrics.examples_since_request.set(count)
        reason = retrain_reason(
            new_examples=count,
            now_ms=now,
            last_request_ms=self._last_request_ms,
            threshold=settings.retrain_threshold,
            interval_s=settings.retrain_interval_s,
        )
        if reason is None:
            return False
        loop = asyncio.get_running_loop()
        try:
            shards = await loop.run_in_executor(
                None, shard_set, self.store, settings.shards_bucket, None
            )
        except S3_ERRORS as exc:
            self.s3.failed(f"cannot list shards for a retrain request: {exc}")
            return False
        self.s3.recovered()
        record = retrain_request(
            shards,
            model_name=settings.retrain_model_name,
            router_types=settings.retrain_router_types,
            reason=reason,
            requested_by=self.requested_by,
            now_ms=now,
        )
        await self.topic.send(
            key=settings.retrain_model_name.encode(), value=self.serde.encode(record)
        )
        await self.app.producer.flush()
        self._last_request_ms = now
        self.metrics.retrain_requests.labels(reason).inc()
        logger.info(
            "retrain request %s (%s): %d shards, %d examples, %d new",
            record["request_id"],
            reason,
            len(shards),
            record["example_count"],
            count,
        )
        return True
