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
* ``learned``    the cost-aware policy over N candidates: the active router's expected
                 quality per candidate minus λ times its estimated cost, λ calibrated on
                 live traffic to a cost per 1k requests or a quality floor (``costpolicy``).

Each kind lives in its own module (``baselines``, ``threshold``, ``policy``, ``learned``);
``base`` holds what they share and ``holder`` the active learned router. This package's
namespace is the public API every caller imports from.
"""

from routeiq.routing.strategies.base import *  # noqa: F403
from routeiq.routing.strategies.baselines import *  # noqa: F403
from routeiq.routing.strategies.holder import *  # noqa: F403
from routeiq.routing.strategies.learned import *  # noqa: F403
from routeiq.routing.strategies.policy import *  # noqa: F403
from routeiq.routing.strategies.threshold import *  # noqa: F403
