"""`routeiq features build`: the token-reading options rewrite a pipeline without distilling
it again, and an impossible combination is refused with the reason."""

from __future__ import annotations

import json

from click.testing import CliRunner
from routeiq.errors import ConfigError
from routeiq_cli.__main__ import cli
from support.features import tiny_static


def _build(tmp_path, *args: str):
    return CliRunner().invoke(
        cli,
        ["features", "build", "--out", str(tmp_path / "p"), *args],
        env={"ROUTEIQ_STACK_STATE_DIR": str(tmp_path / "state")},
    )


def test_token_options_rewrite_the_pipeline_and_bad_ones_are_refused(tmp_path) -> None:
    # A 256-d table stands in for the distilled one (the same dimension: no distillation).
    first = tiny_static(tmp_path / "p", dim=256, sketch_dim=512, max_tokens=128)
    result = _build(tmp_path, "--max-tokens", "64", "--tail-tokens", "16")
    assert result.exit_code == 0, result.output
    spec = json.loads((tmp_path / "p" / "features.json").read_text())
    assert (spec["max_tokens"], spec["tail_tokens"]) == (64, 16)
    assert spec["id"] != first.id
    assert spec["id"] in result.output
    # The defaults read both ends of a long prompt.
    result = _build(tmp_path)
    assert result.exit_code == 0, result.output
    spec = json.loads((tmp_path / "p" / "features.json").read_text())
    assert (spec["max_tokens"], spec["tail_tokens"]) == (256, 128)
    refused = _build(tmp_path, "--max-tokens", "64", "--tail-tokens", "64")
    assert refused.exit_code != 0
    # A ConfigError: the CLI's entry point prints it as "error: ..." and exits non-zero.
    assert isinstance(refused.exception, ConfigError)
    assert "tail_tokens must be at least 0 and less than max_tokens" in str(refused.exception)
