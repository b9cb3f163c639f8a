"""Routing strategies: given a query and the candidate models, which one should serve it.

A strategy returns a greedy choice, a score per candidate and a reason (a choice it had to
randomise, such as a tie at a threshold, carries its probabilities).
Exploration and A/B assignment happen around it, in ``engine.py``, so every strategy gets the
same propensity logging. Built-in kinds:

* ``random``     uniform over available candidates (its propensities are 1/K by construction);
* ``cheapest`` / ``strongest``  by price / by prior quality rank;
* ``threshold``  RouteLLM-style: strong-vs-weak win score, strong when the score clears a
                 threshold calibrated for a target share of strong calls;
* ``policy``     static map, keyword and length rules, domain overrides, cost-budget downgrade;
* ``routellm``   RouteLLM's rule with the client's threshold: strong when its win rate
                 under the active router is at least the threshold (``router-mf-0.116``);
* ``learned``    the cost-aware policy over N candidates: the active router's expected
                 quality per candidate minus λ times its estimated cost, λ calibrated on
                 live traffic to a cost per 1k requests or a quality floor (``costpolicy``).

Each kind lives in its own module (``baselines``, ``threshold``, ``policy``, ``learned``);
``base`` holds what they share and ``holder`` the active learned router. This package's
namespace is the public API every caller imports from. Other kinds come from installed
packages through the ``routeiq.strategies`` entry-point group (``STRATEGY_KINDS``).
"""

from routeiq.errors import ConfigError
from routeiq.routing.plugins import STRATEGY_GROUP, PluginGroup, by_kind
from routeiq.routing.strategies.base import *  # noqa: F403
from routeiq.routing.strategies.base import Strategy
from routeiq.routing.strategies.baselines import *  # noqa: F403
from routeiq.routing.strategies.baselines import (
    CheapestStrategy,
    RandomStrategy,
    StrongestStrategy,
)
from routeiq.routing.strategies.holder import *  # noqa: F403
from routeiq.routing.strategies.learned import *  # noqa: F403
from routeiq.routing.strategies.learned import LearnedStrategy
from routeiq.routing.strategies.policy import *  # noqa: F403
from routeiq.routing.strategies.policy import PolicyStrategy
from routeiq.routing.strategies.threshold import *  # noqa: F403
from routeiq.routing.strategies.threshold import RouteLLMThreshold, ThresholdStrategy

BUILTIN_STRATEGIES: dict[str, type[Strategy]] = by_kind(
    RandomStrategy,
    CheapestStrategy,
    StrongestStrategy,
    ThresholdStrategy,
    PolicyStrategy,
    LearnedStrategy,
    RouteLLMThreshold,
)

# Every strategy kind by name: the built-ins, then the ``routeiq.strategies`` plugins.
STRATEGY_KINDS: PluginGroup[Strategy] = PluginGroup(
    STRATEGY_GROUP,
    base=Strategy,
    what="strategy kind",
    builtins=BUILTIN_STRATEGIES,
    error=ConfigError,
)


def strategy_class(kind: str) -> type[Strategy]:
    """The strategy class of a kind; ``ConfigError`` names the known kinds, or the plugin
    behind ``kind`` and why it cannot be used. A plugin's class is built with
    ``Strategy.from_config``; the built-ins by the registry, which knows their collaborators."""
    return STRATEGY_KINDS.lookup(kind)
