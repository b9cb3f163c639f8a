"""Fetching a stored bundle into a local folder: the manifest pinned to the announced S3
version and sha256, then the signature and every file the manifest lists, each checked against
the manifest's sha256 as it streams (a torn or swapped file never lands whole on disk).

The trainer (verify, promote, roll back) and the gateway (model sync) both fetch this way;
``verify_bundle``/``load_bundle`` still check the signature afterwards: fetching proves only
that the bytes are the ones the manifest names, not that the manifest is trusted.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from routeiq.errors import IntegrityError
from routeiq.routing.bundle.errors import BundleError
from routeiq.routing.bundle.manifest import MANIFEST, SIGNATURE, Manifest

if TYPE_CHECKING:  # only the type: routing never needs the S3 client to import
    from routeiq.storage import ArtifactStore

__all__ = ["fetch_bundle", "safe_file_name"]


def safe_file_name(name: str) -> str:
    """``name`` when it is a plain file name; ``BundleError`` for a path (``../x``, ``a/b``).

    A manifest is fetched before its signature is checked, so its names are not yet trusted.
    """
    if "/" in name or "\\" in name or name in {"", ".", ".."}:
        raise BundleError(f"manifest lists an unsafe file name {name!r}")
    return name


def fetch_bundle(
    store: ArtifactStore,
    *,
    bucket: str,
    prefix: str,
    dest: Path,
    manifest_version_id: str | None = None,
    manifest_sha256: str | None = None,
) -> int:
    """Download the bundle under ``prefix`` into the existing folder ``dest``; its size.

    ``StorageError`` (``ArtifactNotFoundError`` included) when S3 fails or an object is
    missing; ``BundleError`` when the manifest is malformed, names an unsafe file, or a file's
    bytes differ from the manifest (or the manifest from ``manifest_sha256``).
    """
    base = prefix.rstrip("/")

    def fetch(name: str, sha256: str | None, *, by: str, version_id: str | None = None) -> int:
        try:
            return store.download_to(
                bucket, f"{base}/{name}", dest / name, version_id=version_id, expected_sha256=sha256
            )
        except IntegrityError as exc:
            raise BundleError(
                f"{name}: sha256 of the bytes read does not match {by} ({exc})"
            ) from exc

    total = fetch(
        MANIFEST, manifest_sha256 or None, by="the announcement", version_id=manifest_version_id
    )
    manifest = Manifest.from_bytes((dest / MANIFEST).read_bytes())
    # Nothing names the signature's hash: S3's recorded one is checked, the signature on load.
    total += fetch(SIGNATURE, None, by="its recorded sha256")
    for name, info in manifest.files.items():
        try:
            expected = str(info["sha256"])
        except (KeyError, TypeError) as exc:
            raise BundleError(f"manifest.json lists {name!r} without a sha256") from exc
        total += fetch(safe_file_name(name), expected, by="the manifest")
    return total
