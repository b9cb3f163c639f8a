"""Learned routers, by type name: kNN, SVM, MLP, matrix factorisation, MiniLM classifier."""

from __future__ import annotations

from routeiq.routing.routers.base import FitContext, Router, RouterError, TrainingData
from routeiq.routing.routers.bert import BertRouter
from routeiq.routing.routers.knn import KNNRouter
from routeiq.routing.routers.mf import MFRouter
from routeiq.routing.routers.mlp import MLPRouter
from routeiq.routing.routers.svm import SVMRouter

ROUTER_TYPES: dict[str, type[Router]] = {
    cls.kind: cls for cls in (KNNRouter, SVMRouter, MLPRouter, MFRouter, BertRouter)
}


def router_class(kind: str) -> type[Router]:
    """The router class for a type name; ``RouterError`` names the known ones."""
    try:
        return ROUTER_TYPES[kind]
    except KeyError:
        raise RouterError(
            f"unknown router type {kind!r}; known: {', '.join(sorted(ROUTER_TYPES))}"
        ) from None


__all__ = [
    "ROUTER_TYPES",
    "BertRouter",
    "FitContext",
    "KNNRouter",
    "MFRouter",
    "MLPRouter",
    "Router",
    "RouterError",
    "SVMRouter",
    "TrainingData",
    "router_class",
]
