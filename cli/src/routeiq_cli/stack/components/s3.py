"""S3 (SeaweedFS): master, volume, filer and S3 gateway in one ``weed server``."""

from __future__ import annotations

import json
from pathlib import Path

from routeiq_cli.stack.components.base import (
    Component,
    Probe,
    flags,
    port_open,
    prepare_dir,
    venv_bin,
)
from routeiq_cli.stack.settings import SEAWEED_GRPC_OFFSET, StackSettings


def _s3_health(settings: StackSettings) -> Probe:
    from routeiq.storage import make_minio

    def probe() -> str | None:
        if not port_open(settings.host, settings.s3_port):
            return f"nothing listens on {settings.host}:{settings.s3_port}"
        try:
            make_minio(settings.s3, timeout_s=2).list_buckets()
        except Exception as exc:  # noqa: BLE001 - any failure means "not healthy yet"
            return f"ListBuckets failed: {exc}"
        return None

    return probe


def _s3_config(settings: StackSettings) -> Path:
    """SeaweedFS S3 identities: one admin identity with the stack's static key pair."""
    path = settings.state / "s3" / "s3.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    credentials = {
        "accessKey": settings.s3_access_key,
        "secretKey": settings.s3_secret_key.get_secret_value(),
    }
    identity = {
        "name": "routeiq",
        "credentials": [credentials],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }
    path.write_text(json.dumps({"identities": [identity]}, indent=2))
    path.chmod(0o600)
    return path


def s3_component(settings: StackSettings) -> Component:
    # `weed server` rather than `weed mini`: mini always starts an admin server and WebDAV;
    # server runs exactly master, volume, filer and S3 (4 ports, each plus 10000 for gRPC).
    options: dict[str, str | int | bool] = {
        "dir": str(settings.state / "s3" / "data"),
        "ip": settings.host,
        "ip.bind": settings.host,
        "master.telemetry": "false",
        # A single master elects itself; the default timeout makes restarts take 14 s.
        "master.electionTimeout": "1s",
        "master.port": settings.s3_master_port,
        # Defaults are 30 GB volumes, at most 8: small volumes, as many as disk allows. Every
        # bucket is a collection that grows 7 volumes at once: small volumes keep tests that
        # create buckets from exhausting the volume slots.
        "master.volumeSizeLimitMB": 128,
        "volume.max": 0,
        "volume.port": settings.s3_volume_port,
        "filer": True,
        "filer.port": settings.s3_filer_port,
        "s3": True,
        "s3.port": settings.s3_port,
        "s3.config": str(_s3_config(settings)),
        # Only S3 is used: no Iceberg/Lance catalogs, no IAM API.
        "s3.port.iceberg": 0,
        "s3.port.lance": 0,
        "s3.iam": "false",
    }
    listen = [
        settings.s3_port,
        settings.s3_master_port,
        settings.s3_volume_port,
        settings.s3_filer_port,
    ]
    return Component(
        name="s3",
        title="S3 (SeaweedFS)",
        command=[venv_bin("weed"), "server", *flags(options, dash="-", joined=True)],
        # The gRPC ports too: `up` checks them free and `down` waits for them to close.
        ports=[*listen, *(p + SEAWEED_GRPC_OFFSET for p in listen)],
        health=_s3_health(settings),
        endpoint=f"http://{settings.host}:{settings.s3_port}",
        prepare=prepare_dir(settings.state / "s3" / "data"),
    )
