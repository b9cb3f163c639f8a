"""Training shards: the Parquet contract between the labeler (writer) and the trainer (reader).

One row per routing decision, labelled. Objects live in the shards bucket under

    shards/router_decision.v1/dt=YYYY-MM-DD/window=<start ms>/part-<partition>.parquet
    shards/router_decision.v1/dt=YYYY-MM-DD/window=<start ms>/part-<partition>.manifest.json

and late events (arriving after their window closed) under ``.../late/...`` with the same
layout; shards labelled elsewhere (``prepare_data``, from Jaeger) under ``.../<origin>/...``.
Keys depend only on (origin, window, partition), so re-processing a window overwrites the
same objects instead of adding duplicates. Column meanings: docs/shards.md.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from routeiq.errors import IntegrityError, StorageError
from routeiq.routing.featurizer import MAX_DIMENSION
from routeiq.routing.routers.base import TrainingData
from routeiq.storage import ArtifactStore

SHARD_SCHEMA_VERSION = "router_decision.v1/shard.v1"
PREFIX = "shards/router_decision.v1"

SCHEMA = pa.schema(
    [
        pa.field("decision_id", pa.string(), nullable=False),
        pa.field("event_time", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("window_start", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("late", pa.bool_(), nullable=False),
        # The feature vector the gateway computed, of the pipeline named in embedding_model
        # (its length is the pipeline's: 384 for MiniLM, 768 for static + sketch).
        pa.field("embedding", pa.list_(pa.float32())),
        pa.field("embedding_model", pa.string()),
        pa.field("query_length", pa.int32()),
        pa.field("domain", pa.string()),
        pa.field("requested_model", pa.string()),
        pa.field("strategy", pa.string()),
        pa.field("strategy_version", pa.string()),
        pa.field("router_version", pa.string()),
        pa.field("ab_arm", pa.string()),
        pa.field("selected_model", pa.string(), nullable=False),
        pa.field("exploration", pa.bool_()),
        pa.field("propensity", pa.float64()),
        pa.field("candidate_models", pa.list_(pa.string())),
        pa.field("candidate_propensities", pa.list_(pa.float64())),
        pa.field("status", pa.string()),
        pa.field("latency_ms", pa.float64()),
        pa.field("upstream_latency_ms", pa.float64()),
        pa.field("input_tokens", pa.int32()),
        pa.field("output_tokens", pa.int32()),
        pa.field("cost_usd", pa.float64()),
        pa.field("quality", pa.float64(), nullable=False),
        pa.field("quality_source", pa.string(), nullable=False),
        pa.field("reward", pa.float64(), nullable=False),
        pa.field("outcome_models", pa.list_(pa.string())),
        pa.field("outcome_qualities", pa.list_(pa.float64())),
        pa.field("outcome_costs", pa.list_(pa.float64())),
        pa.field("feedback_count", pa.int32()),
        # The oracle (routeiq.routing.oracle), when the labeler is configured with a cheap and
        # a strong model and both were graded: each outcome's grade, the cell, the policy.
        pa.field("outcome_grades", pa.list_(pa.string())),
        pa.field("oracle_cell", pa.string()),
        pa.field("policy", pa.string()),
        # The decision's query key (routeiq.routing.querykey), joining it to a prompt store.
        pa.field("query_key", pa.string()),
    ]
)
# Columns added after the first shards were written: older shards read as null there.
ADDED_COLUMNS = ("outcome_grades", "oracle_cell", "policy", "query_key")


_ORIGIN = re.compile(r"[a-z][a-z0-9-]{0,31}")


def window_prefix(window_start_ms: int, *, late: bool = False, origin: str = "") -> str:
    """``shards/router_decision.v1[/<origin>][/late]/dt=YYYY-MM-DD/window=<start ms>``."""
    if origin and (origin in {"late", "dt"} or not _ORIGIN.fullmatch(origin)):
        raise ValueError(f"shard origin must be a short lowercase name, got {origin!r}")
    day = datetime.fromtimestamp(window_start_ms / 1000, tz=UTC).strftime("%Y-%m-%d")
    base = f"{PREFIX}/{origin}" if origin else PREFIX
    if late:
        base += "/late"
    return f"{base}/dt={day}/window={window_start_ms}"


def shard_keys(
    window_start_ms: int, partition: int, *, late: bool = False, origin: str = ""
) -> tuple[str, str]:
    """(parquet key, manifest key) for one window and source partition."""
    prefix = window_prefix(window_start_ms, late=late, origin=origin)
    return f"{prefix}/part-{partition}.parquet", f"{prefix}/part-{partition}.manifest.json"


@dataclass(frozen=True)
class ShardManifest:
    key: str
    rows: int
    sha256: str
    size: int
    window_start: int  # ms
    window_end: int  # ms (exclusive)
    min_event_time: int
    max_event_time: int
    partition: int
    late: bool
    schema_version: str = SHARD_SCHEMA_VERSION
    decision_ids_sha256: str = ""
    written_at: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> ShardManifest:
        return cls(**json.loads(text))


def to_table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Rows (dicts keyed by column) → a table with the shard schema, sorted by decision id.

    Sorting makes the bytes a function of the row set alone, so rewriting a window after a
    crash produces the identical object.
    """
    ordered = sorted(rows, key=lambda r: str(r["decision_id"]))
    index = SCHEMA.get_field_index("embedding")
    # The embedding column is built apart: a missing embedding must become a list of nulls.
    others = pa.Table.from_pylist(
        [{k: v for k, v in r.items() if k != "embedding"} for r in ordered],
        schema=SCHEMA.remove(index),
    )
    embeddings = _embedding_column([r.get("embedding") for r in ordered])
    return others.add_column(index, SCHEMA.field(index), embeddings)


def _embedding_column(values: Sequence[Any]) -> pa.ListArray:
    arrays: list[Any] = []
    for i, value in enumerate(values):
        if value is None:
            arrays.append(None)
            continue
        vector = np.asarray(value, dtype=np.float32)
        if vector.ndim != 1 or not 0 < vector.size <= MAX_DIMENSION:
            raise ValueError(f"embedding of row {i} has shape {vector.shape}")
        arrays.append(vector)
    return pa.array(arrays, type=pa.list_(pa.float32()))


# Shards written before feature pipelines had ids hold a fixed-size list of 384 floats, with
# a missing embedding stored as 384 null floats (Arrow C++ could not write a null entry of a
# fixed-size list: apache/arrow#35692). Reading turns those into a variable list and a null.
def _restore_missing_embeddings(table: pa.Table) -> pa.Table:
    index = table.schema.get_field_index("embedding")
    if index < 0 or table.num_rows == 0:
        return table
    column = table.column(index).combine_chunks()
    if not pa.types.is_fixed_size_list(column.type):
        return table
    width = column.type.list_size
    values = column.values.slice(column.offset * width, len(column) * width)
    valid = np.asarray(values.is_valid()).reshape(len(column), width)
    missing = ~valid.any(axis=1) | np.asarray(column.is_null())
    flat = pa.FixedSizeListArray.from_arrays(values, width, mask=pa.array(missing))
    return table.set_column(index, SCHEMA.field("embedding"), flat.cast(pa.list_(pa.float32())))


def _add_missing_columns(table: pa.Table) -> pa.Table:
    for name in ADDED_COLUMNS:
        if name not in table.column_names:
            field = SCHEMA.field(name)
            table = table.append_column(field, pa.nulls(table.num_rows, type=field.type))
    return table


def decode_table(data: bytes) -> pa.Table:
    """Parquet bytes of a shard → its table, rows without an embedding having ``None`` and
    columns added since it was written null."""
    return _add_missing_columns(_restore_missing_embeddings(pq.read_table(io.BytesIO(data))))


def encode_table(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def write_shard(
    store: ArtifactStore,
    bucket: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    window_start_ms: int,
    window_end_ms: int,
    partition: int,
    late: bool = False,
    written_at_ms: int = 0,
    origin: str = "",
) -> ShardManifest:
    """Write one window's rows for one partition as Parquet plus its manifest (idempotent)."""
    if not rows:
        raise StorageError("refusing to write an empty shard")
    table = to_table(rows)
    data = encode_table(table)
    key, manifest_key = shard_keys(window_start_ms, partition, late=late, origin=origin)
    stored = store.put_bytes(bucket, key, data, content_type="application/vnd.apache.parquet")
    times = [
        int(r["event_time"].timestamp() * 1000)
        if isinstance(r["event_time"], datetime)
        else int(r["event_time"])
        for r in rows
    ]
    ids = "\n".join(sorted(str(r["decision_id"]) for r in rows)).encode()
    manifest = ShardManifest(
        key=key,
        rows=table.num_rows,
        sha256=stored.sha256,
        size=stored.size,
        window_start=window_start_ms,
        window_end=window_end_ms,
        min_event_time=min(times),
        max_event_time=max(times),
        partition=partition,
        late=late,
        decision_ids_sha256=hashlib.sha256(ids).hexdigest(),
        written_at=written_at_ms,
    )
    store.put_bytes(
        bucket, manifest_key, manifest.to_json().encode(), content_type="application/json"
    )
    return manifest


def list_manifests(store: ArtifactStore, bucket: str, prefix: str = PREFIX) -> list[str]:
    """Every shard manifest key under ``prefix`` (late shards included), sorted."""
    return sorted(k for k in store.list_keys(bucket, prefix) if k.endswith(".manifest.json"))


def read_manifest(store: ArtifactStore, bucket: str, key: str) -> ShardManifest:
    return ShardManifest.from_json(store.get_bytes(bucket, key))


def read_shard(store: ArtifactStore, bucket: str, manifest: ShardManifest) -> pa.Table:
    """The shard's rows, verified against the manifest's sha256 and row count."""
    data = store.get_bytes(bucket, manifest.key, expected_sha256=manifest.sha256)
    table = decode_table(data)
    if table.num_rows != manifest.rows:
        raise IntegrityError(
            f"{manifest.key}: {table.num_rows} rows, manifest says {manifest.rows}"
        )
    return table


def read_tables(
    store: ArtifactStore, bucket: str, manifest_keys: Iterable[str]
) -> tuple[pa.Table, list[ShardManifest]]:
    """All rows of the given shards, de-duplicated by decision id (the most-labelled row wins,
    then the newest), with the manifests read."""
    manifests = [read_manifest(store, bucket, k) for k in manifest_keys]
    tables = [read_shard(store, bucket, m) for m in manifests]
    if not tables:
        return SCHEMA.empty_table(), manifests
    table = pa.concat_tables([t.select(SCHEMA.names).cast(SCHEMA) for t in tables])
    return dedupe(table), manifests


def dedupe(table: pa.Table) -> pa.Table:
    """One row per decision id: most feedback, then latest event time."""
    if table.num_rows == 0:
        return table
    ids = table.column("decision_id").to_pylist()
    fb = table.column("feedback_count").fill_null(0).to_numpy(zero_copy_only=False)
    times = table.column("event_time").cast(pa.int64()).to_numpy(zero_copy_only=False)
    best: dict[str, int] = {}
    for i, d in enumerate(ids):
        j = best.get(d)
        if j is None or (fb[i], times[i]) > (fb[j], times[j]):
            best[d] = i
    keep = np.array(sorted(best.values()), dtype=np.int64)
    return table.take(pa.array(keep))


def training_data(
    table: pa.Table,
    *,
    models: Sequence[str] | None = None,
    propensity_correction: str = "ipw",
    max_weight: float = 20.0,
) -> TrainingData:
    """Shard rows → ``TrainingData`` (rows without an embedding are skipped).

    Every embedding must have the same length: filter the table to one feature pipeline
    (``embedding_model``) first.

    ``quality[i, j]`` is candidate j's observed quality: the served model's from the label,
    others' from shadow outcomes. Under ``ipw``, a row that observed only the served model
    weighs that cell by 1/propensity (clipped at ``max_weight``); fully observed rows (every
    candidate graded) weigh 1, as they carry no selection bias.
    """
    if propensity_correction not in {"ipw", "none"}:
        raise ValueError("propensity_correction must be 'ipw' or 'none'")
    rows = table.to_pylist()
    rows = [r for r in rows if r.get("embedding") is not None]
    if models is None:
        seen: dict[str, None] = {}
        for r in rows:
            for m in r.get("candidate_models") or [r["selected_model"]]:
                seen.setdefault(m, None)
            for m in r.get("outcome_models") or []:
                seen.setdefault(m, None)
        models = list(seen)
    index = {m: j for j, m in enumerate(models)}
    n, m = len(rows), len(models)
    quality = np.full((n, m), np.nan)
    weights = np.ones((n, m))
    widths = {len(r["embedding"]) for r in rows}
    if len(widths) > 1:
        raise ValueError(
            f"embeddings of {sorted(widths)} values: rows from more than one feature pipeline"
        )
    emb = np.zeros((n, widths.pop() if widths else 0), dtype=np.float32)
    times = np.zeros(n, dtype=np.int64)
    for i, r in enumerate(rows):
        emb[i] = np.asarray(r["embedding"], dtype=np.float32)
        ts = r["event_time"]
        times[i] = int(ts.timestamp() * 1000) if isinstance(ts, datetime) else int(ts)
        outcomes = dict(
            zip(r.get("outcome_models") or [], r.get("outcome_qualities") or [], strict=False)
        )
        outcomes.setdefault(r["selected_model"], r["quality"])
        for name, q in outcomes.items():
            if name in index and q is not None:
                quality[i, index[name]] = float(q)
        if propensity_correction == "ipw" and len(outcomes) == 1:
            p = r.get("propensity")
            j = index.get(r["selected_model"])
            if j is not None and p:
                weights[i, j] = min(1.0 / float(p), max_weight)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    emb = emb / np.maximum(norms, 1e-12)
    return TrainingData(
        embeddings=emb, quality=quality, models=tuple(models), weights=weights, event_times=times
    )
