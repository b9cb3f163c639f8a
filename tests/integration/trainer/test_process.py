"""`python -m routeiq_trainer` as a process: refuses bad configuration, serves health and
metrics, trains what arrives on its topic, stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from integration.trainer.helpers import expected_device, settings_env
from support.processes import free_port

pytestmark = pytest.mark.integration


def _clean_env(**env: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ROUTEIQ_TRAINER_")}
    base.update(env)
    base.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    base.setdefault("HF_HUB_OFFLINE", "1")
    return base


def test_it_refuses_to_start_without_a_signing_key() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "routeiq_trainer"],
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "ROUTEIQ_TRAINER_SIGNING_KEY is not set" in done.stderr


def test_it_refuses_contradictory_settings(signing_key) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "routeiq_trainer"],
        env=_clean_env(
            ROUTEIQ_TRAINER_SIGNING_KEY=signing_key,
            ROUTEIQ_TRAINER_STRONG_MODEL="gpt-4",
            ROUTEIQ_TRAINER_WEAK_MODEL="gpt-4",
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "strong_model and weak_model are both 'gpt-4'" in done.stderr


def test_the_worker_process_trains_reports_and_stops_cleanly(harness_factory, tmp_path) -> None:
    harness = harness_factory()
    port = free_port()
    log = (tmp_path / "trainer.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "routeiq_trainer"],
        env=_clean_env(
            **settings_env(harness.settings, HEALTH_PORT=str(port), RETRY_BACKOFF_S="0.5")
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "trainer.log").read_text()
            time.sleep(0.5)
        else:
            raise AssertionError((tmp_path / "trainer.log").read_text())
        assert httpx.get(f"{base}/health/live").json() == {"status": "live"}
        ready = httpx.get(f"{base}/health/ready").json()
        assert ready["device"] == expected_device()
        assert ready["status"] == "ready"

        request = harness.request()
        harness.produce(request)
        harness.produce(b"\x00garbage")
        deadline = time.monotonic() + 300
        body = ""
        while time.monotonic() < deadline:
            body = httpx.get(f"{base}/metrics", timeout=5).text
            if (
                'routeiq_trainer_requests_total{outcome="trained"} 1.0' in body
                and "routeiq_trainer_dead_letters_total 1.0" in body
            ):
                break
            assert proc.poll() is None, (tmp_path / "trainer.log").read_text()
            time.sleep(1)
        else:
            raise AssertionError(body)
        assert "routeiq_trainer_versions_registered_total 1.0" in body
        assert 'routeiq_trainer_announcements_total{action="PROMOTE"} 1.0' in body
        assert 'routeiq_trainer_training_seconds_count{router_type="knn"} 1.0' in body
        (announcement,) = harness.read("announcement", expect=1)
        assert announcement["version"] == request.version
        assert announcement["announced_by"] == harness.settings.instance_id
        (letter,) = harness.read("dead_letter", expect=1)
        assert letter["error_type"] == "SerializationError"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        log.close()
    assert code == 0, (tmp_path / "trainer.log").read_text()
    assert harness.committed_offset() == 2
