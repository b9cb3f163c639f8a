"""The local stack's secrets, generated once into ``<state>/secrets.json`` (mode 0600).

The admin API key, the decision-id key and user-id salt shared by the gateway replicas, and
the Ed25519 pair that signs bundles (the trainer holds the private half, gateways the public).
``make clean`` deletes them with the rest of the state; production deployments bring their own.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass

from routeiq.routing.bundle import generate_ed25519

from routeiq_cli.stack.settings import StackSettings


@dataclass(frozen=True)
class StackSecrets:
    admin_key: str
    decision_key: str
    user_salt: str
    signing_private: str
    signing_public: str


def load_or_create(settings: StackSettings) -> StackSecrets:
    path = settings.state / "secrets.json"
    if path.is_file():
        return StackSecrets(**json.loads(path.read_text()))
    private, public = generate_ed25519()
    created = StackSecrets(
        admin_key=secrets.token_urlsafe(24),
        decision_key=secrets.token_urlsafe(32),
        user_salt=secrets.token_urlsafe(16),
        signing_private=private,
        signing_public=public,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(asdict(created), fh, indent=2)
    return created
