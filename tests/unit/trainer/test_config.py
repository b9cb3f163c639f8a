"""Trainer settings: defaults for the local stack; signer and verifier
(contradictions refused at start: tests/unit/test_settings.py)."""

from __future__ import annotations

import base64

import pytest
from routeiq.errors import ConfigError
from routeiq.routing.bundle import Ed25519Verifier, HmacKey, generate_ed25519
from routeiq_trainer.config import TrainerSettings

KEY = generate_ed25519()[0]


def load(**env: str) -> TrainerSettings:
    return TrainerSettings.load({f"ROUTEIQ_TRAINER_{k.upper()}": v for k, v in env.items()})


def test_defaults_follow_the_declared_topics_and_the_local_stack() -> None:
    s = load(signing_key=KEY)
    assert s.requests_topic == "routeiq.retrain.requests.v1"
    assert s.announcements_topic == "routeiq.model.announcements.v1"
    assert s.deadletter_topic == "routeiq.deadletter.v1"
    assert s.router_types == ("knn", "svm", "mlp", "mf")
    assert s.mlflow_tracking_uri == "http://127.0.0.1:5000"
    assert s.gate_metric == "aiq"
    assert s.gate_margin == 0.01


def test_router_types_accept_a_comma_list_or_json() -> None:
    assert load(router_types="knn, mlp").router_types == ("knn", "mlp")
    assert load(router_types='["svm"]').router_types == ("svm",)


def test_a_missing_signing_key_refuses_to_start() -> None:
    s = load()
    with pytest.raises(ConfigError, match="SIGNING_KEY is not set"):
        s.signer()


def test_the_verifier_matches_the_signer() -> None:
    ed = load(signing_key=KEY)
    assert isinstance(ed.verifier(), Ed25519Verifier)
    data = b"manifest bytes"
    signer = ed.signer()
    ed.verifier().verify(
        data, algorithm=signer.algorithm, key_id=signer.key_id, value=signer.sign(data)
    )
    secret = base64.b64encode(b"a shared secret for hmac").decode()
    hm = load(signing_key=secret, signing_algorithm="hmac-sha256")
    assert isinstance(hm.verifier(), HmacKey)
