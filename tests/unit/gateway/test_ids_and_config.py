"""Decision ids verify without shared state; bad configuration is refused with the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from routeiq.errors import ConfigError
from routeiq_gateway.config import load_model_file
from routeiq_gateway.ids import DecisionIds
from support.processes import run_module, service_env

from .conftest import MODEL_FILE


def test_ids_issued_by_one_replica_verify_on_another() -> None:
    now = [1_800_000_000.0]
    a = DecisionIds(b"shared" * 6, ttl_s=3600, clock=lambda: now[0])
    b = DecisionIds(b"shared" * 6, ttl_s=3600, clock=lambda: now[0])
    other = DecisionIds(b"other-key" * 4, ttl_s=3600)
    issued = a.new()
    assert b.check(issued) is None
    assert "unknown" in (other.check(issued) or "")
    assert "malformed" in (b.check("nonsense") or "")
    now[0] += 7200
    assert "expired" in (b.check(issued) or "")
    assert len({a.new() for _ in range(1000)}) == 1000


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_model_file_errors_name_the_field(tmp_path: Path) -> None:
    bad = {**MODEL_FILE, "model_list": [{"model_name": "x", "litellm_params": {}}]}
    with pytest.raises(ConfigError, match=r"litellm_params.model"):
        load_model_file(write(tmp_path, bad))
    bad = {**MODEL_FILE, "routeiq": {**MODEL_FILE["routeiq"], "candidates": {"nope": {}}}}
    with pytest.raises(ConfigError, match="unknown model groups"):
        load_model_file(write(tmp_path, bad))
    bad = {**MODEL_FILE, "routeiq": {**MODEL_FILE["routeiq"], "epsilon": 2}}
    with pytest.raises(ConfigError, match=r"routeiq.epsilon"):
        load_model_file(write(tmp_path, bad))
    bad = {**MODEL_FILE, "routeiq": {**MODEL_FILE["routeiq"], "surprise": 1}}
    with pytest.raises(ConfigError, match="surprise"):
        load_model_file(write(tmp_path, bad))
    with pytest.raises(ConfigError, match="does not exist"):
        load_model_file(tmp_path / "missing.yaml")


def test_the_process_exits_2_naming_the_problem(tmp_path: Path) -> None:
    env = service_env(
        "ROUTEIQ_GATEWAY_",
        config_path=str(write(tmp_path, {**MODEL_FILE, "model_list": []})),
        admin_key="a" * 20,
        decision_key="d" * 20,
        user_salt="s",
        telemetry_enabled="false",
    )
    proc = run_module("routeiq_gateway", env, timeout=120)
    assert proc.returncode == 2
    assert "model_list is empty" in proc.stderr
