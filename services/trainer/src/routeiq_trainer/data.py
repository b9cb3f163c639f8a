"""Training data for one request: from the labeler's shards in S3, or from a dataset file.

Shards: the manifests named by the request (or every manifest in the shards bucket) are read
with their sha256 checked, rows are de-duplicated by decision id, and the set is split by
event time: the newest ``validation_fraction`` of decisions validate, the rest train, and
every row sharing the boundary timestamp goes to validation, so no decision (nor any instant)
is on both sides.

Only rows whose feature vectors come from the trainer's own pipeline (``embedding_model`` =
its id) are used: a vector of another pipeline means nothing to a router trained on this one.

The split itself is ``routeiq_trainer.core.splits``; doubly robust labels (the ``dr``
propensity correction) are ``routeiq.routing.estimators``.

Dataset files (``gsm8k``, ``mt_bench``, ``llmrouter-train``, a CSV) carry no time; their rows
are ordered by a seeded shuffle and split the same way (``routeiq.routing.prepare``). They
carry the query text, which is what the BERT router needs, and no logging policy: their
off-policy estimates use a simulated uniform-random logger (propensity 1/m), said so in the
run's params.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray
from routeiq.errors import ArtifactNotFoundError, ConfigError
from routeiq.routing.datasets import ModelPrice, load_named
from routeiq.routing.embedding import MODEL_NAME as MINILM_NAME
from routeiq.routing.estimators import doubly_robust
from routeiq.routing.features import CHARS_PER_TOKEN
from routeiq.routing.featurestore import FeatureStore
from routeiq.routing.prepare import (
    DataError,
    LoggedPolicy,
    PreparedData,
    known_prices,
    prepare_split,
    strong_and_weak,
)
from routeiq.routing.querykey import join_texts
from routeiq.routing.routers import TrainingData
from routeiq.shards import PREFIX, list_manifests, read_tables, training_data
from routeiq.storage import ArtifactStore

from routeiq_trainer.config import TrainerSettings
from routeiq_trainer.core.requests import TrainOptions, TrainRequest
from routeiq_trainer.core.splits import novel_validation, time_split
from routeiq_trainer.errors import NoDataError, RequestError

logger = logging.getLogger(__name__)

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

__all__ = ["DataLoader", "LoggedPolicy", "PreparedData", "known_prices"]


@dataclass(kw_only=True, eq=False)
class DataLoader:
    """Builds a request's ``PreparedData`` from shards or a dataset file."""

    store: ArtifactStore
    shards_bucket: str
    embeddings: FeatureStore
    prices: Mapping[str, ModelPrice]
    min_train_examples: int
    min_validation_examples: int
    data_root: Path | None = None
    query_key: bytes | None = None  # joins shard rows to a request's texts

    def __post_init__(self) -> None:
        # A copy: the caller's table may change after the loader is built.
        self.prices = dict(self.prices)

    @classmethod
    def from_settings(
        cls,
        settings: TrainerSettings,
        *,
        store: ArtifactStore,
        embeddings: FeatureStore,
        data_root: Path | None = None,
    ) -> DataLoader:
        """The loader the worker uses: the settings' shards bucket, prices and minima."""
        return cls(
            store=store,
            shards_bucket=settings.shards_bucket,
            embeddings=embeddings,
            prices=known_prices(settings.prices),
            min_train_examples=settings.min_train_examples,
            min_validation_examples=settings.min_validation_examples,
            data_root=data_root,
            query_key=settings.query_key_bytes(),
        )

    def load(self, request: TrainRequest, options: TrainOptions) -> PreparedData:
        """The request's examples, split by time (``NoDataError`` when too few)."""
        if options.dataset:
            prepared = self._from_dataset(options)
        else:
            prepared = self._from_shards(request, options)
        need_train, need_val = self.min_train_examples, self.min_validation_examples
        if len(prepared.train) < need_train or len(prepared.validation) < need_val:
            raise NoDataError(
                f"{len(prepared.train)} training and {len(prepared.validation)} validation "
                f"examples; at least {need_train} and {need_val} are needed"
            )
        return prepared

    # ------------------------------------------------------------ shards

    def _from_shards(self, request: TrainRequest, options: TrainOptions) -> PreparedData:
        keys = list(request.shard_manifests) or list_manifests(self.store, self.shards_bucket)
        if not keys:
            raise NoDataError(f"no shard manifests under s3://{self.shards_bucket}/{PREFIX}/")
        bad = [k for k in keys if not k.endswith(".manifest.json")]
        if bad:
            raise RequestError(f"not shard manifest keys (*.manifest.json): {bad[:5]}")
        try:
            table, manifests = read_tables(self.store, self.shards_bucket, keys)
        except ArtifactNotFoundError as exc:
            raise RequestError(f"a requested shard is missing: {exc}") from exc
        rows_read = sum(m.rows for m in manifests)
        unique_rows = table.num_rows
        features = self.embeddings.features_id
        with_any_embedding = table.filter(pc.is_valid(table.column("embedding")))
        names = with_any_embedding.column("embedding_model")
        mine = pc.fill_null(pc.equal(names, features), False)
        if features == MINILM_NAME:  # rows from before pipelines were named are MiniLM's
            mine = pc.or_(mine, pc.is_null(names))
        table = with_any_embedding.filter(mine)
        if table.num_rows < 2:
            others = sorted(
                {str(m) for m in with_any_embedding.column("embedding_model").to_pylist()}
                - {features}
            )
            raise NoDataError(
                f"{table.num_rows} usable rows (with {features} features) in {len(keys)} "
                f"shard(s)" + (f"; other pipelines in them: {others}" if others else "")
            )
        # Train for the candidates the fleet serves now (the newest decision's): rows logged
        # under another candidate set (before a model was added or removed) are dropped.
        candidate_sets = [tuple(c or ()) for c in table.column("candidate_models").to_pylist()]
        newest = int(np.argmax(table.column("event_time").cast(pa.int64()).to_numpy()))
        current = set(candidate_sets[newest])
        same = np.array([set(c) == current for c in candidate_sets])
        other_candidates = int((~same).sum())
        if other_candidates:
            table = table.filter(pa.array(same))
        correction = "ipw" if options.propensity_correction == "ipw" else "none"
        data = training_data(table, propensity_correction=correction)
        with_embedding = table.num_rows  # with this trainer's features and candidates
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
        labelled_rows = table.num_rows
        if options.texts:
            data, table = self._with_texts(data, table, options.texts)
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
        strong, weak = self._strong_weak(options, models, costs, data)
        # The gateway's own estimate for a request (chars / 4 of the routed text), which is
        # what its cost-aware strategy prices live requests with.
        tokens = np.array(
            [
                max(1.0, float(x or 0) / CHARS_PER_TOKEN)
                for x in table.column("query_length").to_pylist()
            ]
        )
        return PreparedData(
            source="shards",
            models=models,
            train=train,
            validation=data.subset(val_idx),
            validation_ids=[ids[i] for i in val_idx],
            validation_costs=costs[val_idx],
            validation_tokens=tokens[val_idx],
            features_id=features,
            logged=LoggedPolicy(actions[val_idx], props[val_idx], rewards[val_idx], "logged"),
            strong=strong,
            weak=weak,
            prices={m: self.prices[m] for m in models if m in self.prices},
            rows_read=rows_read,
            shard_count=len(manifests),
            window_start_ms=int(times.min()),
            window_end_ms=int(times.max()),
            split_time_ms=cut,
            notes={
                "duplicates_dropped": rows_read - unique_rows,
                "validation_repeats_dropped": repeats,
                "rows_without_embedding": unique_rows - with_any_embedding.num_rows,
                "rows_of_other_features": with_any_embedding.num_rows
                - with_embedding
                - other_candidates,
                "rows_of_other_candidates": other_candidates,
                "rows_without_label": with_embedding - labelled_rows,
                "rows_without_text": labelled_rows - table.num_rows,
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
            elif name in self.prices:
                price = self.prices[name]
                column[:] = (tokens_in * price.input_per_m + tokens_out * price.output_per_m) / 1e6
            else:
                column[:] = 0.0
        return costs

    def _with_texts(
        self, data: TrainingData, table: pa.Table, source: str
    ) -> tuple[TrainingData, pa.Table]:
        """The rows whose query key names a prompt of ``source``, with their texts."""
        if self.query_key is None:
            raise RequestError(
                "texts are joined to shard rows by query key: set ROUTEIQ_TRAINER_QUERY_KEY "
                "to the gateways' ROUTEIQ_GATEWAY_QUERY_KEY"
            )
        try:
            prompts = load_named(source, self.data_root).prompts
        except (ConfigError, OSError, ValueError) as exc:
            raise RequestError(f"cannot load texts {source!r}: {exc}") from exc
        found = join_texts(self.query_key, table.column("query_key").to_pylist(), prompts)
        keep = np.array([i for i, text in enumerate(found) if text is not None], dtype=np.int64)
        if keep.size < 2:
            raise NoDataError(
                f"{keep.size} of {table.num_rows} labelled rows have a query key among the "
                f"{len(prompts)} prompts of {source!r} (is the trainer's query key the gateways'?)"
            )
        joined = data.subset(keep)
        joined.texts = [str(found[i]) for i in keep]
        return joined, table.take(pa.array(keep))

    # ------------------------------------------------------------ dataset files

    def _from_dataset(self, options: TrainOptions) -> PreparedData:
        assert options.dataset is not None
        try:
            ds = load_named(options.dataset, self.data_root)
        except (ConfigError, OSError, ValueError) as exc:
            raise RequestError(f"cannot load dataset {options.dataset!r}: {exc}") from exc
        try:
            return prepare_split(
                ds,
                store=self.embeddings,
                validation_fraction=options.validation_fraction,
                seed=options.seed,
                prices={k: v for k, v in self.prices.items() if k in ds.models},
                strong=options.strong,
                weak=options.weak,
            )
        except DataError as exc:
            raise NoDataError(str(exc)) from exc

    # ------------------------------------------------------------ shared

    def _strong_weak(
        self, options: TrainOptions, models: tuple[str, ...], costs: F64, data: TrainingData
    ) -> tuple[str, str]:
        """Strong and weak candidates for APGR: asked for, else inferred as the most and
        least expensive (by mean cost; by prior quality if costs tie)."""
        try:
            return strong_and_weak(
                models, costs, data.priors(), strong=options.strong, weak=options.weak
            )
        except DataError as exc:
            raise RequestError(
                f"{exc} (set params strong= and weak=, or ROUTEIQ_TRAINER_STRONG_MODEL/_WEAK_MODEL)"
            ) from exc


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
