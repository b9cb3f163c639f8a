"""`routeiq model list | promote | rollback` against MLflow, S3 and Kafka."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from integration.trainer.helpers import settings_env
from routeiq.routing.bundle import BundleError
from routeiq_cli.models import model

pytestmark = pytest.mark.integration


def test_list_promote_and_rollback(harness_factory) -> None:
    harness = harness_factory()
    pipeline = harness.services.pipeline
    good = pipeline.process(harness.request())
    worse = pipeline.process(
        harness.request(params={"knn.k": "100000", "knn.weighting": "uniform"})
    )
    assert good.announced
    assert not worse.announced
    # Connection settings come from the local stack; the private world from the environment.
    env = {
        k: v
        for k, v in settings_env(harness.settings).items()
        if not k.split("ROUTEIQ_TRAINER_")[1].startswith(("KAFKA", "REGISTRY", "S3", "MLFLOW"))
    }
    runner = CliRunner()
    name = harness.model_name

    listed = runner.invoke(model, ["list", name], env=env)
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[1].startswith(f"* {good.version}")
    assert "passed" in lines[1]
    assert lines[2].startswith(f"  {worse.version}")
    assert "held" in lines[2]

    promoted = runner.invoke(model, ["promote", name, worse.version], env=env)
    assert promoted.exit_code == 0, promoted.output
    assert f"was {good.version}" in promoted.output
    assert harness.services.registry.champion(name).version == worse.version

    rolled = runner.invoke(model, ["rollback", name], env=env)
    assert rolled.exit_code == 0, rolled.output
    assert harness.services.registry.champion(name).version == good.version

    announcements = harness.read("announcement", expect=3)
    assert [(a["action"], a["version"], a["previous_version"]) for a in announcements] == [
        ("PROMOTE", good.version, None),
        ("PROMOTE", worse.version, good.version),
        ("ROLLBACK", good.version, worse.version),
    ]
    assert announcements[1]["announced_by"].startswith("cli")

    again = runner.invoke(model, ["rollback", name], env=env)
    assert again.exit_code != 0
    assert "no earlier champion" in str(again.exception)
    missing = runner.invoke(model, ["promote", name, "v-nope"], env=env)
    assert missing.exit_code != 0
    assert "has no version 'v-nope'" in str(missing.exception)
    as_json = runner.invoke(model, ["list", name, "--json"], env=env)
    assert as_json.exit_code == 0
    assert as_json.output.count('"champion": true') == 1


def test_promote_refuses_a_bundle_without_a_valid_signature(harness_factory, signing_key) -> None:
    harness = harness_factory()
    done = harness.services.pipeline.process(harness.request())
    from routeiq.routing.bundle import generate_ed25519

    other_key = generate_ed25519()[0]
    env = settings_env(harness.settings, SIGNING_KEY=other_key)
    result = CliRunner().invoke(model, ["promote", harness.model_name, done.version], env=env)
    assert result.exit_code != 0
    assert isinstance(result.exception, BundleError)
    assert "signed with key" in str(result.exception)
    assert len(harness.read("announcement", expect=1)) == 1
