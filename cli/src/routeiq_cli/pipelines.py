"""Feature pipelines as the CLI builds them: for `routeiq features build` and for the local
stack's gateways and trainer, one way."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from routeiq.routing.featurizer import Featurizer


def build_pipeline(kind: str, folder: Path, *, sketch_seed: int = 0, **tokens: int) -> Featurizer:
    """Open the ``kind`` pipeline in ``folder`` and leave it saved there: the static encoder
    is distilled from the packaged MiniLM on first use (about 15 s) and reused while the
    folder holds this version's pipeline. ``tokens``: the static ``max_tokens`` /
    ``tail_tokens`` (the library's defaults where absent)."""
    # Imported here: numpy and scipy are paid for only by the commands that build features.
    from routeiq.routing.featurizer import open_pipeline

    pipeline = open_pipeline(kind, folder=folder, sketch_seed=sketch_seed, **tokens)
    if kind != "static":  # the static pipeline is written to its folder as it is built
        pipeline.save(folder)
    return pipeline
