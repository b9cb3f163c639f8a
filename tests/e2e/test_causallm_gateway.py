"""The causal-LM router served by a real gateway: trained (SFT then DPO, LoRA) on a tiny causal
LM built here, bundled and signed, announced, verified and probed by the gateway, which scores
it in a worker process (torch never enters the gateway's own process) and routes each query to
the model its policy label maps to."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from e2e.test_rollout import ask, wait_active
from routeiq.kafka import make_consumer, make_producer
from routeiq.routing.bundle import Candidate, signer_from, write_bundle
from routeiq.routing.featurizer import minilm_pipeline
from routeiq.routing.routers import CausalLMRouter, FitContext
from routeiq.storage import ArtifactStore, make_minio
from support.bundles import announce, publish
from support.causallm import PARAMS, oracle_data, tiny_base
from support.kafka import read_messages

pytestmark = pytest.mark.e2e

# The local model file's candidates: the oracle's cheap model first, as its quality columns.
CHEAP, STRONG = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"


def test_a_causallm_bundle_serves_through_the_gateway(
    stack, signing_keys, unique, gateway_factory, tmp_path: Path
) -> None:
    data = oracle_data((CHEAP, STRONG))
    base = tiny_base(tmp_path / "base", list(data.texts or []))
    router = CausalLMRouter.fit(
        data,
        # A budget for a 2-core machine shared with the whole stack and the test's own load.
        {**PARAMS, "base_model": str(base), "cheap": CHEAP, "strong": STRONG}
        | {"latency_budget_ms": 5000.0},
        ctx=FitContext(seed=0, device="cpu"),
    )
    name, version = unique("causallm"), "v1"
    folder = tmp_path / "bundle"
    write_bundle(
        router,
        folder,
        name=name,
        version=version,
        candidates=[Candidate(CHEAP), Candidate(STRONG)],
        signer=signer_from("ed25519", signing_keys[0]),
        featurizer=minilm_pipeline(),
    )
    location = publish(
        ArtifactStore(make_minio(stack.s3)),
        stack.settings.models_bucket,
        folder,
        name=name,
        version=version,
    )
    # The learned strategy at cost weight 0 serves the model the policy mapper names.
    gw = gateway_factory(routeiq={"router_name": name, "default_strategy": "learned"})
    announce(
        make_producer(stack.kafka, client_id="causallm-e2e"),
        gw.announcement_serde,
        gw.announcements_topic,
        name=name,
        version=version,
        location=location,
        folder=folder,
    )
    wait_active([gw], version, timeout=240)

    texts = list(data.texts or [])
    expected = router.predict(data.embeddings, texts)  # in process, for comparison
    served, versions = {}, []
    for text in texts[::8]:
        response = ask(gw, text)
        assert response.status_code == 200, response.text
        assert response.headers["x-routeiq-strategy"] == "learned"
        versions.append(response.headers["x-routeiq-router-version"])
        served[text] = response.headers["x-routeiq-model"]
    # Why each was routed as it was: the decisions on the gateway's topic.
    consumer = make_consumer(stack.kafka, group_id=unique("causallm-e2e"), client_id="e2e")
    consumer.subscribe([gw.decisions_topic])
    reasons = [
        gw.decision_serde.decode(m.value())["selection_reason"]
        for m in read_messages(consumer, len(served), timeout=60, skip_errors=True)
    ]
    assert versions == [version] * len(served), reasons
    assert all("causallm router over 2 candidates" in r for r in reasons), reasons
    want = {t: (STRONG if p[1] > p[0] else CHEAP) for t, p in zip(texts, expected, strict=True)}
    # Exploration (ε = 0.05) may pick the other model now and then; the rest follow the router.
    agree = sum(served[t] == want[t] for t in served)
    assert agree >= len(served) - 2, (served, want)
    assert {want[t] for t in served} == {CHEAP, STRONG}

    ready = httpx.get(f"{gw.url}/health/ready", timeout=10).json()
    assert ready["router"]["router_type"] == "causallm"
    # The gateway's own process never imported torch: the worker process scores.
    assert "torch" not in Path(f"/proc/{gw.process.proc.pid}/maps").read_text()
