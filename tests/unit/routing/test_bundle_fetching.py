"""``fetch_bundle``: a stored bundle lands whole in a folder, or not at all with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from routeiq.errors import ArtifactNotFoundError
from routeiq.routing.bundle import (
    MANIFEST,
    BundleError,
    fetch_bundle,
    generate_ed25519,
    load_bundle,
    signer_from,
    verifier_from,
)
from support.storage import MemoryStore
from unit.routing.helpers import write_knn_bundle

BUCKET = "models"
PREFIX = "models/r/1/"


@pytest.fixture(scope="module")
def keys():
    private, public = generate_ed25519()
    return signer_from("ed25519", private), verifier_from("ed25519", public)


@pytest.fixture
def stored(synthetic, keys, tmp_path: Path) -> tuple[MemoryStore, Path]:
    """A signed bundle put file by file under ``PREFIX``, and the folder it was written in."""
    folder = write_knn_bundle(tmp_path / "written", synthetic[0], keys[0])
    store = MemoryStore()
    for path in folder.iterdir():
        store.put_bytes(BUCKET, PREFIX + path.name, path.read_bytes())
    return store, folder


def fetch(store: MemoryStore, dest: Path, **pin: str | None) -> int:
    dest.mkdir()
    return fetch_bundle(store, bucket=BUCKET, prefix=PREFIX, dest=dest, **pin)


@pytest.mark.parametrize("prefix", [PREFIX, PREFIX.rstrip("/")])
def test_a_stored_bundle_is_fetched_whole_and_loads(stored, keys, tmp_path, prefix) -> None:
    store, folder = stored
    dest = tmp_path / "fetched"
    dest.mkdir()
    manifest_sha = store.put_bytes(BUCKET, PREFIX + MANIFEST, (folder / MANIFEST).read_bytes())
    total = fetch_bundle(
        store, bucket=BUCKET, prefix=prefix, dest=dest, manifest_sha256=manifest_sha.sha256
    )
    written = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == written
    assert total == sum(len(data) for data in written.values())
    assert load_bundle(dest, keys[1]).manifest.name == "r"


def test_a_swapped_file_is_refused_naming_it(stored, tmp_path) -> None:
    store, _ = stored
    store.put_bytes(BUCKET, PREFIX + "knn.npz", b"other bytes")
    with pytest.raises(BundleError, match=r"knn\.npz: sha256 .* does not match the manifest"):
        fetch(store, tmp_path / "fetched")


def test_a_manifest_other_than_the_announced_one_is_refused(stored, tmp_path) -> None:
    store, _ = stored
    with pytest.raises(BundleError, match=r"manifest\.json: .* does not match the announcement"):
        fetch(store, tmp_path / "fetched", manifest_sha256="0" * 64)


@pytest.mark.parametrize("name", ["../escaped.npz", "sub/dir.npz", "..", ""])
def test_a_manifest_naming_a_path_is_refused_before_anything_is_written_there(
    stored, tmp_path, name
) -> None:
    store, folder = stored
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"][name] = manifest["files"].pop("knn.npz")
    store.put_bytes(BUCKET, PREFIX + MANIFEST, json.dumps(manifest).encode())
    store.put_bytes(BUCKET, PREFIX + name, store.get_bytes(BUCKET, PREFIX + "knn.npz"))
    with pytest.raises(BundleError, match="unsafe file name"):
        fetch(store, tmp_path / "fetched")
    assert not (tmp_path / "escaped.npz").exists()


def test_a_missing_object_is_not_found_not_a_bundle_error(stored, tmp_path) -> None:
    store, _ = stored
    del store.objects[(BUCKET, PREFIX + "knn.npz")]
    with pytest.raises(ArtifactNotFoundError):
        fetch(store, tmp_path / "fetched")
