"""Router bundles: a folder of safe files, a manifest that hashes each one, and a signature.

Layout (locally and under ``models/<name>/<version>/`` in the versioned bucket)::

    manifest.json    format, router type, feature spec, candidates, metrics, probes, and the
                     sha256 and size of every other file
    manifest.sig     {"algorithm", "key_id", "value"}: a signature over manifest.json's bytes
    <router files>   npz / safetensors / skops, as the router type writes them
    features.json,   the feature pipeline (``routing.featurizer``): its spec, and for a static
    static.*         encoder its weights and tokenizer, so a gateway computes exactly the
                     inputs the router was trained on

``verify_bundle`` checks the signature, then every file's hash, and refuses extra or missing
files, naming the reason; only then does ``load_bundle`` hand files to a router's loader.
Probe queries (fixed, synthetic texts: never user data) with their expected outputs let a
gateway prove that its feature pipeline reproduces the trainer's before it serves a bundle.

Modules: ``manifest`` (the record and its names), ``signing`` (keys, signers, verifiers),
``writing`` (``write_bundle``), ``fetching`` (``fetch_bundle``: from S3 into a folder),
``loading`` (verify, load, probe). This package's namespace is the public API every caller
imports from.
"""

from routeiq.routing.bundle.errors import *  # noqa: F403
from routeiq.routing.bundle.fetching import *  # noqa: F403
from routeiq.routing.bundle.loading import *  # noqa: F403
from routeiq.routing.bundle.manifest import *  # noqa: F403
from routeiq.routing.bundle.signing import *  # noqa: F403
from routeiq.routing.bundle.writing import *  # noqa: F403
