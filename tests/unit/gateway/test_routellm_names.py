"""RouteLLM's request convention: ``model="router-<type>-<threshold>"`` routes between the
strong and the weak model with the active learned router at the client's threshold, from an
unmodified OpenAI client, and is logged with what was asked and what decided."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from openai import OpenAI
from routeiq.routing.bundle import Candidate, HmacKey, load_bundle, write_bundle
from routeiq.routing.routers import FitContext, Router, TrainingData, router_class
from routeiq.routing.strategies import strong_win_rate
from routeiq_gateway.api.app import create_app
from routeiq_gateway.features import FeatureService
from routeiq_gateway.gateway import Gateway
from starlette.testclient import TestClient
from support.features import tiny_static

from .conftest import ADMIN_KEY, CollectingPublisher, offline_gateway

KEY = HmacKey(b"r" * 32)
MATHS = [f"Compute {i} * {i + 7} + {3 * i} and show every step" for i in range(30)]
CHAT = [f"hello there friend number {i}, how is your day going" for i in range(30)]
PROMPT = "hello there friend, how is the weather today"


@pytest.fixture
def routed(
    model_file: Path, tmp_path: Path
) -> Iterator[tuple[TestClient, Gateway, CollectingPublisher, Router]]:
    """The offline gateway with a kNN bundle loaded: on maths only the big model is right,
    on chat both are (the conftest's model file: big is the strong model, small the weak)."""
    featurizer = tiny_static(tmp_path / "features")
    texts = MATHS + CHAT
    quality = [[1.0, 0.0]] * len(MATHS) + [[1.0, 1.0]] * len(CHAT)
    data = TrainingData(featurizer.encode(texts), np.array(quality), ("big", "small"))
    router = router_class("knn").fit(data, {"k": 10}, ctx=FitContext())
    folder = tmp_path / "bundle"
    candidates = [Candidate("big"), Candidate("small")]
    write_bundle(
        router,
        folder,
        name="r",
        version="v1",
        candidates=candidates,
        signer=KEY,
        featurizer=featurizer,
    )
    publisher = CollectingPublisher()
    gateway = offline_gateway(model_file, publisher)
    # The conftest's gateway has no feature service; a router needs one to score requests.
    gateway.planner.embeddings = FeatureService(featurizer, cache_size=64)
    gateway.holder.swap(load_bundle(folder, KEY), at=0.0)
    app = create_app(gateway, admin_key=ADMIN_KEY, max_body_bytes=1 << 16)
    with TestClient(app) as client:
        yield client, gateway, publisher, router


def win_rate(gateway: Gateway, router: Router, text: str) -> float:
    bundle = gateway.holder.get()
    assert bundle is not None
    q = router.predict(bundle.featurizer.encode([text]))[0]
    return strong_win_rate({"big": float(q[0]), "small": float(q[1])}, "big", "small")


def ask(client: TestClient, model: str, text: str = PROMPT) -> tuple[int, dict, str | None]:
    r = client.post(
        "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": text}]},
    )
    return r.status_code, r.json(), r.headers.get("x-routeiq-model")


def test_the_threshold_is_on_the_strong_models_win_rate(routed) -> None:
    client, gateway, _, router = routed
    win = win_rate(gateway, router, PROMPT)
    assert 0.0 < win < 1.0  # chat: the router is unsure which is better
    # RouteLLM's rule: strong when the win rate is at or above the threshold.
    assert ask(client, f"router-knn-{win!r}")[2] == "big"
    assert ask(client, f"router-knn-{min(1.0, win + 1e-6)!r}")[2] == "small"
    assert ask(client, "router-knn-0")[2] == "big"
    assert ask(client, "router-knn-1.0")[2] == "small"
    # On maths only the strong model is right: a high threshold still sends it there.
    assert win_rate(gateway, router, MATHS[0]) > 0.9
    assert ask(client, "router-knn-0.9", MATHS[0])[2] == "big"


def test_the_decision_records_what_was_asked_and_what_decided(routed) -> None:
    client, gateway, publisher, _ = routed
    status, _, served = ask(client, "router-knn-0.11593")
    assert (status, served) == (200, "big")
    event = gateway.decision_serde.decode(publisher.records[-1][2])
    assert event["input"]["requested_model"] == "router-knn-0.11593"
    assert event["strategy"] == {"name": "router-knn", "version": "routellm/1"}
    assert "threshold 0.11593" in event["selection_reason"]
    assert event["router_version"] == "v1"
    assert event["exploration"] is False
    assert event["ab_arm"] is None
    candidates = {c["model_name"]: c for c in event["candidate_deployments"]}
    assert {m: c["propensity"] for m, c in candidates.items()} == {"big": 1.0, "small": 0.0}
    assert candidates["big"]["score"] + candidates["small"]["score"] == pytest.approx(1.0)


def test_an_unmodified_openai_client_uses_the_convention(routed) -> None:
    client, _, _, _ = routed
    openai = OpenAI(api_key="unused", base_url="http://testserver/v1", http_client=client)
    reply = openai.chat.completions.with_raw_response.create(
        model="router-knn-1.0", messages=[{"role": "user", "content": PROMPT}]
    )
    assert reply.headers["x-routeiq-model"] == "small"
    assert reply.parse().choices[0].message.content == "4"


@pytest.mark.parametrize(
    ("model", "status", "fragment"),
    [
        ("router-mf-0.5", 404, "router type 'mf' is not loaded here; the active router is 'knn'"),
        ("router-knn-1.5", 400, "the threshold '1.5' must be a number in [0, 1]"),
        ("router-knn--0.1", 400, "the threshold '-0.1' must be a number in [0, 1]"),
        ("router-knn-abc", 400, "the threshold 'abc' must be a number in [0, 1]"),
        ("router-knn-nan", 400, "the threshold 'nan' must be a number"),
        ("router-knn", 400, "a RouteLLM model name is router-<router type>-<threshold>"),
        ("router--0.5", 400, "a RouteLLM model name is router-<router type>-<threshold>"),
    ],
)
def test_unknown_router_types_and_bad_thresholds_are_openai_style_4xx(
    routed, model: str, status: int, fragment: str
) -> None:
    client, _, publisher, _ = routed
    got, body, _ = ask(client, model)
    assert got == status
    error = body["error"]
    assert fragment in error["message"]
    assert error["param"] == "model"
    assert error["code"] == ("model_not_found" if status == 404 else "invalid_model")
    assert publisher.records == []


def test_without_a_loaded_router_no_router_name_is_served(model_file: Path) -> None:
    gateway = offline_gateway(model_file, CollectingPublisher())
    with TestClient(create_app(gateway, admin_key=ADMIN_KEY, max_body_bytes=4096)) as client:
        status, body, _ = ask(client, "router-knn-0.5")
        assert status == 404
        assert "no learned router is loaded yet" in body["error"]["message"]
        # Any other unknown name says how the convention would be spelled.
        status, body, _ = ask(client, "gpt-5")
        assert status == 404
        assert (
            "router-<type>-<threshold> once a learned router is loaded"
            in (body["error"]["message"])
        )
