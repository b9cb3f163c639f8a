"""What `routeiq demo` prints at its end: quality and cost before and after against the
references (always strong / weak, or the best single model and the per-query oracle), and
the trained router's offline quality on the held-out data."""

from __future__ import annotations

import click
import numpy as np
from routeiq.errors import RouteIQError
from routeiq.routing.datasets import RoutingDataset

from routeiq_cli.demo_scenarios import Scenario
from routeiq_cli.replay import ReplayStats
from routeiq_cli.stack.settings import StackSettings


def estimated_cost_per_1k(
    settings: StackSettings, ds: RoutingDataset, rows: list[int], served: ReplayStats
) -> float:
    """What the gateway estimates the ``before`` stage's model costs per 1k of ``rows``."""
    from routeiq.routing.features import CHARS_PER_TOKEN

    model = served.by_model.most_common(1)[0][0]
    price = ds.prices[model]
    answer = 50  # expected_output_tokens in the stack's 9-model file
    per_request = [
        price.cost(max(1, round(len(ds.prompts[r]) / CHARS_PER_TOKEN)), answer) for r in rows
    ]
    return 1000.0 * sum(per_request) / len(per_request)


def print_report(
    settings: StackSettings,
    scenario: Scenario,
    before: ReplayStats,
    after: ReplayStats,
    version: str,
) -> None:
    ds, rows = scenario.ds, scenario.test_rows
    scores = ds.scores[rows]
    header = f"      {'':<36} {'quality':>8} {'$ per 1k':>9}"
    if scenario.strong:
        header += f" {'strong %':>9}"
    click.echo(header)
    labels = (
        ("default strategy (untrained)", "learned router")
        if scenario.strong
        else ("best single model", "learned router")
    )
    for label, stats in zip(labels, (before, after), strict=True):
        line = f"      {label:<36} {stats.mean_quality:>8.3f} {stats.cost_per_1k:>9.3f}"
        if scenario.strong:
            line += f" {stats.strong_pct(scenario.strong):>9.1f}"
        click.echo(line)
    if scenario.strong:
        strong = ds.models.index(scenario.strong)
        weak = 1 - strong
        click.echo(
            f"      {'(always strong / always weak)':<36} {scores[:, strong].mean():>8.3f} / "
            f"{scores[:, weak].mean():.3f}"
        )
    else:
        # The per-query oracle: each prompt's best candidate (the cheapest among ties),
        # priced at the tokens the before stage used for that prompt.
        prices = [ds.prices[m] for m in ds.models]
        oracle_q, oracle_cost = [], []
        for i, row in enumerate(rows):
            best = np.flatnonzero(scores[i] >= scores[i].max() - 1e-12)
            j = min(best, key=lambda k: prices[k].input_per_m + prices[k].output_per_m)
            prompt, completion = before.usage.get(row, (0, 0))
            oracle_q.append(scores[i, j])
            oracle_cost.append(prices[j].cost(prompt, completion))
        click.echo(
            f"      {'per-query oracle (hindsight)':<36} {np.mean(oracle_q):>8.3f} "
            f"{1000 * np.mean(oracle_cost):>9.3f}"
        )
        ratio = after.cost_per_1k / before.cost_per_1k if before.cost_per_1k else float("nan")
        click.echo(
            f"      learned router: {after.mean_quality - before.mean_quality:+.3f} quality at "
            f"{ratio:.0%} of the best single model's cost; served {dict(after.by_model)}"
        )
    try:
        from routeiq_cli.evaluate import held_out_quality, load_bundles

        (bundle,) = load_bundles([], None, settings.router_name, version).values()
        result, intervals = held_out_quality(
            bundle, scenario.held_out, cache_dir=settings.state / "eval-cache"
        )
        if "apgr" in intervals:
            iv = intervals["apgr"]
            click.echo(
                f"      offline APGR of {version} on the held-out half: {iv.value:.3f} "
                f"(95% CI {iv.low:.3f}–{iv.high:.3f})"
            )
        else:
            m = result.metrics
            click.echo(
                f"      offline on {scenario.held_out}: AIQ {m['aiq']:.3f} (oracle "
                f"{m['oracle_aiq']:.3f}), quality at 50% of the best single model's cost "
                f"{m['quality_at_50pct_cost']:.3f} (best single "
                f"{m['best_single_quality']:.3f}, oracle {m['oracle_quality']:.3f})"
            )
    except RouteIQError as exc:
        click.echo(f"      (offline evaluation unavailable: {exc})")
