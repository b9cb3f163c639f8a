"""Composition root: settings -> datasets -> prompt index, tokenizer, catalogue, faults ->
upstream -> HTTP app -> uvicorn.

Everything is loaded before the port opens, so ``/health/ready`` answers 200 as soon as the
server listens. Exit codes: 2 invalid configuration (unknown or invalid settings, a dataset
that does not load, a model in a mapping that no dataset serves, cl100k_base required but not
available), 3 the server could not start (uvicorn's code, e.g. the port is taken), 0 clean
shutdown (on SIGTERM/SIGINT uvicorn finishes in-flight requests, then re-raises the signal).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import uvicorn
from routeiq.errors import ConfigError
from routeiq.routing.datasets import RoutingDataset, load_named

from routeiq_upstream.api import UpstreamMetrics, create_app
from routeiq_upstream.config import DEFAULT_ALIASES, UpstreamSettings
from routeiq_upstream.core import (
    FaultPolicy,
    ModelCatalog,
    OfflineUpstream,
    PromptIndex,
    TokenCounter,
    load_encoder,
)
from routeiq_upstream.core.tokens import litellm_tokenizer_dir

logger = logging.getLogger("routeiq_upstream")


def load_datasets(settings: UpstreamSettings) -> list[RoutingDataset]:
    """The configured benchmark tables, through the shared loaders."""
    tables = []
    for name in settings.datasets:
        try:
            tables.append(load_named(name, settings.data_dir))
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"dataset {name!r} does not load: {exc}") from exc
    return tables


def tiktoken_dirs(settings: UpstreamSettings) -> list[Path]:
    """Where to look for cl100k_base: the setting, else TIKTOKEN_CACHE_DIR, then litellm's."""
    if settings.tiktoken_cache_dir is not None:
        return [settings.tiktoken_cache_dir]
    dirs = []
    if os.environ.get("TIKTOKEN_CACHE_DIR"):
        dirs.append(Path(os.environ["TIKTOKEN_CACHE_DIR"]))
    bundled = litellm_tokenizer_dir()
    if bundled is not None:
        dirs.append(bundled)
    return dirs


def build_upstream(settings: UpstreamSettings) -> OfflineUpstream:
    """Load the data and build the upstream; ConfigError when the settings cannot be served."""
    index = PromptIndex.build(load_datasets(settings))
    aliases = settings.model_aliases
    if aliases is None:
        aliases = {a: t for a, t in DEFAULT_ALIASES.items() if t in index.models}
    catalog = ModelCatalog(models=index.models, aliases=aliases)
    encoder, problems = load_encoder(settings.tokenizer, tiktoken_dirs(settings))
    if problems and encoder.name != "cl100k_base":
        logger.warning(
            "cl100k_base not available offline (%s); counting tokens as ceil(bytes/4)",
            "; ".join(problems),
        )
    counter = TokenCounter(encoder=encoder)
    counter.warm(index.texts())
    faults = FaultPolicy(
        latency_ms=settings.latency_ms,
        jitter_ms=settings.latency_jitter_ms,
        model_latency_ms=catalog.check_keys(settings.model_latency_ms, "model_latency_ms"),
        error_rate=catalog.check_keys(settings.error_rate, "error_rate"),
        error_status=settings.error_status,
        chunk_delay_ms=settings.stream_chunk_delay_ms,
    )
    return OfflineUpstream(
        index=index,
        catalog=catalog,
        counter=counter,
        faults=faults,
        stream_chunk_words=settings.stream_chunk_words,
    )


def main() -> int:
    try:
        settings = UpstreamSettings.load()
    except ConfigError as exc:
        print(f"routeiq-upstream: invalid configuration: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    started = time.perf_counter()
    try:
        upstream = build_upstream(settings)
    except ConfigError as exc:
        print(f"routeiq-upstream: invalid configuration: {exc}", file=sys.stderr)
        return 2
    app = create_app(
        upstream,
        metrics=UpstreamMetrics(),
        api_key=settings.api_key.get_secret_value() if settings.api_key else None,
        max_body_bytes=settings.max_body_bytes,
    )
    served = upstream.describe()
    logger.info(
        "offline upstream on http://%s:%d/v1: %d prompts (%s), %d models (%s), tokenizer %s, "
        "built in %.1fs",
        settings.host,
        settings.port,
        served["prompts"],
        ", ".join(f"{d.name} {d.prompts}" for d in upstream.index.datasets),
        len(upstream.catalog.models),
        ", ".join(upstream.catalog.models),
        upstream.counter.name,
        time.perf_counter() - started,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            access_log=settings.log_level == "debug",
        )
    )
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
