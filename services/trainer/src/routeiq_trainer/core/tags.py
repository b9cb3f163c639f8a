"""Every MLflow tag name the trainer writes or reads, in one place.

On a model version (``routeiq model list`` and a restarted worker read them in one call):

* ``routeiq.request_key`` (sha256 of the request id) and ``routeiq.request_id``: the
  idempotency key, looked up before any work so a redelivered request trains nothing;
* ``routeiq.version`` (the bundle version), ``routeiq.router_type``, ``routeiq.metrics``
  (JSON), the data window, shard count and git commit, and where the bundle is in S3;
* ``routeiq.gate`` (passed / held), its reason, ``routeiq.previous_champion`` and
  ``routeiq.announced`` (the announcement id): the steps after registration, so a worker
  that died between them finishes the job instead of repeating it.

The alias ``champion`` names the version gateways should serve; the registered model's tag
``routeiq.champion_history`` (JSON list of versions) is what ``rollback`` walks back.
"""

from __future__ import annotations

import hashlib

ALIAS = "champion"

# The request (on the top-level run and on the version).
TAG_REQUEST_KEY = "routeiq.request_key"
TAG_REQUEST_ID = "routeiq.request_id"
TAG_VERSION = "routeiq.version"
TAG_MODEL_NAME = "routeiq.model_name"
TAG_REASON = "routeiq.reason"
TAG_REQUESTED_BY = "routeiq.requested_by"

# What was trained (on runs and the version).
TAG_ROUTER_TYPE = "routeiq.router_type"
TAG_METRICS = "routeiq.metrics"
TAG_BUNDLE = "routeiq.bundle"  # JSON: bucket, prefix, manifest_sha256, size, version id
TAG_SIGNATURE = "routeiq.signature"  # JSON: algorithm, key_id, value
TAG_SOURCE = "routeiq.source"
TAG_CANDIDATES = "routeiq.candidates"
TAG_WINDOW_START = "routeiq.data_window_start_ms"
TAG_WINDOW_END = "routeiq.data_window_end_ms"
TAG_SHARD_COUNT = "routeiq.shard_count"
TAG_GIT_COMMIT = "routeiq.git_commit"
TAG_DEVICE = "routeiq.device"

# The steps after registration.
TAG_GATE = "routeiq.gate"
TAG_GATE_REASON = "routeiq.gate_reason"
TAG_GATE_METRIC = "routeiq.gate_metric"
TAG_GATE_BASELINE = "routeiq.gate_baseline"
TAG_PREVIOUS = "routeiq.previous_champion"
TAG_ANNOUNCED = "routeiq.announced"

# On the registered model.
MODEL_TAG_HISTORY = "routeiq.champion_history"

# MLflow's own tag that nests a run under another.
TAG_PARENT_RUN = "mlflow.parentRunId"

# MLflow caps tag values; request ids and requesters are cut to this.
MAX_TAG_CHARS = 5000


def request_key(request_id: str) -> str:
    """A quoting-safe stand-in for the request id in MLflow search filters."""
    return hashlib.sha256(request_id.encode("utf-8")).hexdigest()[:40]
