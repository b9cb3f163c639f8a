"""Signing a bundle's manifest and verifying it: HMAC-SHA256 with a shared secret, or Ed25519
(the trainer holds the private key, gateways only the public one)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Protocol

from routeiq.routing.bundle.errors import BundleError

__all__ = [
    "Ed25519Signer",
    "Ed25519Verifier",
    "HmacKey",
    "Signer",
    "Verifier",
    "generate_ed25519",
    "signer_from",
    "verifier_from",
]


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
    raw = _key_bytes(algorithm, key_b64, "signing key", ed25519_key="private key")
    return HmacKey(raw) if algorithm == "hmac-sha256" else Ed25519Signer(raw)


def verifier_from(algorithm: str, key_b64: str) -> Verifier:
    """A verifier from settings: the HMAC secret, or the ed25519 public key."""
    raw = _key_bytes(algorithm, key_b64, "verification key", ed25519_key="public key")
    return HmacKey(raw) if algorithm == "hmac-sha256" else Ed25519Verifier(raw)


def _key_bytes(algorithm: str, key_b64: str, what: str, *, ed25519_key: str) -> bytes:
    """A key from settings, decoded and checked against its algorithm (one rule for both
    sides: the base64 is read first, then the algorithm and the key's length)."""
    raw = _b64(key_b64, what)
    if algorithm not in ("hmac-sha256", "ed25519"):
        raise BundleError(f"unknown signing algorithm {algorithm!r} (hmac-sha256 or ed25519)")
    if algorithm == "ed25519" and len(raw) != 32:
        raise BundleError(f"an ed25519 {ed25519_key} is 32 bytes (base64)")
    return raw


def _b64(value: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise BundleError(f"the {what} is not valid base64") from exc
    if not raw:
        raise BundleError(f"the {what} is empty")
    return raw
