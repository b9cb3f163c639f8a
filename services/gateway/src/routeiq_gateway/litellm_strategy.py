"""RouteIQ as a LiteLLM custom routing strategy, for people who run LiteLLM's Router or proxy.

Put several deployments under one ``model_name`` (say ``auto``: one GPT-4 deployment, one
Mixtral deployment) and install the strategy::

    router = litellm.Router(model_list=...)
    router.set_custom_routing_strategy(RouteIQRoutingStrategy(router=router, engine=engine))

LiteLLM then asks RouteIQ which deployment of the group serves each request. Candidates are
named by their ``model_info.id`` when set, else by ``litellm_params.model``; a learned bundle
must be trained on the same names.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import anyio.to_thread
import numpy as np
from litellm.router import Router
from litellm.types.router import CustomRoutingStrategyBase
from numpy.typing import NDArray
from routeiq.routing.engine import Decision, RoutingEngine
from routeiq.routing.strategies import ModelOption, RouteInput


def deployment_name(deployment: dict[str, Any]) -> str:
    info = deployment.get("model_info") or {}
    return str(info.get("id") or deployment["litellm_params"]["model"])


def _option(deployment: dict[str, Any]) -> ModelOption:
    info = deployment.get("model_info") or {}
    params = deployment.get("litellm_params") or {}
    model = str(params.get("model", ""))
    return ModelOption(
        name=deployment_name(deployment),
        provider=model.split("/", 1)[0] if "/" in model else "openai",
        input_price=float(info.get("input_cost_per_token", 0.0)) * 1e6,
        output_price=float(info.get("output_cost_per_token", 0.0)) * 1e6,
        quality_rank=float(info.get("routeiq_quality_rank", 0.0)),
    )


def _text(messages: list[dict[str, Any]] | None) -> str:
    for m in reversed(messages or []):
        if m.get("role") == "user" and isinstance(m.get("content"), str):
            return str(m["content"])
    return ""


class RouteIQRoutingStrategy(CustomRoutingStrategyBase):
    """Chooses a deployment of the requested model group with a RouteIQ routing engine."""

    def __init__(
        self,
        *,
        router: Router,
        engine: RoutingEngine,
        embed: Callable[[str], NDArray[np.float32]] | None = None,
        on_decision: Callable[[Decision, str], None] | None = None,
    ) -> None:
        self._router = router
        self._engine = engine
        self._embed = embed
        self._on_decision = on_decision

    def _choose(
        self,
        model: str,
        messages: list[dict[str, Any]] | None,
        request_kwargs: dict[str, Any] | None,
    ) -> dict[str, Any]:
        deployments = [d for d in self._router.model_list if d.get("model_name") == model]
        if not deployments:
            raise ValueError(f"no deployments for model group {model!r}")
        by_name = {deployment_name(d): d for d in deployments}
        metadata = (request_kwargs or {}).get("metadata") or {}
        request = RouteInput(
            _text(messages),
            requested_model=model,
            unit_key=str(metadata.get("user_api_key_user_id") or metadata.get("user") or ""),
            embed=self._embed,
        )
        decision = self._engine.route(request, [_option(d) for d in deployments])
        if self._on_decision is not None:
            self._on_decision(decision, model)
        return dict(by_name[decision.selected])

    async def async_get_available_deployment(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """``get_available_deployment`` (same arguments) in a worker thread: embedding is CPU
        work and must not hold up the event loop."""
        return await anyio.to_thread.run_sync(
            functools.partial(self.get_available_deployment, *args, **kwargs)
        )

    def get_available_deployment(
        self,
        model: str,
        messages: list[dict[str, str]] | None = None,
        input: str | list[Any] | None = None,
        specific_deployment: bool | None = False,
        request_kwargs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return self._choose(model, list(messages or []), request_kwargs)
