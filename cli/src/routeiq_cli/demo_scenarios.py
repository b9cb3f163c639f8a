"""What `routeiq demo` serves before and after, on which data: one scenario per candidate set
(the RouteLLM pair on GSM8K, LLMRouter's 9 models on its own data), and the strategy the
stack's model file configures (what the demo puts back)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import yaml
from routeiq.routing.datasets import RoutingDataset, load_gsm8k, load_llmrouter

from routeiq_cli.replay import split_rows
from routeiq_cli.stack.components import gateway_config_path
from routeiq_cli.stack.settings import StackSettings


@dataclass
class Scenario:
    """What the loop serves before and after, on which data, and how it is judged."""

    ds: RoutingDataset  # one table: the train and test rows index into it
    train_rows: list[int]
    test_rows: list[int]
    before: tuple[str, str, dict[str, Any]]  # (name, kind, params) of the untrained strategy
    before_text: str
    after: tuple[str, str, dict[str, Any]]
    after_text: str
    restore: tuple[str, str, dict[str, Any]]  # the stack's configured default
    held_out: str  # the offline evaluation's dataset spec
    strong: str | None = None  # the two-model scenario reports strong-call shares


def routellm_scenario() -> Scenario:
    ds = load_gsm8k()
    train_rows, test_rows = split_rows(ds, seed=0)
    threshold = {"strong": ds.strong, "weak": ds.weak, "target_strong_pct": 50}
    return Scenario(
        ds=ds,
        train_rows=train_rows,
        test_rows=test_rows,
        before=("demo-baseline", "threshold", {**threshold, "scorer": "heuristic"}),
        before_text="untrained threshold strategy (text heuristic, 50% strong)",
        after=("demo-learned", "threshold", threshold),
        after_text="learned router, 50% strong",
        restore=("threshold", "threshold", threshold),
        held_out="gsm8k:test",
        strong=ds.strong,
    )


def llmrouter_scenario(train_queries: int) -> Scenario:
    train, test = load_llmrouter(split="train"), load_llmrouter(split="test")
    # One table (train rows first, then test) so both replays read the same dataset; the
    # test split lists the models in another order, so take its columns by name.
    cols = [test.models.index(m) for m in train.models]
    ds = replace(
        train,
        name="llmrouter",
        ids=[*train.ids, *test.ids],
        prompts=[*train.prompts, *test.prompts],
        scores=np.vstack([train.scores, test.scores[:, cols]]),
        responses=[*train.responses, *test.responses],
    )
    n = min(train_queries, len(train)) if train_queries > 0 else len(train)
    # A seeded shuffle, not the first n rows: dcrouter_train lists its tasks one after the
    # other, so its first 2,000 rows miss whole tasks of the test split (a kNN trained on
    # them serves dcrouter_test at 0.52 at half the cost, on a random 2,000 at 0.57), and
    # production traffic mixes tasks over time, which the trainer's newest-20% validation
    # assumes.
    order = np.random.default_rng(0).permutation(len(train))[:n]
    return Scenario(
        ds=ds,
        train_rows=[int(i) for i in order],
        test_rows=list(range(len(train), len(train) + len(test))),
        before=("strongest", "", {}),
        before_text="the best single model (strongest prior quality), no routing",
        after=("learned", "learned", {}),  # its target is set from the before stage's cost
        after_text=(
            "learned router over 9 (with the gateways' exploration), λ held at half the best "
            "single model's estimated cost"
        ),
        restore=("learned", "learned", {}),  # filled from the model file
        held_out="llmrouter-test",
    )


def configured(
    settings: StackSettings, strategy: tuple[str, str, dict[str, Any]]
) -> tuple[str, str, dict[str, Any]]:
    """``strategy`` with the parameters the stack's model file gives it (what to restore)."""
    path = gateway_config_path(settings)
    if not path.is_file():
        return strategy
    for spec in (yaml.safe_load(path.read_text()).get("routeiq") or {}).get("strategies", []):
        if spec.get("name") == strategy[0]:
            return spec["name"], spec["kind"], dict(spec.get("params") or {})
    return strategy


def configured_epsilon(settings: StackSettings) -> float | None:
    """The exploration rate of the stack's model file (what the gateways started with)."""
    path = gateway_config_path(settings)
    if not path.is_file():
        return None
    value = (yaml.safe_load(path.read_text()).get("routeiq") or {}).get("epsilon")
    return None if value is None else float(value)
