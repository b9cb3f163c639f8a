"""The trainer worker against the real stack: Kafka requests in, MLflow versions, signed
bundles in S3 and announcements out; idempotent on redelivery; gated; tamper-proof."""

from __future__ import annotations

import hashlib
import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from integration.trainer.helpers import expected_device
from mlflow import MlflowClient
from routeiq.routing.bundle import MANIFEST, SIGNATURE, BundleError
from routeiq_trainer.bundles import bundle_prefix
from routeiq_trainer.core.tags import TAG_ANNOUNCED, TAG_GATE, TAG_GATE_REASON, TAG_PREVIOUS
from routeiq_trainer.wiring import build_services

pytestmark = pytest.mark.integration


def _counter(harness, name: str, **labels: str) -> float:
    value = harness.services.metrics.registry.get_sample_value(name, labels or None)
    return value or 0.0


def test_a_request_gives_a_run_a_version_a_bundle_and_an_announcement(
    harness_factory, gsm8k_shards
) -> None:
    harness = harness_factory()
    harness.start_worker()
    request = harness.request()  # no manifests listed: every shard in the bucket
    harness.produce(request)
    harness.wait_handled(1)

    registry = harness.services.registry
    (version,) = registry.versions(harness.model_name)
    assert version.tags["routeiq.request_id"] == request.request_id
    assert version.version == request.version
    assert version.is_champion
    assert version.router_type == "knn"
    assert version.tags["routeiq.shard_count"] == str(len(gsm8k_shards[1]))
    assert version.tags["routeiq.git_commit"]
    assert int(version.tags["routeiq.data_window_start_ms"]) < int(
        version.tags["routeiq.data_window_end_ms"]
    )
    assert version.metrics["apgr"] > 0.6

    # The MLflow run: params (device, de-duplication), metrics, the bundle and the curve.
    client = MlflowClient(tracking_uri=harness.settings.mlflow_tracking_uri)
    run = client.get_run(version.run_id)
    assert run.data.params["device"] == expected_device()
    assert run.data.params["duplicates_dropped"] == "25"
    assert run.data.metrics["apgr"] == pytest.approx(version.metrics["apgr"])
    assert "random.apgr" in run.data.metrics
    assert "knn.cpt50" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "bundle")}
    assert {"bundle/manifest.json", "bundle/manifest.sig", "bundle/knn.npz"} <= artifacts
    plots = {a.path: a for a in client.list_artifacts(run.info.run_id, "plots")}
    # RouteLLM's strong-call curve, and (every candidate graded) the quality-cost curve.
    assert set(plots) == {"plots/curve.png", "plots/cost-quality.png"}
    for png in plots.values():
        local = Path(client.download_artifacts(run.info.run_id, png.path))
        assert local.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == f"routeiq/{harness.model_name}"

    # The bundle in the versioned bucket, verified as a gateway would.
    prefix = bundle_prefix(harness.model_name, request.version)
    keys = set(harness.services.store.list_keys(harness.settings.models_bucket, prefix))
    # The router's file and its feature pipeline's spec (MiniLM: packaged, no weights).
    assert {
        prefix + MANIFEST,
        prefix + SIGNATURE,
        prefix + "knn.npz",
        prefix + "features.json",
    } == keys
    manifest_bytes = harness.services.store.get_bytes(
        harness.settings.models_bucket, prefix + MANIFEST
    )
    manifest = json.loads(manifest_bytes)
    assert len(manifest["calibration"]["win_score_quantiles"]) == 101
    assert manifest["training"]["request_id"] == request.request_id
    assert len(manifest["probes"]) >= 5

    # The announcement, keyed by model name, pinning that exact manifest.
    (announcement,) = harness.read("announcement", expect=1)
    assert announcement["_key"] == harness.model_name
    assert announcement["action"] == "PROMOTE"
    assert announcement["version"] == request.version
    assert announcement["previous_version"] is None
    assert announcement["mlflow_model_version"] == version.number
    assert announcement["bundle"]["prefix"] == prefix
    assert announcement["bundle"]["manifest_sha256"] == hashlib.sha256(manifest_bytes).hexdigest()
    signature = json.loads(
        harness.services.store.get_bytes(harness.settings.models_bucket, prefix + SIGNATURE)
    )
    assert announcement["signature"] == signature
    assert announcement["metrics"]["apgr"] == pytest.approx(version.metrics["apgr"])
    assert harness.committed_offset() == 1
    assert _counter(harness, "routeiq_trainer_versions_registered_total") == 1
    assert _counter(harness, "routeiq_trainer_announcements_total", action="PROMOTE") == 1


def test_a_redelivered_request_creates_no_second_version(harness_factory) -> None:
    harness = harness_factory()
    request = harness.request()
    # The worker died after registering (here: the pipeline ran outside Kafka), so the
    # offset was never committed and the request comes again, twice.
    first = harness.services.pipeline.process(request)
    assert first.status == "trained"
    assert first.announced
    harness.start_worker()
    harness.produce(request)
    harness.produce(request)
    harness.wait_handled(2)

    versions = harness.services.registry.versions(harness.model_name)
    assert [v.number for v in versions] == [first.mlflow_version]
    assert len(harness.read("announcement", expect=1)) == 1
    assert _counter(harness, "routeiq_trainer_requests_total", outcome="duplicate") == 2
    assert harness.committed_offset() == 2


def test_a_worker_that_died_before_the_gate_finishes_the_job_without_retraining(
    harness_factory,
) -> None:
    harness = harness_factory()
    request = harness.request()
    first = harness.services.pipeline.process(request)
    registry = harness.services.registry
    # Undo everything after registration, as if the worker had died right after it: no gate
    # verdict, no alias, no announcement recorded.
    client = registry.client
    for tag in (TAG_GATE, TAG_GATE_REASON, TAG_PREVIOUS, TAG_ANNOUNCED):
        client.delete_model_version_tag(harness.model_name, first.mlflow_version, tag)
    client.delete_registered_model_alias(harness.model_name, "champion")

    harness.start_worker()
    harness.produce(request)
    harness.wait_handled(1)
    (version,) = registry.versions(harness.model_name)
    assert version.number == first.mlflow_version
    assert version.is_champion
    assert version.tags[TAG_GATE] == "passed"
    assert version.tags[TAG_ANNOUNCED] not in {"", "superseded"}
    assert _counter(harness, "routeiq_trainer_requests_total", outcome="resumed") == 1
    # One announcement from the first attempt, one from the resumed one: same version.
    assert {a["version"] for a in harness.read("announcement", expect=2)} == {request.version}


def test_a_worse_challenger_is_registered_but_not_announced(harness_factory) -> None:
    harness = harness_factory()
    harness.start_worker()
    good = harness.request()
    harness.produce(good)
    harness.wait_handled(1)
    # A kNN that averages over every training query predicts the same for all: APGR 0.5.
    worse = harness.request(params={"knn.k": "100000", "knn.weighting": "uniform"})
    harness.produce(worse)
    harness.wait_handled(2)

    registry = harness.services.registry
    champion, challenger = registry.versions(harness.model_name)
    assert champion.is_champion
    assert not challenger.is_champion
    assert challenger.tags[TAG_GATE] == "held"
    assert f"champion {good.version}" in challenger.tags[TAG_GATE_REASON]
    assert challenger.metrics["apgr"] < champion.metrics["apgr"]
    assert TAG_ANNOUNCED not in challenger.tags
    assert [a["version"] for a in harness.read("announcement", expect=1)] == [good.version]
    assert _counter(harness, "routeiq_trainer_gate_held_total") == 1


def test_a_tampered_bundle_is_refused_with_the_reason(harness_factory, tmp_path) -> None:
    harness = harness_factory()
    outcome = harness.services.pipeline.process(harness.request())
    info = harness.services.registry.get(harness.model_name, outcome.version)
    store, bucket = harness.services.store, harness.settings.models_bucket
    prefix = bundle_prefix(harness.model_name, outcome.version)
    harness.services.ops.verify(info)  # intact: accepted

    # Change the router's arrays (a valid npz, different numbers) and upload it in place.
    original = store.get_bytes(bucket, prefix + "knn.npz")
    with np.load(io.BytesIO(original), allow_pickle=False) as arrays:
        changed = {k: arrays[k] for k in arrays.files}
    changed["quality"] = 1.0 - changed["quality"]
    buffer = io.BytesIO()
    np.savez(buffer, **changed)
    store.put_bytes(bucket, prefix + "knn.npz", buffer.getvalue())
    with pytest.raises(BundleError, match=r"knn\.npz: sha256 .* does not match the manifest"):
        harness.services.ops.verify(info)
    # A forced promotion of the tampered version is refused too, and announces nothing.
    with pytest.raises(BundleError, match="does not match the manifest"):
        harness.services.ops.promote(harness.model_name, outcome.version, by="test")
    store.put_bytes(bucket, prefix + "knn.npz", original)
    harness.services.ops.verify(info)

    # Rewrite a metric in the manifest (the file hashes still match): the signature does not.
    manifest = json.loads(store.get_bytes(bucket, prefix + MANIFEST))
    manifest["metrics"]["apgr"] = 0.99
    forged = json.dumps(manifest, indent=2, sort_keys=True).encode()
    # Pin nothing: a gateway following a forged announcement would fetch the latest object.
    location = harness.services.ops.location(info)
    stored = store.put_bytes(bucket, prefix + MANIFEST, forged)
    from routeiq_trainer.bundles import BundleLocation

    forged_location = BundleLocation(
        location.bucket, location.prefix, stored.sha256, location.size_bytes, stored.version_id
    )
    with pytest.raises(BundleError, match=r"signature does not match manifest\.json"):
        harness.services.bundles.load(forged_location, tmp_path / "b", harness.settings.verifier())
    # And the announced location (pinned sha256 and S3 version) still yields the original.
    harness.services.bundles.load(location, tmp_path / "c", harness.settings.verifier())
    assert len(harness.read("announcement", expect=1)) == 1


def test_bad_requests_are_dead_lettered_and_do_not_wedge_the_partition(harness_factory) -> None:
    harness = harness_factory()
    harness.start_worker()
    harness.produce(b"not avro at all")
    harness.produce(harness.request(router_types=("nope",)))
    harness.produce(harness.request(router_types=("bert",)))
    harness.produce(
        harness.request(shard_manifests=("shards/router_decision.v1/none.manifest.json",))
    )
    good = harness.request()
    harness.produce(good)
    harness.wait_handled(5)

    # Keyed by source position, dead letters spread over the topic's partitions: read back,
    # they are in source order only once sorted.
    letters = sorted(harness.read("dead_letter", expect=4), key=lambda d: d["source_offset"])
    reasons = [d["reason"] for d in letters]
    assert len(letters) == 4, reasons
    assert all(d["source_topic"] == harness.settings.requests_topic for d in letters)
    # Keyed by source position, so a replay can be recognised (was: by topic).
    assert [d["_key"] for d in letters] == [
        f"{d['source_topic']}/{d['source_partition']}/{d['source_offset']}" for d in letters
    ]
    assert [d["source_offset"] for d in letters] == [0, 1, 2, 3]
    assert letters[0]["error_type"] == "SerializationError"
    assert "unknown router type(s) ['nope']" in reasons[1]
    assert "bert router reads query text" in reasons[2]
    assert "a requested shard is missing" in reasons[3]
    (version,) = harness.services.registry.versions(harness.model_name)
    assert version.version == good.version
    assert harness.committed_offset() == 5
    assert _counter(harness, "routeiq_trainer_dead_letters_total") == 4
    assert _counter(harness, "routeiq_trainer_requests_total", outcome="failed") == 4
    # The worker is still consuming after the failures.
    assert harness.worker is not None
    assert harness.worker.state.error is None
    assert harness.worker.state.partitions


def test_bandit_shards_train_with_propensity_correction_and_gate_on_snips(
    harness_factory, bandit_shards
) -> None:
    # Production shards see only the served model: APGR needs both models graded, so the
    # gate uses the off-policy value, and training corrects for the logged propensities.
    harness = harness_factory(
        shards_bucket=bandit_shards, gate_metric="ope_snips", router_types=("knn", "mlp")
    )
    outcome = harness.services.pipeline.process(
        harness.request(params={"propensity_correction": "dr"})
    )
    assert outcome.announced
    assert "apgr" not in outcome.metrics  # no row has both models graded
    assert outcome.gate is not None
    assert "a random router" in outcome.gate.baseline_label
    assert outcome.gate.challenger > outcome.gate.baseline + 0.01
    ipw = harness.services.pipeline.process(
        harness.request(router_types=("knn",), params={"propensity_correction": "ipw"})
    )
    versions = harness.services.registry.versions(harness.model_name)
    assert [v.version for v in versions] == [outcome.version, ipw.version]
    run = harness.services.registry.client.get_run(ipw.run_id)
    assert run.data.params["propensity_correction"] == "ipw"
    assert run.data.params["logging_policy"] == "logged"


def test_more_workers_in_the_group_share_the_partitions(harness_factory) -> None:
    harness = harness_factory()
    first = harness.start_worker()
    # A second worker with its own clients, as a second process would have.
    second = harness.start_worker(build_services(harness.settings))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if first.state.partitions and second.state.partitions:
            break
        time.sleep(0.2)
    # The group's three partitions, split between the two workers.
    assert sorted(first.state.partitions + second.state.partitions) == [0, 1, 2]
    names = [f"{harness.model_name}-{p}" for p in range(3)]
    requests = [harness.request(model_name=name) for name in names]
    for partition, request in enumerate(requests):
        harness.produce(request, partition=partition)
    harness.wait_handled(3)
    # Three partitions over two workers: each worker owns at least one and did its part.
    assert first.state.processed >= 1
    assert second.state.processed >= 1
    for request in requests:
        (version,) = harness.services.registry.versions(request.model_name)
        assert version.version == request.version
    assert harness.committed_offset() == 3
