"""The training pipeline: one retrain request as named steps (``run`` has the order)."""

from __future__ import annotations

from routeiq_trainer.core.results import Outcome
from routeiq_trainer.pipeline.run import TrainingPipeline

__all__ = ["Outcome", "TrainingPipeline"]
