"""When to ask for retraining: after enough new labelled examples, or after long enough.

A request names every shard manifest in the bucket at the time it is made (the trainer trains
on the whole labelled history, not only on what is new) and its id is a sha256 over the model
name, the router types and each shard's (manifest key, Parquet sha256). Asking twice for the
same shard set, after a crash or from the CLI, yields the same id, which the trainer uses to
train once; a shard rewritten with late rows changes its sha256 and so the id.

The record and its id are built by ``routeiq.shards.retrain_request``, which ``routeiq
retrain request`` shares; ``routeiq_labeler.retraining`` lists the shards and publishes it.
"""

from __future__ import annotations


def retrain_reason(
    *,
    new_examples: int,
    now_ms: int,
    last_request_ms: int,
    threshold: int,
    interval_s: float,
) -> str | None:
    """``THRESHOLD`` once ``threshold`` (if set) new examples are written, else ``TIMER`` when
    there are new examples and ``interval_s`` (if set) passed since the last request; else
    None."""
    if threshold and new_examples >= threshold:
        return "THRESHOLD"
    if interval_s and new_examples > 0 and now_ms - last_request_ms >= interval_s * 1000:
        return "TIMER"
    return None
