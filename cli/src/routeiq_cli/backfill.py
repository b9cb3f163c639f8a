"""`routeiq backfill jaeger`: publish past traffic, read from Jaeger, as RouterDecision events.

It reads the gateway's routing spans from Jaeger (``routeiq.traces``) and publishes each
decision keyed by its decision id, so old traffic flows through the same labeler, with its
query embedding when the span's decision event carried one. Publishing a decision twice is
harmless: the labeler keeps one row per decision id.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import click
import httpx
from confluent_kafka import Producer
from routeiq.contracts.catalog import ROUTER_DECISION
from routeiq.contracts.topics import ROUTER_DECISIONS
from routeiq.errors import SerializationError, TransportError
from routeiq.kafka import make_producer
from routeiq.traces import JaegerClient, TraceQuery, TraceStats, read_decisions

from routeiq_cli.clients import CLIENT_ID, topic_serde
from routeiq_cli.stack.settings import StackSettings


def _produce(producer: Producer, topic: str, key: bytes, value: bytes) -> None:
    while True:
        try:
            producer.produce(topic, key=key, value=value)
            producer.poll(0)
            return
        except BufferError:
            # librdkafka's queue is full: let deliveries drain, then try again.
            producer.poll(0.5)


def _parse_end(value: str | None) -> int:
    """End of the range in microseconds: ISO 8601, epoch milliseconds, or now."""
    if value is None:
        return time.time_ns() // 1000
    if value.isdigit():
        return int(value) * 1000
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(
            f"expected ISO 8601 or epoch milliseconds, got {value!r}", param_hint="--end"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000)


@click.group("backfill")
def backfill() -> None:
    """Publish past traffic as RouterDecision events."""


@backfill.command("jaeger")
@click.option("--url", required=True, help="Jaeger query base URL, e.g. http://jaeger:16686")
@click.option("--service", required=True, help="Service name of the gateway in Jaeger.")
@click.option("--hours", type=click.FloatRange(min=0, min_open=True), required=True)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many.")
@click.option("--end", default=None, help="End of the range (ISO 8601 or epoch ms; now).")
@click.option("--page-size", type=click.IntRange(min=1), default=500, show_default=True)
@click.option("--topic", default=ROUTER_DECISIONS.name, show_default=True)
@click.option("--timeout", type=float, default=30.0, show_default=True, help="HTTP seconds.")
def backfill_jaeger(
    url: str,
    service: str,
    hours: float,
    limit: int | None,
    end: str | None,
    page_size: int,
    topic: str,
    timeout: float,
) -> None:
    """Read routing spans from Jaeger and publish them as RouterDecision events."""
    settings = StackSettings.load()
    end_us = _parse_end(end)
    start_us = end_us - int(hours * 3600 * 1_000_000)
    serde = topic_serde(settings, ROUTER_DECISION, topic)
    producer = make_producer(settings.kafka, client_id=CLIENT_ID)
    stats = TraceStats()
    published = 0
    with httpx.Client(timeout=timeout) as http:
        client = JaegerClient(base_url=url, http=http)
        query = TraceQuery(service, start_us, end_us, page_size)
        for record in read_decisions(client, query, stats):
            try:
                value = serde.encode(record)
            except SerializationError as exc:
                stats.skip(f"not a valid RouterDecision: {exc}")
                continue
            _produce(producer, topic, record["event_id"].encode(), value)
            published += 1
            if limit is not None and published >= limit:
                break
    if producer.flush(60) != 0:
        raise TransportError(f"not every decision was acknowledged by {topic} within 60s")
    click.echo(
        f"read {stats.traces} traces, {stats.spans} routing spans; published "
        f"{published} decisions to {topic}"
    )
    for reason, count in sorted(stats.skipped.items()):
        click.echo(f"  skipped {count}: {reason}")
