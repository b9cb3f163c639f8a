"""`routeiq replay`: drive benchmark traffic through a gateway and grade what comes back.

Each prompt of a dataset goes to the gateway as model ``auto``; the gateway routes it. The
served model's quality on that prompt is known from the recorded data, so the replay posts it
as feedback, as a user or a blind judge would. With ``--shadow-fraction``, a share of the
requests also gets every other candidate's outcome (a direct call to the upstream, graded the
same way) posted as shadow feedback: full-information labels, as the seed's oracle dataset
built with two models and a blind judge. ``--judge-model`` grades answers with a LiteLLM
model that never sees which model wrote them (for real deployments without recorded labels).
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from routeiq.routing.datasets import RoutingDataset

JUDGE_PROMPT = """You are an impartial judge. Rate the quality of the answer to the question on a
scale of 1 to 10, considering correctness and helpfulness. You are not told who wrote it.
Reply with a short justification, then the rating in the form [[rating]].

[Question]
{question}

[Answer]
{answer}
"""
_RATING = re.compile(r"\[\[(\d+(?:\.\d+)?)\]\]")


def parse_rating(text: str) -> float | None:
    """A judge's ``[[n]]`` rating (1-10) as a score in [0, 1]; None when absent."""
    found = _RATING.search(text or "")
    if not found:
        return None
    value = float(found.group(1))
    return min(max((value - 1.0) / 9.0, 0.0), 1.0)


@dataclass
class ReplayStats:
    sent: int = 0
    ok: int = 0
    errors: int = 0
    feedback: int = 0
    shadow: int = 0
    judge_failures: int = 0
    by_model: Counter[str] = field(default_factory=Counter)
    by_version: Counter[str] = field(default_factory=Counter)
    quality: list[float] = field(default_factory=list)
    # Per dataset row: the tokens the served answer used (prompt, completion).
    usage: dict[int, tuple[int, int]] = field(default_factory=dict)
    cost_usd: float = 0.0
    elapsed_s: float = 0.0
    error_samples: list[str] = field(default_factory=list)

    def strong_pct(self, strong: str | None) -> float:
        total = sum(self.by_model.values())
        return 100.0 * self.by_model[strong or ""] / total if total else float("nan")

    @property
    def mean_quality(self) -> float:
        return sum(self.quality) / len(self.quality) if self.quality else float("nan")

    @property
    def cost_per_1k(self) -> float:
        return 1000.0 * self.cost_usd / self.ok if self.ok else float("nan")

    def as_dict(self, strong: str | None) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "ok": self.ok,
            "errors": self.errors,
            "feedback": self.feedback,
            "shadow_feedback": self.shadow,
            "judge_failures": self.judge_failures,
            "by_model": dict(self.by_model),
            "router_versions": dict(self.by_version),
            "mean_quality": self.mean_quality,
            "cost_usd": self.cost_usd,
            "cost_per_1k_requests": self.cost_per_1k,
            "strong_call_pct": self.strong_pct(strong),
            "requests_per_s": self.ok / self.elapsed_s if self.elapsed_s else float("nan"),
        }


class Replayer:
    def __init__(
        self,
        dataset: RoutingDataset,
        *,
        gateway: str,
        upstream: str | None = None,
        upstream_key: str = "offline",
        concurrency: int = 8,
        rate: float | None = None,
        feedback: bool = True,
        shadow_fraction: float = 0.0,
        judge_model: str | None = None,
        judge_params: dict[str, Any] | None = None,
        seed: int = 0,
        headers: dict[str, str] | None = None,
        progress: Any = None,
    ) -> None:
        if not 0.0 <= shadow_fraction <= 1.0:
            raise ValueError("shadow fraction must be in [0, 1]")
        if shadow_fraction > 0 and not upstream:
            raise ValueError("shadow calls need the upstream's URL (--upstream)")
        self.ds = dataset
        self.gateway = gateway.rstrip("/")
        self.upstream = upstream.rstrip("/") if upstream else None
        self.upstream_key = upstream_key
        self.concurrency = concurrency
        self.rate = rate
        self.feedback = feedback
        self.shadow_fraction = shadow_fraction
        self.judge_model = judge_model
        # Extra LiteLLM arguments for the judge (api_base, api_key, ...).
        self.judge_params = dict(judge_params or {})
        self.rng = random.Random(seed)  # noqa: S311 - sampling, not security
        self.headers = headers or {}
        self.progress = progress
        self.stats = ReplayStats()

    def _cost(self, model: str, usage: dict[str, Any] | None) -> float:
        price = self.ds.prices.get(model)
        if price is None or not usage:
            return 0.0
        return price.cost(
            int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
        )

    async def _grade(
        self, client: httpx.AsyncClient, row: int, model: str, answer: str
    ) -> float | None:
        if self.judge_model:
            import litellm

            try:
                reply = await litellm.acompletion(
                    model=self.judge_model,
                    messages=[
                        {
                            "role": "user",
                            "content": JUDGE_PROMPT.format(
                                question=self.ds.prompts[row], answer=answer
                            ),
                        }
                    ],
                    **self.judge_params,
                )
                score = parse_rating(reply.choices[0].message.content or "")
            except Exception:  # noqa: BLE001 - a failed judgement is counted, not fatal
                score = None
            if score is None:
                self.stats.judge_failures += 1
            return score
        if model not in self.ds.models:
            return None
        value = float(self.ds.scores[row, self.ds.models.index(model)])
        return None if math.isnan(value) else value

    async def _post_feedback(self, client: httpx.AsyncClient, body: dict[str, Any]) -> None:
        r = await client.post(f"{self.gateway}/v1/feedback", json=body)
        if r.status_code != 202:
            self.stats.error_samples.append(f"feedback {r.status_code}: {r.text[:200]}")
            return
        if body.get("candidate"):
            self.stats.shadow += 1
        else:
            self.stats.feedback += 1

    async def _shadow(
        self, client: httpx.AsyncClient, row: int, served: str, decision_id: str
    ) -> None:
        # Every other candidate at once: with 9 candidates, one at a time made shadow
        # outcomes 8x a request's latency.
        await asyncio.gather(
            *(
                self._shadow_one(client, row, model, decision_id)
                for model in self.ds.models
                if model != served
            )
        )

    async def _shadow_one(
        self, client: httpx.AsyncClient, row: int, model: str, decision_id: str
    ) -> None:
        started = time.perf_counter()
        r = await client.post(
            f"{self.upstream}/chat/completions",
            headers={"authorization": f"Bearer {self.upstream_key}"},
            json={"model": model, "messages": [{"role": "user", "content": self.ds.prompts[row]}]},
        )
        if r.status_code != 200:
            self.stats.error_samples.append(f"shadow {model} {r.status_code}")
            return
        body = r.json()
        score = await self._grade(
            client, row, model, body["choices"][0]["message"]["content"] or ""
        )
        if score is None:
            return
        await self._post_feedback(
            client,
            {
                "decision_id": decision_id,
                "score": score,
                "source": "shadow",
                "candidate": model,
                "cost_usd": self._cost(model, body.get("usage")),
                "latency_ms": (time.perf_counter() - started) * 1000.0,
            },
        )

    async def _one(self, client: httpx.AsyncClient, row: int) -> None:
        self.stats.sent += 1
        try:
            r = await client.post(
                f"{self.gateway}/v1/chat/completions",
                headers=self.headers,
                json={
                    "model": "auto",
                    "messages": [{"role": "user", "content": self.ds.prompts[row]}],
                },
            )
        except httpx.HTTPError as exc:
            self.stats.errors += 1
            self.stats.error_samples.append(repr(exc))
            return
        if r.status_code != 200:
            self.stats.errors += 1
            self.stats.error_samples.append(f"{r.status_code}: {r.text[:200]}")
            return
        self.stats.ok += 1
        served = r.headers.get("x-routeiq-model", "")
        decision_id = r.headers.get("x-routeiq-decision-id", "")
        self.stats.by_model[served] += 1
        self.stats.by_version[r.headers.get("x-routeiq-router-version", "none")] += 1
        body = r.json()
        usage = body.get("usage") or {}
        self.stats.usage[row] = (
            int(usage.get("prompt_tokens", 0)),
            int(usage.get("completion_tokens", 0)),
        )
        self.stats.cost_usd += self._cost(served, body.get("usage"))
        score = await self._grade(
            client, row, served, body["choices"][0]["message"]["content"] or ""
        )
        if score is not None:
            self.stats.quality.append(score)
            if self.feedback:
                await self._post_feedback(
                    client,
                    {
                        "decision_id": decision_id,
                        "score": score,
                        "source": "judge" if self.judge_model else "replay",
                    },
                )
        if self.upstream and self.rng.random() < self.shadow_fraction:
            await self._shadow(client, row, served, decision_id)

    async def run(self, rows: list[int]) -> ReplayStats:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for row in rows:
            queue.put_nowait(row)
        interval = 1.0 / self.rate if self.rate else 0.0
        next_slot = [time.monotonic()]
        lock = asyncio.Lock()
        limits = httpx.Limits(max_connections=self.concurrency * 2)
        started = time.perf_counter()
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:

            async def worker() -> None:
                while True:
                    try:
                        row = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        return
                    if interval:
                        async with lock:
                            wait = next_slot[0] - time.monotonic()
                            next_slot[0] = max(next_slot[0], time.monotonic()) + interval
                        if wait > 0:
                            await asyncio.sleep(wait)
                    await self._one(client, row)
                    if self.progress is not None:
                        self.progress.update(1)

            await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        self.stats.elapsed_s = time.perf_counter() - started
        return self.stats


def split_rows(ds: RoutingDataset, *, seed: int) -> tuple[list[int], list[int]]:
    """The row indices in ``ds`` of a seeded 50/50 split's halves: (train, test)."""
    train, test = ds.split(test_fraction=0.5, seed=seed)
    index = {pid: i for i, pid in enumerate(ds.ids)}
    return [index[pid] for pid in train.ids], [index[pid] for pid in test.ids]
