"""Upstream calls through ``litellm.Router``: retries, fallbacks, timeouts and provider keys
exactly as a LiteLLM user configures them in ``model_list`` / ``router_settings``.

What RouteIQ needs back from each call, beyond the OpenAI response: which model group finally
answered (after fallbacks), how many fallbacks were tried, token usage, cost from the model
file's prices and the upstream latency.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import litellm
from litellm.router import Router

from routeiq_gateway.config import ModelFile

# LiteLLM logs every custom-priced model at WARNING and each call at INFO (quieted in logs).
LITELLM_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy")


@dataclass
class UpstreamOutcome:
    """What happened upstream, for the response headers and the decision event."""

    served_group: str
    upstream_ms: float
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    fallback_used: bool = False
    attempted: list[str] = field(default_factory=list)
    status: str = "SUCCESS"
    error_type: str | None = None


# Request fields passed through to the provider (OpenAI chat completion parameters).
PASSTHROUGH = frozenset(
    {
        "temperature",
        "top_p",
        "n",
        "stop",
        "max_tokens",
        "max_completion_tokens",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "user",
        "seed",
        "tools",
        "tool_choice",
        "response_format",
        "logprobs",
        "top_logprobs",
        "parallel_tool_calls",
        "stream_options",
    }
)


def build_router(model_file: ModelFile) -> Router:
    """A ``litellm.Router`` from the file's ``model_list`` and ``router_settings``."""
    litellm.drop_params = bool(model_file.litellm_settings.get("drop_params", True))
    litellm.telemetry = False
    return Router(model_list=model_file.model_list, **model_file.router_settings)


def response_text(response: Any) -> str:
    """The assistant text of an OpenAI-shaped (LiteLLM) completion."""
    choices = getattr(response, "choices", None) or []
    message = getattr(choices[0], "message", None) if choices else None
    return str(getattr(message, "content", None) or "")


def _extra(response: Any) -> Mapping[str, Any]:
    hidden = getattr(response, "_hidden_params", None) or {}
    headers = hidden.get("additional_headers") or {}
    return headers if isinstance(headers, Mapping) else {}


class Upstream:
    def __init__(self, *, router: Router, model_file: ModelFile) -> None:
        self.router = router
        self._prices = {g: model_file.prices(g) for g in model_file.model_groups}

    def cost(self, group: str, input_tokens: int, output_tokens: int) -> float | None:
        per_in, per_out = self._prices.get(group, (0.0, 0.0))
        if per_in == 0.0 and per_out == 0.0:
            return None
        return (input_tokens * per_in + output_tokens * per_out) / 1e6

    def _outcome(self, requested: str, response: Any, started: float) -> UpstreamOutcome:
        extra = _extra(response)
        served = str(extra.get("x-litellm-model-group") or requested)
        fallbacks = int(extra.get("x-litellm-attempted-fallbacks") or 0)
        usage = getattr(response, "usage", None)
        tin = int(getattr(usage, "prompt_tokens", 0) or 0)
        tout = int(getattr(usage, "completion_tokens", 0) or 0)
        return UpstreamOutcome(
            served_group=served,
            upstream_ms=(time.perf_counter() - started) * 1000.0,
            input_tokens=tin,
            output_tokens=tout,
            cost_usd=self.cost(served, tin, tout),
            fallback_used=fallbacks > 0 or served != requested,
            attempted=[requested] + ([served] if served != requested else []),
        )

    async def complete(
        self, group: str, messages: list[dict[str, Any]], params: Mapping[str, Any]
    ) -> tuple[Any, UpstreamOutcome]:
        """A non-streaming completion; raises litellm's exceptions on failure."""
        started = time.perf_counter()
        response = await self.router.acompletion(
            model=group, messages=cast(Any, messages), **params
        )
        return response, self._outcome(group, response, started)

    async def stream(
        self,
        group: str,
        messages: list[dict[str, Any]],
        params: Mapping[str, Any],
        outcome: UpstreamOutcome,
    ) -> AsyncIterator[Any]:
        """Stream chunks; ``outcome`` is filled in as the stream goes (usage from the last)."""
        started = time.perf_counter()
        options = dict(params.get("stream_options") or {})
        options["include_usage"] = True  # RouteIQ needs the token counts for cost
        call = {**params, "stream_options": options}
        response = await self.router.acompletion(
            model=group, messages=cast(Any, messages), stream=True, **call
        )
        first = True
        async for chunk in response:
            if first:
                extra = _extra(response) or _extra(chunk)
                served = str(extra.get("x-litellm-model-group") or group)
                outcome.served_group = served
                outcome.fallback_used = served != group or bool(
                    int(extra.get("x-litellm-attempted-fallbacks") or 0)
                )
                outcome.attempted = [group] + ([served] if served != group else [])
                first = False
            usage = getattr(chunk, "usage", None)
            if usage is not None and getattr(usage, "prompt_tokens", None):
                outcome.input_tokens = int(usage.prompt_tokens or 0)
                outcome.output_tokens = int(usage.completion_tokens or 0)
            yield chunk
        outcome.upstream_ms = (time.perf_counter() - started) * 1000.0
        outcome.cost_usd = self.cost(
            outcome.served_group, outcome.input_tokens, outcome.output_tokens
        )
