"""Bundles in the versioned models bucket under ``models/<name>/<version>/``.

Upload writes the router files and ``manifest.sig`` first and ``manifest.json`` last, so a
reader that finds a manifest finds everything it lists. Download (``fetch_bundle``, as the
gateway's model sync does) fetches only what the manifest lists (names checked: no paths),
then ``load_bundle`` verifies the signature and every sha256 and refuses anything else,
naming the reason.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from routeiq.routing.bundle import (
    MANIFEST,
    SIGNATURE,
    BundleError,
    LoadedBundle,
    Verifier,
    fetch_bundle,
    load_bundle,
)
from routeiq.storage import ArtifactStore

_CONTENT_TYPES = {".json": "application/json", ".sig": "application/json"}


@contextmanager
def scratch_dir(work_dir: Path) -> Iterator[Path]:
    """A temporary folder under ``work_dir`` (created if needed) for downloads and plots."""
    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        yield Path(tmp)


def bundle_prefix(name: str, version: str) -> str:
    """``models/<name>/<version>/``."""
    return f"models/{name}/{version}/"


@dataclass(frozen=True)
class BundleLocation:
    """Where a bundle is and how to pin and verify it (the announcement's ``bundle``)."""

    bucket: str
    prefix: str
    manifest_sha256: str
    size_bytes: int
    manifest_version_id: str | None

    def record(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.record(), sort_keys=True)

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> BundleLocation:
        try:
            return cls(
                bucket=str(raw["bucket"]),
                prefix=str(raw["prefix"]),
                manifest_sha256=str(raw["manifest_sha256"]),
                size_bytes=int(raw["size_bytes"]),
                manifest_version_id=raw.get("manifest_version_id"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"bundle location is incomplete: {exc}") from exc


class BundleStore:
    """Upload and download signed bundles in one bucket."""

    def __init__(self, *, store: ArtifactStore, bucket: str) -> None:
        self._store = store
        self.bucket = bucket

    def upload(self, folder: Path, *, name: str, version: str) -> BundleLocation:
        """Put every file of ``folder`` under the version's prefix, manifest last."""
        prefix = bundle_prefix(name, version)
        files = sorted(p for p in folder.iterdir() if p.is_file())
        names = {p.name for p in files}
        if MANIFEST not in names or SIGNATURE not in names:
            raise BundleError(f"{folder} is not a signed bundle (no {MANIFEST} / {SIGNATURE})")
        ordered = [p for p in files if p.name != MANIFEST] + [folder / MANIFEST]
        size = 0
        manifest_sha = ""
        manifest_version: str | None = None
        for path in ordered:
            data = path.read_bytes()
            stored = self._store.put_bytes(
                self.bucket,
                prefix + path.name,
                data,
                content_type=_CONTENT_TYPES.get(path.suffix, "application/octet-stream"),
            )
            size += stored.size
            if path.name == MANIFEST:
                manifest_sha, manifest_version = stored.sha256, stored.version_id
        return BundleLocation(self.bucket, prefix, manifest_sha, size, manifest_version)

    def download(self, location: BundleLocation, dest: Path) -> Path:
        """Fetch the bundle into ``dest`` (emptied first); trusting it is ``load``'s job."""
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        fetch_bundle(
            self._store,
            bucket=location.bucket,
            prefix=location.prefix,
            dest=dest,
            manifest_version_id=location.manifest_version_id,
            manifest_sha256=location.manifest_sha256 or None,
        )
        return dest

    def load(self, location: BundleLocation, dest: Path, verifier: Verifier) -> LoadedBundle:
        """Download, verify (signature, manifest hash, every file's sha256) and load."""
        folder = self.download(location, dest)
        return load_bundle(
            folder, verifier, expected_manifest_sha256=location.manifest_sha256 or None
        )
