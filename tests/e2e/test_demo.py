"""`make demo` on the running stack: traffic → labeler → trainer → gate → hot-swap → report."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def test_the_demo_closes_the_loop(stack) -> None:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "routeiq_cli", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    for stage in range(1, 8):
        assert f"[{stage}/7]" in out
    rows = dict(
        re.findall(r"^\s+(default strategy \(untrained\)|learned router)\s+([\d.]+)", out, re.M)
    )
    assert set(rows) == {"default strategy (untrained)", "learned router"}, out[-2000:]
    strong = [float(x) for x in re.findall(r"^\s+(?:default|learned).*\s([\d.]+)$", out, re.M)]
    assert all(35.0 <= s <= 65.0 for s in strong), strong  # both near the 50% target
    apgr = float(re.search(r"offline APGR of \S+ on the held-out half: ([\d.]+)", out).group(1))
    assert apgr > 0.55  # a random router scores 0.50
