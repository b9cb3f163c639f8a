"""`make demo` over LLMRouter's 9 models: the stack switches to them, the loop trains on
dcrouter_train traffic and the learned router serves dcrouter_test for far less than the best
single model at close to (or above) its quality.

The shared stack runs the two-model configuration for every other test: this test switches
it to the 9-model one (``routeiq stack up`` restarts what changed) and back afterwards.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def _cli(*args: str, env: dict[str, str], timeout: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "routeiq_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _row(out: str, label: str) -> tuple[float, float]:
    found = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)\s+([\d.]+)\s*$", out, re.M)
    assert found, f"no {label!r} row in:\n{out[-3000:]}"
    return float(found.group(1)), float(found.group(2))


def test_the_demo_closes_the_loop_over_nine_models(stack) -> None:
    base = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"}
    nine = {**base, "ROUTEIQ_STACK_CANDIDATES": "llmrouter"}
    two = {k: v for k, v in base.items() if k != "ROUTEIQ_STACK_CANDIDATES"}
    try:
        up = _cli("stack", "up", env=nine, timeout=600)
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        proc = _cli("demo", "--train-queries", "2000", env=nine, timeout=1500)
        out = proc.stdout
        assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    finally:
        back = _cli("stack", "up", env=two, timeout=600)
        assert back.returncode == 0, back.stdout[-2000:] + back.stderr[-2000:]
    tail = out[-4000:]
    for stage in range(1, 8):
        assert f"[{stage}/7]" in out, tail
    assert "traffic: 2000 training prompts" in out, tail
    best_q, best_cost = _row(out, "best single model")
    learned_q, learned_cost = _row(out, "learned router")
    oracle_q, oracle_cost = _row(out, "per-query oracle (hindsight)")
    assert oracle_cost < best_cost, tail  # the oracle mostly needs the cheap models
    # The best single model on dcrouter_test is llama-3.1-nemotron-51b (0.563).
    assert best_q == pytest.approx(0.563, abs=0.01), tail
    assert oracle_q > 0.7, tail
    # The learned router holds its cost target (half the best single model's estimate) ...
    assert learned_cost <= 0.65 * best_cost, tail
    # ... and keeps the best single model's quality within a few points, or beats it.
    assert learned_q >= best_q - 0.03, tail
    served = re.search(r"served (\{.*\})", out)
    assert served, tail
    assert served.group(1).count(":") >= 3, tail  # a real mix of candidates
    offline = re.search(r"quality at 50% of the best single model's cost ([\d.]+)", out)
    assert offline, tail
    assert float(offline.group(1)) > 0.5, tail
