"""`routeiq retrain request`: publish a ``RetrainRequest`` (reason MANUAL) for a set of shards.

The shards are the given manifests, or every shard in the shards bucket. The request's id is
derived from the shard set, the model name and the router types exactly as the labeler
derives the ids of the requests it publishes itself, so asking twice for the same shards
trains once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import click
from routeiq.contracts import retrain as retrain_contract
from routeiq.contracts.catalog import RETRAIN_REQUEST
from routeiq.contracts.topics import RETRAIN_REQUESTS
from routeiq.errors import TransportError
from routeiq.kafka import make_producer
from routeiq.routing.routers import ROUTER_TYPES
from routeiq.shards import ShardManifest, list_manifests, read_manifest
from routeiq.storage import ArtifactStore, make_minio

from routeiq_cli.clients import CLIENT_ID, topic_serde
from routeiq_cli.options import key_values
from routeiq_cli.stack.settings import StackSettings


def manual_request(
    shards: Sequence[tuple[str, ShardManifest]],
    *,
    model_name: str,
    router_types: Iterable[str],
    requested_by: str,
    now_ms: int,
    params: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A MANUAL ``RetrainRequest`` record for ``shards`` (manifest key, manifest)."""
    return retrain_contract.retrain_request(
        shards,
        model_name=model_name,
        router_types=router_types,
        reason="MANUAL",
        requested_by=requested_by,
        now_ms=now_ms,
        params=params,
    )


def publish_retrain_request(
    settings: StackSettings,
    model_name: str,
    *,
    router_types: Iterable[str] = (),
    manifests: Iterable[str] = (),
    params: Mapping[str, str] | None = None,
    bucket: str | None = None,
    topic: str = RETRAIN_REQUESTS.name,
) -> dict[str, Any]:
    """A MANUAL RetrainRequest over the given (default: every) shard, acknowledged."""
    store = ArtifactStore(make_minio(settings.s3))
    bucket = bucket or settings.shards_bucket
    manifests = tuple(manifests)
    keys = sorted(set(manifests)) if manifests else list_manifests(store, bucket)
    if not keys:
        raise click.ClickException(f"no shard manifests in s3://{bucket}; nothing to train on")
    record = manual_request(
        [(key, read_manifest(store, bucket, key)) for key in keys],
        model_name=model_name,
        router_types=tuple(router_types),
        requested_by=CLIENT_ID,
        now_ms=time.time_ns() // 1_000_000,
        params=dict(params or {}),
    )
    value = topic_serde(settings, RETRAIN_REQUEST, topic).encode(record)
    producer = make_producer(settings.kafka, client_id=CLIENT_ID, overrides={"linger.ms": 0})
    producer.produce(topic, key=model_name.encode(), value=value)
    if producer.flush(30) != 0:
        raise TransportError(f"the retrain request was not acknowledged by {topic} within 30s")
    return record


@click.group("retrain")
def retrain() -> None:
    """Ask the trainer for a new router."""


@retrain.command("request")
@click.option(
    "--model",
    "model_name",
    default=None,
    help="Router name (default: the stack's, ROUTEIQ_STACK_ROUTER_NAME).",
)
@click.option(
    "--router-type",
    "router_types",
    multiple=True,
    type=click.Choice(sorted(ROUTER_TYPES)),  # built-ins and installed plugins
    help="Router type to train (repeatable); none: the trainer's defaults.",
)
@click.option(
    "--manifest",
    "manifests",
    multiple=True,
    help="Shard manifest key to train on (repeatable); none: every shard in the bucket.",
)
@click.option("--param", "params", multiple=True, help="Training parameter KEY=VALUE.")
@click.option("--bucket", default=None, help="Shards bucket (default: the stack's).")
@click.option("--topic", default=RETRAIN_REQUESTS.name, show_default=True)
def retrain_request(
    model_name: str | None,
    router_types: tuple[str, ...],
    manifests: tuple[str, ...],
    params: tuple[str, ...],
    bucket: str | None,
    topic: str,
) -> None:
    """Publish a MANUAL RetrainRequest whose id is derived from the shard set."""
    settings = StackSettings.load()
    record = publish_retrain_request(
        settings,
        model_name or settings.router_name,
        router_types=router_types,
        manifests=manifests,
        params=dict(key_values(params)),
        bucket=bucket,
        topic=topic,
    )
    click.echo(
        f"requested {record['request_id']} for {record['model_name']}: "
        f"{len(record['shard_manifests'])} shards, {record['example_count']} examples -> {topic}"
    )
