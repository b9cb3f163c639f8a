"""The causal-LM router from production labels to a real gateway.

GSM8K traffic, as the gateway would log it with a query key and shadow grades of both models,
is written as training shards (no text in them). The trainer's real path joins the shards to
the prompts by query key, trains the router (SFT then DPO, LoRA) on a tiny causal LM built
here, logs the evaluation table, signs and registers the bundle in S3 and MLflow; promoted,
it is announced, and a gateway verifies and probes it, scores it in a worker process (torch
never enters the gateway's own process) and routes each query to the model its policy label
maps to.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from e2e.test_rollout import ask, wait_active
from integration.gateway.conftest import GatewayHandle
from integration.trainer.helpers import Harness
from mlflow import MlflowClient
from routeiq.kafka import make_consumer
from routeiq.routing.datasets import load_named
from routeiq.routing.prepare import merge_repeats
from routeiq.routing.querykey import join_texts
from routeiq.shards import read_tables
from routeiq_trainer.data import known_prices
from routeiq_trainer.pipeline.fitting import REPORT_FILE
from routeiq_trainer.synthetic import SyntheticPlan, generate
from support.causallm import PARAMS, tiny_base
from support.kafka import read_messages

pytestmark = pytest.mark.e2e

# GSM8K's cheap and strong models, which are also the local model file's candidates.
CHEAP, STRONG = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
QUERY_KEY = "the fleet's query key for this test (32+ bytes)"
ROWS = 240


def test_causallm_trains_from_shards_and_serves_through_the_gateway(
    harness_factory: Callable[..., Harness],
    gateway_factory: Callable[..., GatewayHandle],
    private_bucket: str,
    tmp_path: Path,
) -> None:
    harness = harness_factory(
        shards_bucket=private_bucket,
        query_key=QUERY_KEY,
        min_train_examples=20,
        min_validation_examples=20,
    )
    services = harness.services
    assert services.embeddings is not None
    # Every decision graded for both models (shadow_fraction=1), as shadow sampling and the
    # blind judge give them, logged with its query key: the rows the labeler would write.
    ds = merge_repeats(load_named("gsm8k"))
    written = generate(
        ds,
        features=services.embeddings,
        store=services.store,
        bucket=private_bucket,
        prices=known_prices({}),
        plan=SyntheticPlan(
            seed=5,
            start_ms=int(time.time() * 1000) - ROWS * 1000,
            shadow_fraction=1.0,
            limit=ROWS,
        ),
        query_key=QUERY_KEY.encode(),
    )
    table, _ = read_tables(services.store, private_bucket, written)
    assert table.num_rows == ROWS
    texts = join_texts(QUERY_KEY.encode(), table.column("query_key").to_pylist(), ds.prompts)
    assert None not in texts  # every row's key names one GSM8K prompt; no row holds a text
    # A smoke model: random weights, its vocabulary from these rows' prompts.
    base = tiny_base(tmp_path / "base", [t for t in texts if t])

    params = {f"causallm.{k}": str(v) for k, v in PARAMS.items()} | {
        "causallm.base_model": str(base),
        "causallm.cheap": CHEAP,
        "causallm.strong": STRONG,
        # A budget for a 2-core machine shared with the whole stack and the test's own load.
        "causallm.latency_budget_ms": "5000",
        "texts": "gsm8k",
        "validation_fraction": "0.25",
    }
    request = harness.request(
        router_types=("causallm",), shard_manifests=tuple(written), params=params
    )
    outcome = services.pipeline.process(request)
    assert outcome.info.router_type == "causallm"
    assert outcome.info.tags["routeiq.source"] == "shards"
    # The trainer's evaluation on its held-out (newest) rows: the policy table, after SFT and
    # after DPO, logged with the router's run (and in the trainer's log).
    assert outcome.info.run_id is not None
    table, metrics = _policy_report(harness, outcome.info.run_id, tmp_path)
    print(table)
    assert "accuracy (router)" in table
    assert "accuracy always-strong" in table
    assert table.splitlines()[0].split() == ["|", "sft", "|", "dpo"]  # one column a stage
    assert 0.0 <= metrics["dpo.accuracy"] <= 1.0

    name = harness.model_name
    gw = gateway_factory(
        routeiq={"router_name": name, "default_strategy": "learned"},
        ROUTEIQ_GATEWAY_ANNOUNCEMENTS_TOPIC=harness.settings.announcements_topic,
    )
    if not outcome.announced:  # a smoke model need not beat random: promote it by hand
        services.ops.promote(name, outcome.version, by="causallm-e2e")
    wait_active([gw], outcome.version, timeout=240)

    # The registered bundle, verified as every gateway verifies it, scored in process.
    bundle = services.ops.load(outcome.info, tmp_path / "bundle")
    queries = [t for t in texts if t][::12]
    expected = bundle.router.predict(services.embeddings.embed(queries), queries)
    served, versions = {}, []
    for text in queries:
        response = ask(gw, text)
        assert response.status_code == 200, response.text
        assert response.headers["x-routeiq-strategy"] == "learned"
        versions.append(response.headers["x-routeiq-router-version"])
        served[text] = response.headers["x-routeiq-model"]
    # Why each was routed as it was: the decisions on the gateway's topic.
    consumer = make_consumer(harness.stack.kafka, group_id=f"{name}-e2e", client_id="e2e")
    consumer.subscribe([gw.decisions_topic])
    reasons = [
        gw.decision_serde.decode(m.value())["selection_reason"]
        for m in read_messages(consumer, len(served), timeout=60, skip_errors=True)
    ]
    assert versions == [outcome.version] * len(served), reasons
    assert all("causallm router over 2 candidates" in r for r in reasons), reasons
    # The mapper's choice: the candidate with the larger policy probability (the trainer
    # orders candidates by name, so the bundle's order is not the oracle's cheap-first one).
    models = bundle.router.models
    want = {t: models[int(p.argmax())] for t, p in zip(queries, expected, strict=True)}
    # Exploration (ε = 0.05) may pick the other model now and then; the rest follow the router.
    agree = sum(served[t] == want[t] for t in served)
    assert agree >= len(served) - 2, (served, want)

    ready = httpx.get(f"{gw.url}/health/ready", timeout=10).json()
    assert ready["router"]["router_type"] == "causallm"
    # The gateway's own process never imported torch: the worker process scores.
    assert "torch" not in Path(f"/proc/{gw.process.proc.pid}/maps").read_text()


def _policy_report(harness: Harness, run_id: str, tmp: Path) -> tuple[str, dict[str, float]]:
    """The held-out table the trainer logged with the causallm run under the request's run
    (an MLflow artifact), and that run's metrics."""
    client = MlflowClient(tracking_uri=harness.settings.mlflow_tracking_uri)
    experiment = client.get_run(run_id).info.experiment_id
    (child,) = client.search_runs(
        [experiment], filter_string=f"tags.`mlflow.parentRunId` = '{run_id}'"
    )
    path = client.download_artifacts(child.info.run_id, f"evaluation/{REPORT_FILE}", str(tmp))
    return Path(path).read_text(), child.data.metrics
