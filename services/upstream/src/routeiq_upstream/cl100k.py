"""cl100k_base (GPT-4's encoding) loaded offline, or the reason it could not be.

tiktoken downloads the encoding on first use unless its cache folder (``TIKTOKEN_CACHE_DIR``)
already holds it under the sha1 of its URL; litellm ships exactly such a folder
(``litellm/litellm_core_utils/tokenizers``). We look for the file there, check its sha256
against tiktoken's published hash, and only then let tiktoken load it, so loading never touches
the network. This is I/O (files, the environment), so it lives outside ``core``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from routeiq.errors import ConfigError

from routeiq_upstream.core.tokens import ApproxTokenizer, Encoder, TiktokenEncoder

CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
# From tiktoken_ext.openai_public.cl100k_base (the hash tiktoken itself checks).
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
CL100K_CACHE_KEY = hashlib.sha1(CL100K_URL.encode()).hexdigest()  # noqa: S324 - tiktoken's key


def litellm_tokenizer_dir() -> Path | None:
    """litellm's bundled tiktoken cache folder, found without importing litellm (slow)."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"
    return folder if folder.is_dir() else None


_TIKTOKEN_ENV_LOCK = threading.Lock()


def load_cl100k(cache_dir: Path) -> TiktokenEncoder:
    """cl100k_base from ``cache_dir``; ConfigError if the file is absent or not the right one."""
    path = cache_dir / CL100K_CACHE_KEY
    if not path.is_file():
        raise ConfigError(f"no cl100k_base file in {cache_dir} (expected {path.name})")
    if hashlib.sha256(path.read_bytes()).hexdigest() != CL100K_SHA256:
        raise ConfigError(f"{path} is not tiktoken's cl100k_base file (sha256 differs)")
    try:
        import tiktoken
    except ImportError as exc:
        raise ConfigError("tiktoken is not installed") from exc
    # tiktoken reads its cache folder from the environment only; the file is known to be there
    # and valid, so this cannot reach the network. Restore the variable for everyone else.
    with _TIKTOKEN_ENV_LOCK:
        previous = os.environ.get("TIKTOKEN_CACHE_DIR")
        os.environ["TIKTOKEN_CACHE_DIR"] = str(cache_dir)
        try:
            encoding = tiktoken.get_encoding("cl100k_base")
        except (OSError, ValueError) as exc:
            raise ConfigError(f"tiktoken could not load cl100k_base from {cache_dir}") from exc
        finally:
            if previous is None:
                os.environ.pop("TIKTOKEN_CACHE_DIR", None)
            else:
                os.environ["TIKTOKEN_CACHE_DIR"] = previous
    return TiktokenEncoder(encoding)


def load_encoder(mode: str, cache_dirs: Sequence[Path]) -> tuple[Encoder, list[str]]:
    """The encoder for ``mode`` (auto / cl100k_base / approx) and why others were not used.

    ``cl100k_base`` refuses to start (ConfigError) when no folder holds the file; ``auto``
    falls back to the approximation and returns the reasons so the caller can log them.
    """
    if mode == "approx":
        return ApproxTokenizer(), []
    problems: list[str] = []
    for folder in cache_dirs:
        try:
            return load_cl100k(folder), problems
        except ConfigError as exc:
            problems.append(str(exc))
    if not cache_dirs:
        problems.append("no tiktoken cache folder (set tiktoken_cache_dir or install litellm)")
    if mode == "cl100k_base":
        raise ConfigError(
            "tokenizer=cl100k_base but it cannot load offline: " + "; ".join(problems)
        )
    return ApproxTokenizer(), problems
