"""Building the upstream from its settings: datasets -> prompt index, tokenizer, catalogue,
faults, the offline judge -> ``OfflineUpstream``. Everything that reads files happens here,
before the port opens.

A setting that cannot be served (a dataset that does not load, a model in a mapping that no
dataset serves, cl100k_base required but not available) raises ``ConfigError``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from routeiq.errors import ConfigError
from routeiq.routing.datasets import RoutingDataset, load_named
from routeiq.routing.oracle import GradeScale

from routeiq_upstream.cl100k import litellm_tokenizer_dir, load_encoder
from routeiq_upstream.config import DEFAULT_ALIASES, UpstreamSettings
from routeiq_upstream.core import (
    FaultPolicy,
    ModelCatalog,
    OfflineJudge,
    OfflineUpstream,
    PromptIndex,
    TokenCounter,
)

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
    scale = GradeScale(correct_at=settings.judge_correct_at, wrong_at=settings.judge_wrong_at)
    judge = OfflineJudge(index=index, model=settings.judge_model, scale=scale)
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
        judge=judge,
    )
