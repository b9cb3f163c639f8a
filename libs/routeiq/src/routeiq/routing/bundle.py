"""Router bundles: a folder of safe files, a manifest that hashes each one, and a signature.

Layout (locally and under ``models/<name>/<version>/`` in the versioned bucket)::

    manifest.json    format, router type, feature spec, candidates, metrics, probes, and the
                     sha256 and size of every other file
    manifest.sig     {"algorithm", "key_id", "value"}: a signature over manifest.json's bytes
    <router files>   npz / safetensors / skops, as the router type writes them
    features.json,   the feature pipeline (``featurizer.py``): its spec, and for a static
    static.*         encoder its weights and tokenizer, so a gateway computes exactly the
                     inputs the router was trained on

``verify_bundle`` checks the signature, then every file's hash, and refuses extra or missing
files, naming the reason; only then does ``load_bundle`` hand files to a router's loader.
Probe queries (fixed, synthetic texts: never user data) with their expected outputs let a
gateway prove that its feature pipeline reproduces the trainer's before it serves a bundle.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from routeiq.errors import RouteIQError
from routeiq.routing.featurizer import FeatureError, FeatureSpec, Featurizer, load_featurizer
from routeiq.routing.routers import Router, router_class

FORMAT = "routeiq.bundle.v1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"

# Synthetic probe queries covering the shapes of traffic (math, code, chat, long, short).
PROBE_QUERIES: tuple[str, ...] = (
    "What is 17 times 23?",
    "A train leaves at 3 pm travelling 60 miles per hour. How far has it gone by 5:30 pm?",
    "Write a Python function that reverses a linked list.",
    "Explain the difference between TCP and UDP.",
    "Compose a short poem about autumn leaves.",
    "hi",
    "Summarise the causes of the French Revolution in three bullet points, citing the "
    "economic, social and political factors, and explain which mattered most and why.",
    "Translate 'good morning' into French and Spanish.",
)


class BundleError(RouteIQError):
    """A bundle is malformed, tampered with, wrongly signed or fails its probes."""


# ---------------------------------------------------------------- signing


class Signer(Protocol):
    @property
    def algorithm(self) -> str: ...

    @property
    def key_id(self) -> str: ...

    def sign(self, data: bytes) -> str: ...


class Verifier(Protocol):
    def verify(self, data: bytes, *, algorithm: str, key_id: str, value: str) -> None: ...


def _key_id(material: bytes) -> str:
    return hashlib.sha256(material).hexdigest()[:12]


@dataclass(frozen=True)
class HmacKey:
    """HMAC-SHA256 with a shared secret: signs and verifies."""

    secret: bytes
    algorithm: str = "hmac-sha256"

    @property
    def key_id(self) -> str:
        return _key_id(b"hmac:" + self.secret)

    def sign(self, data: bytes) -> str:
        return base64.b64encode(hmac.new(self.secret, data, hashlib.sha256).digest()).decode()

    def verify(self, data: bytes, *, algorithm: str, key_id: str, value: str) -> None:
        if algorithm != self.algorithm:
            raise BundleError(f"signature algorithm {algorithm!r}, this key verifies hmac-sha256")
        if key_id != self.key_id:
            raise BundleError(f"signed with key {key_id}, this gateway trusts key {self.key_id}")
        if not hmac.compare_digest(self.sign(data), value):
            raise BundleError("signature does not match manifest.json (tampered or wrong key)")


@dataclass(frozen=True)
class Ed25519Signer:
    """Ed25519 private key (32 raw bytes): the trainer signs, gateways hold only the public key."""

    private_key: bytes
    algorithm: str = "ed25519"

    def _key(self) -> Any:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return Ed25519PrivateKey.from_private_bytes(self.private_key)

    @property
    def public_key(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return bytes(self._key().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    @property
    def key_id(self) -> str:
        return _key_id(b"ed25519:" + self.public_key)

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self._key().sign(data)).decode()


@dataclass(frozen=True)
class Ed25519Verifier:
    public_key: bytes

    @property
    def key_id(self) -> str:
        return _key_id(b"ed25519:" + self.public_key)

    def verify(self, data: bytes, *, algorithm: str, key_id: str, value: str) -> None:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        if algorithm != "ed25519":
            raise BundleError(f"signature algorithm {algorithm!r}, this key verifies ed25519")
        if key_id != self.key_id:
            raise BundleError(f"signed with key {key_id}, this gateway trusts key {self.key_id}")
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                base64.b64decode(value), data
            )
        except (InvalidSignature, ValueError) as exc:
            raise BundleError(
                "signature does not match manifest.json (tampered or wrong key)"
            ) from exc


def generate_ed25519() -> tuple[str, str]:
    """A new key pair as base64 (private, public), for `make up` and operators."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(private).decode(), base64.b64encode(public).decode()


def signer_from(algorithm: str, key_b64: str) -> Signer:
    """A signer from settings: ``hmac-sha256`` with a secret, ``ed25519`` with a private key."""
    raw = _b64(key_b64, "signing key")
    if algorithm == "hmac-sha256":
        return HmacKey(raw)
    if algorithm == "ed25519":
        if len(raw) != 32:
            raise BundleError("an ed25519 private key is 32 bytes (base64)")
        return Ed25519Signer(raw)
    raise BundleError(f"unknown signing algorithm {algorithm!r} (hmac-sha256 or ed25519)")


def verifier_from(algorithm: str, key_b64: str) -> Verifier:
    """A verifier from settings: the HMAC secret, or the ed25519 public key."""
    raw = _b64(key_b64, "verification key")
    if algorithm == "hmac-sha256":
        return HmacKey(raw)
    if algorithm == "ed25519":
        if len(raw) != 32:
            raise BundleError("an ed25519 public key is 32 bytes (base64)")
        return Ed25519Verifier(raw)
    raise BundleError(f"unknown signing algorithm {algorithm!r} (hmac-sha256 or ed25519)")


def _b64(value: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise BundleError(f"the {what} is not valid base64") from exc
    if not raw:
        raise BundleError(f"the {what} is empty")
    return raw


# ---------------------------------------------------------------- manifest


@dataclass(frozen=True)
class Candidate:
    """A model the router scores, with the prices used to compute cost."""

    name: str
    input_price: float = 0.0  # USD per million tokens
    output_price: float = 0.0


@dataclass(frozen=True)
class Probe:
    text: str
    expected: list[float]


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    router_type: str
    candidates: list[Candidate]
    files: dict[str, dict[str, Any]]
    probes: list[Probe]
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    feature_spec: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    created_at: int = 0
    format: str = FORMAT
    probe_tolerance: float = 1e-3

    @functools.cached_property
    def models(self) -> tuple[str, ...]:
        # Read on every routed request: computed once (a frozen dataclass's cached property
        # is stored in the instance dict, which asdict/to_bytes ignore).
        return tuple(c.name for c in self.candidates)

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        try:
            raw = json.loads(data)
            if raw.get("format") != FORMAT:
                raise BundleError(f"unknown bundle format {raw.get('format')!r}, want {FORMAT}")
            raw["candidates"] = [Candidate(**c) for c in raw["candidates"]]
            raw["probes"] = [Probe(**p) for p in raw["probes"]]
            return cls(**raw)
        except (ValueError, TypeError, KeyError) as exc:
            raise BundleError(f"manifest.json is malformed: {exc}") from exc


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


Featurize = Callable[[Sequence[str]], NDArray[np.float32]]


def write_bundle(
    router: Router,
    folder: Path,
    *,
    name: str,
    version: str,
    candidates: Sequence[Candidate],
    signer: Signer,
    featurizer: Featurizer,
    metrics: Mapping[str, float] | None = None,
    calibration: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
) -> Manifest:
    """Save ``router`` and its feature pipeline into ``folder`` as a signed bundle.

    Probe expectations come from the router and the pipeline as re-loaded from the written
    files, so they are exactly what a gateway loading this bundle must reproduce.
    """
    if tuple(c.name for c in candidates) != router.models:
        raise BundleError(f"candidates {[c.name for c in candidates]} != {list(router.models)}")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    written = router.save(folder)
    clash = set(written) & {MANIFEST, SIGNATURE}
    written += featurizer.save(folder)
    if clash or len(set(written)) != len(written):
        raise BundleError(f"{router.kind} router files clash with bundle files: {written}")
    reloaded = type(router).load(folder, router.models, router.params)
    features = load_featurizer(folder, featurizer.spec)
    probe_texts = list(PROBE_QUERIES)
    expected = reloaded.predict(features.encode(probe_texts), probe_texts)
    manifest = Manifest(
        name=name,
        version=version,
        router_type=router.kind,
        candidates=list(candidates),
        files={
            f: {"sha256": sha256_file(folder / f), "size": (folder / f).stat().st_size}
            for f in sorted(written)
        },
        probes=[
            Probe(t, [float(v) for v in row]) for t, row in zip(probe_texts, expected, strict=True)
        ],
        params=_jsonable(router.params),
        metrics={k: float(v) for k, v in (metrics or {}).items()},
        feature_spec={**featurizer.spec.to_dict(), "needs_text": router.needs_text},
        calibration=_jsonable(dict(calibration or {})),
        training=_jsonable(dict(training or {})),
        created_at=int(time.time() * 1000),
    )
    data = manifest.to_bytes()
    (folder / MANIFEST).write_bytes(data)
    signature = {"algorithm": signer.algorithm, "key_id": signer.key_id, "value": signer.sign(data)}
    (folder / SIGNATURE).write_text(json.dumps(signature, indent=2))
    return manifest


def _jsonable(value: Any) -> Any:
    return json.loads(
        json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    )


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


def feature_spec(manifest: Manifest) -> FeatureSpec:
    """The bundle's feature pipeline spec (a pre-pipeline manifest reads as MiniLM)."""
    raw = {k: v for k, v in manifest.feature_spec.items() if k != "needs_text"}
    try:
        return FeatureSpec.from_dict(raw)
    except FeatureError as exc:
        raise BundleError(f"feature spec: {exc}") from exc


@dataclass
class LoadedBundle:
    manifest: Manifest
    router: Router
    folder: Path
    featurizer: Featurizer

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def features_id(self) -> str:
        return self.featurizer.id


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
