"""Signed bundles: verified before use, refused with the reason when anything is off."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from routeiq.routing.bundle import (
    BundleError,
    generate_ed25519,
    load_bundle,
    run_probes,
    signer_from,
    verifier_from,
    verify_bundle,
)
from unit.routing.helpers import write_knn_bundle


@pytest.fixture(scope="module")
def keys():
    private, public = generate_ed25519()
    return signer_from("ed25519", private), verifier_from("ed25519", public)


@pytest.fixture
def bundle_dir(synthetic, keys, tmp_path: Path) -> Path:
    train, _ = synthetic
    return write_knn_bundle(tmp_path / "b", train, keys[0], metrics={"apgr": 0.6})


def test_a_good_bundle_verifies_loads_and_passes_its_probes(bundle_dir: Path, keys) -> None:
    bundle = load_bundle(bundle_dir, keys[1])
    assert bundle.manifest.router_type == "knn"
    assert bundle.version == "1"
    assert run_probes(bundle) < 1e-9


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
        run_probes(bundle, lambda texts: bundle.featurizer.encode([t + "!" for t in texts]))


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


def _static_bundle(tmp_path: Path, keys) -> Path:
    from support.features import tiny_static

    featurizer = tiny_static(tmp_path / "features")
    rng = np.random.default_rng(0)
    x = featurizer.encode(
        [f"question {i} about {'maths' if i % 2 else 'poems'}" for i in range(60)]
    )
    q = rng.integers(0, 2, size=(60, 3)).astype(float)
    from routeiq.routing.routers import TrainingData

    data = TrainingData(embeddings=x, quality=q, models=("a", "b", "c"))
    folder = tmp_path / "static-bundle"
    return write_knn_bundle(folder, data, keys[0], version="2", featurizer=featurizer)


def test_a_static_pipeline_travels_inside_the_bundle(tmp_path: Path, keys) -> None:
    folder = _static_bundle(tmp_path, keys)
    manifest = verify_bundle(folder, keys[1])
    assert {"features.json", "static.safetensors", "static.tokenizer.json"} <= set(manifest.files)
    assert manifest.feature_spec["dimension"] == 16 + 32
    # The source folder is gone: the bundle alone reproduces the features.
    import shutil

    shutil.rmtree(tmp_path / "features")
    bundle = load_bundle(folder, keys[1])
    assert bundle.featurizer.id == manifest.feature_spec["id"]
    assert run_probes(bundle) < 1e-9


def test_a_swapped_encoder_table_is_refused(tmp_path: Path, keys) -> None:
    folder = _static_bundle(tmp_path, keys)
    from safetensors.numpy import save_file

    save_file({"embeddings": np.zeros((30522, 16), np.float16)}, str(folder / "static.safetensors"))
    with pytest.raises(BundleError, match=r"static\.safetensors: sha256"):
        load_bundle(folder, keys[1])


def test_a_legacy_manifest_reads_as_the_minilm_pipeline() -> None:
    from routeiq.routing.embedding import MODEL_NAME
    from routeiq.routing.featurizer import FeatureSpec

    spec = FeatureSpec.from_dict(
        {"embedding_model": MODEL_NAME, "dimension": 384, "encoder_fingerprint": "abc"}
    )
    assert (spec.encoder, spec.dimension, spec.id) == ("minilm", 384, MODEL_NAME)
