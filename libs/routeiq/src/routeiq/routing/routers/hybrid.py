"""Hybrid LLM router (Ding et al., ICLR 2024): a classifier of whether the cheap model's
answer is within ``t`` of the strong model's, ``p(x) = P(q_cheap(x) ≥ q_strong(x) − t)``.

The paper trains it on *relaxed* labels: per query, the share of (cheap answer, strong answer)
pairs with ``q_cheap ≥ q_strong − t`` (its probabilistic label, a fraction when a query has
several graded answers per model; 0 or 1 with one each), and picks ``t`` to maximise the
average pairwise difference between the training labels, ``Σ_ik |y_i(t) − y_k(t)| / N²``: at
``t = 0`` a much weaker cheap model gives nearly all-zero labels, and a large ``t`` all-one
labels, neither of which teaches the router anything. At test time a query goes to the cheap
model when ``p(x)`` clears a threshold, which trades cost for quality.

Here every candidate other than the reference (``strong``, by default the one with the best
mean observed quality) gets its own ``p_j(x)`` and ``t_j``, and ``predict`` returns them as
each candidate's quality on the reference's scale: ``p_j`` for the others, 1 for the
reference itself (it is always within ``t`` of itself). The threshold strategy's win score
``q̂_strong − q̂_weak`` is then ``1 − p(x)`` for the paper's pair, so its calibrated threshold
is the paper's; the cost-aware strategy picks ``argmax_j p_j − λ·cost_j``, the same rule
over N candidates. Duplicate feature rows (the same query graded more than once) form one
query whose label counts every pair of its answers, as the paper's sampled answers do.

The paper fine-tunes DeBERTa on the text; this classifier is the MLP router's network over
the shared featurizer's vectors, trained by the same loop (masked BCE on the soft labels), so
it trains from shards and serves in numpy like the other types.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from numpy.typing import NDArray

from routeiq.routing.routers.base import F32, F64, FitContext, RouterError, TrainingData
from routeiq.routing.routers.mlp import MLPRouter

# Differences below this count as ties: grades computed twice may differ in the last bits.
_EPS = 1e-9
# Relaxations tried when searching for t: every distinct gap up to this many (the criterion
# only changes at a gap), else this many of their quantiles.
_MAX_CANDIDATES = 512


@dataclass(frozen=True)
class Pairs:
    """Every (cheap answer, reference answer) pair of the same query, for one candidate.

    ``query[k]`` indexes the distinct queries, ``gap[k] = q_reference − q_cheap`` and
    ``weight[k]`` the product of the two observations' weights (inverse propensities).
    """

    query: NDArray[np.int64]
    gap: F64
    weight: F64
    queries: int

    def labels(self, t: float) -> tuple[F64, F64]:
        """Each query's relaxed label ``P(q_cheap ≥ q_reference − t)`` and its weight (the
        mean weight of its pairs; 0 for a query without a pair)."""
        total = np.bincount(self.query, weights=self.weight, minlength=self.queries)
        hits = np.bincount(
            self.query, weights=self.weight * (self.gap <= t + _EPS), minlength=self.queries
        )
        count = np.bincount(self.query, minlength=self.queries)
        label = np.where(total > 0, hits / np.maximum(total, 1e-300), np.nan)
        return label, np.where(count > 0, total / np.maximum(count, 1), 0.0)


def answer_pairs(
    group: NDArray[np.int64], quality: F64, weights: F64, cheap: int, reference: int
) -> Pairs:
    """The pairs of ``cheap``'s and ``reference``'s graded answers that share a query
    (``group`` numbers each row's query)."""
    a = np.flatnonzero(np.isfinite(quality[:, cheap]) & (weights[:, cheap] > 0))
    b = np.flatnonzero(np.isfinite(quality[:, reference]) & (weights[:, reference] > 0))
    b = b[np.argsort(group[b], kind="stable")]
    lo = np.searchsorted(group[b], group[a], side="left")
    hi = np.searchsorted(group[b], group[a], side="right")
    counts = hi - lo
    first = np.cumsum(counts) - counts
    left = np.repeat(a, counts)
    right = b[np.repeat(lo, counts) + np.arange(int(counts.sum())) - np.repeat(first, counts)]
    return Pairs(
        query=group[left].astype(np.int64),
        gap=quality[right, reference] - quality[left, cheap],
        weight=weights[left, cheap] * weights[right, reference],
        queries=int(group.max()) + 1 if group.size else 0,
    )


def mean_pairwise_difference(labels: F64, weights: F64) -> float:
    """``Σ_ik w_i w_k |y_i − y_k| / (Σ w)²``: the paper's criterion for ``t`` (weighted)."""
    order = np.argsort(labels, kind="stable")
    y, w = labels[order], weights[order]
    total = float(w.sum())
    if total <= 0:
        return 0.0
    below_w = np.cumsum(w) - w  # weight of the labels sorted before each one
    below_wy = np.cumsum(w * y) - w * y
    return float(2.0 * np.sum(w * (y * below_w - below_wy)) / total**2)


def choose_relaxation(pairs: Pairs, limit: float) -> float:
    """The paper's ``t*``: the relaxation in ``[0, limit]`` whose labels differ most on
    average between queries (the smallest such ``t`` on a tie)."""
    gaps = np.unique(np.round(pairs.gap[(pairs.gap > _EPS) & (pairs.gap <= limit)], 9))
    if gaps.size > _MAX_CANDIDATES:
        gaps = np.unique(np.quantile(gaps, np.linspace(0, 1, _MAX_CANDIDATES), method="lower"))
    best_t, best = 0.0, -1.0
    for t in (0.0, *gaps.tolist()):
        label, weight = pairs.labels(t)
        seen = np.isfinite(label)
        spread = mean_pairwise_difference(label[seen], weight[seen])
        if spread > best + 1e-12:
            best_t, best = float(t), spread
    return best_t


class HybridRouter(MLPRouter):
    kind = "hybrid"
    tensor_file = "hybrid.safetensors"
    default_params = {
        **MLPRouter.default_params,
        # The model every other candidate is compared with; "" = the best mean quality.
        "strong": "",
        # t: "auto" for the paper's choice (see ``choose_relaxation``), or a number in [0, 1].
        "relaxation": "auto",
        # The largest t the automatic choice may pick (qualities are in [0, 1]).
        "max_relaxation": 1.0,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The network router's constructor, plus this type's own parameter checks.
        super().__init__(*args, **kwargs)
        p = self.params
        if len(self.models) < 2:
            raise RouterError("hybrid: needs at least two candidates")
        strong = p["strong"]
        if not isinstance(strong, str) or (strong and strong not in self.models):
            raise RouterError(f"hybrid: strong must be one of {list(self.models)} or empty")
        relaxation = p["relaxation"]
        if relaxation != "auto" and not _in_unit(relaxation):
            raise RouterError(f"hybrid: relaxation must be 'auto' or in [0, 1], got {relaxation!r}")
        if not _in_unit(p["max_relaxation"]):
            raise RouterError("hybrid: max_relaxation must be in [0, 1]")

    def reference(self, data: TrainingData) -> int:
        """The reference (strong) model's column: ``strong``, or the best mean quality."""
        strong = str(self.params["strong"])
        return self.models.index(strong) if strong else int(np.argmax(data.priors()))

    def relabel(self, data: TrainingData, ctx: FitContext) -> tuple[TrainingData, F64, int]:
        """One row per distinct query with each candidate's relaxed label against the
        reference (the reference's own column unobserved), the ``t`` of each candidate, and
        the reference's column."""
        ref = self.reference(data)
        keys, group = np.unique(data.embeddings, axis=0, return_inverse=True)
        group = group.reshape(-1).astype(np.int64)
        m = len(self.models)
        labels = np.full((len(keys), m), np.nan)
        weights = np.zeros((len(keys), m))
        relaxation = np.zeros(m)
        observed, setting = data.sample_weights(), self.params["relaxation"]
        empty = []
        for j in range(m):
            if j == ref:
                continue
            pairs = answer_pairs(group, data.quality, observed, j, ref)
            if pairs.gap.size == 0:
                empty.append(self.models[j])
                continue
            t = (
                choose_relaxation(pairs, float(self.params["max_relaxation"]))
                if setting == "auto"
                else float(setting)
            )
            labels[:, j], weights[:, j] = pairs.labels(t)
            relaxation[j] = t
            seen = weights[:, j] > 0
            ctx.say(
                f"hybrid: {self.models[j]} vs {self.models[ref]}: t={t:.4g}, "
                f"{int(seen.sum())} queries, mean label {np.mean(labels[seen, j]):.3f}"
            )
        if empty:
            raise RouterError(
                f"hybrid: no query was graded for both {empty} and the reference "
                f"{self.models[ref]!r}; its labels compare two answers to the same query "
                "(shadow outcomes or a dataset file)"
            )
        relabelled = TrainingData(
            embeddings=np.asarray(keys, dtype=np.float32),
            quality=labels,
            models=data.models,
            weights=weights,
        )
        return relabelled, relaxation, ref

    @classmethod
    def fit(
        cls, data: TrainingData, params: Mapping[str, Any] | None = None, *, ctx: FitContext
    ) -> Self:
        relabelled, relaxation, ref = cls(data.models, params).relabel(data, ctx)
        router = super().fit(relabelled, params, ctx=ctx)
        mask = np.zeros(len(router.models), dtype=np.float32)
        mask[ref] = 1.0
        router.tensors.update(reference=mask, relaxation=relaxation.astype(np.float32))
        ctx.info["relaxation"] = {
            m: float(relaxation[j]) for j, m in enumerate(router.models) if j != ref
        }
        ctx.info["reference"] = router.models[ref]
        return router

    def predict(self, embeddings: F32, texts: Sequence[str] | None = None) -> F64:
        if "reference" not in self.tensors:
            raise RouterError("hybrid: not trained (no reference model)")
        p = super().predict(embeddings, texts)
        return np.where(self.tensors["reference"][None, :] > 0.5, 1.0, p)


def _in_unit(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= value <= 1.0
