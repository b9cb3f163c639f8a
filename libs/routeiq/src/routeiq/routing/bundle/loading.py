"""Reading a bundle: verify the signature and every file's hash, load the feature pipeline
and the router, and prove with the probes that the pipeline reproduces the trainer's."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from routeiq.errors import RouteIQError
from routeiq.routing.bundle.errors import BundleError
from routeiq.routing.bundle.manifest import MANIFEST, SIGNATURE, Manifest, feature_spec
from routeiq.routing.bundle.signing import Verifier
from routeiq.routing.featurizer import FeatureError, Featurizer, load_featurizer, sha256_file
from routeiq.routing.routers import Router, RouterError, router_class

__all__ = [
    "Featurize",
    "LoadedBundle",
    "load_bundle",
    "read_signature",
    "run_probes",
    "verify_bundle",
]

Featurize = Callable[[Sequence[str]], NDArray[np.float32]]


def read_signature(folder: Path) -> dict[str, str]:
    try:
        sig = json.loads((folder / SIGNATURE).read_text())
        return {k: str(sig[k]) for k in ("algorithm", "key_id", "value")}
    except FileNotFoundError as exc:
        raise BundleError("the bundle is not signed (manifest.sig is missing)") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"manifest.sig is malformed: {exc}") from exc


def verify_bundle(
    folder: Path, verifier: Verifier, *, expected_manifest_sha256: str | None = None
) -> Manifest:
    """Check signature, manifest hash and every file's sha256; return the trusted manifest."""
    path = folder / MANIFEST
    if not path.is_file():
        raise BundleError(f"no {MANIFEST} in {folder}")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if expected_manifest_sha256 and digest != expected_manifest_sha256:
        raise BundleError(
            f"manifest.json sha256 {digest} does not match the announced {expected_manifest_sha256}"
        )
    signature = read_signature(folder)
    verifier.verify(data, **signature)
    manifest = Manifest.from_bytes(data)
    present = {p.name for p in folder.iterdir() if p.is_file()} - {MANIFEST, SIGNATURE}
    listed = set(manifest.files)
    if present - listed:
        raise BundleError(f"files not listed in the manifest: {sorted(present - listed)}")
    if listed - present:
        raise BundleError(f"files missing from the bundle: {sorted(listed - present)}")
    for name_, info in manifest.files.items():
        actual = sha256_file(folder / name_)
        if actual != info["sha256"]:
            raise BundleError(
                f"{name_}: sha256 {actual} does not match the manifest's {info['sha256']}"
            )
    feature_spec(manifest)  # a malformed spec is refused before anything is loaded
    return manifest


@dataclass
class LoadedBundle:
    manifest: Manifest
    router: Router
    folder: Path
    featurizer: Featurizer

    @property
    def version(self) -> str:
        return self.manifest.version


def load_bundle(
    folder: Path, verifier: Verifier, *, expected_manifest_sha256: str | None = None
) -> LoadedBundle:
    """Verify, then load the feature pipeline and the router (no probes: see ``run_probes``)."""
    manifest = verify_bundle(folder, verifier, expected_manifest_sha256=expected_manifest_sha256)
    try:
        featurizer = load_featurizer(folder, feature_spec(manifest))
    except FeatureError as exc:
        raise BundleError(f"feature pipeline: {exc}") from exc
    cls = router_class(manifest.router_type)
    try:
        router = cls.load(folder, manifest.models, manifest.params)
    except RouterError as exc:  # e.g. a base model whose files differ from the bundle's
        raise BundleError(f"cannot load {manifest.router_type} router: {exc}") from exc
    except RouteIQError:
        raise
    except Exception as exc:
        raise BundleError(f"cannot load {manifest.router_type} router: {exc!r}") from exc
    return LoadedBundle(manifest, router, folder, featurizer)


def run_probes(bundle: LoadedBundle, featurize: Featurize | None = None) -> float:
    """Score the probe queries and compare with the manifest; returns the worst difference.

    ``featurize`` defaults to the bundle's own pipeline; a caller passes its cached path to
    the same pipeline to prove that the path computes the same vectors.
    """
    probes = bundle.manifest.probes
    if not probes:
        raise BundleError("the bundle has no probe queries")
    texts = [p.text for p in probes]
    got = bundle.router.predict((featurize or bundle.featurizer.encode)(texts), texts)
    want = np.array([p.expected for p in probes], dtype=np.float64)
    if got.shape != want.shape:
        raise BundleError(f"probe outputs have shape {got.shape}, expected {want.shape}")
    worst = float(np.max(np.abs(got - want)))
    if not np.isfinite(worst) or worst > bundle.manifest.probe_tolerance:
        raise BundleError(
            f"probe outputs differ from the manifest by {worst:.2e} (tolerance "
            f"{bundle.manifest.probe_tolerance:.0e}): the feature pipeline does not match"
        )
    return worst
