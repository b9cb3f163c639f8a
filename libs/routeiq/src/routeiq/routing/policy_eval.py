"""Evaluating a policy-label router (``causallm``) as its design does: on held-out queries,
the accuracy of the answers it would serve against always-cheap and always-strong, the cost
it saves against always-strong, the distribution of the policies it names and of the oracle's,
and its accuracy per oracle policy; ``compare_stages`` does it before and after DPO.

The held-out split is made by ``split_held_out`` on the raw rows, before any oracle label is
computed (the router labels its training rows inside ``fit``, the evaluation labels the
held-out rows here), and by query text, so a query graded twice never sits on both sides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from routeiq.routing.oracle import POLICIES
from routeiq.routing.routers.base import HeldOutReport, RouterError, TrainingData
from routeiq.routing.routers.causallm import CausalLMRouter

__all__ = [
    "PolicyEvaluation",
    "compare_stages",
    "evaluate_policy_router",
    "format_table",
    "held_out_report",
]


@dataclass(frozen=True)
class PolicyEvaluation:
    """One router on the held-out rows that have an oracle label.

    ``accuracy`` is the mean quality of the answers served (the share correct with 0/1
    grades); ``oracle_probability`` the mean probability the router gives the oracle's
    label (it moves with training even where the argmax does not); ``cost_savings`` is
    ``1 − cost / cost of always-strong``; ``per_policy_accuracy``
    maps each oracle policy to the share of its rows the router named correctly (None when
    the held-out rows have none of it).
    """

    label: str
    rows: int
    accuracy: float
    always_cheap: float
    always_strong: float
    cost_usd: float
    always_strong_cost_usd: float
    cost_savings: float
    strong_share: float
    label_accuracy: float
    oracle_probability: float
    predicted: dict[str, int] = field(default_factory=dict)
    oracle: dict[str, int] = field(default_factory=dict)
    per_policy_accuracy: dict[str, float | None] = field(default_factory=dict)


def split_held_out(
    data: TrainingData, fraction: float, *, seed: int = 0
) -> tuple[TrainingData, TrainingData]:
    """(train, held out): a random ``fraction`` of the distinct query texts held out, before
    any labelling."""
    if data.texts is None:
        raise RouterError("a policy router's held-out split needs the query texts")
    if not 0.0 < fraction < 1.0:
        raise RouterError(f"held-out fraction must be in (0, 1), got {fraction}")
    distinct = sorted(set(data.texts))
    rng = np.random.default_rng(seed)
    held = set(rng.permutation(len(distinct))[: max(1, round(fraction * len(distinct)))].tolist())
    held_texts = {distinct[i] for i in held}
    test = [i for i, t in enumerate(data.texts) if t in held_texts]
    train = [i for i, t in enumerate(data.texts) if t not in held_texts]
    return data.subset(train), data.subset(test)


def evaluate_policy_router(
    router: CausalLMRouter,
    held_out: TrainingData,
    *,
    costs: Mapping[str, float],
    label: str = "",
) -> PolicyEvaluation:
    """Score ``router`` on ``held_out`` (see ``PolicyEvaluation``); ``costs`` is each
    candidate's cost per query in USD."""
    if held_out.texts is None:
        raise RouterError("a policy router is evaluated on query texts")
    missing = sorted(set(router.models) - set(costs))
    if missing:
        raise RouterError(f"no cost for {missing}")
    truth = router.label(held_out)
    rows = [i for i, x in enumerate(truth) if x is not None]
    if not rows:
        raise RouterError("no held-out row has both models' grades")
    cheap, strong = router.roles()
    probs = router.policy_probabilities([held_out.texts[i] for i in rows])
    named = [POLICIES[int(k)] for k in np.argmax(probs, axis=1)]
    served = [router.models.index(router.routed_model(p)) for p in named]
    quality = held_out.quality[rows]
    col = {m: router.models.index(m) for m in (cheap, strong)}
    accuracy = float(np.mean(quality[np.arange(len(rows)), served]))
    cost = float(np.mean([costs[router.models[j]] for j in served]))
    strong_cost = float(costs[strong])
    oracle = [str(truth[i]) for i in rows]
    per_policy: dict[str, float | None] = {}
    for policy in POLICIES:
        mine = [k for k, x in enumerate(oracle) if x == policy]
        per_policy[policy] = float(np.mean([named[k] == policy for k in mine])) if mine else None
    return PolicyEvaluation(
        label=label or router.kind,
        rows=len(rows),
        accuracy=accuracy,
        always_cheap=float(np.mean(quality[:, col[cheap]])),
        always_strong=float(np.mean(quality[:, col[strong]])),
        cost_usd=cost,
        always_strong_cost_usd=strong_cost,
        cost_savings=1.0 - cost / strong_cost if strong_cost > 0 else 0.0,
        strong_share=float(np.mean([router.models[j] == strong for j in served])),
        label_accuracy=float(np.mean([a == b for a, b in zip(named, oracle, strict=True)])),
        oracle_probability=float(
            np.mean([probs[k, POLICIES.index(x)] for k, x in enumerate(oracle)])
        ),
        predicted={p: named.count(p) for p in POLICIES},
        oracle={p: oracle.count(p) for p in POLICIES},
        per_policy_accuracy=per_policy,
    )


def compare_stages(
    router: CausalLMRouter, held_out: TrainingData, *, costs: Mapping[str, float]
) -> list[PolicyEvaluation]:
    """The router after SFT and after DPO on the same held-out rows (a router fresh from
    ``fit``: a loaded bundle keeps only its final adapter)."""
    return [
        evaluate_policy_router(router.stage(name), held_out, costs=costs, label=name)
        for name in ("sft", "dpo")
        if name in router.stages
    ]


# The numbers of each stage a run records (``<stage>.<measure>``): the table has the rest.
REPORTED = ("accuracy", "label_accuracy", "oracle_probability", "cost_savings", "strong_share")


def held_out_report(
    router: CausalLMRouter, held_out: TrainingData, *, costs: Mapping[str, float]
) -> HeldOutReport:
    """``compare_stages`` as a router's held-out report (the trainer logs it with the run)."""
    stages = compare_stages(router, held_out, costs=costs)
    metrics = {f"{s.label}.{k}": float(getattr(s, k)) for s in stages for k in REPORTED}
    return HeldOutReport(format_table(stages), metrics)


def format_table(evaluations: Sequence[PolicyEvaluation]) -> str:
    """A plain-text table: one column per evaluation, one line per measure."""
    if not evaluations:
        return ""
    first = evaluations[0]
    lines: list[tuple[str, list[str]]] = [
        ("held-out rows", [str(e.rows) for e in evaluations]),
        ("accuracy (router)", [f"{e.accuracy:.3f}" for e in evaluations]),
        ("accuracy always-cheap", [f"{e.always_cheap:.3f}" for e in evaluations]),
        ("accuracy always-strong", [f"{e.always_strong:.3f}" for e in evaluations]),
        ("cost per query (USD)", [f"{e.cost_usd:.6f}" for e in evaluations]),
        ("cost savings vs strong", [f"{e.cost_savings:.1%}" for e in evaluations]),
        ("share sent to strong", [f"{e.strong_share:.1%}" for e in evaluations]),
        ("label accuracy", [f"{e.label_accuracy:.3f}" for e in evaluations]),
        ("mean P(oracle label)", [f"{e.oracle_probability:.3f}" for e in evaluations]),
    ]
    for policy in POLICIES:
        lines.append(
            (
                f"named {policy} (oracle {first.oracle[policy]})",
                [str(e.predicted[policy]) for e in evaluations],
            )
        )
    for policy in POLICIES:
        lines.append(
            (
                f"accuracy on {policy}",
                [
                    "-"
                    if e.per_policy_accuracy[policy] is None
                    else f"{e.per_policy_accuracy[policy]:.3f}"
                    for e in evaluations
                ],
            )
        )
    width = max(len(name) for name, _ in lines)
    cols = [max(len(e.label), *(len(v[i]) for _, v in lines)) for i, e in enumerate(evaluations)]
    header = " | ".join(
        [" " * width, *(e.label.rjust(c) for e, c in zip(evaluations, cols, strict=True))]
    )
    body = [
        " | ".join([name.ljust(width), *(v.rjust(c) for v, c in zip(values, cols, strict=True))])
        for name, values in lines
    ]
    return "\n".join([header, "-" * len(header), *body])
