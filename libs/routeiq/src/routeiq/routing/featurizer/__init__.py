"""The features a router reads, as one versioned pipeline that travels inside its bundle.

A feature vector is a dense sentence encoding, optionally followed by a sketch of the query's
token n-grams, each part L2-normalised and weighted so the whole vector has unit norm:

    x = [√w · dense(text) ‖ √(1 − w) · sketch(text)]

Two dense encoders:

* ``minilm``: the packaged all-MiniLM-L6-v2, a 6-layer transformer run in numpy
  (``embedding.py``): about 20 ms per query on a small CPU;
* ``static``: a static embedding distilled offline from the same packaged MiniLM with
  model2vec (every vocabulary token's MiniLM output, PCA-reduced and frequency-weighted); a
  query's vector is the mean of its tokens' rows: about 0.2 ms with the sketch, tokenizing
  included (bench/gateway.py).

The sketch hashes every token unigram and bigram (keyed by ``sketch_seed``) with a random sign
into ``sketch_dim`` buckets, weighted 1 + log(count): a fixed-size, signed feature-hashing view
of the query's wording, which sentence encoders blur (GSM8K's hard and easy questions look
alike to MiniLM but not in their numbers and verbs). Like any embedding it is derived data, not
text: the gateway never logs the text, but a reader who knows the seed can test whether a given
phrase occurs in a logged query, which is why topics are access-controlled and the seed can be
an operator secret.

``FeatureSpec`` names everything that changes a vector (encoder, the sha256 of its weights,
dimensions, seed, weight); its ``id`` is what events and shards record as ``embedding_model``,
so the trainer only ever trains on vectors the serving pipeline would compute.

Modules: ``spec`` (the spec and its id), ``encoders`` (token reader, static encoder, sketch),
``pipeline`` (``Featurizer`` and loading one), ``distill`` (building static pipelines, opening
one by name). This package's namespace is the public API every caller imports from.
"""

from routeiq.routing.featurizer.distill import *  # noqa: F403
from routeiq.routing.featurizer.encoders import *  # noqa: F403
from routeiq.routing.featurizer.pipeline import *  # noqa: F403
from routeiq.routing.featurizer.spec import *  # noqa: F403
