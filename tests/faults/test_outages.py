"""Each dependency stopped under load, then started again: no request fails, every event
arrives exactly once, and the consumers ride it out without restarting."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from faults.harness import Row, Stack, under_load


@pytest.mark.parametrize(
    ("component", "down_s"),
    [
        pytest.param("kafka", 20, id="kafka down 20 s"),
        pytest.param("schema-registry", 15, id="registry down 15 s"),
        pytest.param("redis", 15, id="redis down 15 s"),
        pytest.param("s3", 15, id="s3 down 15 s"),
        pytest.param("mlflow", 15, id="mlflow down 15 s"),
    ],
)
def test_outage(stack: Stack, row: Row, component: str, down_s: float) -> None:
    def outage() -> None:
        stack.supervisor.stop(component)
        time.sleep(down_s)
        stack.supervisor.start(component)
        stack.wait_healthy([component])

    under_load(stack, row, outage)
    stack.wait_healthy(["gateway", "labeler", "trainer", "analytics"])
    # The registry must take writes again, not only serve reads from memory.
    subject = f"faults-{component}-{uuid.uuid4().hex[:8]}-value"
    response = httpx.post(
        f"{stack.url('registry')}/subjects/{subject}/versions",
        json={"schema": '"string"'},
        headers={"content-type": "application/vnd.schemaregistry.v1+json"},
        timeout=30,
    )
    row.sent += 1
    if response.status_code != 200:
        row.failed += 1
        row.server_errors += response.status_code >= 500
        row.notes.append(f"registration after the outage: {response.status_code} {response.text}")
