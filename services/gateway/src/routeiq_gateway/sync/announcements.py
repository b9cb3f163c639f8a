"""Model announcements as the gateway reads them: the record's parts it acts on, checked, and
the reader of one router's announcements (``CompactedLogReader`` does the reading)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from routeiq.errors import ContractError

from routeiq_gateway.sync.logreader import CompactedLogReader

# Router names and versions become cache folder names and S3 key segments: the trainer's rule
# (no separators, no traversal).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Announcement:
    """The parts of a ``ModelAnnouncement`` the gateway acts on."""

    model_name: str
    version: str
    action: str
    router_type: str
    bucket: str
    prefix: str
    manifest_sha256: str
    manifest_version_id: str | None
    signature: dict[str, str]
    announced_by: str
    reason: str | None

    @classmethod
    def from_record(cls, r: dict[str, Any]) -> Announcement:
        """The announcement in a decoded record; ``ContractError`` if the gateway cannot act
        on it (a name or version that is not a safe folder name, a malformed digest)."""
        try:
            announcement = cls._parse(r)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ContractError(f"announcement lacks {exc!r}") from exc
        for what, value in (
            ("model_name", announcement.model_name),
            ("version", announcement.version),
        ):
            if not _NAME.fullmatch(value) or ".." in value:
                raise ContractError(f"announcement {what} {value[:100]!r} is not a safe name")
        if not _SHA256.fullmatch(announcement.manifest_sha256):
            raise ContractError("announcement manifest_sha256 is not 64 lowercase hex digits")
        if not announcement.bucket or not announcement.prefix:
            raise ContractError("announcement bundle has an empty bucket or prefix")
        return announcement

    @classmethod
    def _parse(cls, r: dict[str, Any]) -> Announcement:
        b = r["bundle"]
        return cls(
            model_name=r["model_name"],
            version=r["version"],
            action=r["action"],
            router_type=r["router_type"],
            bucket=b["bucket"],
            prefix=b["prefix"].rstrip("/"),
            manifest_sha256=b["manifest_sha256"],
            manifest_version_id=b.get("manifest_version_id"),
            signature={k: str(r["signature"][k]) for k in ("algorithm", "key_id", "value")},
            announced_by=r["announced_by"],
            reason=r.get("reason"),
        )


@dataclass(kw_only=True, eq=False)
class AnnouncementReader(CompactedLogReader[Announcement]):
    """Router ``name``'s announcements (the topic carries every router's)."""

    name: str

    def parse(self, record: dict[str, Any]) -> Announcement:
        return Announcement.from_record(record)

    def wanted(self, item: Announcement) -> bool:
        return item.model_name == self.name
