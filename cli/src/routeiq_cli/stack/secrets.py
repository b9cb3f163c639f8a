"""The local stack's secrets, generated once into ``<state>/secrets.json`` (mode 0600).

The admin API key, the decision-id key and user-id salt shared by the gateway replicas, the
query key the gateways and the trainer share (``routeiq.routing.querykey``), and the Ed25519
pair that signs bundles (the trainer holds the private half, gateways the public).
``make clean`` deletes them with the rest of the state; production deployments bring their own.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, replace

from routeiq.routing.bundle import generate_ed25519

from routeiq_cli.stack.settings import StackSettings


@dataclass(frozen=True)
class StackSecrets:
    admin_key: str
    decision_key: str
    user_salt: str
    signing_private: str
    signing_public: str
    query_key: str = ""


def load_or_create(settings: StackSettings) -> StackSecrets:
    path = settings.state / "secrets.json"
    if path.is_file():
        existing = StackSecrets(**json.loads(path.read_text()))
        if existing.query_key:
            return existing
        # A state folder from before query keys: add one, keep every other secret.
        upgraded = replace(existing, query_key=secrets.token_urlsafe(32))
        path.write_text(json.dumps(asdict(upgraded), indent=2))
        return upgraded
    private, public = generate_ed25519()
    created = StackSecrets(
        admin_key=secrets.token_urlsafe(24),
        decision_key=secrets.token_urlsafe(32),
        user_salt=secrets.token_urlsafe(16),
        signing_private=private,
        signing_public=public,
        query_key=secrets.token_urlsafe(32),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(asdict(created), fh, indent=2)
    return created
