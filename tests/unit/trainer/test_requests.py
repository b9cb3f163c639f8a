"""Retrain requests: stable, sortable version names and strictly checked options."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from routeiq.routing.bundle import generate_ed25519
from routeiq_trainer.config import TrainerSettings
from routeiq_trainer.core.requests import (
    TrainRequest,
    check_name,
    parse_kv,
    resolve_options,
    version_name,
)
from routeiq_trainer.errors import RequestError

SETTINGS = TrainerSettings.load({}, signing_key=generate_ed25519()[0])
MS = st.integers(0, 4_102_444_800_000)  # up to 2100


def request(**kwargs) -> TrainRequest:
    values = {
        "request_id": "r1",
        "model_name": "router",
        "requested_by": "test",
        "requested_at_ms": 1_763_000_000_123,
    }
    values.update(kwargs)
    return TrainRequest(**values)


@given(st.text(min_size=1), MS)
def test_a_request_always_names_the_same_version(request_id: str, at: int) -> None:
    assert version_name(request_id, at) == version_name(request_id, at)
    assert check_name(version_name(request_id, at), "version")


@given(st.text(min_size=1), st.text(min_size=1), MS, MS)
def test_versions_sort_by_request_time(a: str, b: str, t1: int, t2: int) -> None:
    if t1 < t2:
        assert version_name(a, t1) < version_name(b, t2)


@given(st.text(min_size=1), st.text(min_size=1), MS)
def test_two_requests_at_the_same_instant_get_different_versions(a: str, b: str, t: int) -> None:
    if a != b:
        # 32 bits of the id's hash: a collision would need ~65k requests in one millisecond.
        import hashlib

        if hashlib.sha256(a.encode()).hexdigest()[:8] != hashlib.sha256(b.encode()).hexdigest()[:8]:
            assert version_name(a, t) != version_name(b, t)


def test_the_version_reads_as_utc_time() -> None:
    assert version_name("r1", 1_763_000_000_123).startswith("v20251113T021320123-")


def test_record_round_trip_keeps_every_field() -> None:
    r = request(
        router_types=("knn", "mlp"),
        shard_manifests=("a.manifest.json",),
        params={"knn.k": "5"},
        window_start_ms=1,
        window_end_ms=2,
        example_count=7,
        reason="THRESHOLD",
    )
    assert TrainRequest.from_record(r.to_record()) == r


@pytest.mark.parametrize("name", ["", "../etc", "a/b", "a b", "x" * 101, ".hidden"])
def test_unsafe_model_names_are_refused(name: str) -> None:
    with pytest.raises(RequestError, match="not allowed"):
        request(model_name=name)


def test_options_merge_request_params_over_settings() -> None:
    opts = resolve_options(
        request(
            router_types=("knn",),
            params={
                "knn.k": "7",
                "knn.weighting": "uniform",
                "seed": "3",
                "validation_fraction": "0.5",
            },
        ),
        SETTINGS,
    )
    assert opts.router_types == ("knn",)
    assert opts.router_params == {"knn": {"k": 7, "weighting": "uniform"}}
    assert opts.seed == 3
    assert opts.validation_fraction == 0.5
    assert resolve_options(request(), SETTINGS).router_types == SETTINGS.router_types


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"router_types": ("forest",)}, "unknown router type"),
        ({"params": {"depth": "3"}}, "unknown parameter 'depth'"),
        ({"params": {"knn.depth": "3"}}, "knn has no parameter 'depth'"),
        ({"router_types": ("knn",), "params": {"mlp.epochs": "3"}}, "not being trained"),
        ({"router_types": ("bert",)}, "bert router reads query text"),
        ({"router_types": ("causallm",)}, "causallm router reads query text"),
        ({"params": {"dataset": "gsm8k", "texts": "gsm8k"}}, "a dataset has its own"),
        ({"params": {"validation_fraction": "1.5"}}, "validation_fraction"),
        ({"params": {"seed": "abc"}}, "bad numeric parameter"),
        ({"params": {"propensity_correction": "magic"}}, "ipw, dr or none"),
        ({"params": {"strong": "a"}}, "strong and weak"),
    ],
)
def test_bad_options_are_refused_with_the_reason(kwargs, reason) -> None:
    with pytest.raises(RequestError, match=reason):
        resolve_options(request(**kwargs), SETTINGS)


def test_bert_is_allowed_with_a_dataset_file() -> None:
    opts = resolve_options(
        request(router_types=("bert",), params={"dataset": "gsm8k", "bert.epochs": "1"}), SETTINGS
    )
    assert opts.dataset == "gsm8k"
    assert opts.router_params["bert"] == {"epochs": 1}


def test_text_routers_train_from_shards_with_texts_joined_by_query_key() -> None:
    opts = resolve_options(request(router_types=("causallm",), params={"texts": "gsm8k"}), SETTINGS)
    assert (opts.dataset, opts.texts) == (None, "gsm8k")
    assert opts.as_params()["texts"] == "gsm8k"
    assert opts.as_params()["source"] == "shards"


def test_key_value_pairs_parse_and_refuse_garbage() -> None:
    assert parse_kv(["knn.k=10", " seed = 2 "]) == {"knn.k": "10", "seed": "2"}
    with pytest.raises(RequestError, match="key=value"):
        parse_kv(["oops"])
