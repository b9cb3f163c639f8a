"""Signed bundles: verified before use, refused with the reason when anything is off."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from routeiq.routing.bundle import (
    BundleError,
    Candidate,
    generate_ed25519,
    load_bundle,
    run_probes,
    signer_from,
    verifier_from,
    verify_bundle,
    write_bundle,
)
from routeiq.routing.routers import FitContext, router_class


def featurize(texts):  # deterministic stand-in for the encoder: unit vectors from a hash
    out = []
    for t in texts:
        v = np.random.default_rng(abs(hash(t)) % 2**32).normal(size=384)
        out.append(v / np.linalg.norm(v))
    return np.asarray(out, dtype=np.float32)


@pytest.fixture(scope="module")
def keys():
    private, public = generate_ed25519()
    return signer_from("ed25519", private), verifier_from("ed25519", public)


@pytest.fixture
def bundle_dir(synthetic, keys, tmp_path: Path) -> Path:
    train, _ = synthetic
    router = router_class("knn").fit(train, ctx=FitContext())
    folder = tmp_path / "b"
    write_bundle(
        router,
        folder,
        name="r",
        version="1",
        candidates=[Candidate("a"), Candidate("b")],
        signer=keys[0],
        featurize=featurize,
        metrics={"apgr": 0.6},
    )
    return folder


def test_a_good_bundle_verifies_loads_and_passes_its_probes(bundle_dir: Path, keys) -> None:
    bundle = load_bundle(bundle_dir, keys[1])
    assert bundle.manifest.router_type == "knn"
    assert bundle.version == "1"
    assert run_probes(bundle, featurize) < 1e-9


def test_a_tampered_file_is_refused_naming_it(bundle_dir: Path, keys) -> None:
    data = bytearray((bundle_dir / "knn.npz").read_bytes())
    data[-10] ^= 0xFF
    (bundle_dir / "knn.npz").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"knn\.npz: sha256"):
        verify_bundle(bundle_dir, keys[1])


def test_an_edited_manifest_breaks_the_signature(bundle_dir: Path, keys) -> None:
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    manifest["metrics"]["apgr"] = 0.99
    (bundle_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="signature does not match"):
        verify_bundle(bundle_dir, keys[1])


def test_wrong_key_extra_file_and_missing_signature(bundle_dir: Path, keys) -> None:
    _, other_public = generate_ed25519()
    with pytest.raises(BundleError, match="trusts key"):
        verify_bundle(bundle_dir, verifier_from("ed25519", other_public))
    with pytest.raises(BundleError, match="verifies hmac"):
        verify_bundle(
            bundle_dir, verifier_from("hmac-sha256", base64.b64encode(b"k" * 32).decode())
        )
    (bundle_dir / "evil.pkl").write_bytes(b"x")
    with pytest.raises(BundleError, match="not listed"):
        verify_bundle(bundle_dir, keys[1])
    (bundle_dir / "evil.pkl").unlink()
    (bundle_dir / "manifest.sig").unlink()
    with pytest.raises(BundleError, match="not signed"):
        verify_bundle(bundle_dir, keys[1])


def test_probes_catch_a_different_feature_pipeline(bundle_dir: Path, keys) -> None:
    bundle = load_bundle(bundle_dir, keys[1])
    with pytest.raises(BundleError, match="feature pipeline does not match"):
        run_probes(bundle, lambda texts: featurize([t + "!" for t in texts]))


def test_hmac_round_trip_and_bad_keys() -> None:
    key = base64.b64encode(b"s" * 32).decode()
    signer, verifier = signer_from("hmac-sha256", key), verifier_from("hmac-sha256", key)
    verifier.verify(
        b"data", algorithm=signer.algorithm, key_id=signer.key_id, value=signer.sign(b"data")
    )
    with pytest.raises(BundleError, match="tampered"):
        verifier.verify(
            b"datA", algorithm=signer.algorithm, key_id=signer.key_id, value=signer.sign(b"data")
        )
    with pytest.raises(BundleError, match="base64"):
        signer_from("ed25519", "not base64!")
    with pytest.raises(BundleError, match="unknown signing algorithm"):
        verifier_from("rsa", key)
