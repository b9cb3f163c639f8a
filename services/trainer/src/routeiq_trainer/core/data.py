"""Training data for one request: from the labeler's shards in S3, or from a dataset file.

Shards: the manifests named by the request (or every manifest in the shards bucket) are read
with their sha256 checked, rows are de-duplicated by decision id, and the set is split by
event time: the newest ``validation_fraction`` of decisions validate, the rest train, and
every row sharing the boundary timestamp goes to validation, so no decision (nor any instant)
is on both sides.

Dataset files (``gsm8k``, ``mt_bench``, ``llmrouter-train``, a CSV) carry no time; their rows
are ordered by a seeded shuffle and split the same way. They carry the query text, which is
what the BERT router needs, and no logging policy: their off-policy estimates use a simulated
uniform-random logger (propensity 1/m), said so in the run's params.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray
from routeiq.errors import ArtifactNotFoundError, ConfigError
from routeiq.routing.datasets import (
    ROUTELLM_PRICES,
    ModelPrice,
    RoutingDataset,
    llmrouter_prices,
    load_named,
)
from routeiq.routing.features import CHARS_PER_TOKEN
from routeiq.routing.routers import FitContext, KNNRouter, TrainingData
from routeiq.shards import PREFIX, list_manifests, read_tables, training_data
from routeiq.storage import ArtifactStore

from routeiq_trainer.core.embeddings import EmbeddingStore
from routeiq_trainer.core.requests import TrainOptions, TrainRequest
from routeiq_trainer.errors import NoDataError, RequestError

logger = logging.getLogger(__name__)

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

# Dataset rows without a recorded answer are costed as if the answer had this many tokens.
DEFAULT_OUTPUT_TOKENS = 200


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
    """A request's examples, split, with what evaluation needs beside the labels."""

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
    """List prices the trainer knows (RouteLLM's and LLMRouter's models), ``extra`` winning."""
    prices: dict[str, ModelPrice] = dict(ROUTELLM_PRICES)
    # Without the benchmark data folder (a slim deployment) the settings' prices are all.
    with contextlib.suppress(ConfigError, OSError):
        prices.update(llmrouter_prices())
    for name, (inp, out) in (extra or {}).items():
        prices[name] = ModelPrice(float(inp), float(out))
    return prices


def _query_key(embedding: NDArray[np.float32]) -> bytes:
    """Identity of a query without its text: its embedding, rounded against float noise."""
    return np.round(np.asarray(embedding, dtype=np.float64), 4).tobytes()


def novel_validation(
    embeddings: NDArray[np.float32], times: NDArray[np.int64], val_idx: I64, cut: int
) -> tuple[I64, int]:
    """The validation rows whose query never occurred before ``cut``, and how many were not."""
    seen = {_query_key(embeddings[i]) for i in np.flatnonzero(times < cut)}
    keep = np.array([i for i in val_idx if _query_key(embeddings[i]) not in seen], dtype=np.int64)
    return keep, len(val_idx) - len(keep)


def time_split(
    times: NDArray[np.int64], ids: Sequence[str], fraction: float
) -> tuple[I64, I64, int]:
    """(train rows, validation rows, boundary time): the newest ``fraction`` validates.

    Rows at the boundary time all validate, so train times are strictly before every
    validation time (if the boundary is the earliest instant, that instant trains instead).
    Ties in time are ordered by id, so the split is a function of the data.
    """
    n = len(times)
    if n < 2:
        raise NoDataError(f"{n} example(s): nothing to split")
    order = np.lexsort((np.asarray(ids, dtype=str), times))
    n_val = min(max(1, round(n * fraction)), n - 1)
    cut = int(times[order[n - n_val]])
    if not (times < cut).any():
        # The boundary fell inside the earliest instant: that instant trains instead.
        later = times[times > cut]
        if later.size == 0:
            raise NoDataError(
                "every example has the same event time, so no earlier examples are left to "
                "train on: a time split needs examples from more than one instant"
            )
        cut = int(later.min())
    train = np.sort(np.flatnonzero(times < cut)).astype(np.int64)
    val = np.sort(np.flatnonzero(times >= cut)).astype(np.int64)
    return train, val, cut


def doubly_robust(
    data: TrainingData,
    actions: I64,
    propensities: F64,
    *,
    seed: int,
    max_weight: float = 20.0,
) -> TrainingData:
    """Doubly robust labels for bandit rows: every candidate gets a pseudo-quality.

    For a row that observed only its served model ``a`` (with propensity ``p``), candidate j's
    label is ``q̂_j + 1[j = a] / p · (q_a − q̂_a)``, clipped to [0, 1], where ``q̂`` comes from
    a kNN reward model cross-fitted on the other half of the rows (so a row never corrects
    its own prediction). Fully observed rows keep their labels. All weights become 1: the
    correction is in the labels.
    """
    observed = data.observed
    bandit = (observed.sum(1) == 1) & (actions >= 0) & np.isfinite(propensities)
    bandit &= propensities > 0
    if not bandit.any():
        return data
    n = len(data)
    fold = np.random.default_rng(seed).integers(0, 2, n)
    direct = np.zeros_like(data.quality)
    for f in (0, 1):
        fit_rows = np.flatnonzero(fold != f)
        pred_rows = np.flatnonzero(fold == f)
        if fit_rows.size == 0 or pred_rows.size == 0:
            continue
        model = KNNRouter.fit(data.subset(fit_rows), {"k": 20}, ctx=FitContext(seed=seed))
        direct[pred_rows] = model.predict(data.embeddings[pred_rows])
    quality = data.quality.copy()
    rows = np.flatnonzero(bandit)
    a = actions[rows]
    pseudo = direct[rows].copy()
    inv = np.minimum(1.0 / propensities[rows], max_weight)
    pseudo[np.arange(rows.size), a] += inv * (data.quality[rows, a] - direct[rows, a])
    quality[rows] = np.clip(pseudo, 0.0, 1.0)
    return TrainingData(
        embeddings=data.embeddings,
        quality=quality,
        models=data.models,
        weights=np.ones_like(quality),
        texts=data.texts,
        event_times=data.event_times,
    )


class DataLoader:
    """Builds a request's ``PreparedData`` from shards or a dataset file."""

    def __init__(
        self,
        *,
        store: ArtifactStore,
        shards_bucket: str,
        embeddings: EmbeddingStore,
        prices: Mapping[str, ModelPrice],
        min_train_examples: int,
        min_validation_examples: int,
        data_root: Path | None = None,
    ) -> None:
        self._store = store
        self._bucket = shards_bucket
        self._embeddings = embeddings
        self._prices = dict(prices)
        self._min_train = min_train_examples
        self._min_val = min_validation_examples
        self._data_root = data_root

    def load(self, request: TrainRequest, options: TrainOptions) -> PreparedData:
        """The request's examples, split by time (``NoDataError`` when too few)."""
        if options.dataset:
            prepared = self._from_dataset(options)
        else:
            prepared = self._from_shards(request, options)
        if len(prepared.train) < self._min_train or len(prepared.validation) < self._min_val:
            raise NoDataError(
                f"{len(prepared.train)} training and {len(prepared.validation)} validation "
                f"examples; at least {self._min_train} and {self._min_val} are needed"
            )
        return prepared

    # ------------------------------------------------------------ shards

    def _from_shards(self, request: TrainRequest, options: TrainOptions) -> PreparedData:
        keys = list(request.shard_manifests) or list_manifests(self._store, self._bucket)
        if not keys:
            raise NoDataError(f"no shard manifests under s3://{self._bucket}/{PREFIX}/")
        bad = [k for k in keys if not k.endswith(".manifest.json")]
        if bad:
            raise RequestError(f"not shard manifest keys (*.manifest.json): {bad[:5]}")
        try:
            table, manifests = read_tables(self._store, self._bucket, keys)
        except ArtifactNotFoundError as exc:
            raise RequestError(f"a requested shard is missing: {exc}") from exc
        rows_read = sum(m.rows for m in manifests)
        unique_rows = table.num_rows
        table = table.filter(pc.is_valid(table.column("embedding")))
        if table.num_rows < 2:
            raise NoDataError(
                f"{table.num_rows} usable rows (with an embedding) in {len(keys)} shard(s)"
            )
        correction = "ipw" if options.propensity_correction == "ipw" else "none"
        data = training_data(table, propensity_correction=correction)
        with_embedding = table.num_rows
        # A decision nobody graded (quality_source=feedback without feedback) is in the shard
        # but teaches nothing: it must count neither as an example nor in the time split.
        labelled = np.flatnonzero(np.isfinite(data.quality).any(axis=1))
        if labelled.size < with_embedding:
            data = data.subset(labelled)
            table = table.take(pa.array(labelled))
        if table.num_rows < 2:
            raise NoDataError(
                f"{table.num_rows} labelled rows (of {with_embedding} with an embedding) in "
                f"{len(keys)} shard(s)"
            )
        models = data.models
        if len(models) < 2:
            raise NoDataError(f"only one candidate model ({list(models)}): nothing to route")
        ids = [str(x) for x in table.column("decision_id").to_pylist()]
        assert data.event_times is not None
        times = data.event_times
        train_idx, val_idx, cut = time_split(times, ids, options.validation_fraction)
        # Validate on queries never seen before the split: a repeated query would score the
        # challenger (and the champion, trained on even older rows) on what it memorised.
        val_idx, repeats = novel_validation(data.embeddings, times, val_idx, cut)
        costs = self._shard_costs(table, models)
        actions, props, rewards = _logged_columns(table, models)
        train = data.subset(train_idx)
        if options.propensity_correction == "dr":
            train = doubly_robust(train, actions[train_idx], props[train_idx], seed=options.seed)
        strong, weak = self._strong_weak(options, models, costs, data, None)
        return PreparedData(
            source="shards",
            models=models,
            train=train,
            validation=data.subset(val_idx),
            validation_ids=[ids[i] for i in val_idx],
            validation_costs=costs[val_idx],
            logged=LoggedPolicy(actions[val_idx], props[val_idx], rewards[val_idx], "logged"),
            strong=strong,
            weak=weak,
            prices={m: self._prices[m] for m in models if m in self._prices},
            rows_read=rows_read,
            shard_count=len(manifests),
            window_start_ms=int(times.min()),
            window_end_ms=int(times.max()),
            split_time_ms=cut,
            notes={
                "duplicates_dropped": rows_read - unique_rows,
                "validation_repeats_dropped": repeats,
                "rows_without_embedding": unique_rows - with_embedding,
                "rows_without_label": with_embedding - table.num_rows,
            },
        )

    def _shard_costs(self, table: pa.Table, models: tuple[str, ...]) -> F64:
        """USD per request for each candidate: observed where logged, else estimated."""
        n, m = table.num_rows, len(models)
        index = {name: j for j, name in enumerate(models)}
        costs = np.full((n, m), np.nan)
        cols = {
            name: table.column(name).to_pylist()
            for name in (
                "selected_model",
                "cost_usd",
                "outcome_models",
                "outcome_costs",
                "input_tokens",
                "output_tokens",
            )
        }
        for i in range(n):
            for name, cost in zip(
                cols["outcome_models"][i] or [], cols["outcome_costs"][i] or [], strict=False
            ):
                if name in index and cost is not None:
                    costs[i, index[name]] = float(cost)
            sel, cost = cols["selected_model"][i], cols["cost_usd"][i]
            if sel in index and cost is not None:
                costs[i, index[sel]] = float(cost)
        tokens_in = np.array([x or 0 for x in cols["input_tokens"]], dtype=np.float64)
        tokens_out = np.array([x or 0 for x in cols["output_tokens"]], dtype=np.float64)
        for j, name in enumerate(models):
            column = costs[:, j]
            missing = ~np.isfinite(column)
            if not missing.any():
                continue
            if (~missing).any():
                column[missing] = float(np.mean(column[~missing]))
            elif name in self._prices:
                price = self._prices[name]
                column[:] = (tokens_in * price.input_per_m + tokens_out * price.output_per_m) / 1e6
            else:
                column[:] = 0.0
        return costs

    # ------------------------------------------------------------ dataset files

    def _from_dataset(self, options: TrainOptions) -> PreparedData:
        assert options.dataset is not None
        try:
            ds = load_named(options.dataset, self._data_root)
        except (ConfigError, OSError, ValueError) as exc:
            raise RequestError(f"cannot load dataset {options.dataset!r}: {exc}") from exc
        ds = _dedupe_dataset(ds)
        if len(ds) < 2 or len(ds.models) < 2:
            raise NoDataError(f"dataset {ds.name}: {len(ds)} rows, {len(ds.models)} models")
        n, m = len(ds), len(ds.models)
        embeddings = self._embeddings.embed(ds.prompts)
        rng = np.random.default_rng(options.seed)
        times = np.empty(n, dtype=np.int64)
        times[rng.permutation(n)] = np.arange(n, dtype=np.int64)
        data = TrainingData(
            embeddings=embeddings,
            quality=ds.scores.astype(np.float64),
            models=ds.models,
            texts=list(ds.prompts),
            event_times=times,
        )
        train_idx, val_idx, _ = time_split(times, ds.ids, options.validation_fraction)
        prices = {**ds.prices, **{k: v for k, v in self._prices.items() if k in ds.models}}
        costs = _dataset_costs(ds, prices)
        actions = rng.integers(0, m, n).astype(np.int64)
        rewards = ds.scores[np.arange(n), actions]
        props = np.full(n, 1.0 / m)
        strong, weak = self._strong_weak(options, ds.models, costs, data, ds)
        return PreparedData(
            source=f"dataset:{ds.name}",
            models=ds.models,
            train=data.subset(train_idx),
            validation=data.subset(val_idx),
            validation_ids=[ds.ids[i] for i in val_idx],
            validation_costs=costs[val_idx],
            logged=LoggedPolicy(
                actions[val_idx], props[val_idx], rewards[val_idx], "simulated-uniform"
            ),
            strong=strong,
            weak=weak,
            prices={mm: prices[mm] for mm in ds.models if mm in prices},
            rows_read=n,
            split_time_ms=None,
            notes={"split": f"seeded shuffle (seed {options.seed}), no event times"},
        )

    # ------------------------------------------------------------ shared

    def _strong_weak(
        self,
        options: TrainOptions,
        models: tuple[str, ...],
        costs: F64,
        data: TrainingData,
        ds: RoutingDataset | None,
    ) -> tuple[str, str]:
        """Strong and weak candidates for APGR: asked for, else the dataset's, else inferred
        as the most and least expensive (by mean cost; by prior quality if costs tie)."""
        if options.strong is not None and options.weak is not None:
            for name in (options.strong, options.weak):
                if name not in models:
                    raise RequestError(f"model {name!r} is not a candidate; have {list(models)}")
            return options.strong, options.weak
        if ds is not None and ds.strong in models and ds.weak in models:
            return str(ds.strong), str(ds.weak)
        mean_cost = np.nanmean(costs, axis=0)
        key = mean_cost if np.ptp(mean_cost) > 0 else data.priors()
        strong, weak = models[int(np.argmax(key))], models[int(np.argmin(key))]
        if strong == weak:
            raise RequestError(
                "cannot tell the strong from the weak model (equal costs and quality): set "
                "params strong= and weak= or ROUTEIQ_TRAINER_STRONG_MODEL/_WEAK_MODEL"
            )
        return strong, weak


def _logged_columns(table: pa.Table, models: tuple[str, ...]) -> tuple[I64, F64, F64]:
    index = {name: j for j, name in enumerate(models)}
    selected = table.column("selected_model").to_pylist()
    actions = np.array([index.get(s, -1) for s in selected], dtype=np.int64)
    props = np.array(
        [np.nan if p is None else float(p) for p in table.column("propensity").to_pylist()]
    )
    rewards = np.array(
        [np.nan if r is None else float(r) for r in table.column("reward").to_pylist()]
    )
    return actions, props, rewards


def _dedupe_dataset(ds: RoutingDataset) -> RoutingDataset:
    """Drop repeated ids (same prompt) and rows with no score at all."""
    seen: set[str] = set()
    keep = []
    for i, rid in enumerate(ds.ids):
        if rid in seen or not np.isfinite(ds.scores[i]).any():
            continue
        seen.add(rid)
        keep.append(i)
    return ds if len(keep) == len(ds) else ds.subset(keep)


def _tokens(text: str) -> float:
    return max(1.0, len(text) / CHARS_PER_TOKEN)


def _dataset_costs(ds: RoutingDataset, prices: Mapping[str, ModelPrice]) -> F64:
    """Estimated USD per request: prompt and recorded answer (or a default length) at list
    price; 0 for a model without a known price."""
    n, m = len(ds), len(ds.models)
    costs = np.zeros((n, m))
    for j, model in enumerate(ds.models):
        price = prices.get(model)
        if price is None:
            continue
        for i in range(n):
            answer = ds.responses[i].get(model, "") if ds.responses else ""
            out = _tokens(answer) if answer else DEFAULT_OUTPUT_TOKENS
            costs[i, j] = price.cost(int(_tokens(ds.prompts[i])), int(out))
    return costs


def prepare_train_test(
    train_ds: RoutingDataset,
    test_ds: RoutingDataset,
    *,
    embeddings: EmbeddingStore,
    prices: Mapping[str, ModelPrice] | None = None,
    seed: int = 0,
    strong: str | None = None,
    weak: str | None = None,
) -> PreparedData:
    """Explicit train and test tables (``routeiq eval --train --test``) as ``PreparedData``.

    The test rows play the validation role; their logged policy is a simulated uniform
    logger (seeded), as for a single dataset file.
    """
    train_ds, test_ds = _dedupe_dataset(train_ds), _dedupe_dataset(test_ds)
    if train_ds.models != test_ds.models:
        raise RequestError(
            f"train and test candidates differ: {list(train_ds.models)} vs {list(test_ds.models)}"
        )
    models = test_ds.models
    known = {**train_ds.prices, **test_ds.prices, **dict(prices or {})}
    tables = []
    for ds in (train_ds, test_ds):
        tables.append(
            TrainingData(
                embeddings=embeddings.embed(ds.prompts),
                quality=ds.scores.astype(np.float64),
                models=models,
                texts=list(ds.prompts),
                event_times=np.arange(len(ds), dtype=np.int64),
            )
        )
    costs = _dataset_costs(test_ds, known)
    n, m = len(test_ds), len(models)
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, m, n).astype(np.int64)
    strong = strong or test_ds.strong
    weak = weak or test_ds.weak
    if strong is None or weak is None:
        mean_cost = costs.mean(0)
        key = mean_cost if np.ptp(mean_cost) > 0 else tables[0].priors()
        strong, weak = models[int(np.argmax(key))], models[int(np.argmin(key))]
    for name in (strong, weak):
        if name not in models:
            raise RequestError(f"model {name!r} is not a candidate; have {list(models)}")
    return PreparedData(
        source=f"train:{train_ds.name} test:{test_ds.name}",
        models=models,
        train=tables[0],
        validation=tables[1],
        validation_ids=list(test_ds.ids),
        validation_costs=costs,
        logged=LoggedPolicy(
            actions,
            np.full(n, 1.0 / m),
            test_ds.scores[np.arange(n), actions],
            "simulated-uniform",
        ),
        strong=strong,
        weak=weak,
        prices={mm: known[mm] for mm in models if mm in known},
        rows_read=len(train_ds) + n,
    )
