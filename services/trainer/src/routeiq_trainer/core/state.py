"""What the worker is doing, as ``/health/ready`` reports it (written by the worker only)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class WorkerState:
    """What ``/health/ready`` reports."""

    started: bool = False
    stopping: bool = False
    current: str | None = None
    last_poll: float = 0.0
    processed: int = 0
    failed: int = 0
    error: str | None = None
    partitions: list[int] = field(default_factory=list)
