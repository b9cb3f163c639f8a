"""Writing a signed bundle: the router's files, its feature pipeline, the manifest that
hashes them with probe expectations, and the signature."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from routeiq.routing.bundle.errors import BundleError
from routeiq.routing.bundle.manifest import (
    MANIFEST,
    PROBE_QUERIES,
    SIGNATURE,
    Candidate,
    Manifest,
    Probe,
)
from routeiq.routing.bundle.signing import Signer
from routeiq.routing.featurizer import Featurizer, load_featurizer, sha256_file
from routeiq.routing.routers import Router

__all__ = ["write_bundle"]


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
