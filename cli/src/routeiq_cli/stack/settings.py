"""Settings of the local stack (`make up`): ports, state folder, credentials, bucket names.

Every value can be changed through ``ROUTEIQ_STACK_<NAME>``; unknown names are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict
from routeiq.errors import ConfigError
from routeiq.settings import (
    KafkaSettings,
    RedisSettings,
    RegistrySettings,
    S3Settings,
    ServiceSettings,
)

# Where Linux keeps the range it draws client (source) ports from. Read at call time, so a test
# can point it at a file of its own.
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
# Without that file (macOS, the BSDs): Linux's default range and IANA's dynamic range, both
# avoided, since either may be the one the kernel uses.
FALLBACK_EPHEMERAL_RANGES = ((32768, 60999), (49152, 65535))
# SeaweedFS also listens on gRPC at port + 10000 for S3, master, volume and filer.
SEAWEED_GRPC_OFFSET = 10000
SEAWEED_PORTS = ("s3_port", "s3_master_port", "s3_volume_port", "s3_filer_port")


@dataclass(frozen=True)
class EphemeralPorts:
    """The port ranges the kernel may hand out as client ports, and where they were read.

    A server port inside them can be taken by any outgoing connection before the server binds.
    """

    ranges: tuple[tuple[int, int], ...]
    source: str

    def covers(self, port: int) -> bool:
        return any(low <= port <= high for low, high in self.ranges)

    def __str__(self) -> str:
        spans = " and ".join(f"{low}-{high}" for low, high in self.ranges)
        return f"{spans} ({self.source})"


def ephemeral_ports(path: Path | None = None) -> EphemeralPorts:
    """This machine's ephemeral port range, read from ``path`` (Linux's
    ``ip_local_port_range`` by default); the fallback ranges where that file does not exist."""
    path = EPHEMERAL_RANGE_FILE if path is None else path
    try:
        text = path.read_text()
    except FileNotFoundError:
        return EphemeralPorts(FALLBACK_EPHEMERAL_RANGES, f"defaults: no {path}")
    except OSError as exc:
        raise ConfigError(f"cannot read the ephemeral port range from {path}: {exc}") from exc
    fields = text.split()
    if len(fields) != 2 or not all(f.isdigit() for f in fields):
        raise ConfigError(f"{path}: expected two port numbers, read {text!r}")
    low, high = int(fields[0]), int(fields[1])
    return EphemeralPorts(((low, high),), str(path))


class ListenPort(NamedTuple):
    """A port the stack binds: the setting it comes from and, for a port derived from it
    (a replica, SeaweedFS's gRPC), what it is."""

    setting: str
    port: int
    derived: str = ""

    @property
    def label(self) -> str:
        return f"{self.setting} ({self.derived})" if self.derived else self.setting

    @property
    def variable(self) -> str:
        """The environment variable that sets it."""
        return f"ROUTEIQ_STACK_{self.setting.upper()}"


def repo_root() -> Path:
    """The repository root (the folder holding ``stack/kafka/pom.xml``)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "stack" / "kafka" / "pom.xml").is_file():
            return parent
    raise ConfigError(f"cannot find the RouteIQ repository above {here}")


class StackSettings(ServiceSettings):
    """Where the local stack listens and keeps its state."""

    model_config = SettingsConfigDict(env_prefix="ROUTEIQ_STACK_")

    state_dir: Path = Field(default_factory=lambda: repo_root() / ".routeiq")
    build_dir: Path = Field(default_factory=lambda: repo_root() / "stack" / ".build")
    host: str = "127.0.0.1"
    kafka_port: int = Field(default=9092, ge=1, le=65535)
    kafka_controller_port: int = Field(default=9093, ge=1, le=65535)
    kafka_heap: str = "768m"
    registry_port: int = Field(default=8081, ge=1, le=65535)
    s3_port: int = Field(default=8333, ge=1, le=65535)
    s3_master_port: int = Field(default=9333, ge=1, le=65535)
    s3_volume_port: int = Field(default=8380, ge=1, le=65535)
    s3_filer_port: int = Field(default=8888, ge=1, le=65535)
    s3_access_key: str = "routeiq"
    s3_secret_key: SecretStr = SecretStr("routeiq-secret")
    redis_port: int = Field(default=6379, ge=1, le=65535)
    mlflow_port: int = Field(default=5000, ge=1, le=65535)
    # Jaeger v2: its query API and UI, its query gRPC API, and OTLP ingest over gRPC and HTTP
    # (the gateways export to the HTTP one). Traces live in memory, the oldest dropped beyond
    # jaeger_max_traces, so a long-running stack stays bounded.
    jaeger_port: int = Field(default=16686, ge=1, le=65535)
    jaeger_grpc_port: int = Field(default=16685, ge=1, le=65535)
    otlp_grpc_port: int = Field(default=4317, ge=1, le=65535)
    otlp_http_port: int = Field(default=4318, ge=1, le=65535)
    jaeger_max_traces: int = Field(default=50_000, ge=1)
    # RouteIQ's own services.
    upstream_port: int = Field(default=8090, ge=1, le=65535)
    gateway_port: int = Field(default=8000, ge=1, le=65535)
    # Extra gateway replicas listen on gateway_port + 1, + 2, ... and share one model cache.
    gateway_replicas: int = Field(default=1, ge=1, le=8)
    upstream_latency_ms: float = Field(default=0.0, ge=0.0)
    labeler_port: int = Field(default=6066, ge=1, le=65535)
    trainer_port: int = Field(default=8092, ge=1, le=65535)
    analytics_port: int = Field(default=8095, ge=1, le=65535)
    # Which candidates the gateways route among: "routellm" (GPT-4 and Mixtral, with a
    # strong-share threshold strategy, GSM8K/MT-Bench traffic) or "llmrouter" (LLMRouter's 9
    # models and prices, the cost-aware learned strategy, LLMRouter traffic).
    candidates: Literal["routellm", "llmrouter"] = "routellm"
    # The feature pipeline gateways log and trainers train on (built once in the state dir).
    features: Literal["static", "minilm", "minilm+sketch"] = "static"
    # The learned router the loop trains (labeler requests) and the gateways follow
    # (default: gsm8k-router, or llmrouter-router with the 9 models).
    router_name: str = ""
    # Local-stack windows are short so a demo sees shards within a minute (default 1 h).
    labeler_window_s: float = Field(default=60.0, gt=0)
    labeler_lateness_s: float = Field(default=10.0, ge=0)
    labeler_feedback_ttl_s: float = Field(default=20.0, ge=0)
    retrain_threshold: int = Field(default=500, ge=0)
    # With the two RouteLLM models every type competes; the best on validation meets the
    # gate (on a few hundred examples their validation APGRs differ by more than the gate
    # margin, so one type alone often loses to the noise of a small validation set). With the
    # 9 LLMRouter models only kNN trains: it leads every offline measure there (docs/
    # routing.md), and SVM, best on the train-like validation rows of one fresh-stack run,
    # then served the test prompts 0.07 below it.
    retrain_router_types: str = ""
    models_bucket: str = "routeiq-models"
    shards_bucket: str = "routeiq-shards"
    mlflow_bucket: str = "routeiq-mlflow"
    start_timeout_s: float = Field(default=120.0, gt=0)
    # Point the CLI at another cluster (compose, Kubernetes) instead of the local stack.
    kafka_bootstrap: str | None = None
    registry_url: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _mode_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nine = data.get("candidates", "routellm") == "llmrouter"
            if not data.get("router_name"):
                data["router_name"] = "llmrouter-router" if nine else "gsm8k-router"
            if not data.get("retrain_router_types"):
                data["retrain_router_types"] = '["knn"]' if nine else '["knn","svm","mlp","mf"]'
        return data

    @model_validator(mode="after")
    def _ports_distinct(self) -> StackSettings:
        seen: dict[int, str] = {}
        for listen in self.listen_ports():
            if listen.port > 65535:
                raise ValueError(
                    f"{listen.setting}={getattr(self, listen.setting)}: "
                    f"{listen.derived} would be {listen.port}, above 65535"
                )
            if listen.port in seen:
                raise ValueError(
                    f"{listen.label} and {seen[listen.port]} both use port {listen.port}"
                )
            seen[listen.port] = listen.label
        return self

    def listen_ports(self) -> list[ListenPort]:
        """Every port the local stack binds: each ``*_port`` setting, the extra gateway
        replicas' ports and SeaweedFS's gRPC ports."""
        ports = [
            ListenPort(name, getattr(self, name))
            for name in type(self).model_fields
            if name.endswith("_port")
        ]
        ports += [
            ListenPort("gateway_port", self.gateway_port + i, f"replica {i + 1}")
            for i in range(1, self.gateway_replicas)
        ]
        ports += [
            ListenPort(name, getattr(self, name) + SEAWEED_GRPC_OFFSET, "gRPC")
            for name in SEAWEED_PORTS
        ]
        return ports

    def refuse_ephemeral_ports(self, ephemeral: EphemeralPorts | None = None) -> None:
        """Raise ``ConfigError`` naming every setting whose port lies in the machine's
        ephemeral range: any outgoing connection may hold such a port as its client port, and
        the component then dies with "address already in use". Checked when the stack starts,
        not on every load: the CLI also loads these settings to reach a remote cluster, from
        hosts (containers) whose range may cover ports this machine never binds."""
        ephemeral = ephemeral_ports() if ephemeral is None else ephemeral
        inside = [
            f"{p.setting}={getattr(self, p.setting)}"
            + (f" ({p.derived}: {p.port})" if p.derived else "")
            + f" [{p.variable}]"
            for p in self.listen_ports()
            if ephemeral.covers(p.port)
        ]
        if inside:
            raise ConfigError(
                f"invalid {type(self).__name__}: {', '.join(inside)} "
                f"{'is' if len(inside) == 1 else 'are'} inside this machine's "
                f"ephemeral port range {ephemeral}, where the kernel picks client ports for "
                "outgoing connections; choose ports outside it"
            )

    @property
    def state(self) -> Path:
        return self.state_dir.resolve()

    @property
    def features_dir(self) -> Path:
        """Where the stack's feature pipeline lives (built by ``up`` when missing)."""
        return self.state / "features" / self.features

    # Client-side views of the stack, in the shapes the services' settings use.
    @property
    def kafka(self) -> KafkaSettings:
        return KafkaSettings(
            bootstrap_servers=self.kafka_bootstrap or f"{self.host}:{self.kafka_port}"
        )

    @property
    def registry(self) -> RegistrySettings:
        return RegistrySettings(url=self.registry_url or f"http://{self.host}:{self.registry_port}")

    @property
    def s3(self) -> S3Settings:
        return S3Settings(
            endpoint=f"{self.host}:{self.s3_port}",
            access_key=SecretStr(self.s3_access_key),
            secret_key=self.s3_secret_key,
        )

    @property
    def redis(self) -> RedisSettings:
        return RedisSettings(url=f"redis://{self.host}:{self.redis_port}/0")

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"

    @property
    def jaeger_url(self) -> str:
        """Jaeger's query API and UI."""
        return f"http://{self.host}:{self.jaeger_port}"

    @property
    def otlp_http_url(self) -> str:
        """Where OTLP/HTTP exporters send (they append ``/v1/traces``)."""
        return f"http://{self.host}:{self.otlp_http_port}"
