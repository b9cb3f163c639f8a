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
from dataclasses import dataclass, replace
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
from routeiq.routing.datasets import RoutingDataset, load_gsm8k, load_llmrouter

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


@dataclass
class Scenario:
    """What the loop serves before and after, on which data, and how it is judged."""

    ds: RoutingDataset  # one table: the train and test rows index into it
    train_rows: list[int]
    test_rows: list[int]
    before: tuple[str, str, dict[str, Any]]  # (name, kind, params) of the untrained strategy
    before_text: str
    after: tuple[str, str, dict[str, Any]]
    after_text: str
    restore: tuple[str, str, dict[str, Any]]  # the stack's configured default
    held_out: str  # the offline evaluation's dataset spec
    strong: str | None = None  # the two-model scenario reports strong-call shares


def _routellm_scenario() -> Scenario:
    ds = load_gsm8k()
    train, test = ds.split(test_fraction=0.5, seed=0)
    index = {pid: i for i, pid in enumerate(ds.ids)}
    threshold = {"strong": ds.strong, "weak": ds.weak, "target_strong_pct": 50}
    return Scenario(
        ds=ds,
        train_rows=[index[p] for p in train.ids],
        test_rows=[index[p] for p in test.ids],
        before=("demo-baseline", "threshold", {**threshold, "scorer": "heuristic"}),
        before_text="untrained threshold strategy (text heuristic, 50% strong)",
        after=("demo-learned", "threshold", threshold),
        after_text="learned router, 50% strong",
        restore=("threshold", "threshold", threshold),
        held_out="gsm8k:test",
        strong=ds.strong,
    )


def _llmrouter_scenario(train_queries: int) -> Scenario:
    train, test = load_llmrouter(split="train"), load_llmrouter(split="test")
    # One table (train rows first, then test) so both replays read the same dataset; the
    # test split lists the models in another order, so take its columns by name.
    cols = [test.models.index(m) for m in train.models]
    import numpy as np

    ds = replace(
        train,
        name="llmrouter",
        ids=[*train.ids, *test.ids],
        prompts=[*train.prompts, *test.prompts],
        scores=np.vstack([train.scores, test.scores[:, cols]]),
        responses=[*train.responses, *test.responses],
    )
    n = min(train_queries, len(train)) if train_queries > 0 else len(train)
    # A seeded shuffle, not the first n rows: dcrouter_train lists its tasks one after the
    # other, so its first 2,000 rows miss whole tasks of the test split (a kNN trained on
    # them serves dcrouter_test at 0.52 at half the cost, on a random 2,000 at 0.57), and
    # production traffic mixes tasks over time, which the trainer's newest-20% validation
    # assumes.
    order = np.random.default_rng(0).permutation(len(train))[:n]
    return Scenario(
        ds=ds,
        train_rows=[int(i) for i in order],
        test_rows=list(range(len(train), len(train) + len(test))),
        before=("strongest", "", {}),
        before_text="the best single model (strongest prior quality), no routing",
        after=("learned", "learned", {}),  # its target is set from the before stage's cost
        after_text=(
            "learned router over 9 (with the gateways' exploration), λ held at half the best "
            "single model's estimated cost"
        ),
        restore=("learned", "learned", {}),  # filled from the model file
        held_out="llmrouter-test",
    )


def run_demo(settings: StackSettings, *, train_queries: int = 2000) -> None:
    total = time.monotonic()
    problems = {k: v for k, v in runner.health(settings).items() if v is not None}
    if problems:
        raise DemoError(f"the stack is not healthy ({problems}); run `make up` first")
    keys = load_or_create(settings)
    scenario = (
        _llmrouter_scenario(train_queries)
        if settings.candidates == "llmrouter"
        else _routellm_scenario()
    )
    ds = scenario.ds
    scenario = replace(scenario, restore=_configured(settings, scenario.restore))
    epsilon = _configured_epsilon(settings)
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
            params["target"]["cost_per_1k_usd"] = 0.5 * _estimated_cost_per_1k(
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
    _report(settings, scenario, before, after, version)
    click.secho(f"\ndemo finished in {time.monotonic() - total:.0f}s", bold=True)


def _configured(
    settings: StackSettings, strategy: tuple[str, str, dict[str, Any]]
) -> tuple[str, str, dict[str, Any]]:
    """``strategy`` with the parameters the stack's model file gives it (what to restore)."""
    import yaml

    from routeiq_cli.stack.components import gateway_config_path

    path = gateway_config_path(settings)
    if not path.is_file():
        return strategy
    for spec in (yaml.safe_load(path.read_text()).get("routeiq") or {}).get("strategies", []):
        if spec.get("name") == strategy[0]:
            return spec["name"], spec["kind"], dict(spec.get("params") or {})
    return strategy


def _configured_epsilon(settings: StackSettings) -> float | None:
    """The exploration rate of the stack's model file (what the gateways started with)."""
    import yaml

    from routeiq_cli.stack.components import gateway_config_path

    path = gateway_config_path(settings)
    if not path.is_file():
        return None
    value = (yaml.safe_load(path.read_text()).get("routeiq") or {}).get("epsilon")
    return None if value is None else float(value)


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
        from routeiq_cli.labeling import publish_retrain_request

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


def _estimated_cost_per_1k(
    settings: StackSettings, ds: RoutingDataset, rows: list[int], served: ReplayStats
) -> float:
    """What the gateway estimates the ``before`` stage's model costs per 1k of ``rows``."""
    from routeiq.routing.features import CHARS_PER_TOKEN

    model = served.by_model.most_common(1)[0][0]
    price = ds.prices[model]
    answer = 50  # expected_output_tokens in the stack's 9-model file
    per_request = [
        price.cost(max(1, round(len(ds.prompts[r]) / CHARS_PER_TOKEN)), answer) for r in rows
    ]
    return 1000.0 * sum(per_request) / len(per_request)


def _report(
    settings: StackSettings,
    scenario: Scenario,
    before: ReplayStats,
    after: ReplayStats,
    version: str,
) -> None:
    import numpy as np

    ds, rows = scenario.ds, scenario.test_rows
    scores = ds.scores[rows]
    header = f"      {'':<36} {'quality':>8} {'$ per 1k':>9}"
    if scenario.strong:
        header += f" {'strong %':>9}"
    click.echo(header)
    labels = (
        ("default strategy (untrained)", "learned router")
        if scenario.strong
        else ("best single model", "learned router")
    )
    for label, stats in zip(labels, (before, after), strict=True):
        line = f"      {label:<36} {stats.mean_quality:>8.3f} {stats.cost_per_1k:>9.3f}"
        if scenario.strong:
            line += f" {stats.strong_pct(scenario.strong):>9.1f}"
        click.echo(line)
    if scenario.strong:
        strong = ds.models.index(scenario.strong)
        weak = 1 - strong
        click.echo(
            f"      {'(always strong / always weak)':<36} {scores[:, strong].mean():>8.3f} / "
            f"{scores[:, weak].mean():.3f}"
        )
    else:
        # The per-query oracle: each prompt's best candidate (the cheapest among ties),
        # priced at the tokens the before stage used for that prompt.
        prices = [ds.prices[m] for m in ds.models]
        oracle_q, oracle_cost = [], []
        for i, row in enumerate(rows):
            best = np.flatnonzero(scores[i] >= scores[i].max() - 1e-12)
            j = min(best, key=lambda k: prices[k].input_per_m + prices[k].output_per_m)
            prompt, completion = before.usage.get(row, (0, 0))
            oracle_q.append(scores[i, j])
            oracle_cost.append(prices[j].cost(prompt, completion))
        click.echo(
            f"      {'per-query oracle (hindsight)':<36} {np.mean(oracle_q):>8.3f} "
            f"{1000 * np.mean(oracle_cost):>9.3f}"
        )
        ratio = after.cost_per_1k / before.cost_per_1k if before.cost_per_1k else float("nan")
        click.echo(
            f"      learned router: {after.mean_quality - before.mean_quality:+.3f} quality at "
            f"{ratio:.0%} of the best single model's cost; served {dict(after.by_model)}"
        )
    try:
        from routeiq_cli.evaluate import held_out_quality, load_bundles

        (bundle,) = load_bundles([], None, settings.router_name, version).values()
        result, intervals = held_out_quality(
            bundle, scenario.held_out, cache_dir=settings.state / "eval-cache"
        )
        if "apgr" in intervals:
            iv = intervals["apgr"]
            click.echo(
                f"      offline APGR of {version} on the held-out half: {iv.value:.3f} "
                f"(95% CI {iv.low:.3f}–{iv.high:.3f})"
            )
        else:
            m = result.metrics
            click.echo(
                f"      offline on {scenario.held_out}: AIQ {m['aiq']:.3f} (oracle "
                f"{m['oracle_aiq']:.3f}), quality at 50% of the best single model's cost "
                f"{m['quality_at_50pct_cost']:.3f} (best single "
                f"{m['best_single_quality']:.3f}, oracle {m['oracle_quality']:.3f})"
            )
    except RouteIQError as exc:
        click.echo(f"      (offline evaluation unavailable: {exc})")
