"""`make demo`: the whole loop on the running stack, printed stage by stage.

1. before  the gateways serve GSM8K's held-out half with the default, untrained strategy
           (RouteLLM-style threshold on a text heuristic, 50 % strong calls): quality, cost
2. traffic the training half is replayed with recorded feedback and shadow outcomes
3. label   the labeler windows it into Parquet shards and asks for retraining
4. train   the trainer trains, evaluates, gates against the champion and announces
5. swap    every gateway verifies, probes and hot-swaps the new router
6. after   the same held-out half, same 50 % strong calls, now on the learned router
7. report  before/after table, and the new router's offline APGR with a bootstrap CI

The held-out requests post no feedback, so they never become training data.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import click
import httpx
from confluent_kafka import Consumer, TopicPartition
from routeiq.contracts.catalog import MODEL_ANNOUNCEMENT, RETRAIN_REQUEST
from routeiq.contracts.serde import AvroSerde, RegistryResolver
from routeiq.contracts.topics import MODEL_ANNOUNCEMENTS, RETRAIN_REQUESTS
from routeiq.errors import RouteIQError
from routeiq.kafka import make_consumer
from routeiq.routing.datasets import load_gsm8k

from routeiq_cli.replay import Replayer, ReplayStats
from routeiq_cli.stack import runner
from routeiq_cli.stack.secrets import load_or_create
from routeiq_cli.stack.settings import StackSettings


class DemoError(RouteIQError):
    """A stage of the demo did not complete."""


def _stage(number: int, title: str) -> float:
    click.secho(f"\n[{number}/7] {title}", bold=True)
    return time.monotonic()


def _done(started: float, message: str) -> None:
    click.echo(f"      {message} ({time.monotonic() - started:.0f}s)")


class _Tail:
    """New records on a topic from now on (every partition assigned at its end)."""

    def __init__(self, settings: StackSettings, topic: str, serde: AvroSerde) -> None:
        self._consumer: Consumer = make_consumer(
            settings.kafka,
            group_id=f"routeiq-demo-{uuid.uuid4().hex[:8]}",
            client_id="routeiq-demo",
        )
        partitions = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        # Pin today's end offsets now: OFFSET_END would be resolved at the first poll, after
        # the record we are waiting for may already have been written.
        ends = [
            self._consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        ]
        self._consumer.assign(
            [TopicPartition(topic, p, end) for p, end in zip(partitions, ends, strict=True)]
        )
        self._serde = serde

    def wait_for(
        self, match: Callable[[dict[str, Any]], bool], timeout_s: float
    ) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = self._consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            record = self._serde.decode(msg.value())
            if match(record):
                return record
        return None

    def close(self) -> None:
        self._consumer.close()


def _replay(
    settings: StackSettings, rows: list[int], *, feedback: bool, shadow: float, label: str
) -> ReplayStats:
    from tqdm import tqdm

    ds = load_gsm8k()
    with tqdm(total=len(rows), desc=f"      {label}", unit="req", leave=False) as bar:
        stats = asyncio.run(
            Replayer(
                ds,
                gateway=f"http://{settings.host}:{settings.gateway_port}",
                upstream=f"http://{settings.host}:{settings.upstream_port}/v1",
                concurrency=8,
                feedback=feedback,
                shadow_fraction=shadow,
                progress=bar,
                headers={"x-routeiq-team": "demo"},
            ).run(rows)
        )
    if stats.errors:
        raise DemoError(f"{stats.errors} requests failed: {stats.error_samples[:3]}")
    return stats


def _trained_version(settings: StackSettings, request_id: str, *, timeout_s: float) -> str | None:
    """The bundle version the trainer registered for ``request_id`` (None if none in time)."""
    from routeiq_trainer.wiring import build_services

    from routeiq_cli.models import trainer_settings

    services = build_services(trainer_settings(), pipeline=False)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = services.ops.registry.find_by_request(settings.router_name, request_id)
            if found:
                return found[-1].version
            time.sleep(2.0)
        return None
    finally:
        services.close()


def _set_default(
    settings: StackSettings, admin_key: str, name: str, kind: str, params: dict[str, Any]
) -> None:
    for i in range(settings.gateway_replicas):
        r = httpx.put(
            f"http://{settings.host}:{settings.gateway_port + i}/admin/strategies",
            headers={"authorization": f"Bearer {admin_key}"},
            timeout=10,
            json={
                "register": [{"name": name, "kind": kind, "params": params}],
                "default": name,
                "ab": {},
            },
        )
        if r.status_code != 200:
            raise DemoError(f"cannot set the default strategy: {r.status_code} {r.text}")


def run_demo(settings: StackSettings) -> None:
    total = time.monotonic()
    problems = {k: v for k, v in runner.health(settings).items() if v is not None}
    if problems:
        raise DemoError(f"the stack is not healthy ({problems}); run `make up` first")
    keys = load_or_create(settings)
    ds = load_gsm8k()
    train, test = ds.split(test_fraction=0.5, seed=0)
    index = {pid: i for i, pid in enumerate(ds.ids)}
    train_rows = [index[p] for p in train.ids]
    test_rows = [index[p] for p in test.ids]
    strong, weak = ds.strong or "", ds.weak or ""
    threshold = {"strong": strong, "weak": weak, "target_strong_pct": 50}
    from confluent_kafka.schema_registry import SchemaRegistryClient

    resolver = RegistryResolver(SchemaRegistryClient(settings.registry.client_config()))
    retrains = _Tail(
        settings,
        RETRAIN_REQUESTS.name,
        AvroSerde.for_contract(
            RETRAIN_REQUEST, subject=RETRAIN_REQUESTS.value_subject, resolver=resolver
        ),
    )
    announcements = _Tail(
        settings,
        MODEL_ANNOUNCEMENTS.name,
        AvroSerde.for_contract(
            MODEL_ANNOUNCEMENT, subject=MODEL_ANNOUNCEMENTS.value_subject, resolver=resolver
        ),
    )
    gateway = f"http://{settings.host}:{settings.gateway_port}"
    try:
        t = _stage(
            1,
            f"before: {len(test_rows)} held-out GSM8K prompts, untrained "
            "threshold strategy (text heuristic, 50% strong)",
        )
        _set_default(
            settings,
            keys.admin_key,
            "demo-baseline",
            "threshold",
            {**threshold, "scorer": "heuristic"},
        )
        before = _replay(settings, test_rows, feedback=False, shadow=0.0, label="before")
        _done(
            t,
            f"quality {before.mean_quality:.3f}, ${before.cost_per_1k:.2f} per 1k "
            f"requests, {before.strong_pct(strong):.0f}% strong",
        )

        t = _stage(
            2,
            f"traffic: {len(train_rows)} training prompts with recorded feedback "
            "and shadow outcomes (full-information labels)",
        )
        _set_default(settings, keys.admin_key, "demo-learned", "threshold", threshold)
        traffic = _replay(settings, train_rows, feedback=True, shadow=1.0, label="traffic")
        traffic_end_ms = int(time.time() * 1000)
        _done(
            t,
            f"{traffic.ok} served, {traffic.feedback} feedback + {traffic.shadow} "
            "shadow outcomes posted",
        )

        t = _stage(
            3,
            f"label: the labeler closes {settings.labeler_window_s:g}s windows "
            "into shards and asks for retraining",
        )
        # The request that covers this traffic: its shards reach the end of the replay.
        wait_s = settings.labeler_window_s + settings.labeler_lateness_s + 90

        def covers(r: dict[str, Any]) -> bool:
            end: Any = r.get("window_end")
            end_ms = int(end.timestamp() * 1000) if isinstance(end, datetime) else end
            return bool(
                r["model_name"] == settings.router_name
                and end_ms
                and end_ms >= traffic_end_ms - 5_000
            )

        request = retrains.wait_for(covers, timeout_s=wait_s)
        if request is None:
            # Below the labeler's threshold (or its timer is far off): ask ourselves.
            from routeiq_cli.labeling import publish_retrain_request

            click.echo(
                f"      no automatic request covering the traffic within {wait_s:.0f}s; "
                "requesting retraining over every shard"
            )
            request = publish_retrain_request(settings, settings.router_name)
        _done(
            t,
            f"retrain request {request['request_id'][:12]}… ({request['reason']}): "
            f"{len(request['shard_manifests'])} shards, {request['example_count']} "
            "rows (graded or not)",
        )

        t = _stage(
            4, "train: kNN/SVM/MLP/MF, evaluated on the newest 20%, gated against the champion"
        )
        # The trainer may also be busy with an earlier request (a threshold crossed mid-
        # traffic): what counts is the version trained for *this* request.
        trained = _trained_version(settings, request["request_id"], timeout_s=300)
        announced = None
        if trained is not None:
            announced = announcements.wait_for(
                lambda r: r["model_name"] == settings.router_name and r["version"] == trained,
                timeout_s=60,
            )
        if announced is None:
            click.echo(
                "      no new champion: "
                + (
                    f"the gate held challenger {trained}"
                    if trained
                    else "the trainer registered no router for this request (too few labelled "
                    "rows, or no query the routers had not seen: a repeated demo)"
                )
                + "; the current champion keeps serving — see .routeiq/logs/trainer.log"
            )
            version = httpx.get(f"{gateway}/health/ready").json()["sync"]["active_version"]
        else:
            version = announced["version"]
            metrics = announced["metrics"]
            _done(
                t,
                f"{announced['router_type']} {version} announced: validation APGR "
                f"{metrics.get('apgr', float('nan')):.3f} ({announced['reason']})",
            )

        t = _stage(5, "swap: gateways verify, probe and hot-swap")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            sync = httpx.get(f"{gateway}/health/ready", timeout=5).json()["sync"]
            if sync["active_version"] == version:
                break
            time.sleep(0.5)
        else:
            raise DemoError(f"the gateway did not activate {version}: {sync['last']}")
        _done(t, f"gateway serves {version}")

        t = _stage(6, "after: the same held-out prompts, learned router, 50% strong")
        after = _replay(settings, test_rows, feedback=False, shadow=0.0, label="after")
        _done(
            t,
            f"quality {after.mean_quality:.3f}, ${after.cost_per_1k:.2f} per 1k "
            f"requests, {after.strong_pct(strong):.0f}% strong",
        )
    finally:
        retrains.close()
        announcements.close()
        # Put the configured default back, whatever happened (best effort).
        with contextlib.suppress(DemoError, httpx.HTTPError):
            _set_default(settings, keys.admin_key, "threshold", "threshold", threshold)

    t = _stage(7, "report")
    click.echo(f"      {'':<34} {'quality':>8} {'$ per 1k':>9} {'strong %':>9}")
    for label, s in (("default strategy (untrained)", before), ("learned router", after)):
        click.echo(
            f"      {label:<34} {s.mean_quality:>8.3f} {s.cost_per_1k:>9.2f} "
            f"{s.strong_pct(strong):>9.1f}"
        )
    always_strong = float(test.column(strong).mean())
    always_weak = float(test.column(weak).mean())
    click.echo(
        f"      {'(always strong / always weak)':<34} {always_strong:>8.3f} / {always_weak:.3f}"
    )
    try:
        from routeiq_cli.evaluate import held_out_quality, load_bundles

        (bundle,) = load_bundles([], None, settings.router_name, version).values()
        _, intervals = held_out_quality(
            bundle, "gsm8k:test", cache_dir=settings.state / "eval-cache"
        )
        iv = intervals["apgr"]
        click.echo(
            f"      offline APGR of {version} on the held-out half: {iv.value:.3f} "
            f"(95% CI {iv.low:.3f}–{iv.high:.3f})"
        )
    except RouteIQError as exc:
        click.echo(f"      (offline evaluation unavailable: {exc})")
    click.secho(f"\ndemo finished in {time.monotonic() - total:.0f}s", bold=True)
