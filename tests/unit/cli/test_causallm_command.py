"""`routeiq causallm pipeline` over the shipped GSM8K rows on a tiny base built on the spot,
then `routeiq route` on the bundle it wrote: split, labels, SFT, DPO, table, signed bundle, one
decision shown without calling a model."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from routeiq.routing.oracle import POLICIES
from routeiq_cli.__main__ import cli

FAST = {"sft_epochs": 1, "dpo_epochs": 1, "batch_size": 16, "lora_r": 4, "lora_alpha": 8}


def test_the_pipeline_trains_evaluates_and_bundles_and_route_reads_the_bundle(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    args = ["causallm", "pipeline", "--tiny-base", "--limit", "80", "--out", str(out)]
    result = CliRunner().invoke(cli, [*args, "--params", json.dumps(FAST | {"max_length": 160})])
    assert result.exit_code == 0, result.output
    # The held-out rows are split off before any label: 60 train, 20 held out.
    assert "60 training rows, 20 held out" in result.output
    for line in ("accuracy always-strong", "cost savings vs strong", "accuracy on Complex_Query"):
        assert line in result.output
    stages = json.loads((out / "evaluation.json").read_text())
    assert [s["label"] for s in stages] == ["sft", "dpo"]
    assert all(s["rows"] == 20 for s in stages)
    assert sum(stages[0]["oracle"].values()) == 20
    assert (out / "bundle" / "adapter_model.safetensors").is_file()

    query = "Natalia sold clips to 48 of her friends in April. How many clips did she sell?"
    shown = CliRunner().invoke(cli, ["route", query, "--bundle", str(out / "bundle")])
    assert shown.exit_code == 0, shown.output
    assert "(causallm)" in shown.output
    policy = shown.output.split("policy: ")[1].split(" ")[0]
    assert policy in POLICIES
    assert f"the policy mapper sends {policy} to it" in shown.output


def test_the_pipeline_needs_a_base_model_or_the_tiny_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["causallm", "pipeline", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "name a --base-model, or ask for a --tiny-base" in result.output
