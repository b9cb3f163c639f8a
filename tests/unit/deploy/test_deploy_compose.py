"""docker-compose.yml, without a Docker engine: the Compose Specification's JSON schema, then
what the schema cannot see (references between services, profiles, health gates, and every
RouteIQ variable checked by the settings class of the service that reads it)."""

from __future__ import annotations

import copy
import importlib.metadata
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from routeiq.errors import ConfigError
from unit.deploy.deploy_support import (
    ROOT,
    SERVICES,
    Service,
    container_env,
    dummy_secrets,
    image_env,
    image_stage,
    load_settings,
)

COMPOSE = ROOT / "docker-compose.yml"
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def _compose_schema() -> dict[str, Any]:
    # check-jsonschema vendors the Compose Specification's schema; read the file without
    # importing the package (its CLI is not needed here).
    located = importlib.metadata.distribution("check-jsonschema").locate_file(
        "check_jsonschema/builtin_schemas/vendor/compose-spec.json"
    )
    return dict(json.loads(Path(str(located)).read_text()))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = _compose_schema()
    # The schema declares draft-07 (written without the trailing "#" jsonschema looks up).
    assert "draft-07" in schema["$schema"]
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(
        schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )


def _errors(validator: jsonschema.protocols.Validator, doc: dict[str, Any]) -> list[str]:
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(doc)]


def test_compose_file_matches_the_compose_specification(
    validator: jsonschema.protocols.Validator, compose: dict[str, Any]
) -> None:
    assert _errors(validator, compose) == []


def test_schema_rejects_a_broken_compose_file(
    validator: jsonschema.protocols.Validator, compose: dict[str, Any]
) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["gateway"]["deploy"]["replicas"] = ["two"]
    broken["services"]["redis"]["healthcheck"]["intervall"] = "5s"
    broken["services"]["labeler"]["depends_on"]["kafka"]["condition"] = "service_ready"
    errors = _errors(validator, broken)
    assert any("replicas" in e for e in errors)
    assert any("intervall" in e for e in errors)
    assert any("service_ready" in e for e in errors)


def _interpolate(value: str) -> str:
    """``${VAR:-default}`` as compose resolves it with VAR unset; ``$$`` is a literal ``$``."""
    return INTERPOLATION.sub(lambda m: m.group(2) or "", value).replace("$$", "$")


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def test_references_resolve(compose: dict[str, Any]) -> None:
    services = _services(compose)
    volumes = set(compose.get("volumes") or {})
    configs = set(compose.get("configs") or {})
    for name, service in services.items():
        for target, condition in (service.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            if condition.get("condition") == "service_healthy":
                assert _has_healthcheck(services[target]), f"{name} waits for {target}'s health"
            if services[target].get("profiles") and not service.get("profiles"):
                # A service that always runs may only wait for a profiled one optionally.
                assert condition.get("required") is False, f"{name} needs profiled {target}"
        for mount in service.get("volumes") or []:
            source = mount.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in volumes, f"{name}: volume {source} is not declared"
        for config in service.get("configs") or []:
            assert config["source"] in configs
        build = service.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).is_file()
            # The one Dockerfile builds the service its SERVICE arg names, as its image says.
            built = _built_service(service)
            assert service["image"].startswith(f"routeiq/{built.name}:"), name
            assert built.dockerfile == ROOT / build["context"] / build["dockerfile"]
    for config in (compose.get("configs") or {}).values():
        assert (ROOT / config["file"]).is_file()
    used = {
        m.split(":", 1)[0]
        for s in services.values()
        for m in s.get("volumes") or []
        if not m.startswith((".", "/"))
    }
    assert used == volumes, f"declared but unused volumes: {sorted(volumes - used)}"


def _built_service(service: dict[str, Any]) -> Service:
    """The RouteIQ service whose image a compose service runs (built or reused by name)."""
    build = service.get("build")
    name = build["args"]["SERVICE"] if build else service["image"].split("/")[1].split(":")[0]
    return next(s for s in SERVICES if s.name == name)


def _has_healthcheck(service: dict[str, Any]) -> bool:
    if service.get("healthcheck"):
        return True
    if not (service.get("build") or service.get("image", "").startswith("routeiq/")):
        return False
    return bool(image_stage(_built_service(service)).all("HEALTHCHECK"))


def test_topology_and_profiles(compose: dict[str, Any]) -> None:
    services = _services(compose)
    assert services["kafka"]["image"].startswith("apache/kafka:3.9")
    assert "KRaft" not in services["kafka"]["environment"]  # configured by roles, not a flag
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["confluent-schema-registry"]["image"].startswith(
        "confluentinc/cp-schema-registry:"
    )
    assert services["confluent-schema-registry"]["profiles"] == ["confluent"]
    assert services["upstream"]["profiles"] == ["demo"]
    assert services["trainer"]["profiles"] == ["gpu"]
    assert services["trainer-cpu"]["profiles"] == ["cpu"]
    gpu = services["trainer"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert "deploy" not in services["trainer-cpu"]
    assert services["trainer"]["environment"]["ROUTEIQ_TRAINER_DEVICE"] == "cuda"
    assert services["trainer-cpu"]["environment"]["ROUTEIQ_TRAINER_DEVICE"] == "cpu"
    gateway = services["gateway"]
    assert gateway["deploy"]["replicas"] == 2
    cache = gateway["environment"]["ROUTEIQ_GATEWAY_MODEL_CACHE_DIR"]
    assert f"gateway-model-cache:{cache}" in gateway["volumes"], "replicas share one cache"
    for name in ("minio-init", "routeiq-init", "keys"):
        assert name in services
    assert "mc version enable local/routeiq-models" in services["minio-init"]["command"][0]
    assert services["routeiq-init"]["entrypoint"][-1] == (
        "routeiq topics apply && routeiq schemas register"
    )
    # Every long-running service is health-checked (by compose or by its image).
    for name, service in services.items():
        if name in {"minio-init", "routeiq-init", "keys", "jaeger"}:
            continue
        assert _has_healthcheck(service), f"{name} has no health check"


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: _interpolate(str(v)) for k, v in env.items()}


def _entrypoint_exports(service: dict[str, Any]) -> set[str]:
    entry = service.get("entrypoint") or []
    text = " ".join(entry) if isinstance(entry, list) else entry
    return set(re.findall(r"export (\w+)=", text))


@pytest.mark.parametrize("service", SERVICES, ids=[s.name for s in SERVICES])
def test_environment_is_valid_for_each_service(compose: dict[str, Any], service: Service) -> None:
    services = _services(compose)
    image = f"routeiq/{service.name}:"
    users = [n for n, s in services.items() if s.get("image", "").startswith(image)]
    assert users, f"{service.name} is not in docker-compose.yml"
    for name in users:
        compose_env = _environment(services[name])
        if name == "keys":
            continue
        if name == "routeiq-init":
            # The CLI's settings: its state folders come from the image's ENV.
            stack = {k: v for k, v in image_env(service).items() if k.startswith("ROUTEIQ_STACK_")}
            load_settings("ROUTEIQ_STACK_", {**stack, **compose_env})
            continue
        # What the container sees: the image's ENV, compose's environment, and the secrets
        # its entrypoint exports from the keys volume (empty values mean "from the volume").
        env = {**image_env(service), **{k: v for k, v in compose_env.items() if v != ""}}
        secrets = {
            k: v
            for k, v in dummy_secrets().items()
            if k in _entrypoint_exports(services[name]) or k in env
        }
        settings = load_settings(service.prefix, container_env(env, secrets))
        port = getattr(settings, service.port_field)
        published = [p for p in services[name].get("ports", []) if str(p).endswith(f":{port}")]
        assert published, f"{name}: port {port} not published"


def test_environment_check_refuses_a_misspelt_variable(compose: dict[str, Any]) -> None:
    env = _environment(_services(compose)["labeler"])
    env["ROUTEIQ_LABELER_SHARD_BUCKET"] = "typo"
    with pytest.raises(ConfigError, match="SHARD_BUCKET"):
        load_settings("ROUTEIQ_LABELER_", env)


def test_gateway_model_file_loads(compose: dict[str, Any]) -> None:
    from routeiq_gateway.config import load_model_file

    path = ROOT / compose["configs"]["gateway-models"]["file"]
    model_file = load_model_file(path)
    model_file.check()
    apis = {d["litellm_params"]["api_base"] for d in model_file.model_list}
    assert apis == {"os.environ/UPSTREAM_API_BASE"}
    gateway_env = _environment(_services(compose)["gateway"])
    assert gateway_env["UPSTREAM_API_BASE"] == "http://upstream:8090/v1"
    assert (
        model_file.routeiq.router_name
        == _environment(_services(compose)["labeler"])["ROUTEIQ_LABELER_RETRAIN_MODEL_NAME"]
    ), "the gateways follow the router the labeler asks to retrain"
