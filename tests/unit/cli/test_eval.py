"""`routeiq eval` on any CSV: repeated prompts merged, chosen columns, prices, seeds."""

from __future__ import annotations

import csv
import json
import shlex
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from routeiq.errors import RouteIQError
from routeiq_cli.__main__ import cli
from support.features import tiny_static

TOPICS = ["sorting lists in python", "the capital of france", "integrals of polynomials"]


def _csv(path: Path, *, rows: int = 150, repeats: int = 20) -> Path:
    """Three topics; "big" is right on all, "mid" on two, "small" on one; a few prompts
    repeat with different grades (as real benchmarks do)."""
    rng = np.random.default_rng(0)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["question", "big", "mid", "small", "notes", "big_response"])
        for i in range(rows):
            topic = i % 3
            text = f"Question {i} about {TOPICS[topic]}: explain step {i % 7}."
            big, mid, small = 1.0, float(topic < 2), float(topic < 1)
            flip = rng.random(3) < 0.1
            scores = [1 - s if f else s for s, f in zip((big, mid, small), flip, strict=True)]
            writer.writerow([text, *scores, f"note {i}", "an answer " * 20])
        for i in range(repeats):  # the first prompts again, graded once more
            text = f"Question {i} about {TOPICS[i % 3]}: explain step {i % 7}."
            writer.writerow([text, "1", "0", "0", "n", ""])
    return path


@pytest.fixture
def files(tmp_path):
    data = _csv(tmp_path / "bench.csv")
    prices = tmp_path / "prices.json"
    prices.write_text(
        json.dumps(
            {"big": [10, 30], "mid": {"input_price": 1, "output_price": 3}, "small": [0.1, 0.3]}
        )
    )
    features = tiny_static(tmp_path / "features", dim=16, sketch_dim=32)
    return data, prices, features


def _run(tmp_path, data: Path, *args: str):
    """`routeiq eval --test DATA` with the test's feature pipeline and ``args``."""
    runner = CliRunner()
    features = ["--features-dir", str(tmp_path / "features")]
    return runner.invoke(
        cli,
        ["eval", "--test", str(data), *features, *args, "--out", str(tmp_path / "out")],
        env={"ROUTEIQ_STACK_STATE_DIR": str(tmp_path / "state")},
        catch_exceptions=True,
    )


def _run_priced(tmp_path, data: Path, prices: Path, *args: str):
    """`routeiq eval` on the CSV's question column, priced by ``prices``."""
    return _run(tmp_path, data, "--prompt-column", "question", "--prices", str(prices), *args)


def _evaluated(tmp_path, files, flags: str) -> str:
    """The output of a priced `routeiq eval` with ``flags`` (as typed on a command line),
    which must succeed."""
    data, prices, _ = files
    result = _run_priced(tmp_path, data, prices, *shlex.split(flags))
    assert result.exit_code == 0, result.output
    return result.output


def test_any_csv_evaluates_over_seeds_with_merged_repeats_and_prices(tmp_path, files) -> None:
    output = _evaluated(tmp_path, files, "--models big,mid,small --seeds 3 --json")
    report = json.loads(output[output.index("{") :])
    assert report["models"] == ["big", "mid", "small"]
    assert report["pair"] is None  # three models: no strong/weak pair unless asked
    assert len(report["per_seed"]) == 3
    # 150 distinct prompts (the 20 repeats merged into their first rows), half tested.
    assert {s["rows"] for s in report["per_seed"]} == {75}
    summary = report["summary"]
    assert {"knn", "baseline-knn200-minilm", "random"} <= set(summary)
    knn, rnd = summary["knn"], summary["random"]
    assert knn["aiq"]["mean"] > rnd["aiq"]["mean"] + 0.05
    assert knn["aiq"]["sd"] >= 0
    # Prices came from the file: "big" is the most expensive and the best single model.
    refs = report["references"]
    assert refs["best_single"]["model"] == "big"
    assert refs["singles"]["big"]["cost"] > 10 * refs["singles"]["small"]["cost"]
    assert (tmp_path / "out" / "report.json").is_file()
    assert any(p.endswith("cost-quality.png") for p in report["curves"])


def test_a_named_pair_adds_apgr_and_the_table_prints_mean_and_sd(tmp_path, files) -> None:
    output = _evaluated(
        tmp_path, files, "--models big,small --strong big --weak small --seeds 2 --no-baseline"
    )
    assert "pair for APGR/CPT: strong big, weak small" in output
    assert "APGR" in output
    assert "±" in output
    assert "per seed:" in output
    assert "baseline-knn200-minilm" not in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prompt-column", "prompt"], "no column 'prompt'"),
        (["--prompt-column", "question", "--models", "big,huge"], "not found"),
        (["--prompt-column", "question", "--router", "magic"], "unknown router type"),
        (["--prompt-column", "question", "--strong", "big"], "both be named"),
    ],
)
def test_mistakes_are_refused_with_the_reason(tmp_path, files, args, message) -> None:
    data, _, _ = files
    result = _run(
        tmp_path,
        data,
        *args,
        "--seeds",
        "1",
        "--no-baseline",
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, RouteIQError | SystemExit)
    assert message in (str(result.exception) + result.output)


def test_a_bad_prices_file_is_refused(tmp_path, files) -> None:
    data, _, _ = files
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"big": "expensive"}))
    result = _run_priced(tmp_path, data, bad)
    assert result.exit_code != 0
    assert "[input, output]" in str(result.exception)
