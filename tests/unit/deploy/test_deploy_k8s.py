"""k8s/: every kustomization rendered with kustomize, every object validated offline against
the Kubernetes schemas (kubernetes-validate, strict), then RouteIQ's policies on top:
probes, resources, non-root and read-only pods, network policies per service, GPU for the
trainer, the gateway's autoscaler and shared cache, and every ConfigMap variable checked by the
settings class that reads it."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pytest
from routeiq.errors import ConfigError
from unit.deploy.deploy_support import (
    DOCS,
    KUBERNETES_VERSION,
    RENDERED,
    ROOT,
    SERVICES,
    container_env,
    dummy_secrets,
    kustomize_command,
    load_settings,
    prefixes,
    render,
)

# Custom resources of the example operators: no Kubernetes schema; checked structurally below.
OPERATOR_KINDS = {
    ("kafka.strimzi.io/v1beta2", "Kafka"),
    ("kafka.strimzi.io/v1beta2", "KafkaNodePool"),
    ("minio.min.io/v2", "Tenant"),
}
# Secrets the manifests reference and the operator creates (docs/deploy.md lists each key).
EXTERNAL_SECRETS = {
    "routeiq-gateway": {"admin-key", "decision-key", "user-salt", "verify-key"},
    "routeiq-trainer": {"signing-key"},
    "routeiq-s3": {"access-key", "secret-key"},
    "routeiq-gateway-providers": set(),  # optional, whatever keys the model file names
}
WORKLOADS = {"Deployment", "StatefulSet", "Job"}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    if kustomize_command() is None:
        pytest.fail("kustomize not found: run stack/install-deploy-tools.sh")
    return {target: render(ROOT / "k8s" / target) for target in RENDERED}


@pytest.fixture(params=["base", "overlays/dev", "overlays/prod"])
def target(request: pytest.FixtureRequest) -> str:
    """Each deployable kustomization: the base and both overlays."""
    return str(request.param)


@pytest.fixture
def objects(rendered: dict[str, list[dict[str, Any]]], target: str) -> list[dict[str, Any]]:
    """What ``target`` renders."""
    return rendered[target]


def _ours(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        o
        for o in objects
        if (o["metadata"].get("labels") or {}).get("app.kubernetes.io/part-of") == "routeiq"
    ]


def _kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def _named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} objects"
    return matches[0]


def _validate(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("target", RENDERED)
def test_every_object_validates(rendered: dict[str, list[dict[str, Any]]], target: str) -> None:
    objects = rendered[target]
    assert objects
    failures = []
    for obj in objects:
        key = (obj["apiVersion"], obj["kind"])
        if key in OPERATOR_KINDS:
            assert target == "dependencies", f"{key} outside the dependency examples"
            continue
        try:
            _validate(obj)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as e:
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {e}")
    assert failures == []


def test_validation_fails_on_broken_objects(rendered: dict[str, list[dict[str, Any]]]) -> None:
    deployment = copy.deepcopy(_named(rendered["overlays/dev"], "Deployment", "gateway"))
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(deployment)
    typo = copy.deepcopy(_named(rendered["base"], "Deployment", "trainer"))
    typo["spec"]["template"]["spec"]["containers"][0]["resource"] = {}  # strict: unknown field
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(typo)


def test_kustomize_fails_on_a_broken_kustomization(tmp_path: Any) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources: [../does-not-exist]\n"
    )
    with pytest.raises(RuntimeError, match="kustomize build"):
        render(tmp_path)


def test_operator_examples_have_the_expected_shape(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    deps = rendered["dependencies"]
    kafka = _named(deps, "Kafka", "routeiq")
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert kafka["spec"]["kafka"]["version"].startswith("3.9")
    assert {"name": "plain", "port": 9092, "type": "internal", "tls": False} in kafka["spec"][
        "kafka"
    ]["listeners"]
    pool = _named(deps, "KafkaNodePool", "dual-role")
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == "routeiq"
    assert set(pool["spec"]["roles"]) == {"controller", "broker"}
    tenant = _named(deps, "Tenant", "routeiq")
    assert tenant["spec"]["requestAutoCert"] is False
    assert tenant["spec"]["configuration"]["name"] == "routeiq-minio-env"
    assert _named(deps, "Secret", "routeiq-minio-env")["data"]["config.env"]
    jobs = _named(deps, "Job", "minio-buckets")
    script = " ".join(jobs["spec"]["template"]["spec"]["containers"][0]["args"])
    assert "mc version enable routeiq/routeiq-models" in script
    for name in ("redis", "mlflow", "jaeger"):
        _named(deps, "Service", name)


def _pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for obj in objects:
        if obj["kind"] in WORKLOADS:
            yield obj, obj["spec"]["template"]["spec"]


def test_pod_hardening_probes_and_resources(objects: list[dict[str, Any]], target: str) -> None:
    for obj, pod in _pod_specs(_ours(objects)):
        where = f"{target}: {obj['kind']}/{obj['metadata']['name']}"
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True, where
        assert security["runAsUser"] >= 1000, where
        assert security["seccompProfile"]["type"] == "RuntimeDefault", where
        assert pod["automountServiceAccountToken"] is False, where
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            resources = container["resources"]
            for side in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[side]), f"{where}: {side}"
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{where}: a writable /tmp on a read-only root"
            if obj["kind"] != "Deployment":
                continue
            ports = {p["name"] for p in container["ports"]}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                get = container[probe]["httpGet"]
                assert get["path"].startswith("/health/"), f"{where}: {probe}"
                assert get["port"] in ports, f"{where}: {probe} port"
            assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready", where
            assert container["livenessProbe"]["httpGet"]["path"] == "/health/live", where


def test_network_policies_cover_every_workload(objects: list[dict[str, Any]], target: str) -> None:
    policies = _kind(objects, "NetworkPolicy")
    deny = _named(objects, "NetworkPolicy", "routeiq-default-deny")
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny["spec"]
    assert "egress" not in deny["spec"]
    for obj, _pod in _pod_specs(_ours(objects)):
        labels = obj["spec"]["template"]["metadata"]["labels"]
        own = [
            p
            for p in policies
            if p["metadata"]["name"] not in {"routeiq-default-deny", "routeiq-allow-dns"}
            and set(p["spec"]["podSelector"]["matchLabels"].items()) <= set(labels.items())
        ]
        name = obj["metadata"]["name"]
        assert own, f"{target}: no NetworkPolicy of its own selects {name}"
        assert any(p["spec"]["policyTypes"] == ["Ingress", "Egress"] for p in own), name
        # Egress is listed peer by peer: nothing but the gateway's provider rule is open-ended.
        for policy in own:
            for rule in policy["spec"].get("egress", []):
                assert rule.get("to"), f"{policy['metadata']['name']}: egress to anywhere"
                assert rule.get("ports"), f"{policy['metadata']['name']}: egress on any port"


def _egress_ports(objects: list[dict[str, Any]], app: str) -> set[int]:
    ports: set[int] = set()
    for policy in _kind(objects, "NetworkPolicy"):
        if (
            policy["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
            != app
        ):
            continue
        for rule in policy["spec"].get("egress", []):
            ports |= {p["port"] for p in rule.get("ports", [])}
    return ports


def test_each_service_reaches_only_what_it_needs(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    base, dev = rendered["base"], rendered["overlays/dev"]
    assert _egress_ports(base, "gateway") == {9092, 8081, 9000, 6379, 4318, 443}
    assert _egress_ports(dev, "gateway") == {9092, 8081, 9000, 6379, 4318, 443, 8090}
    assert _egress_ports(base, "labeler") == {9092, 8081, 9000}
    assert _egress_ports(base, "trainer") == {9092, 8081, 9000, 5000}
    assert _egress_ports(base, "analytics") == {9092, 8081}
    assert _egress_ports(base, "schema-registry") == {9092}
    assert _egress_ports(base, "routeiq-init") == {9092, 8081}
    assert _egress_ports(dev, "upstream") == set()


def test_trainer_gpu_scheduling(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for target in ("base", "overlays/prod"):
        pod = _named(rendered[target], "Deployment", "trainer")["spec"]["template"]["spec"]
        assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
            "tolerations"
        ]
        config = _named(rendered[target], "ConfigMap", "trainer")["data"]
        assert config["ROUTEIQ_TRAINER_DEVICE"] == "cuda"
    dev = _named(rendered["overlays/dev"], "Deployment", "trainer")["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in dev["containers"][0]["resources"]["limits"]
    assert "nodeSelector" not in dev
    assert "tolerations" not in dev
    assert (
        _named(rendered["overlays/dev"], "ConfigMap", "trainer")["data"]["ROUTEIQ_TRAINER_DEVICE"]
        == "cpu"
    )


def test_gateway_scaling_and_shared_cache(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for target in ("base", "overlays/dev", "overlays/prod"):
        objects = rendered[target]
        hpa = _named(objects, "HorizontalPodAutoscaler", "gateway")
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "gateway",
        }
        assert hpa["spec"]["minReplicas"] >= 2
        deployment = _named(objects, "Deployment", "gateway")
        pod = deployment["spec"]["template"]["spec"]
        claim = next(v for v in pod["volumes"] if v["name"] == "model-cache")
        pvc = _named(objects, "PersistentVolumeClaim", claim["persistentVolumeClaim"]["claimName"])
        expected = ["ReadWriteOnce"] if target == "overlays/dev" else ["ReadWriteMany"]
        assert pvc["spec"]["accessModes"] == expected
        config = next(c for c in _kind(objects, "ConfigMap") if c["metadata"]["name"] == "gateway")[
            "data"
        ]
        mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "model-cache")
        assert mount["mountPath"] == config["ROUTEIQ_GATEWAY_MODEL_CACHE_DIR"]


def test_every_deployment_has_a_disruption_budget_and_a_service(
    objects: list[dict[str, Any]], target: str
) -> None:
    budgets = _kind(objects, "PodDisruptionBudget")
    services = _kind(objects, "Service")
    for deployment in _kind(_ours(objects), "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        name = deployment["metadata"]["name"]
        assert any(
            set(b["spec"]["selector"]["matchLabels"].items()) <= set(labels.items())
            for b in budgets
        ), f"{target}: no PodDisruptionBudget for {name}"
        matching = [
            s for s in services if set(s["spec"]["selector"].items()) <= set(labels.items())
        ]
        assert matching, f"{target}: no Service for {name}"
        ports = {
            p["name"]
            for c in deployment["spec"]["template"]["spec"]["containers"]
            for p in c["ports"]
        }
        for service in matching:
            for port in service["spec"]["ports"]:
                assert port["targetPort"] in ports


def test_references_resolve(objects: list[dict[str, Any]], target: str) -> None:
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    secrets_used: dict[str, set[str]] = {}
    for obj, pod in _pod_specs(objects):
        where = f"{target}: {obj['metadata']['name']}"
        if "serviceAccountName" in pod:
            assert ("ServiceAccount", pod["serviceAccountName"]) in names, where
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in names, where
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                assert ("PersistentVolumeClaim", claim) in names, where
        for container in pod["containers"] + pod.get("initContainers", []):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert ("ConfigMap", source["configMapRef"]["name"]) in names, where
                if "secretRef" in source:
                    secrets_used.setdefault(source["secretRef"]["name"], set())
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    secrets_used.setdefault(ref["name"], set()).add(ref["key"])
    for name, keys in secrets_used.items():
        assert name in EXTERNAL_SECRETS, f"{target}: undocumented Secret {name}"
        assert keys <= EXTERNAL_SECRETS[name], f"{target}: {name} keys {keys}"
    docs = DOCS.read_text()
    for name, keys in EXTERNAL_SECRETS.items():
        assert name in docs, f"docs/deploy.md does not say how to create {name}"
        for key in keys:
            assert key in docs


def _pod_environment(
    objects: list[dict[str, Any]], container: dict[str, Any]
) -> tuple[dict[str, str], set[str]]:
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(_named(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    from_secrets = set()
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        elif "secretKeyRef" in var.get("valueFrom", {}):
            from_secrets.add(var["name"])
        elif "fieldRef" in var.get("valueFrom", {}):
            env[var["name"]] = "pod-name-abc12"
    return env, from_secrets


def test_configured_environment_is_valid(objects: list[dict[str, Any]], target: str) -> None:
    known = prefixes()
    secrets = dummy_secrets()
    seen = set()
    for obj, pod in _pod_specs(_ours(objects)):
        for container in pod["containers"]:
            env, from_secrets = _pod_environment(objects, container)
            used = {
                p for p in known if any(k.startswith(p) for k in env | dict.fromkeys(from_secrets))
            }
            assert len(used) == 1, f"{obj['metadata']['name']}: prefixes {used}"
            prefix = used.pop()
            seen.add(prefix)
            values = container_env(env, {k: secrets[k] for k in from_secrets if k in secrets})
            if prefix == "ROUTEIQ_STACK_":
                # The CLI's state folders come from the image's ENV (see the Dockerfile test).
                values |= {"ROUTEIQ_STACK_STATE_DIR": "/tmp/x", "ROUTEIQ_STACK_BUILD_DIR": "/tmp/y"}
            load_settings(prefix, values)
    expected = {s.prefix for s in SERVICES if s.name != "upstream"} | {"ROUTEIQ_STACK_"}
    if target == "overlays/dev":
        expected.add("ROUTEIQ_UPSTREAM_")
    assert seen == expected


def test_environment_check_refuses_a_misspelt_variable(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    env = dict(_named(rendered["base"], "ConfigMap", "trainer")["data"])
    env["ROUTEIQ_TRAINER_MLFLOW_TRACKING_URL"] = "http://mlflow:5000"
    with pytest.raises(ConfigError, match="MLFLOW_TRACKING_URL"):
        load_settings("ROUTEIQ_TRAINER_", container_env(env, dummy_secrets()))


def test_images_are_pinned_and_prod_uses_a_registry(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for target in ("base", "overlays/dev", "overlays/prod", "dependencies"):
        for _obj, pod in _pod_specs(rendered[target]):
            for container in pod["containers"] + pod.get("initContainers", []):
                image = container["image"]
                tag = image.rpartition(":")[2]
                assert ":" in image, f"{target}: {image} has no tag"
                assert tag != "latest", f"{target}: {image} is not pinned"
    for _obj, pod in _pod_specs(_ours(rendered["overlays/prod"])):
        assert pod["containers"][0]["image"].startswith("registry.example.com/routeiq/")


def test_gateway_model_files_load(rendered: dict[str, list[dict[str, Any]]]) -> None:
    import tempfile
    from pathlib import Path

    from routeiq_gateway.config import load_model_file

    for target in ("base", "overlays/prod"):
        config_map = next(
            o
            for o in rendered[target]
            if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("gateway-models")
        )
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "models.yaml"
            path.write_text(config_map["data"]["models.yaml"])
            model_file = load_model_file(path)
            model_file.check()
            assert model_file.routeiq.router_name == "gsm8k-router"
