"""Labelled data ready to fit and score routers: features, qualities, costs, a split.

Shared by the trainer (dataset-file requests; shard requests build the same ``PreparedData``
from Parquet) and ``routeiq eval``, so an offline number is the number the trainer logs.

Repeated prompts: real benchmarks repeat a prompt (the same question asked twice, or one
prompt with several graded answers). A prompt's rows are **merged** into one row whose score
per model is the mean of its graded scores, before anything is split, so a prompt is never on
both sides of a split and every array stays aligned with the merged table.

Costs per request (``cost_model``):

* ``tokens`` (the default): the prompt's tokens (chars / 4) at the model's input price plus the
  recorded answer's tokens (or ``DEFAULT_OUTPUT_TOKENS`` without one) at its output price;
* ``flat``: every request the same size (``FLAT_PROMPT_TOKENS`` in, ``DEFAULT_OUTPUT_TOKENS``
  out), so a request costs its model's price: how LLMRouter and RouterBench report cost when
  answer lengths are unknown.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from routeiq.errors import ConfigError, RouteIQError
from routeiq.routing.datasets import (
    ROUTELLM_PRICES,
    ModelPrice,
    RoutingDataset,
    llmrouter_prices,
)
from routeiq.routing.features import CHARS_PER_TOKEN
from routeiq.routing.featurestore import FeatureStore
from routeiq.routing.routers import TrainingData

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

# Dataset rows without a recorded answer are costed as if the answer had this many tokens.
DEFAULT_OUTPUT_TOKENS = 200
FLAT_PROMPT_TOKENS = 100
COST_MODELS = ("tokens", "flat")


class DataError(RouteIQError):
    """Data cannot be prepared as asked (too few rows, unknown models, mismatched sets)."""


@dataclass(frozen=True)
class LoggedPolicy:
    """What the logging policy did on the validation rows (for off-policy estimates)."""

    actions: I64  # index into the candidates; -1 where the served model is not a candidate
    propensities: F64  # NaN where unknown
    rewards: F64
    source: str  # "logged" (shards) or "simulated-uniform" (dataset files)

    @property
    def usable(self) -> NDArray[np.bool_]:
        return (
            (self.actions >= 0)
            & np.isfinite(self.propensities)
            & (self.propensities > 0)
            & np.isfinite(self.rewards)
        )


@dataclass
class PreparedData:
    """Examples split into train and validation, with what evaluation needs beside labels."""

    source: str
    models: tuple[str, ...]
    train: TrainingData
    validation: TrainingData
    validation_ids: list[str]
    validation_costs: F64  # (n_val, m) USD per request for each candidate
    logged: LoggedPolicy
    strong: str
    weak: str
    prices: dict[str, ModelPrice]
    rows_read: int
    features_id: str = ""
    validation_tokens: F64 | None = None  # (n_val,) prompt tokens, for the policy's prior
    shard_count: int = 0
    window_start_ms: int | None = None
    window_end_ms: int | None = None
    split_time_ms: int | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def strong_index(self) -> int:
        return self.models.index(self.strong)

    @property
    def weak_index(self) -> int:
        return self.models.index(self.weak)

    def summary(self) -> dict[str, Any]:
        """Loggable description of the data (MLflow params and version tags)."""
        return {
            "source": self.source,
            "candidates": ",".join(self.models),
            "strong": self.strong,
            "weak": self.weak,
            "features": self.features_id,
            "rows_read": self.rows_read,
            "train_examples": len(self.train),
            "validation_examples": len(self.validation),
            "shard_count": self.shard_count,
            "window_start_ms": self.window_start_ms,
            "window_end_ms": self.window_end_ms,
            "split_time_ms": self.split_time_ms,
            "logging_policy": self.logged.source,
            **self.notes,
        }


def known_prices(extra: Mapping[str, tuple[float, float]] | None = None) -> dict[str, ModelPrice]:
    """List prices we know (RouteLLM's and LLMRouter's models), ``extra`` winning."""
    prices: dict[str, ModelPrice] = dict(ROUTELLM_PRICES)
    # Without the benchmark data folder (a slim deployment) the settings' prices are all.
    with contextlib.suppress(ConfigError, OSError):
        prices.update(llmrouter_prices())
    for name, (inp, out) in (extra or {}).items():
        prices[name] = ModelPrice(float(inp), float(out))
    return prices


def merge_repeats(ds: RoutingDataset) -> RoutingDataset:
    """One row per prompt: repeated prompts merged (mean graded score per model); rows with
    no score at all dropped. The first occurrence keeps its id, text and answers."""
    first: dict[str, int] = {}
    groups: list[list[int]] = []
    for i, rid in enumerate(ds.ids):
        if rid in first:
            groups[first[rid]].append(i)
        else:
            first[rid] = len(groups)
            groups.append([i])
    if len(groups) == len(ds) and np.isfinite(ds.scores).any(axis=1).all():
        return ds
    keep = [g[0] for g in groups]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column stays NaN
        scores = np.array([np.nanmean(ds.scores[g], axis=0) for g in groups])
    merged = replace(ds.subset(keep), scores=scores.reshape(len(groups), len(ds.models)))
    graded = np.isfinite(merged.scores).any(axis=1)
    return merged if graded.all() else merged.subset(np.flatnonzero(graded))


def align_models(ds: RoutingDataset, models: Sequence[str]) -> RoutingDataset:
    """``ds`` with its score columns in the order of ``models`` (a subset of its own)."""
    missing = [m for m in models if m not in ds.models]
    if missing:
        raise DataError(f"{ds.name} has no scores for {missing}; it has {list(ds.models)}")
    if tuple(models) == ds.models:
        return ds
    cols = [ds.models.index(m) for m in models]
    return replace(
        ds,
        models=tuple(models),
        scores=ds.scores[:, cols],
        prices={m: p for m, p in ds.prices.items() if m in models},
        strong=ds.strong if ds.strong in models else None,
        weak=ds.weak if ds.weak in models else None,
    )


def _tokens(text: str) -> float:
    return max(1.0, len(text) / CHARS_PER_TOKEN)


def prompt_tokens(prompts: Sequence[str]) -> F64:
    """Estimated prompt tokens per request (chars / 4, as the gateway estimates them)."""
    return np.array([_tokens(p) for p in prompts], dtype=np.float64)


def dataset_costs(
    ds: RoutingDataset, prices: Mapping[str, ModelPrice], *, cost_model: str = "tokens"
) -> F64:
    """Estimated USD per request under ``cost_model`` (see the module docstring); 0 for a
    model without a known price."""
    if cost_model not in COST_MODELS:
        raise DataError(f"unknown cost model {cost_model!r}; known: {', '.join(COST_MODELS)}")
    n, m = len(ds), len(ds.models)
    costs = np.zeros((n, m))
    prompt = prompt_tokens(ds.prompts).astype(int)
    for j, model in enumerate(ds.models):
        price = prices.get(model)
        if price is None:
            continue
        if cost_model == "flat":
            costs[:, j] = price.cost(FLAT_PROMPT_TOKENS, DEFAULT_OUTPUT_TOKENS)
            continue
        for i in range(n):
            answer = ds.responses[i].get(model, "") if ds.responses else ""
            out = _tokens(answer) if answer else DEFAULT_OUTPUT_TOKENS
            costs[i, j] = price.cost(int(prompt[i]), int(out))
    return costs


def strong_and_weak(
    models: Sequence[str],
    costs: F64,
    priors: F64,
    *,
    strong: str | None = None,
    weak: str | None = None,
) -> tuple[str, str]:
    """The pair APGR compares: asked for, else the most and the least expensive candidate (by
    mean cost; by prior quality when costs tie)."""
    if strong is not None or weak is not None:
        if strong is None or weak is None or strong == weak:
            raise DataError(f"strong and weak must both be named and differ, got {strong}/{weak}")
        for name in (strong, weak):
            if name not in models:
                raise DataError(f"model {name!r} is not a candidate; have {list(models)}")
        return strong, weak
    mean_cost = np.nanmean(costs, axis=0) if costs.size else np.zeros(len(models))
    key = mean_cost if np.ptp(mean_cost) > 0 else priors
    s, w = models[int(np.argmax(key))], models[int(np.argmin(key))]
    if s == w:
        raise DataError(
            "cannot tell the strong from the weak model (equal costs and quality): name them"
        )
    return s, w


def _table(ds: RoutingDataset, store: FeatureStore, times: I64) -> TrainingData:
    return TrainingData(
        embeddings=store.embed(ds.prompts),
        quality=ds.scores.astype(np.float64),
        models=ds.models,
        texts=list(ds.prompts),
        event_times=times,
    )


def _simulated_logger(ds: RoutingDataset, seed: int) -> LoggedPolicy:
    """A uniform-random logging policy over the candidates (dataset files log nothing)."""
    n, m = len(ds), len(ds.models)
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, m, n).astype(np.int64)
    return LoggedPolicy(
        actions, np.full(n, 1.0 / m), ds.scores[np.arange(n), actions], "simulated-uniform"
    )


def prepare_train_test(
    train_ds: RoutingDataset,
    test_ds: RoutingDataset,
    *,
    store: FeatureStore,
    prices: Mapping[str, ModelPrice] | None = None,
    seed: int = 0,
    strong: str | None = None,
    weak: str | None = None,
    models: Sequence[str] | None = None,
    cost_model: str = "tokens",
) -> PreparedData:
    """Explicit train and test tables as ``PreparedData`` (the test rows validate).

    Candidates are ``models`` (default: the test set's), taken by name from both tables, so
    two files that list the same models in another order line up. The test rows' logging
    policy is a simulated uniform logger (seeded).
    """
    wanted = tuple(models or test_ds.models)
    train_ds = merge_repeats(align_models(train_ds, wanted))
    test_ds = merge_repeats(align_models(test_ds, wanted))
    if len(train_ds) < 2 or len(test_ds) < 2:
        raise DataError(f"{len(train_ds)} training and {len(test_ds)} test rows: too few")
    known = {**train_ds.prices, **test_ds.prices, **dict(prices or {})}
    train = _table(train_ds, store, np.arange(len(train_ds), dtype=np.int64))
    test = _table(test_ds, store, np.arange(len(test_ds), dtype=np.int64))
    costs = dataset_costs(test_ds, known, cost_model=cost_model)
    s, w = strong_and_weak(
        wanted,
        costs,
        train.priors(),
        strong=strong or (None if weak else test_ds.strong),
        weak=weak or (None if strong else test_ds.weak),
    )
    return PreparedData(
        source=f"train:{train_ds.name} test:{test_ds.name}",
        models=wanted,
        train=train,
        validation=test,
        validation_ids=list(test_ds.ids),
        validation_costs=costs,
        validation_tokens=prompt_tokens(test_ds.prompts),
        logged=_simulated_logger(test_ds, seed),
        strong=s,
        weak=w,
        prices={mm: known[mm] for mm in wanted if mm in known},
        rows_read=len(train_ds) + len(test_ds),
        features_id=store.features_id,
        notes={"cost_model": cost_model},
    )


def prepare_split(
    ds: RoutingDataset,
    *,
    store: FeatureStore,
    validation_fraction: float,
    seed: int,
    prices: Mapping[str, ModelPrice] | None = None,
    strong: str | None = None,
    weak: str | None = None,
    models: Sequence[str] | None = None,
    cost_model: str = "tokens",
) -> PreparedData:
    """One table split by a seeded shuffle: the last ``validation_fraction`` validates.

    Dataset files carry no time; a seeded permutation plays the role of event time, so the
    split is a function of (rows, seed).
    """
    ds = merge_repeats(align_models(ds, tuple(models or ds.models)))
    n = len(ds)
    if n < 4 or len(ds.models) < 2:
        raise DataError(f"dataset {ds.name}: {n} rows, {len(ds.models)} models")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    times = np.empty(n, dtype=np.int64)
    times[order] = np.arange(n, dtype=np.int64)
    n_val = min(max(1, round(n * validation_fraction)), n - 1)
    train_idx = np.sort(order[: n - n_val])
    val_idx = np.sort(order[n - n_val :])
    data = _table(ds, store, times)
    known = {**ds.prices, **dict(prices or {})}
    costs = dataset_costs(ds, known, cost_model=cost_model)
    s, w = strong_and_weak(
        ds.models,
        costs,
        data.subset(train_idx).priors(),
        strong=strong or (None if weak else ds.strong),
        weak=weak or (None if strong else ds.weak),
    )
    logged = _simulated_logger(ds, seed)
    return PreparedData(
        source=f"dataset:{ds.name}",
        models=ds.models,
        train=data.subset(train_idx),
        validation=data.subset(val_idx),
        validation_ids=[ds.ids[i] for i in val_idx],
        validation_costs=costs[val_idx],
        validation_tokens=prompt_tokens(ds.prompts)[val_idx],
        logged=LoggedPolicy(
            logged.actions[val_idx],
            logged.propensities[val_idx],
            logged.rewards[val_idx],
            logged.source,
        ),
        strong=s,
        weak=w,
        prices={mm: known[mm] for mm in ds.models if mm in known},
        rows_read=n,
        features_id=store.features_id,
        notes={"split": f"seeded shuffle (seed {seed}), no event times", "cost_model": cost_model},
    )


def subsample_train(data: PreparedData, *, fraction: float, seed: int) -> PreparedData:
    """``data`` with a seeded ``fraction`` of its training rows (the validation rows kept):
    the spread over such draws is the seed-to-seed variation of a fixed train/test split."""
    n = len(data.train)
    keep = np.sort(np.random.default_rng(seed).permutation(n)[: max(2, round(n * fraction))])
    return replace(data, train=data.train.subset(keep), notes={**data.notes, "train_seed": seed})
