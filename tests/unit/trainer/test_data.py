"""Data preparation: time split with no decision on both sides, dataset files (the DR labels
are tested with their estimator, tests/unit/routing/test_estimators.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from routeiq.routing.bundle import generate_ed25519
from routeiq.routing.datasets import ModelPrice
from routeiq.routing.embedding import MODEL_NAME
from routeiq.routing.featurestore import FeatureStore
from routeiq.routing.featurizer import minilm_pipeline
from routeiq.shards import write_shard
from routeiq_trainer.config import TrainerSettings
from routeiq_trainer.core.requests import TrainRequest, resolve_options
from routeiq_trainer.core.splits import time_split
from routeiq_trainer.data import DataLoader
from routeiq_trainer.errors import NoDataError, RequestError
from support.storage import MemoryStore


@given(
    st.lists(st.integers(0, 50), min_size=2, max_size=200),
    st.floats(0.05, 0.95),
)
def test_time_split_puts_every_instant_on_one_side(times: list[int], fraction: float) -> None:
    t = np.array(times, dtype=np.int64)
    ids = [f"d{i}" for i in range(len(t))]
    if len(set(times)) == 1:
        with pytest.raises(NoDataError, match="same event time"):
            time_split(t, ids, fraction)
        return
    train, val, cut = time_split(t, ids, fraction)
    assert sorted([*train, *val]) == list(range(len(t)))  # a partition of the rows
    assert not set(train) & set(val)
    assert t[train].max() < cut <= t[val].min()  # every validation row is newer
    assert len(val) >= 1
    assert len(train) >= 1


def test_time_split_takes_the_newest_fraction() -> None:
    t = np.arange(100, dtype=np.int64)[::-1].copy()
    _, val, cut = time_split(t, [str(i) for i in range(100)], 0.2)
    assert cut == 80
    assert sorted(t[val].tolist()) == list(range(80, 100))


def _request(**fields) -> tuple[TrainRequest, TrainerSettings]:
    settings = TrainerSettings.load({}, signing_key=generate_ed25519()[0])
    request = TrainRequest(
        request_id="r", model_name="m", requested_by="t", requested_at_ms=0, **fields
    )
    return request, settings


def _loader(tmp_path, embeddings: FeatureStore, **kw) -> DataLoader:
    return DataLoader(
        store=kw.get("store"),  # type: ignore[arg-type] - dataset files never touch S3
        shards_bucket="shards",
        embeddings=embeddings,
        prices={"big-model": ModelPrice(10, 30), "small-model": ModelPrice(0.5, 0.5)},
        min_train_examples=kw.get("min_train", 10),
        min_validation_examples=kw.get("min_val", 10),
    )


def test_a_dataset_file_loads_split_costed_and_with_texts(tmp_path, csv_dataset) -> None:
    path, prompts, x = csv_dataset
    embeddings = FeatureStore(cache_dir=tmp_path / "cache", featurizer=minilm_pipeline())
    cache_file = embeddings.path(prompts)
    cache_file.parent.mkdir(parents=True)
    np.save(cache_file, x, allow_pickle=False)
    request, settings = _request(
        params={"dataset": str(path), "validation_fraction": "0.25", "seed": "5"}
    )
    data = _loader(tmp_path, embeddings).load(request, resolve_options(request, settings))
    assert data.models == ("big-model", "small-model")
    assert (data.strong, data.weak) == ("big-model", "small-model")
    assert len(data.validation) == 30
    assert len(data.train) == 90
    assert data.train.texts is not None
    assert data.validation.texts is not None
    assert not set(data.train.texts) & set(data.validation.texts)
    np.testing.assert_array_equal(
        data.validation.embeddings[0], x[prompts.index(data.validation.texts[0])]
    )
    # Costs: the big model costs more per request than the small one, on every row.
    assert (data.validation_costs[:, 0] > data.validation_costs[:, 1]).all()
    assert data.logged.source == "simulated-uniform"
    assert np.allclose(data.logged.propensities, 0.5)
    # Same seed, same split.
    again = _loader(tmp_path, embeddings).load(request, resolve_options(request, settings))
    assert again.validation_ids == data.validation_ids


def test_too_few_examples_is_no_data(tmp_path, csv_dataset) -> None:
    path, prompts, x = csv_dataset
    embeddings = FeatureStore(cache_dir=tmp_path / "cache", featurizer=minilm_pipeline())
    embeddings.path(prompts).parent.mkdir(parents=True)
    np.save(embeddings.path(prompts), x, allow_pickle=False)
    request, settings = _request(params={"dataset": str(path)})
    loader = _loader(tmp_path, embeddings, min_train=500)
    with pytest.raises(NoDataError, match="at least 500"):
        loader.load(request, resolve_options(request, settings))


def _shard_row(i: int, *, graded: bool, rng: np.random.Generator) -> dict:
    from datetime import UTC, datetime

    when = 1_763_000_000_000 + i * 1000
    quality = [float(rng.integers(0, 2)), float(rng.integers(0, 2))]
    emb = rng.normal(size=384)
    return {
        "decision_id": f"d{i:04d}",
        "event_time": datetime.fromtimestamp(when / 1000, tz=UTC),
        "window_start": datetime.fromtimestamp(1_763_000_000, tz=UTC),
        "late": False,
        "embedding": (emb / np.linalg.norm(emb)).tolist(),
        "embedding_model": MODEL_NAME,
        "query_length": 10,
        "requested_model": "auto",
        "strategy": "random",
        "strategy_version": "1",
        "selected_model": "big-model",
        "exploration": False,
        "propensity": 0.5,
        "candidate_models": ["big-model", "small-model"],
        "candidate_propensities": [0.5, 0.5],
        "status": "SUCCESS",
        "input_tokens": 10,
        "output_tokens": 10,
        "cost_usd": 0.001,
        # quality_source=feedback: a decision nobody graded has no label at all.
        "quality": quality[0] if graded else float("nan"),
        "quality_source": "feedback" if graded else "none",
        "reward": quality[0] if graded else float("nan"),
        "outcome_models": ["big-model", "small-model"] if graded else [],
        "outcome_qualities": quality if graded else [],
        "outcome_costs": [0.001, 0.0001] if graded else [],
        "feedback_count": 2 if graded else 0,
    }


def _stored(rows: list[dict]) -> tuple[MemoryStore, str]:
    """``rows`` as one shard in an in-memory store; the store and the manifest's key."""
    store = MemoryStore()
    manifest = write_shard(
        store,  # type: ignore[arg-type]
        "shards",
        rows,
        window_start_ms=1_763_000_000_000,
        window_end_ms=1_763_003_600_000,
        partition=0,
    )
    return store, manifest.key.replace(".parquet", ".manifest.json")


def test_ungraded_shard_rows_are_neither_examples_nor_validation(tmp_path) -> None:
    rng = np.random.default_rng(0)
    # The oldest 300 decisions were never graded (held-out traffic), the newest 100 were.
    rows = [_shard_row(i, graded=i >= 300, rng=rng) for i in range(400)]
    store, manifest_key = _stored(rows)

    def loader(min_train: int) -> DataLoader:
        embeddings = FeatureStore(cache_dir=tmp_path / "cache", featurizer=minilm_pipeline())
        return _loader(tmp_path, embeddings, store=store, min_train=min_train)

    request, settings = _request(shard_manifests=(manifest_key,))
    data = loader(10).load(request, resolve_options(request, settings))
    assert len(data.train) + len(data.validation) == 100
    assert len(data.validation) == 20  # the newest 20% of the graded rows
    assert np.isfinite(data.train.quality).any(axis=1).all()
    assert data.notes["rows_without_label"] == 300
    # Too few graded rows is no data, whatever the shards hold.
    with pytest.raises(NoDataError, match="at least 100"):
        loader(100).load(request, resolve_options(request, settings))


def test_texts_are_joined_to_shard_rows_by_query_key(tmp_path, csv_dataset) -> None:
    """Rows logged with a query key get the prompt of the operator's texts with that key;
    rows whose key names no prompt (or that have none) are dropped and counted."""
    from routeiq.routing.querykey import query_key

    path, prompts, _ = csv_dataset
    secret = b"the fleet's query key, 32 bytes!"
    rng = np.random.default_rng(1)
    rows = [_shard_row(i, graded=True, rng=rng) for i in range(200)]
    for i, row in enumerate(rows):
        # 100 prompts of the file, 60 queries it does not hold, 40 rows from a keyless gateway.
        text = prompts[i] if i < 100 else f"a query the file does not hold {i}"
        row["query_key"] = query_key(secret, text) if i < 160 else None
    store, manifest_key = _stored(rows)
    embeddings = FeatureStore(cache_dir=tmp_path / "cache", featurizer=minilm_pipeline())
    loader = _loader(tmp_path, embeddings, store=store)
    request, settings = _request(
        shard_manifests=(manifest_key,),
        params={"texts": str(path)},
    )
    options = resolve_options(request, settings)
    with pytest.raises(RequestError, match="ROUTEIQ_TRAINER_QUERY_KEY"):
        loader.load(request, options)

    loader.query_key = secret
    data = loader.load(request, options)
    assert data.notes["rows_without_text"] == 100
    assert len(data.train) + len(data.validation) == 100
    by_id = {r["decision_id"]: prompts[i] for i, r in enumerate(rows[:100])}
    assert data.validation.texts == [by_id[d] for d in data.validation_ids]
    assert data.train.texts is not None
    assert set(data.train.texts) <= set(prompts[:100])
    # Another key matches nothing: no data, and the message says what to check.
    loader.query_key = b"another key, also 32 bytes long."
    with pytest.raises(NoDataError, match="query key"):
        loader.load(request, options)
