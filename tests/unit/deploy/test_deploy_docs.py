"""docs/deploy.md stays true: its configuration tables are the settings classes, its key
recipe makes keys RouteIQ accepts, and it covers every profile, overlay and runbook step."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from routeiq.routing.bundle import Ed25519Signer, signer_from, verifier_from
from unit.deploy.deploy_support import (
    DOCS,
    ROOT,
    SERVICES,
    docs_reference,
    render_reference,
    settings_class,
)


def test_configuration_reference_matches_the_settings_classes() -> None:
    assert docs_reference() == render_reference(), (
        "docs/deploy.md is out of date: run "
        "`uv run --frozen python tests/unit/deploy/deploy_support.py --write-docs`"
    )


def test_reference_lists_every_setting_of_every_service() -> None:
    text = docs_reference()
    for service in SERVICES:
        for name in settings_class(service.settings).model_fields:
            assert re.search(rf"`{service.prefix}{name.upper()}(__\w+)?`", text), name


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_documented_key_recipe_makes_a_working_key_pair(tmp_path: Path) -> None:
    text = DOCS.read_text()
    block = text[text.index("<!-- keys:begin -->") : text.index("<!-- keys:end -->")]
    script = re.search(r"```bash\n(.*?)```", block, flags=re.S)
    assert script, "the key recipe is a bash block between the keys markers"
    commands = "\n".join(line.strip() for line in script.group(1).splitlines())
    done = subprocess.run(
        [
            "bash",
            "-euo",
            "pipefail",
            "-c",
            commands + '\nprintf "%s\\n%s\\n%s\\n" "$SIGNING_KEY" "$VERIFY_KEY" "$ADMIN_KEY"',
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    signing, verify, admin = done.stdout.split()
    signer = signer_from("ed25519", signing)
    assert isinstance(signer, Ed25519Signer)
    assert signer.public_key == base64.b64decode(verify)
    verifier_from("ed25519", verify)
    assert len(admin) >= 16  # the gateway refuses shorter admin keys


def test_walkthrough_and_runbook_are_complete() -> None:
    text = DOCS.read_text()
    for needle in (
        "kubectl apply -k k8s/dependencies",
        "kubectl apply -k k8s/overlays/dev",
        "kubectl apply -k k8s/overlays/prod",
        "/v1/chat/completions",
        "x-routeiq-decision-id",
        "/v1/feedback",
        "/admin/model/rollback",
        '{"version": "previous"',
        "/admin/audit",
        "routeiq model rollback",
        "active_version",
        "available_versions",
        "sync.last",
        "stack/install-deploy-tools.sh",
    ):
        assert needle in text, needle
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    profiles = {p for s in compose["services"].values() for p in s.get("profiles", [])}
    for profile in profiles:
        assert f"`{profile}`" in text, f"profile {profile} is not documented"
    for overlay in (ROOT / "k8s" / "overlays").iterdir():
        assert f"k8s/overlays/{overlay.name}" in text
