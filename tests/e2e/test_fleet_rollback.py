"""Fleet-wide rollback of the router: `routeiq model rollback` moves every gateway replica back.

The trainer's real registry path (MLflow versions and champion alias, signed bundles in S3,
announcements on the fleet's topic) makes two versions champion in turn; the CLI's rollback
then moves the champion back in MLflow and announces it, and three gateway processes follow.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from click.testing import CliRunner
from e2e.test_rollout import ask, status, wait_active
from integration.gateway.conftest import GatewayHandle
from integration.trainer.helpers import Harness, settings_env
from routeiq_cli.__main__ import cli

pytestmark = pytest.mark.e2e


# A kNN over only the 150 newest examples: better than random, clearly worse than the full
# one, so the full one passes the gate against it. Gating on APGR, where the three are far
# apart on GSM8K (about 0.50, 0.61 and 0.73), keeps both verdicts clear of the margin.
SMALL_KNN = {"knn.max_examples": "150", "knn.dims": "0"}
OPERATOR = "oncall-e2e"


def test_cli_rollback_moves_every_replica_back_and_each_audits_it(
    harness_factory: Callable[..., Harness], gateway_factory: Callable[..., GatewayHandle]
) -> None:
    harness = harness_factory(gate_metric="apgr")
    name, registry = harness.model_name, harness.services.registry
    routing = {"router_name": name, "default_strategy": "threshold", "epsilon": 0.0}
    # One fleet on the trainer's announcements topic, each replica with its own model cache.
    topic = {"ROUTEIQ_GATEWAY_ANNOUNCEMENTS_TOPIC": harness.settings.announcements_topic}
    gws = [gateway_factory(routeiq=routing, name=f"fleet{i}", **topic) for i in range(3)]

    v1 = harness.services.pipeline.process(harness.request(params=SMALL_KNN))
    assert v1.announced, v1.gate
    assert v1.gate is not None
    assert "a random router" in v1.gate.reason  # the first champion beat no learning at all
    wait_active(gws, v1.version)
    v2 = harness.services.pipeline.process(harness.request())
    assert v2.announced, v2.gate
    assert v2.gate is not None
    assert f"champion {v1.version}" in v2.gate.reason
    wait_active(gws, v2.version)
    assert all(
        ask(g, "What is 2+3?").headers["x-routeiq-router-version"] == v2.version for g in gws
    )

    # The operator's CLI, pointed at this test's MLflow names, topic and signing key.
    env = {**settings_env(harness.settings), "LOGNAME": OPERATOR}
    rolled = CliRunner().invoke(cli, ["model", "rollback", name], env=env)
    assert rolled.exit_code == 0, rolled.output
    assert f"rolled {name} back to {v1.version}" in rolled.output
    assert f"from {v2.version}" in rolled.output
    champion = registry.champion(name)
    assert champion is not None
    assert champion.version == v1.version
    announced = harness.read("announcement", expect=3)
    assert [(a["action"], a["version"], a["previous_version"]) for a in announced] == [
        ("PROMOTE", v1.version, None),
        ("PROMOTE", v2.version, v1.version),
        ("ROLLBACK", v1.version, v2.version),
    ]

    wait_active(gws, v1.version)
    by = f"cli@{OPERATOR}"
    for gw in gws:
        assert status(gw)["history"][-3:] == [v1.version, v2.version, v1.version]
        answer = ask(gw, "What is 7+8?")
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-routeiq-router-version"] == v1.version
        entries = httpx.get(f"{gw.url}/admin/audit", headers=gw.admin_headers, timeout=10)
        activations = [e for e in entries.json()["entries"] if e["action"] == "activate"]
        assert [(e["from"], e["to"]) for e in activations] == [
            (None, v1.version),
            (v1.version, v2.version),
            (v2.version, v1.version),
        ]
        # The rollback as the replica records it: the operator, the trainer's reason, where.
        rollback = activations[-1]
        assert (rollback["who"], rollback["why"]) == (
            f"announcement by {by}",
            f"rolled back by {by}",
        )
        assert rollback["replica"] == gw.workdir.name  # the factory's replica id
        assert rollback["at"]
