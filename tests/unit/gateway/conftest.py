"""A gateway wired from real parts, offline: LiteLLM deployments answer with ``mock_response``,
events are encoded with the real Avro contracts (local schema ids) and collected in memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from routeiq.contracts.catalog import FEEDBACK, ROUTER_DECISION
from routeiq.contracts.serde import AvroSerde, LocalResolver
from routeiq.routing.strategies import BundleHolder
from routeiq_gateway.api.app import create_app
from routeiq_gateway.config import GatewaySettings, load_model_file
from routeiq_gateway.gateway import Gateway
from routeiq_gateway.ids import DecisionIds
from routeiq_gateway.metrics import GatewayMetrics
from routeiq_gateway.upstream import Upstream, build_router
from routeiq_gateway.wiring import build_engine
from starlette.applications import Starlette
from starlette.testclient import TestClient

ADMIN_KEY = "test-admin-key-0123456789"

MODEL_FILE: dict[str, Any] = {
    "model_list": [
        {
            "model_name": "big",
            "litellm_params": {
                "model": "openai/big",
                "api_key": "x",
                "mock_response": "The answer is 4.",
            },
            "model_info": {"input_cost_per_token": 1e-5, "output_cost_per_token": 3e-5},
        },
        {
            "model_name": "small",
            "litellm_params": {"model": "openai/small", "api_key": "x", "mock_response": "4"},
            "model_info": {"input_cost_per_token": 6e-7, "output_cost_per_token": 6e-7},
        },
    ],
    "router_settings": {"num_retries": 0},
    "routeiq": {
        "candidates": {"big": {"quality_rank": 0.9}, "small": {"quality_rank": 0.5}},
        "strategies": [
            {
                "name": "policy",
                "kind": "policy",
                "params": {
                    "default": "small",
                    "rules": [{"name": "code", "code": True, "model": "big"}],
                },
            },
        ],
        "default_strategy": "policy",
        "epsilon": 0.0,
    },
}


class CollectingPublisher:
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes]] = []
        self.state = "up"
        self.spool_depth = 0
        self.last_error: str | None = None

    def publish(self, topic: str, key: bytes, value: bytes) -> None:
        self.records.append((topic, key, value))


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(MODEL_FILE))
    return path


def offline_gateway(
    model_file: Path, publisher: CollectingPublisher, *, upstream: Any = None
) -> Gateway:
    """A gateway on the model file, its events collected by ``publisher`` (``upstream``:
    LiteLLM's mock responses unless a stand-in is given)."""
    parsed = load_model_file(model_file)
    holder = BundleHolder()
    resolver = LocalResolver()
    return Gateway(
        model_file=parsed,
        engine=build_engine(parsed, holder),
        holder=holder,
        upstream=upstream or Upstream(router=build_router(parsed), model_file=parsed),
        embeddings=None,
        publisher=publisher,
        decision_serde=AvroSerde.for_contract(
            ROUTER_DECISION, subject="d-value", resolver=resolver
        ),
        feedback_serde=AvroSerde.for_contract(FEEDBACK, subject="f-value", resolver=resolver),
        decisions_topic="decisions",
        feedback_topic="feedback",
        ids=DecisionIds(b"k" * 32, ttl_s=3600),
        metrics=GatewayMetrics(),
        user_salt=b"salt",
        include_embedding=False,
    )


@pytest.fixture
def wired(model_file: Path) -> Iterator[tuple[TestClient, Gateway, CollectingPublisher]]:
    publisher = CollectingPublisher()
    gateway = offline_gateway(model_file, publisher)
    app = create_app(gateway, admin_key=ADMIN_KEY, max_body_bytes=4096)
    with TestClient(app) as client:
        yield client, gateway, publisher


@pytest.fixture(scope="module")
def offline_app(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Starlette, Gateway, CollectingPublisher]:
    """One app per test module, like ``wired``'s but with the production body limit: for
    Hypothesis and schemathesis, whose examples must not each pay for a new gateway (nor
    share a function-scoped fixture)."""
    path = tmp_path_factory.mktemp("models") / "models.yaml"
    path.write_text(yaml.safe_dump(MODEL_FILE))
    publisher = CollectingPublisher()
    gateway = offline_gateway(path, publisher)
    limit = GatewaySettings.model_fields["max_body_bytes"].default
    return create_app(gateway, admin_key=ADMIN_KEY, max_body_bytes=limit), gateway, publisher
