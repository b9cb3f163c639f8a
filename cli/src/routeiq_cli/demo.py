"""`make demo`: the whole loop on the running stack, printed stage by stage.

With the stack's 9 candidates (``ROUTEIQ_STACK_CANDIDATES=llmrouter``, what ``make demo``
starts), on LLMRouter's data:

1. before  dcrouter_test (500 prompts) served by the best single model (the ``strongest``
           strategy: highest prior quality): quality, cost per 1k requests
2. traffic dcrouter_train prompts with recorded feedback and every other candidate's outcome
           (shadow calls: full-information labels over all 9)
3. label   the labeler windows it into Parquet shards and asks for retraining
4. train   the trainer trains kNN (the router that leads every offline measure on this
           data), evaluates the quality-cost curve on the newest rows, gates on AIQ against
           the champion and announces
5. swap    every gateway verifies, probes and hot-swaps the new router
6. after   the same 500 prompts on the cost-aware learned strategy, λ calibrated live to half
           the best single model's estimated cost
7. report  quality and cost per 1k against the best single model and the per-query oracle,
           and the router's offline AIQ and quality at half the cost on dcrouter_test

With the two RouteLLM candidates (``routellm``: GPT-4 and Mixtral), the same loop on GSM8K's
halves, a 50% strong-call threshold before and after, and the offline APGR with a bootstrap
CI. The held-out requests post no feedback, so they never become training data.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
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
from routeiq.routing.datasets import RoutingDataset

from routeiq_cli.clients import registry_client, topic_serde
from routeiq_cli.demo_report import estimated_cost_per_1k, print_report
from routeiq_cli.demo_scenarios import (
    configured,
    configured_epsilon,
    llmrouter_scenario,
    routellm_scenario,
)
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
    settings: StackSettings,
    ds: RoutingDataset,
    rows: list[int],
    *,
    feedback: bool,
    shadow: float,
    label: str,
) -> ReplayStats:
    from tqdm import tqdm

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
    from routeiq_cli.trainer import trainer_services

    with trainer_services() as services:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = services.ops.registry.find_by_request(settings.router_name, request_id)
            if found:
                return found[-1].version
            time.sleep(2.0)
        return None


def _set_default(
    settings: StackSettings,
    admin_key: str,
    name: str,
    kind: str,
    params: dict[str, Any],
    *,
    epsilon: float | None = None,
) -> None:
    register = [] if kind == "" else [{"name": name, "kind": kind, "params": params}]
    body: dict[str, Any] = {"register": register, "default": name, "ab": {}}
    if epsilon is not None:
        body["epsilon"] = epsilon
    for i in range(settings.gateway_replicas):
        r = httpx.put(
            f"http://{settings.host}:{settings.gateway_port + i}/admin/strategies",
            headers={"authorization": f"Bearer {admin_key}"},
            timeout=10,
            json=body,
        )
        if r.status_code != 200:
            raise DemoError(f"cannot set the default strategy: {r.status_code} {r.text}")


def run_demo(settings: StackSettings, *, train_queries: int = 2000) -> None:
    total = time.monotonic()
    problems = {k: v for k, v in runner.health(settings).items() if v is not None}
    if problems:
        raise DemoError(f"the stack is not healthy ({problems}); run `make up` first")
    keys = load_or_create(settings)
    scenario = (
        llmrouter_scenario(train_queries)
        if settings.candidates == "llmrouter"
        else routellm_scenario()
    )
    ds = scenario.ds
    scenario = replace(scenario, restore=configured(settings, scenario.restore))
    epsilon = configured_epsilon(settings)
    resolver = RegistryResolver(registry_client(settings))
    retrains = _Tail(
        settings,
        RETRAIN_REQUESTS.name,
        topic_serde(settings, RETRAIN_REQUEST, RETRAIN_REQUESTS.name, resolver=resolver),
    )
    announcements = _Tail(
        settings,
        MODEL_ANNOUNCEMENTS.name,
        topic_serde(settings, MODEL_ANNOUNCEMENT, MODEL_ANNOUNCEMENTS.name, resolver=resolver),
    )
    gateway = f"http://{settings.host}:{settings.gateway_port}"

    def describe(stats: ReplayStats) -> str:
        text = f"quality {stats.mean_quality:.3f}, ${stats.cost_per_1k:.3f} per 1k requests"
        if scenario.strong:
            text += f", {stats.strong_pct(scenario.strong):.0f}% strong"
        return text

    try:
        t = _stage(1, f"before: {len(scenario.test_rows)} held-out prompts, {scenario.before_text}")
        # Without exploration: the baseline is exactly what it says (the best single model).
        _set_default(
            settings,
            keys.admin_key,
            *scenario.before,
            epsilon=0.0 if scenario.strong is None else None,
        )
        before = _replay(
            settings, ds, scenario.test_rows, feedback=False, shadow=0.0, label="before"
        )
        _done(t, describe(before))

        t = _stage(
            2,
            f"traffic: {len(scenario.train_rows)} training prompts with recorded feedback "
            f"and shadow outcomes of all {len(ds.models)} candidates (full-information labels)",
        )
        _set_default(settings, keys.admin_key, *scenario.restore, epsilon=epsilon)
        traffic = _replay(
            settings, ds, scenario.train_rows, feedback=True, shadow=1.0, label="traffic"
        )
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
        request = _retrain_request(settings, retrains, traffic_end_ms)
        _done(
            t,
            f"retrain request {request['request_id'][:12]}… ({request['reason']}): "
            f"{len(request['shard_manifests'])} shards, {request['example_count']} "
            "rows (graded or not)",
        )

        import json

        types = "/".join(
            t.upper() if t != "knn" else "kNN" for t in json.loads(settings.retrain_router_types)
        )
        t = _stage(4, f"train: {types}, evaluated on the newest 20%, gated against the champion")
        version = _train(settings, request, announcements, gateway, t)

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

        t = _stage(6, f"after: the same held-out prompts, {scenario.after_text}")
        name, kind, params = scenario.after
        if scenario.strong is None:
            # Half of what always serving the best single model would cost, as the gateway
            # estimates costs (prompt chars / 4 plus the configured answer length).
            params = {"fallback": "strongest", "target": {"cost_per_1k_usd": 0.0}}
            params["target"]["cost_per_1k_usd"] = 0.5 * estimated_cost_per_1k(
                settings, ds, scenario.test_rows, before
            )
        _set_default(settings, keys.admin_key, name, kind, params)
        after = _replay(settings, ds, scenario.test_rows, feedback=False, shadow=0.0, label="after")
        _done(t, describe(after))
    finally:
        retrains.close()
        announcements.close()
        # Put the configured default back, whatever happened (best effort).
        with contextlib.suppress(DemoError, httpx.HTTPError):
            _set_default(settings, keys.admin_key, *scenario.restore, epsilon=epsilon)

    t = _stage(7, "report")
    print_report(settings, scenario, before, after, version)
    click.secho(f"\ndemo finished in {time.monotonic() - total:.0f}s", bold=True)


def _retrain_request(
    settings: StackSettings, retrains: _Tail, traffic_end_ms: int
) -> dict[str, Any]:
    """The labeler's request that covers the traffic (its shards reach the end of it)."""
    wait_s = settings.labeler_window_s + settings.labeler_lateness_s + 90

    def covers(r: dict[str, Any]) -> bool:
        end: Any = r.get("window_end")
        end_ms = int(end.timestamp() * 1000) if isinstance(end, datetime) else end
        return bool(
            r["model_name"] == settings.router_name and end_ms and end_ms >= traffic_end_ms - 5_000
        )

    request = retrains.wait_for(covers, timeout_s=wait_s)
    if request is None:
        # Below the labeler's threshold (or its timer is far off): ask ourselves.
        from routeiq_cli.retrain import publish_retrain_request

        click.echo(
            f"      no automatic request covering the traffic within {wait_s:.0f}s; "
            "requesting retraining over every shard"
        )
        request = publish_retrain_request(settings, settings.router_name)
    return request


def _train(
    settings: StackSettings,
    request: dict[str, Any],
    announcements: _Tail,
    gateway: str,
    started: float,
) -> str:
    """The version trained for ``request`` once announced, else the one still serving."""
    # The trainer may also be busy with an earlier request (a threshold crossed mid-
    # traffic): what counts is the version trained for *this* request.
    trained = _trained_version(settings, request["request_id"], timeout_s=420)
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
        if version is None:
            raise DemoError("no router is active: nothing to compare with")
        return str(version)
    metrics = announced["metrics"]
    shown = ", ".join(
        f"{k} {metrics[k]:.3f}" for k in ("aiq", "quality_at_50pct_cost", "apgr") if k in metrics
    )
    _done(
        started,
        f"{announced['router_type']} {announced['version']} announced: validation {shown} "
        f"({announced['reason']})",
    )
    return str(announced["version"])
