"""Learned routers, by type name: kNN, SVM, MLP, matrix factorisation, MiniLM classifier, Hybrid
LLM (Ding et al. 2024), a LoRA fine-tuned causal LM naming the oracle policy (torch only where
it trains or scores: importing this package never imports torch), and
any router type an installed package declares in the ``routeiq.routers`` entry-point group
(``routeiq.routing.plugins``): the trainer fits it and bundles carry it like a built-in."""

from __future__ import annotations

from routeiq.routing.plugins import ROUTER_GROUP, PluginGroup, by_kind
from routeiq.routing.routers.base import (
    FitContext,
    HeldOutReport,
    Router,
    RouterError,
    RouterUnavailable,
    TrainingData,
)
from routeiq.routing.routers.bert import BertRouter
from routeiq.routing.routers.causallm import CausalLMRouter
from routeiq.routing.routers.hybrid import HybridRouter
from routeiq.routing.routers.knn import KNNRouter
from routeiq.routing.routers.mf import MFRouter
from routeiq.routing.routers.mlp import MLPRouter
from routeiq.routing.routers.svm import SVMRouter

BUILTIN_ROUTERS: dict[str, type[Router]] = by_kind(
    KNNRouter, SVMRouter, MLPRouter, MFRouter, BertRouter, HybridRouter, CausalLMRouter
)

# Every router type by name: the built-ins, then the plugins (imported on first lookup).
ROUTER_TYPES: PluginGroup[Router] = PluginGroup(
    ROUTER_GROUP, base=Router, what="router type", builtins=BUILTIN_ROUTERS, error=RouterError
)


def router_class(kind: str) -> type[Router]:
    """The router class for a type name; ``RouterError`` names the known ones, or the plugin
    behind ``kind`` and why it cannot be used."""
    return ROUTER_TYPES.lookup(kind)


__all__ = [
    "BUILTIN_ROUTERS",
    "ROUTER_TYPES",
    "BertRouter",
    "CausalLMRouter",
    "FitContext",
    "HeldOutReport",
    "HybridRouter",
    "KNNRouter",
    "MFRouter",
    "MLPRouter",
    "Router",
    "RouterError",
    "RouterUnavailable",
    "SVMRouter",
    "TrainingData",
    "router_class",
]
