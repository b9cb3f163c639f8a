"""Fixtures for the trainer's unit tests."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from routeiq.routing.prepare import PreparedData
from unit.trainer.helpers import clustered, prepared


@pytest.fixture
def data() -> PreparedData:
    return prepared()


@pytest.fixture
def csv_dataset(tmp_path: Path) -> tuple[Path, list[str], np.ndarray]:
    """A small CSV dataset (prompt + two boolean model columns) and the prompts' synthetic
    embeddings, written into the embedding cache the way the trainer stores them."""
    n = 120
    x, q = clustered(n, seed=3)
    prompts = [f"question number {i}?" for i in range(n)]
    path = tmp_path / "tiny.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["prompt", "big-model", "small-model"])
        for p, row in zip(prompts, q, strict=True):
            writer.writerow([p, bool(row[0]), bool(row[1])])
    return path, prompts, x
