"""A registered model version as the trainer sees it: MLflow's record, read through its tags."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from routeiq_trainer.core.tags import (
    ALIAS,
    TAG_BUNDLE,
    TAG_METRICS,
    TAG_ROUTER_TYPE,
    TAG_SIGNATURE,
    TAG_VERSION,
)


@dataclass(frozen=True)
class VersionInfo:
    """A registered model version as the trainer sees it."""

    name: str
    number: str  # MLflow's version number
    run_id: str | None
    tags: dict[str, str]
    created_ms: int
    aliases: tuple[str, ...] = ()

    @property
    def version(self) -> str:
        """The bundle version (``v...``); MLflow's number when the tag is missing."""
        return self.tags.get(TAG_VERSION, self.number)

    @property
    def router_type(self) -> str:
        return self.tags.get(TAG_ROUTER_TYPE, "?")

    def _json_object(self, tag: str) -> dict[str, Any]:
        """A tag holding a JSON object; ``{}`` when it is missing or not one."""
        try:
            value = json.loads(self.tags.get(tag, "{}"))
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    @property
    def metrics(self) -> dict[str, float]:
        try:
            return {k: float(v) for k, v in self._json_object(TAG_METRICS).items()}
        except (ValueError, TypeError):
            return {}

    @property
    def bundle(self) -> dict[str, Any]:
        return self._json_object(TAG_BUNDLE)

    @property
    def signature(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self._json_object(TAG_SIGNATURE).items()}

    @property
    def is_champion(self) -> bool:
        return ALIAS in self.aliases
