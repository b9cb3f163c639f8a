"""Where the causal-LM router scores: in this process, or in a worker process with a budget.

A gateway must not import torch (it serves every other router type in numpy), so there the
router scores in one worker process of its own (``spawn``: a fresh interpreter, nothing
inherited) that loads the base model and the adapter once. Each request waits at most the
latency budget; past it, with the worker starting, broken or too many requests queued, the
scorer raises ``RouterUnavailable`` at once, which tells the strategy serving the request to
fall back to its configured one, and the request never waits on the model. A broken worker is
restarted in the background after a pause. The trainer and tests, which have torch loaded
already, score in process (``InlineScorer``).

Only lists of strings and floats cross the process boundary; the bundle's files are read by
the worker itself from the verified folder.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from routeiq.routing.routers.base import F64, RouterError, RouterUnavailable

__all__ = ["InlineScorer", "RouterUnavailable", "Scorer", "ScorerSpec", "WorkerScorer"]


class Scorer(Protocol):
    def probabilities(self, texts: Sequence[str]) -> F64: ...

    def close(self) -> None: ...


# What a scorer needs to build a ``LabelScorer``: plain JSON, so it crosses to the worker as
# a string.
ScorerSpec = dict[str, Any]


def _build(spec: ScorerSpec) -> Any:
    from safetensors.numpy import load_file

    # The adapter first: a missing or corrupt file is reported before torch is even imported.
    adapter = load_file(spec["adapter_file"])
    from routeiq.routing.routers.causallm_lm import LabelScorer

    return LabelScorer(
        Path(spec["base_dir"]),
        adapter,
        spec["adapter_config"],
        max_chars=int(spec["max_chars"]),
        device=str(spec["device"]),
    )


class InlineScorer:
    """Scores in this process (torch already loaded here: the trainer, a test)."""

    def __init__(self, spec: ScorerSpec) -> None:
        self._scorer = _build(spec)
        self._lock = threading.Lock()  # one forward pass at a time: torch threads are shared

    def probabilities(self, texts: Sequence[str]) -> F64:
        with self._lock:
            return np.asarray(self._scorer.probabilities(texts), dtype=np.float64)

    def close(self) -> None:
        return None


# The worker process's scorer, or why it could not be built.
_WORKER: dict[str, Any] = {}


def _worker_start(spec_json: str) -> None:
    """The pool's initializer: build the scorer once and run one query through it (the first
    forward pass allocates), so the first real request meets a warm model. A failure is kept,
    not raised, so the parent learns the reason from ``_worker_ready``, not a bare broken
    pool."""
    try:
        spec = json.loads(spec_json)
        scorer = _build(spec)
        import torch

        # The gateway's own threads share the machine: the worker keeps to its share.
        torch.set_num_threads(max(1, int(spec.get("threads", 1))))
        scorer.probabilities(["warm-up"])
        _WORKER["scorer"] = scorer
    except Exception as exc:  # noqa: BLE001 - reported to the parent verbatim
        _WORKER["error"] = f"{type(exc).__name__}: {exc}"


def _worker_ready() -> str:
    return str(_WORKER.get("error", "ok"))


def _worker_score(texts: list[str]) -> list[list[float]]:
    scorer = _WORKER.get("scorer")
    if scorer is None:
        raise RuntimeError(_WORKER.get("error", "the worker has no scorer"))
    return [[float(v) for v in row] for row in scorer.probabilities(texts)]


class WorkerScorer:
    """Scores in a worker process within ``budget_s`` per query (see the module docstring):
    the hot path asks for one query at a time; a batch (the bundle's probe queries) gets the
    budget of each of its queries."""

    def __init__(
        self,
        spec: ScorerSpec,
        *,
        budget_s: float,
        start_timeout_s: float,
        max_pending: int = 8,
        restart_after_s: float = 30.0,
        clock: Any = time.monotonic,
    ) -> None:
        self._spec_json = json.dumps(spec)
        self.budget_s, self.start_timeout_s = budget_s, start_timeout_s
        self.max_pending, self.restart_after_s = max_pending, restart_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._ready: Future[str] | None = None
        self._failed_at: float | None = None
        self._why = "not started"
        self._pending = 0
        self._closed = False
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def start(self, *, wait: bool) -> None:
        """Start the worker; with ``wait``, block until it has loaded the model (``RouterError``
        with the worker's reason when it cannot)."""
        with self._lock:
            self._spawn()
            ready = self._ready
        if not wait:
            return
        assert ready is not None
        try:
            answer = ready.result(timeout=self.start_timeout_s)
        except FutureTimeout as exc:
            self._fail(f"did not load the model within {self.start_timeout_s:g} s")
            raise RouterError(f"causallm worker: {self._why}") from exc
        except BrokenProcessPool as exc:
            self._fail(f"died while starting ({exc})")
            raise RouterError(f"causallm worker: {self._why}") from exc
        if answer != "ok":
            self._fail(f"cannot load the model: {answer}")
            raise RouterError(f"causallm worker: {self._why}")

    def _spawn(self) -> None:
        # Called with the lock held.
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_start,
            initargs=(self._spec_json,),
        )
        if self._finalizer is not None:
            self._finalizer.detach()
        self._finalizer = weakref.finalize(
            self, self._pool.shutdown, wait=False, cancel_futures=True
        )
        self._ready = self._pool.submit(_worker_ready)
        self._failed_at, self._why = None, "starting"

    def _fail(self, why: str) -> None:
        with self._lock:
            self._failed_at, self._why = self._clock(), why

    def _usable(self) -> ProcessPoolExecutor:
        """The pool when it has loaded the model; otherwise ``RouterUnavailable`` at once
        (restarting a failed worker in the background once ``restart_after_s`` has passed)."""
        with self._lock:
            if self._closed:
                raise RouterUnavailable("causallm worker is closed (its router was swapped out)")
            if self._failed_at is not None:
                if self._clock() - self._failed_at < self.restart_after_s:
                    raise RouterUnavailable(f"causallm worker unavailable: {self._why}")
                self._spawn()
            ready, pool = self._ready, self._pool
            if ready is None or pool is None or not ready.done():
                raise RouterUnavailable("causallm worker is still loading the model")
            if self._pending >= self.max_pending:
                raise RouterUnavailable(f"causallm worker is busy ({self._pending} queued)")
            self._pending += 1
        try:
            answer = ready.result(timeout=0)
        except BrokenProcessPool as exc:
            self._release()
            self._fail(f"died while starting ({exc})")
            raise RouterUnavailable(f"causallm worker unavailable: {self._why}") from exc
        if answer != "ok":
            self._release()
            self._fail(f"cannot load the model: {answer}")
            raise RouterUnavailable(f"causallm worker unavailable: {self._why}")
        return pool

    def _release(self, _future: object = None) -> None:
        with self._lock:
            self._pending -= 1

    def probabilities(self, texts: Sequence[str]) -> F64:
        pool = self._usable()
        try:
            future = pool.submit(_worker_score, list(texts))
        except (BrokenProcessPool, RuntimeError) as exc:  # RuntimeError: shut down meanwhile
            self._release()
            self._fail(f"died ({exc})")
            raise RouterUnavailable(f"causallm worker unavailable: {self._why}") from exc
        # The count drops when the worker is done with it, answered in time or not.
        future.add_done_callback(self._release)
        try:
            rows = future.result(timeout=self.budget_s * len(texts))
        except FutureTimeout as exc:
            raise RouterUnavailable(
                f"causallm worker over its latency budget of {self.budget_s * 1000:.0f} ms "
                f"per query ({len(texts)} queries)"
            ) from exc
        except BrokenProcessPool as exc:
            self._fail(f"died ({exc})")
            raise RouterUnavailable(f"causallm worker unavailable: {self._why}") from exc
        except RuntimeError as exc:
            raise RouterError(f"causallm worker failed: {exc}") from exc
        return np.asarray(rows, dtype=np.float64)

    def close(self) -> None:
        with self._lock:
            if self._finalizer is not None:
                self._finalizer()
            self._pool, self._ready, self._closed = None, None, True


def scorer_for(
    spec: ScorerSpec, params: Mapping[str, Any], *, torch_loaded: bool
) -> InlineScorer | WorkerScorer:
    """The scorer ``params["serve"]`` asks for: ``inline``, ``worker``, or ``auto`` (in
    process when torch is already loaded here, else a worker: a gateway never loads torch)."""
    mode = str(params["serve"])
    if mode == "inline" or (mode == "auto" and torch_loaded):
        return InlineScorer(spec)
    worker = WorkerScorer(
        spec,
        budget_s=float(params["latency_budget_ms"]) / 1000.0,
        start_timeout_s=float(params["worker_start_timeout_s"]),
        max_pending=int(params["worker_max_pending"]),
    )
    worker.start(wait=True)
    return worker
