"""MLflow: one experiment per router name, one run per request, one registered version each.

What the trainer records on runs, versions and the registered model (and why each is there
to make a retried request safe) is listed with the tag names in ``routeiq_trainer.core.tags``;
this module is the MLflow client side, with every MLflow error wrapped as ``TrackingError``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import requests
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException

from routeiq_trainer.core.tags import (
    ALIAS,
    MODEL_TAG_HISTORY,
    TAG_PARENT_RUN,
    TAG_REQUEST_KEY,
    request_key,
)
from routeiq_trainer.core.versions import VersionInfo
from routeiq_trainer.errors import TrackingError

__all__ = ["ModelRegistry", "VersionInfo"]

T = TypeVar("T")

HISTORY_LIMIT = 50
_NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"
_EXISTS = "RESOURCE_ALREADY_EXISTS"


class ModelRegistry:
    """The trainer's view of MLflow tracking and the model registry."""

    def __init__(self, *, client: MlflowClient, experiment_prefix: str = "routeiq/") -> None:
        self._client = client
        self._prefix = experiment_prefix

    @property
    def client(self) -> MlflowClient:
        return self._client

    @staticmethod
    def _call(what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except MlflowException as exc:
            raise TrackingError(f"MLflow: cannot {what}: {exc.message}") from exc
        except requests.RequestException as exc:
            raise TrackingError(f"MLflow: cannot {what}: {exc}") from exc

    # ------------------------------------------------------------ experiments and runs

    def experiment_name(self, name: str) -> str:
        return f"{self._prefix}{name}"

    def experiment(self, name: str) -> str:
        """The experiment id for router ``name`` (created on first use, race-safe)."""
        title = self.experiment_name(name)
        found = self._call("read experiment", self._client.get_experiment_by_name, title)
        if found is not None:
            return str(found.experiment_id)
        try:
            return str(self._client.create_experiment(title))
        except MlflowException as exc:
            if exc.error_code != _EXISTS:
                raise TrackingError(f"MLflow: cannot create experiment: {exc.message}") from exc
        found = self._call("read experiment", self._client.get_experiment_by_name, title)
        if found is None:
            raise TrackingError(f"MLflow: experiment {title} vanished while being created")
        return str(found.experiment_id)

    def start_run(
        self,
        experiment_id: str,
        *,
        run_name: str,
        tags: Mapping[str, str],
        parent_run_id: str | None = None,
    ) -> str:
        """A new run (nested under ``parent_run_id`` when given); returns its id."""
        all_tags = dict(tags)
        if parent_run_id:
            all_tags[TAG_PARENT_RUN] = parent_run_id
        run = self._call(
            "create run", self._client.create_run, experiment_id, run_name=run_name, tags=all_tags
        )
        return str(run.info.run_id)

    def run_experiment(self, run_id: str) -> str:
        run = self._call("read run", self._client.get_run, run_id)
        return str(run.info.experiment_id)

    def set_run_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self._call("tag run", self._client.set_tag, run_id, key, value)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Log params; one the run already has with another value (``mlflow run`` logs the
        entry point's parameters first) goes in as ``trainer.<key>`` instead."""
        run = self._call("read run", self._client.get_run, run_id)
        existing = dict(run.data.params)
        items = []
        for key, value in params.items():
            if value is None:
                continue
            text = str(value)[:6000]
            if existing.get(key, text) == text:
                if key not in existing:
                    items.append(Param(key, text))  # type: ignore[no-untyped-call]
            else:
                items.append(Param(f"trainer.{key}", text))  # type: ignore[no-untyped-call]
        for start in range(0, len(items), 100):
            self._call(
                "log params", self._client.log_batch, run_id, params=items[start : start + 100]
            )

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], *, step: int = 0) -> None:
        now = int(time.time() * 1000)
        items = [
            Metric(k, float(v), now, step) for k, v in metrics.items() if math.isfinite(float(v))
        ]
        for start in range(0, len(items), 500):
            self._call(
                "log metrics", self._client.log_batch, run_id, metrics=items[start : start + 500]
            )

    def log_artifacts(self, run_id: str, folder: Path, artifact_path: str) -> None:
        self._call("log artifacts", self._client.log_artifacts, run_id, str(folder), artifact_path)

    def log_artifact(self, run_id: str, path: Path, artifact_path: str) -> None:
        self._call("log artifact", self._client.log_artifact, run_id, str(path), artifact_path)

    def artifact_uri(self, run_id: str, artifact_path: str) -> str:
        run = self._call("read run", self._client.get_run, run_id)
        return f"{run.info.artifact_uri}/{artifact_path}"

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self._call("end run", self._client.set_terminated, run_id, status)

    def runs_for_request(self, name: str, request_id: str) -> list[tuple[str, str]]:
        """(run id, status) of top-level runs started for ``request_id``."""
        experiment_id = self.experiment(name)
        runs = self._call(
            "search runs",
            self._client.search_runs,
            [experiment_id],
            filter_string=f"tags.`{TAG_REQUEST_KEY}` = '{request_key(request_id)}'",
        )
        return [(str(r.info.run_id), str(r.info.status)) for r in runs]

    # ------------------------------------------------------------ registered versions

    def _info(self, mv: Any, aliases: tuple[str, ...] | None = None) -> VersionInfo:
        return VersionInfo(
            name=str(mv.name),
            number=str(mv.version),
            run_id=mv.run_id,
            tags=dict(mv.tags or {}),
            created_ms=int(mv.creation_timestamp or 0),
            aliases=tuple(mv.aliases or ()) if aliases is None else aliases,
        )

    def versions(self, name: str) -> list[VersionInfo]:
        """Every version of ``name``, oldest first (empty when the model does not exist)."""
        found = self._call(
            "search versions", self._client.search_model_versions, f"name = '{name}'"
        )
        aliases = self._aliases(name)
        infos = [
            self._info(mv, tuple(a for a, v in aliases.items() if v == str(mv.version)))
            for mv in found
        ]
        return sorted(infos, key=lambda v: int(v.number))

    def _aliases(self, name: str) -> dict[str, str]:
        try:
            model = self._client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code == _NOT_FOUND:
                return {}
            raise TrackingError(f"MLflow: cannot read model {name}: {exc.message}") from exc
        except requests.RequestException as exc:
            raise TrackingError(f"MLflow: cannot read model {name}: {exc}") from exc
        return {str(k): str(v) for k, v in (model.aliases or {}).items()}

    def find_by_request(self, name: str, request_id: str) -> list[VersionInfo]:
        """Versions registered for ``request_id``, oldest first (normally zero or one)."""
        found = self._call(
            "search versions",
            self._client.search_model_versions,
            f"name = '{name}' and tags.`{TAG_REQUEST_KEY}` = '{request_key(request_id)}'",
        )
        aliases = self._aliases(name) if found else {}
        infos = [
            self._info(mv, tuple(a for a, v in aliases.items() if v == str(mv.version)))
            for mv in found
        ]
        return sorted(infos, key=lambda v: int(v.number))

    def get(self, name: str, ref: str) -> VersionInfo:
        """A version by MLflow number, bundle version (``v...``) or ``champion``."""
        if ref == ALIAS:
            champion = self.champion(name)
            if champion is None:
                raise TrackingError(f"{name} has no champion")
            return champion
        for info in self.versions(name):
            if ref in {info.number, info.version}:
                return info
        raise TrackingError(f"{name} has no version {ref!r}")

    def champion(self, name: str) -> VersionInfo | None:
        """The version the alias ``champion`` points at, if any."""
        number = self._aliases(name).get(ALIAS)
        if number is None:
            return None
        mv = self._call("read version", self._client.get_model_version, name, number)
        return self._info(mv)

    def register(
        self, name: str, *, source: str, run_id: str, tags: Mapping[str, str], description: str
    ) -> VersionInfo:
        """Create the registered model if needed, then a version from ``source``."""
        try:
            self._client.create_registered_model(
                name, description="RouteIQ router; versions from the trainer"
            )
        except MlflowException as exc:
            if exc.error_code != _EXISTS:
                raise TrackingError(f"MLflow: cannot create model {name}: {exc.message}") from exc
        except requests.RequestException as exc:
            raise TrackingError(f"MLflow: cannot create model {name}: {exc}") from exc
        mv = self._call(
            "register version",
            self._client.create_model_version,
            name,
            source,
            run_id=run_id,
            tags=dict(tags),
            description=description,
        )
        return self._info(mv, ())

    def delete_version(self, name: str, number: str) -> None:
        self._call("delete version", self._client.delete_model_version, name, number)

    def set_tags(self, name: str, number: str, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self._call("tag version", self._client.set_model_version_tag, name, number, key, value)

    def refresh(self, info: VersionInfo) -> VersionInfo:
        mv = self._call("read version", self._client.get_model_version, info.name, info.number)
        aliases = self._aliases(info.name)
        return self._info(mv, tuple(a for a, v in aliases.items() if v == info.number))

    # ------------------------------------------------------------ champion

    def champion_history(self, name: str) -> list[str]:
        """Bundle versions that were champion, oldest first."""
        model = self._call("read model", self._client.get_registered_model, name)
        try:
            value = json.loads((model.tags or {}).get(MODEL_TAG_HISTORY, "[]"))
        except ValueError:
            return []
        return [str(v) for v in value] if isinstance(value, list) else []

    def set_champion(self, info: VersionInfo, *, rollback: bool = False) -> None:
        """Point ``champion`` at ``info`` and record it in the history.

        A promotion appends; a rollback drops the current champion from the end of the
        history (so a second rollback goes one further back) and appends the target only if
        it is not already the last entry.
        """
        history = self.champion_history(info.name)
        if rollback and history:
            history.pop()
        if not history or history[-1] != info.version:
            history.append(info.version)
        self._call(
            "set alias",
            self._client.set_registered_model_alias,
            info.name,
            ALIAS,
            info.number,
        )
        self._call(
            "tag model",
            self._client.set_registered_model_tag,
            info.name,
            MODEL_TAG_HISTORY,
            json.dumps(history[-HISTORY_LIMIT:]),
        )
