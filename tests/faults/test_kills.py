"""Processes killed with SIGKILL mid-work: supervisord restarts them and nothing is lost."""

from __future__ import annotations

import time
import uuid

import httpx
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient
from faults.harness import Ledger, Load, Row, Stack, kills, tally, under_load, wait_for
from integration.trainer.helpers import gsm8k_rows, write_windows
from mlflow import MlflowClient
from routeiq.contracts.topics import FEEDBACK_EVENTS, RETRAIN_REQUESTS, ROUTER_DECISIONS
from routeiq.kafka import make_admin, make_consumer
from routeiq.routing.datasets import load_gsm8k
from routeiq.routing.featurestore import FeatureStore
from routeiq.routing.featurizer import minilm_pipeline, read_pipeline
from routeiq.storage import ArtifactStore, make_minio
from routeiq_cli.retrain import publish_retrain_request


def lag(stack: Stack, group: str, topics: list[str]) -> int:
    """Records in ``topics`` that ``group`` has not committed past."""
    admin: AdminClient = make_admin(stack.kafka)
    committed = (
        admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
        .result()
        .topic_partitions
    )
    done = {(tp.topic, tp.partition): tp.offset for tp in committed}
    reader = make_consumer(stack.kafka, group_id=f"faults-{uuid.uuid4().hex[:8]}", client_id="f")
    try:
        behind = 0
        for topic in topics:
            for p in reader.list_topics(topic, timeout=30).topics[topic].partitions:
                _, high = reader.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
                behind += max(0, high - max(done.get((topic, p), 0), 0))
        return behind
    finally:
        reader.close()


def caught_up(stack: Stack, row: Row, group: str, topics: list[str], timeout_s: float) -> None:
    """Wait for ``group`` to commit to the end; what it never reaches counts as lost."""
    deadline = time.monotonic() + timeout_s
    while (behind := lag(stack, group, topics)) and time.monotonic() < deadline:
        time.sleep(2)
    if behind:
        row.lost += behind
        row.notes.append(f"{group} still {behind} records behind after {timeout_s:.0f}s")


def restarted(stack: Stack, component: str, old_pid: int) -> None:
    wait_for(
        lambda: stack.state(component) == "RUNNING" and stack.pid(component) != old_pid,
        timeout_s=90,
        what=f"supervisord to restart {component}",
    )
    stack.wait_healthy([component])


@kills("labeler")
def test_labeler_killed_mid_work(stack: Stack, row: Row) -> None:
    under_load(stack, row, lambda: restarted(stack, "labeler", stack.kill("labeler")))
    caught_up(
        stack,
        row,
        "routeiq-labeler",
        [ROUTER_DECISIONS.name, FEEDBACK_EVENTS.name],
        timeout_s=120,
    )


def test_gateway_killed_with_events_in_its_spool(stack: Stack, row: Row) -> None:
    """Kafka down, the gateway spools; SIGKILL it; Kafka back: the restarted gateway replays
    its spool and every event a client was answered for arrives once."""
    ledger = Ledger(stack.kafka, [ROUTER_DECISIONS.name, FEEDBACK_EVENTS.name])
    stack.supervisor.stop("kafka")
    try:
        with Load(stack.gateway) as load:
            wait_for(
                lambda: (
                    httpx.get(f"{stack.gateway}/health/ready", timeout=10).json()["kafka"][
                        "spool_depth"
                    ]
                    >= 50
                ),
                timeout_s=120,
                what="events in the gateway's spool",
            )
        restarted(stack, "gateway", stack.kill("gateway"))
    finally:
        stack.supervisor.start("kafka")
        stack.wait_healthy(["kafka"])
    stack.wait_drained()
    tally(row, load, ledger)
    stack.wait_healthy(["labeler", "analytics", "trainer"])


def _shards(stack: Stack) -> list[str]:
    """Labelled GSM8K decisions in the stack's shards bucket (the trainer reads only there),
    as the labeler writes them: a day of windows in November 2025, apart from live ones."""
    ds = load_gsm8k()
    # The stack's own feature pipeline: the trainer only learns from rows embedded with it.
    features = stack.settings.features
    featurizer = (
        minilm_pipeline() if features == "minilm" else read_pipeline(stack.settings.features_dir)
    )
    embeddings = FeatureStore(
        cache_dir=stack.settings.state / "faults-cache", featurizer=featurizer
    ).embed(ds.prompts)
    rows = [{**r, "embedding_model": featurizer.id} for r in gsm8k_rows(ds, embeddings)]
    store = ArtifactStore(make_minio(stack.settings.s3))
    return write_windows(store, stack.settings.shards_bucket, rows)


def _metric(url: str, name: str, *labels: str) -> float:
    """The sum of the samples of ``name`` whose line holds every one of ``labels``."""
    total = 0.0
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name) and all(label in line for label in labels):
            total += float(line.rsplit(" ", 1)[1])
    return total


@kills("trainer")
def test_trainer_killed_mid_training(stack: Stack, row: Row) -> None:
    """SIGKILL while a retrain request is in work: the restarted trainer takes the request up
    again (its offset was never committed) and finishes it."""
    manifests = _shards(stack)
    trainer = stack.url("trainer")
    name = f"faults-{uuid.uuid4().hex[:6]}"
    publish_retrain_request(
        stack.settings,
        name,
        router_types=["knn"],
        manifests=manifests,
    )
    row.sent = 1
    wait_for(
        lambda: _metric(trainer, "routeiq_trainer_busy") == 1,
        timeout_s=120,
        what="the trainer to start on the request",
    )
    restarted(stack, "trainer", stack.kill("trainer"))
    mlflow = MlflowClient(tracking_uri=stack.url("mlflow"))
    try:
        wait_for(
            lambda: bool(mlflow.search_model_versions(f"name = '{name}'")),
            timeout_s=600,
            what="the restarted trainer to finish the request",
        )
    except AssertionError as exc:
        row.lost += 1
        row.notes.append(str(exc))
    caught_up(stack, row, "routeiq-trainer", [RETRAIN_REQUESTS.name], timeout_s=60)
