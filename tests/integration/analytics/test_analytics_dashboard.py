"""The dashboard in a real browser: headless Chromium loads it, the charts render with data,
and a screenshot lands in tests/artifacts/analytics/dashboard.png."""

from __future__ import annotations

import random
import shutil
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from integration.analytics.browser import HeadlessChromium
from integration.analytics.helpers import (
    ARTIFACTS,
    AnalyticsTopics,
    decision_record,
    feedback_record,
)
from matplotlib.image import imread
from routeiq.routing.datasets import GPT4, MIXTRAL
from unit.analytics.helpers import DASHBOARD_CHARTS

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
N = 180

CHART_JS = """
JSON.stringify([...document.querySelectorAll('svg.chart')].map(svg => {
  const box = svg.getBoundingClientRect();
  const marks = [...svg.querySelectorAll('.mark')].map(m => {
    const b = m.getBBox();
    return [b.width, b.height];
  });
  return {name: svg.dataset.chart, points: Number(svg.dataset.points),
          width: box.width, height: box.height, marks: marks};
}))
"""


def _traffic(topics: AnalyticsTopics, now: float) -> None:
    """Fifty-odd minutes of varied traffic: three strategies, an A/B test, feedback."""
    rng = random.Random(11)
    for i in range(N):
        strategy = ("threshold", "learned", "policy")[i % 3]
        strong = rng.random() < (0.35 if strategy == "learned" else 0.55)
        model = GPT4 if strong else MIXTRAL
        decision_id = f"d{i}"
        topics.decision(
            decision_record(
                decision_id,
                at=now - (N - i) * 18,
                model=model,
                strategy=strategy,
                arm=("control", "treatment")[i % 2] if i % 3 else None,
                exploration=rng.random() < 0.05,
                status="SUCCESS" if rng.random() > 0.03 else "ERROR",
                input_tokens=rng.randint(80, 900),
                output_tokens=rng.randint(50, 600),
                embedding_ms=rng.uniform(0.5, 4.0) * (1 + (i // 60)),
                strategy_ms=rng.uniform(0.05, 1.0),
            )
        )
        if rng.random() < 0.6:
            quality = 0.85 if strong else 0.6
            topics.feedback(feedback_record(f"f{i}", decision_id, float(rng.random() < quality)))
        if rng.random() < 0.2:
            other = MIXTRAL if strong else GPT4
            quality = 0.6 if strong else 0.85
            topics.feedback(
                feedback_record(
                    f"s{i}", decision_id, float(rng.random() < quality), candidate=other
                )
            )


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get)")
def test_dashboard_charts_render_in_headless_chromium(
    analytics_topics: AnalyticsTopics, analytics_factory, tmp_path: Path
) -> None:
    assert CHROMIUM is not None
    service = analytics_factory()
    _traffic(analytics_topics, time.time())
    summary = service.wait_for(
        lambda s: s["requests"]["total"] == N, window="1h", what=f"{N} decisions in the hour"
    )
    with HeadlessChromium(CHROMIUM, tmp_path / "chromium-profile") as browser:
        browser.open(f"{service.url}/?window=1h")
        charts = {c["name"]: c for c in __import__("json").loads(browser.evaluate(CHART_JS))}
        kpi = browser.evaluate("document.querySelector('.kpi .value').textContent")
        png = browser.screenshot(ARTIFACTS / "dashboard.png")

    assert kpi == f"{N}"
    assert set(charts) == DASHBOARD_CHARTS
    for name, chart in charts.items():
        assert chart["points"] > 0, name
        assert chart["width"] > 300, chart
        assert chart["height"] > 30, chart
        assert chart["marks"], name
        assert all(w > 0 and h > 0 for w, h in chart["marks"]), chart
    # One stack per served model; one bar per strategy and per arm with feedback.
    assert len(charts["model-mix"]["marks"]) == len(summary["requests"]["by_model"]) == 2
    assert len(charts["quality-strategy"]["marks"]) == 3
    assert len(charts["quality-arm"]["marks"]) == 2

    width, height = _png_size(png)
    assert width == 1400
    assert height > 1200
    # The charts' own colours are on the screenshot in quantity (bars and lines, not a blank
    # page): the first two palette colours are the two models' bars.
    pixels = (imread(ARTIFACTS / "dashboard.png")[..., :3] * 255).round().astype(int)
    for rgb in ((0x4C, 0x78, 0xA8), (0xF5, 0x85, 0x18)):
        share = float(np.mean(np.all(np.abs(pixels - np.array(rgb)) <= 3, axis=-1)))
        assert share > 0.002, (rgb, share)
