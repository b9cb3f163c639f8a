"""Typed settings shared by every service.

Each service declares one ``ServiceSettings`` subclass with its own env prefix (for example
``ROUTEIQ_REGISTRY_``); nested groups use ``__`` (``ROUTEIQ_REGISTRY_KAFKA__BOOTSTRAP_SERVERS``).
``load()`` is the only place that reads the environment, and it refuses unknown variables
under the prefix so that a typo fails at start instead of silently using a default.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

import redis
import redis.asyncio
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from routeiq.contracts.topics import DEAD_LETTERS
from routeiq.errors import ConfigError

# Kafka's own rule for topic names (kafka.common.internals.Topic).
_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")


def legal_topic_name(value: str) -> str:
    """``value`` when Kafka accepts it as a topic name, else ``ValueError`` saying why."""
    if not _TOPIC_NAME.fullmatch(value) or value in {".", ".."}:
        raise ValueError(f"not a legal Kafka topic name: {value!r} (1-249 of a-z A-Z 0-9 . _ -)")
    return value


# A settings field holding a topic name, refused at start when Kafka would refuse it, or when
# another ``TopicName`` field of the same ``ServiceSettings`` names the same topic.
_LEGAL_TOPIC = AfterValidator(legal_topic_name)
TopicName = Annotated[str, _LEGAL_TOPIC]


def _long_secret(value: SecretStr) -> SecretStr:
    if len(value.get_secret_value()) < 16:
        raise ValueError("must be at least 16 characters")
    return value


# A shared secret (an API key, an HMAC key): refused at start when short enough to guess.
SecretKey = Annotated[SecretStr, AfterValidator(_long_secret)]


def distinct_topics(**topics: str) -> None:
    """``ValueError`` naming the first two settings (``name=topic``) that hold one topic: a
    service that reads its input from its own output or dead-letter topic would loop."""
    seen: dict[str, str] = {}
    for name, topic in topics.items():
        if topic in seen:
            raise ValueError(f"{seen[topic]} and {name} are both {topic!r}: topics must differ")
        seen[topic] = name


def lowercase(value: Any) -> Any:
    """A string lower-cased (``INFO`` → ``info``), anything else as it is: for options whose
    choices are lower-case words but that people write in any case in the environment."""
    return value.lower() if isinstance(value, str) else value


# Any case in: ``Annotated[Literal["a", "b"], AnyCase]`` accepts ``A`` as ``a``.
AnyCase = BeforeValidator(lowercase)
# uvicorn's and logging's level names, in any case.
LogLevel = Annotated[Literal["critical", "error", "warning", "info", "debug"], AnyCase]


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Group):
    """How to reach Kafka. ``extra`` passes librdkafka properties through unchanged."""

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    session_timeout_ms: int = Field(default=45_000, ge=1_000)
    extra: dict[str, str] = Field(default_factory=dict)

    @field_validator("bootstrap_servers")
    @classmethod
    def _has_host_port(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port...], got {value!r}")
        return value

    def client_config(self) -> dict[str, str]:
        """librdkafka properties common to producers, consumers and admin clients."""
        config = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            config["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            config["sasl.password"] = self.sasl_password.get_secret_value()
        config.update(self.extra)
        return config


def _with_scheme(value: str, what: str, schemes: tuple[str, ...]) -> str:
    """``value`` when it is a URL of one of ``schemes``; else a ValueError naming them."""
    if not value.startswith(schemes):
        *first, last = schemes
        allowed = f"{', '.join(first)} or {last}" if first else last
        raise ValueError(f"{what} url must start with {allowed}, got {value!r}")
    return value


# A registry URL, without a trailing slash (the client appends paths to it).
RegistryUrl = Annotated[
    str,
    AfterValidator(lambda v: _with_scheme(v, "registry", ("http://", "https://")).rstrip("/")),
]
RedisUrl = Annotated[
    str, AfterValidator(lambda v: _with_scheme(v, "redis", ("redis://", "rediss://", "unix://")))
]


class RegistrySettings(_Group):
    """How to reach the schema registry (ours or Confluent's: same API)."""

    url: RegistryUrl = "http://127.0.0.1:8081"
    basic_auth_user_info: SecretStr | None = None

    def client_config(self) -> dict[str, str]:
        """Configuration for confluent-kafka's ``SchemaRegistryClient``."""
        config = {"url": self.url}
        if self.basic_auth_user_info is not None:
            config["basic.auth.user.info"] = self.basic_auth_user_info.get_secret_value()
        return config


class S3Settings(_Group):
    """An S3 endpoint (SeaweedFS locally, MinIO in compose and Kubernetes)."""

    endpoint: str = "127.0.0.1:8333"
    access_key: SecretStr = SecretStr("routeiq")
    secret_key: SecretStr = SecretStr("routeiq-secret")
    secure: bool = False
    region: str = "us-east-1"

    @field_validator("endpoint")
    @classmethod
    def _no_scheme(cls, value: str) -> str:
        if "://" in value:
            raise ValueError(
                f"endpoint is host:port without a scheme (use secure=true for TLS), got {value!r}"
            )
        return value

    @property
    def url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.endpoint}"


class RedisSettings(_Group):
    """How to reach Redis."""

    url: RedisUrl = "redis://127.0.0.1:6379/0"
    password: SecretStr | None = None

    def client(self, *, timeout_s: float) -> redis.Redis:
        """A blocking client whose every call gives up after ``timeout_s`` (connecting too):
        callers report a Redis that does not answer rather than wait on it."""
        return redis.Redis.from_url(self.url, **self._options(timeout_s))

    def async_client(self, *, timeout_s: float) -> redis.asyncio.Redis:
        """The asyncio client, with the same timeouts."""
        return redis.asyncio.Redis.from_url(self.url, **self._options(timeout_s))

    def _options(self, timeout_s: float) -> dict[str, Any]:
        return {
            "password": self.password.get_secret_value() if self.password else None,
            "socket_timeout": timeout_s,
            "socket_connect_timeout": timeout_s,
        }


class TelemetrySettings(_Group):
    """OpenTelemetry export. No endpoint means spans are created but not exported."""

    otlp_endpoint: str | None = None
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    # Spans per OTLP export. The SDK's 512 encodes and posts a batch (3 MB with the decision
    # events) holding the GIL, a pause of up to 216 ms that every request in flight waits
    # out; with 64 the longest was 12 ms (bench/spans.py; p99 in bench/gateway.py). Unset
    # here and set in OTEL_BSP_MAX_EXPORT_BATCH_SIZE, the standard variable's value is used.
    export_batch_size: int = Field(default=64, ge=1, le=2048)


class ServiceSettings(BaseSettings):
    """Base for every service's settings: strict, immutable, loaded once by ``__main__``."""

    model_config = SettingsConfigDict(
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    @model_validator(mode="after")
    def _topics_differ(self) -> Self:
        # Every ``TopicName`` field, in declaration order: a service that reads a topic it
        # also writes (or dead-letters into) would loop, so no two may name one topic.
        distinct_topics(
            **{
                name: getattr(self, name)
                for name, field in type(self).model_fields.items()
                if _LEGAL_TOPIC in field.metadata
            }
        )
        return self

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Build settings from the environment (or ``environ``), refusing unknown variables.

        Raises ``ConfigError`` naming every offending variable and validation failure.
        """
        env = dict(os.environ if environ is None else environ)
        prefix = str(cls.model_config.get("env_prefix", "")).upper()
        if prefix:
            known = {name.upper() for name in cls.model_fields}
            unknown = sorted(
                key
                for key in env
                if key.upper().startswith(prefix)
                and key.upper()[len(prefix) :].split("__", 1)[0] not in known
            )
            if unknown:
                raise ConfigError(
                    f"unknown setting(s) {', '.join(unknown)}; "
                    f"known under {prefix}: {', '.join(sorted(known))}"
                )
        try:
            if environ is None:
                return cls(**overrides)
            # pydantic-settings reads os.environ; hand it an explicit mapping instead.
            values: dict[str, Any] = {}
            for key, value in env.items():
                if prefix and key.upper().startswith(prefix):
                    _assign(values, key[len(prefix) :].lower().split("__"), value)
            values.update(overrides)
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(f"invalid {cls.__name__}: {_describe(exc)}") from exc
        except SettingsError as exc:
            # pydantic-settings parses complex values (lists, dicts) from JSON itself.
            raise ConfigError(f"invalid {cls.__name__}: {exc}") from exc


class KafkaServiceSettings(ServiceSettings):
    """Base for the services that read or write Avro records on Kafka (gateway, labeler,
    analytics, trainer): the brokers, the registry their serdes resolve schema ids with, and
    the dead-letter topic for the records they cannot decode, validate or act on."""

    kafka: KafkaSettings = KafkaSettings()
    registry: RegistrySettings = RegistrySettings()
    # Where records this service cannot decode, validate or act on go, once each.
    deadletter_topic: TopicName = DEAD_LETTERS.name


def _assign(target: dict[str, Any], path: list[str], value: str) -> None:
    for part in path[:-1]:
        target = target.setdefault(part, {})
    # Complex values (dicts, lists) arrive as JSON, as pydantic-settings expects from env vars.
    parsed: Any = value
    if value[:1] in "[{":
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
    target[path[-1]] = parsed


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "settings"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def json_env_value(value: Any) -> Any:
    """A ``NoDecode`` setting's raw environment string, parsed when it is JSON.

    Such fields arrive as strings; a JSON object or list is decoded here so that broken JSON
    is a validation error (hence ``ConfigError``) rather than a pydantic-settings crash, and
    any other string (a table name, a comma list) is left for the field's own validator.
    """
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc.msg} at position {exc.pos})") from None
    return value


def listed(value: Any) -> Any:
    """A list setting's raw value: JSON decoded, or a comma list split (blank items dropped)."""
    value = json_env_value(value)
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


# A list setting as JSON or a comma list: ``Annotated[tuple[str, ...], NoDecode, Listed]``.
Listed = BeforeValidator(listed)


def _not_empty(value: tuple[Any, ...]) -> tuple[Any, ...]:
    if not value:
        raise ValueError("list at least one")
    return value


def _each_once(value: tuple[Any, ...]) -> tuple[Any, ...]:
    repeated = sorted({str(item) for item in value if value.count(item) > 1})
    if repeated:
        raise ValueError(f"listed twice: {', '.join(repeated)} in {list(value)}")
    return value


# Checks of a list setting, after its items are parsed: ``Annotated[tuple[str, ...], NoDecode,
# Listed, NotEmpty, EachOnce]`` refuses an empty list and one that names an item twice.
NotEmpty = AfterValidator(_not_empty)
EachOnce = AfterValidator(_each_once)
# Names as a list setting, each once (``Annotated[Names, NotEmpty]`` when one is needed).
Names = Annotated[tuple[str, ...], NoDecode, Listed, EachOnce]
