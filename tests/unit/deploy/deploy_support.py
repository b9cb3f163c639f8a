"""Shared pieces of the deployment checks: the services, a Dockerfile reader, kustomize, the
settings classes behind every environment variable, and the generated configuration tables.

Run as a script to rewrite the generated part of docs/deploy.md after a settings change:
``uv run --frozen python tests/unit/deploy/deploy_support.py --write-docs``.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import importlib
import inspect
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs" / "deploy.md"
# The one Dockerfile of every image; the build arg SERVICE picks the service.
DOCKERFILE = ROOT / "services" / "Dockerfile"
KUSTOMIZE_PINNED = ROOT / "stack" / ".build" / "bin" / "kustomize"
# The Kubernetes version the manifests are validated against (the oldest we support).
KUBERNETES_VERSION = "1.31.0"
RENDERED = ("base", "overlays/dev", "overlays/prod", "dependencies")


@dataclasses.dataclass(frozen=True)
class Service:
    """One deployable service: its folder, package, settings class and HTTP port setting."""

    name: str
    package: str  # the workspace distribution
    module: str
    settings: str  # "module:Class"
    port_field: str
    health: str  # the path the image's HEALTHCHECK calls
    cli: bool = False  # the image also carries the routeiq CLI

    @property
    def dockerfile(self) -> Path:
        return DOCKERFILE

    @property
    def build_args(self) -> dict[str, str]:
        """What ``docker build`` is given for this image (docker-compose.yml passes the same)."""
        return {"SERVICE": self.name}

    @property
    def prefix(self) -> str:
        return str(settings_class(self.settings).model_config["env_prefix"])


SERVICES = (
    Service(
        "schema-registry",
        "routeiq-schema-registry",
        "routeiq_schema_registry",
        "routeiq_schema_registry.config:RegistryServiceSettings",
        "port",
        "/health/ready",
        cli=True,
    ),
    Service(
        "upstream",
        "routeiq-upstream",
        "routeiq_upstream",
        "routeiq_upstream.config:UpstreamSettings",
        "port",
        "/health/ready",
    ),
    Service(
        "gateway",
        "routeiq-gateway",
        "routeiq_gateway",
        "routeiq_gateway.config:GatewaySettings",
        "port",
        "/health/ready",
    ),
    Service(
        "labeler",
        "routeiq-labeler",
        "routeiq_labeler",
        "routeiq_labeler.config:LabelerSettings",
        "web_port",
        "/health/live",
    ),
    Service(
        "trainer",
        "routeiq-trainer",
        "routeiq_trainer",
        "routeiq_trainer.config:TrainerSettings",
        "health_port",
        "/health/live",
        cli=True,
    ),
    Service(
        "analytics",
        "routeiq-analytics",
        "routeiq_analytics",
        "routeiq_analytics.config:AnalyticsSettings",
        "port",
        "/health/live",
    ),
)
STACK_SETTINGS = "routeiq_cli.stack.settings:StackSettings"
# Distributions that must never reach an image other than the trainer's.
TRAINING_ONLY = (
    *("torch", "triton", "sentence-transformers", "transformers", "mlflow"),
    *("peft", "trl", "accelerate", "datasets"),
)
GPU_RUNTIME_PREFIXES = ("nvidia-", "cuda-")


def settings_class(spec: str) -> Any:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def prefixes() -> dict[str, Any]:
    """Every RouteIQ env prefix and its settings class (services and the CLI's stack)."""
    table = {s.prefix: settings_class(s.settings) for s in SERVICES}
    stack = settings_class(STACK_SETTINGS)
    table[str(stack.model_config["env_prefix"])] = stack
    return table


def normalise(name: str) -> str:
    """A distribution name in PEP 503 form."""
    return re.sub(r"[-_.]+", "-", name).lower()


# ---------------------------------------------------------------- Dockerfiles


@dataclasses.dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclasses.dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction]
    # For a stage with what it inherits: the names of the stages it is made of, base first.
    chain: tuple[str, ...] = ()

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions grouped by build stage, continuation lines joined, comments dropped."""
    stages: list[Stage] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        line = pending + stripped
        pending = ""
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            parts = [p for p in parts if not p.startswith("--platform")]
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=parts[0], name=name, instructions=[]))
        if not stages:
            if keyword == "ARG":
                continue
            raise ValueError(f"line {start}: {keyword} before the first FROM")
        stages[-1].instructions.append(Instruction(keyword, args.strip(), start))
    return stages


def env_pairs(args: str) -> dict[str, str]:
    """``ENV a=b c=d`` (or ``ENV a b``) as a mapping; values unquoted like the shell does."""
    words = shlex.split(args, posix=True)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words)


def substitute(text: str, values: Mapping[str, str]) -> str:
    """``$NAME`` and ``${NAME}`` replaced as Docker does for build args (others left as is)."""
    return re.sub(
        r"\$\{(\w+)\}|\$(\w+)",
        lambda m: values.get(m.group(1) or m.group(2), m.group(0)),
        text,
    )


def _chain(stages: list[Stage], start: Stage, args: Mapping[str, str]) -> Stage:
    """A stage with everything it inherits: the ``FROM <stage>`` chain followed to an image,
    as one stage (that image as base, the chain's instructions in order)."""
    by_name = {s.name: s for s in stages if s.name}
    chain = [start]
    while substitute(chain[0].base, args) in by_name:
        chain.insert(0, by_name[substitute(chain[0].base, args)])
    named = [s.name for s in chain if s.name]
    return Stage(
        base=chain[0].base,
        name=named[-1] if named else None,
        instructions=[i for s in chain for i in s.instructions],
        chain=tuple(named),
    )


def image_stage(service: Service) -> Stage:
    """What the service's image is: the Dockerfile's last stage with its build args."""
    stages = parse_dockerfile(service.dockerfile.read_text())
    return _chain(stages, stages[-1], service.build_args)


def build_stage(service: Service) -> Stage:
    """The stage that installs the service's locked dependencies (``build``), with its chain."""
    stages = parse_dockerfile(service.dockerfile.read_text())
    return _chain(stages, next(s for s in stages if s.name == "build"), service.build_args)


def image_env(service: Service) -> dict[str, str]:
    """The environment the service's image sets (``$VAR`` left as is)."""
    env: dict[str, str] = {}
    for instruction in image_stage(service).all("ENV"):
        env.update(env_pairs(instruction.args))
    return env


def build_args(stage: Stage) -> dict[str, str]:
    values: dict[str, str] = {}
    for instruction in stage.all("ARG"):
        name, _, default = instruction.args.partition("=")
        values[name.strip()] = shlex.split(default)[0] if default else ""
    return values


@dataclasses.dataclass(frozen=True)
class BuildReplay:
    requirements: dict[str, str]  # distribution (PEP 503) -> pinned version
    workspace_paths: list[str]  # workspace folders installed with --no-deps


# Stands in for uv while the build stage's RUN is replayed: `uv export` is the real one (it
# reads only the lockfile); every other call (python install, venv, pip install) is recorded.
_UV_SHIM = """#!/bin/sh
if [ "$1" = export ]; then exec "$REAL_UV" "$@"; fi
printf '%s\\n' "$*" >> "$UV_CALLS"
"""


@functools.cache
def replay_build(service: Service) -> BuildReplay:
    """The build stage's install RUN, run here by a shell with the stage's ENV and the
    service's build args: the requirements file it writes (from the lock, offline) and what it
    installs."""
    build = build_stage(service)
    real_uv = shutil.which("uv")
    if real_uv is None:
        raise AssertionError("uv is not on PATH")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "uv").write_text(_UV_SHIM)
        (work / "uv").chmod(0o755)
        env: dict[str, str] = {}
        for instruction in build.all("ENV"):
            env.update(env_pairs(instruction.args))
        env.update({k: v for k, v in build_args(build).items() if v})
        env.update(service.build_args)
        env.update(
            PATH=os.pathsep.join([str(work), str(Path(sys.executable).parent), os.environ["PATH"]]),
            REAL_UV=real_uv,
            UV_CALLS=str(work / "calls"),
        )
        requirements = work / "requirements.txt"
        # Only the install itself: the RUNs before it set up build tools (pip installs uv).
        for run in (r for r in build.all("RUN") if "uv export" in r.args):
            script = run.args.replace("/tmp/requirements.txt", str(requirements))
            done = subprocess.run(
                ["sh", "-ec", script],
                cwd=ROOT,
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise AssertionError(f"{service.name}: the build's RUN failed: {done.stderr}")
        if not requirements.is_file():
            raise AssertionError(f"{service.name}: no `uv export` in the build stage")
        text = requirements.read_text()
        calls = (work / "calls").read_text().splitlines()
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^ ;\\\n]+)", text, flags=re.M))
    paths = [
        word.removeprefix("./")
        for call in calls
        if call.startswith("pip install") and " -r " not in f" {call} "
        for word in call.split()
        if word.startswith("./")
    ]
    return BuildReplay({normalise(k): v for k, v in pins.items()}, paths)


def exported_requirements(service: Service) -> dict[str, str]:
    """Distribution -> pinned version of what the image installs from the lock (offline)."""
    return dict(replay_build(service).requirements)


def workspace_paths(service: Service) -> list[str]:
    """The workspace folders the build stage installs with ``uv pip install --no-deps``."""
    return list(replay_build(service).workspace_paths)


# ---------------------------------------------------------------- kustomize


def kustomize_command() -> list[str] | None:
    """The pinned kustomize (stack/install-deploy-tools.sh), else kubectl's embedded one."""
    if KUSTOMIZE_PINNED.is_file():
        return [str(KUSTOMIZE_PINNED), "build"]
    kubectl = shutil.which("kubectl")
    if kubectl:
        return [kubectl, "kustomize"]
    return None


def render(target: str | Path) -> list[dict[str, Any]]:
    """Every object a kustomization renders; ``RuntimeError`` with kustomize's message."""
    command = kustomize_command()
    if command is None:
        raise RuntimeError("no kustomize: run stack/install-deploy-tools.sh")
    done = subprocess.run(
        [*command, str(target)], capture_output=True, text=True, check=False, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"kustomize build {target} failed: {done.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


# ---------------------------------------------------------------- settings and env


def container_env(static: Mapping[str, str], secrets: Mapping[str, str]) -> dict[str, str]:
    """An environment as a container sees it, with paths that only exist in images mapped to
    their source in the repository (so path validators can run here)."""
    env = {**static, **secrets}
    return {k: v.replace("/opt/data", str(ROOT / "data")) for k, v in env.items()}


def load_settings(prefix: str, environ: Mapping[str, str]) -> Any:
    """The settings the service would start with; ``ConfigError`` when it would refuse."""
    cls = prefixes()[prefix]
    return cls.load(environ={k: v for k, v in environ.items() if k.startswith(prefix)})


def dummy_secrets() -> dict[str, str]:
    """Values of the right shape for every secret setting (keys that really verify)."""
    from routeiq.routing.bundle import generate_ed25519

    private, public = generate_ed25519()
    return {
        "ROUTEIQ_GATEWAY_ADMIN_KEY": "admin-key-for-tests-only",
        "ROUTEIQ_GATEWAY_DECISION_KEY": "decision-key-for-tests-only",
        "ROUTEIQ_GATEWAY_USER_SALT": "salt-for-tests",
        "ROUTEIQ_GATEWAY_VERIFY_KEY": public,
        "ROUTEIQ_GATEWAY_S3__ACCESS_KEY": "routeiq",
        "ROUTEIQ_GATEWAY_S3__SECRET_KEY": "routeiq-secret",
        "ROUTEIQ_LABELER_S3__ACCESS_KEY": "routeiq",
        "ROUTEIQ_LABELER_S3__SECRET_KEY": "routeiq-secret",
        "ROUTEIQ_TRAINER_S3__ACCESS_KEY": "routeiq",
        "ROUTEIQ_TRAINER_S3__SECRET_KEY": "routeiq-secret",
        "ROUTEIQ_TRAINER_SIGNING_KEY": private,
    }


# ---------------------------------------------------------------- configuration tables

BEGIN = "<!-- BEGIN GENERATED: configuration reference (tests/unit/deploy/deploy_support.py) -->"
END = "<!-- END GENERATED: configuration reference -->"


def _field_comments(cls: type) -> dict[str, str]:
    """The ``#`` comment block right above each field in the class body."""
    notes: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__.startswith(("pydantic", "builtins")):
            continue
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
        block: list[str] = []
        for line in lines:
            stripped = line.strip()
            if stripped.startswith("#"):
                block.append(stripped.lstrip("#").strip())
                continue
            match = re.match(r"(\w+)\s*:", stripped)
            if match and block and line.startswith("    ") and not line.startswith("     "):
                notes[match.group(1)] = " ".join(block)
            block = []
    return notes


def _show(value: Any, *, computed: bool) -> str:
    from pydantic import BaseModel, SecretStr

    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, tuple | list | dict):
        from pydantic_core import to_jsonable_python

        text = json.dumps(to_jsonable_python(value))
    elif isinstance(value, bool):
        text = str(value).lower()
    else:
        text = str(value)
    if computed:
        # Factories that read the machine: show the rule, not this machine's answer.
        text = text.replace(str(Path.home()), "~").replace(f"@{socket.gethostname()}", "@<host>")
        text = text.replace(str(ROOT), "<repo>")
    return f"`{text}`" if text else '`""`'


def _rows(cls: Any, prefix: str) -> Iterator[tuple[str, str, str]]:
    from pydantic import BaseModel
    from pydantic_core import PydanticUndefined

    notes = _field_comments(cls)
    for name, field in cls.model_fields.items():
        annotation = field.annotation
        secret = "SecretStr" in str(annotation)
        computed = field.default_factory is not None
        if computed:
            default: Any = field.default_factory()
        else:
            default = field.default
        note = notes.get(name, "")
        if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
            group_notes = _field_comments(annotation)
            summary = (annotation.__doc__ or "").strip().splitlines()[:1]
            for index, (sub, subfield) in enumerate(annotation.model_fields.items()):
                sub_default = getattr(default, sub)
                sub_secret = "SecretStr" in str(subfield.annotation)
                text = group_notes.get(sub, "") or (summary[0] if summary and not index else "")
                if sub_secret:
                    text = f"secret. {text}".strip()
                yield (
                    f"{prefix}{name.upper()}__{sub.upper()}",
                    _show(sub_default, computed=False),
                    text,
                )
            continue
        if default is PydanticUndefined:
            shown = "**required**"
        else:
            shown = _show(default, computed=computed)
        if secret:
            note = f"secret. {note}".strip()
        yield f"{prefix}{name.upper()}", shown, note


def render_reference() -> str:
    """The Markdown tables of every service's environment variables, from the classes."""
    parts = [BEGIN, ""]
    for service in SERVICES:
        cls = settings_class(service.settings)
        parts.append(f"#### {service.name} (`{service.prefix}*`, `{service.settings}`)")
        parts.append("")
        parts.append("| variable | default | notes |")
        parts.append("| --- | --- | --- |")
        for variable, default, note in _rows(cls, service.prefix):
            parts.append(f"| `{variable}` | {default} | {note.replace('|', '/')} |")
        parts.append("")
    parts.append(END)
    return "\n".join(parts)


def docs_reference() -> str:
    text = DOCS.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[start:end]


def write_docs() -> None:
    text = DOCS.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    DOCS.write_text(text[:start] + render_reference() + text[end:])


if __name__ == "__main__":
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if sys.argv[1:] == ["--write-docs"]:
        write_docs()
        print(f"wrote the configuration reference in {DOCS.relative_to(ROOT)}")
    else:
        print(render_reference())
