"""run_service and run_command: the one start-up every service and command shares (exit codes
and messages)."""

from __future__ import annotations

from typing import NoReturn

import pytest
from routeiq.errors import ConfigError, IncompatibleSchemaError, TransportError
from routeiq.service import run_command, run_service


class _Settings:
    log_level = "warning"


def _load() -> _Settings:
    return _Settings()


def _refuse() -> _Settings:
    raise ConfigError("invalid X: port: must be positive")


def test_invalid_settings_exit_2_naming_the_field(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_service("svc", _refuse, lambda s: lambda: 0) == 2
    assert "svc: invalid configuration: invalid X: port" in capsys.readouterr().err


def test_build_errors_map_to_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    def config_error(_s: _Settings) -> None:
        raise ConfigError("bad librdkafka property")

    def unreachable(_s: _Settings) -> None:
        raise TransportError("kafka down")

    def third_party(_s: _Settings) -> None:
        raise OSError("connection refused")

    assert run_service("svc", _load, config_error) == 2  # type: ignore[arg-type]
    assert run_service("svc", _load, unreachable) == 1  # type: ignore[arg-type]
    assert "svc: cannot start: kafka down" in capsys.readouterr().err
    assert run_service("svc", _load, third_party, startup_errors=(OSError,)) == 1  # type: ignore[arg-type]
    with pytest.raises(OSError, match="refused"):  # not declared: a bug, not an outage
        run_service("svc", _load, third_party)  # type: ignore[arg-type]


def test_the_runner_exit_code_is_returned() -> None:
    seen: list[str] = []

    def build(settings: _Settings) -> object:
        seen.append(settings.log_level)
        return lambda: 7

    assert run_service("svc", _load, build, configure_logs=False) == 7  # type: ignore[arg-type]
    assert seen == ["warning"]


def _raises(error: Exception) -> NoReturn:
    raise error


def test_a_command_error_prints_its_reason_and_exits_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        run_command(lambda: _raises(TransportError("kafka down")))
    assert exited.value.code == 1
    assert capsys.readouterr().err == "error: kafka down\n"
    incompatible = IncompatibleSchemaError("not compatible", reasons=["field a removed", "b"])
    with pytest.raises(SystemExit) as exited:
        run_command(lambda: _raises(incompatible))
    assert exited.value.code == 1
    assert capsys.readouterr().err == "error: not compatible\n  - field a removed\n  - b\n"


def test_invalid_configuration_exits_2_only_where_asked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        run_command(lambda: _raises(ConfigError("no signing key")), config_exits_2=True)
    assert exited.value.code == 2
    assert capsys.readouterr().err == "invalid configuration: no signing key\n"
    # The operator CLI reports it like any other error.
    with pytest.raises(SystemExit) as exited:
        run_command(lambda: _raises(ConfigError("no signing key")))
    assert exited.value.code == 1
    assert capsys.readouterr().err == "error: no signing key\n"


def test_a_command_that_returns_is_left_alone_and_other_errors_propagate() -> None:
    ran: list[bool] = []
    run_command(lambda: ran.append(True))
    assert ran == [True]
    with pytest.raises(ValueError, match="a bug"):  # not a RouteIQError: the traceback stays
        run_command(lambda: _raises(ValueError("a bug")), config_exits_2=True)
