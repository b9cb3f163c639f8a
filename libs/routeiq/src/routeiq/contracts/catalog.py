"""The contract catalogue: which Avro schemas exist, their released versions and their files.

Schemas live in the repository's top-level ``schemas/`` folder: ``<stem>.avsc`` is the working
copy and ``released/<stem>/v<N>.avsc`` every version ever released, which must never change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import avro.schema

from routeiq.contracts.compatibility import canonical_text, parse_schema
from routeiq.errors import ContractError

_RELEASED = re.compile(r"^v(\d+)\.avsc$")


@dataclass(frozen=True)
class Contract:
    """One event contract: its file stem and the Avro record it defines."""

    stem: str
    record_name: str

    def working_path(self, root: Path | None = None) -> Path:
        return (root or schemas_dir()) / f"{self.stem}.avsc"

    def released_dir(self, root: Path | None = None) -> Path:
        return (root or schemas_dir()) / "released" / self.stem

    def working_text(self, root: Path | None = None) -> str:
        return self.working_path(root).read_text(encoding="utf-8")

    def working_schema(self, root: Path | None = None) -> avro.schema.Schema:
        return parse_schema(self.working_text(root))

    def released(self, root: Path | None = None) -> list[tuple[int, str]]:
        """Released versions as (version, schema text), oldest first."""
        folder = self.released_dir(root)
        found: list[tuple[int, str]] = []
        if folder.is_dir():
            for path in folder.iterdir():
                match = _RELEASED.match(path.name)
                if match:
                    found.append((int(match.group(1)), path.read_text(encoding="utf-8")))
        found.sort()
        numbers = [v for v, _ in found]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ContractError(f"{folder}: released versions must be v1..vN, found {numbers}")
        return found

    def is_released(self, root: Path | None = None) -> bool:
        """True when the working copy equals the latest released version."""
        released = self.released(root)
        if not released:
            return False
        latest = canonical_text(parse_schema(released[-1][1]))
        return latest == canonical_text(self.working_schema(root))


ROUTER_DECISION = Contract("router_decision", "io.routeiq.events.RouterDecision")
FEEDBACK = Contract("feedback", "io.routeiq.events.Feedback")
RETRAIN_REQUEST = Contract("retrain_request", "io.routeiq.events.RetrainRequest")
MODEL_ANNOUNCEMENT = Contract("model_announcement", "io.routeiq.events.ModelAnnouncement")
DEAD_LETTER = Contract("dead_letter", "io.routeiq.events.DeadLetter")
ROUTING_CONFIG = Contract("routing_config", "io.routeiq.events.RoutingConfigChange")

CONTRACTS: tuple[Contract, ...] = (
    ROUTER_DECISION,
    FEEDBACK,
    RETRAIN_REQUEST,
    MODEL_ANNOUNCEMENT,
    DEAD_LETTER,
    ROUTING_CONFIG,
)


@cache
def schemas_dir() -> Path:
    """Locate ``schemas/``: packaged beside this module in a wheel, else the repo's top level."""
    here = Path(__file__).resolve().parent
    packaged = here / "schemas"
    if packaged.is_dir():
        return packaged
    for parent in here.parents:
        candidate = parent / "schemas"
        if (candidate / "released").is_dir():
            return candidate
    raise ContractError(f"no schemas/ folder found above {here}")
