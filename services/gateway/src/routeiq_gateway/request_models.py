"""What a client may send: chat-completion and feedback bodies, validated into typed requests.

Pure functions of the body and headers (no I/O): every refusal is a ``BadRequest`` naming the
offending field, so bad input is always a 4xx and nothing is routed or logged for it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from routeiq_gateway.errors import BadRequest, NotFound
from routeiq_gateway.upstream import PASSTHROUGH

_ROLES = {"system", "user", "assistant", "tool", "function", "developer"}
_SOURCE_OK = set("abcdefghijklmnopqrstuvwxyz0123456789-_.:")
_FEEDBACK_FIELDS = frozenset(
    {"decision_id", "score", "source", "candidate", "cost_usd", "latency_ms", "judge_model"}
)


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A validated chat completion: what to route on and what to pass upstream."""

    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any]
    stream: bool
    text: str  # the last user message: what RouteIQ routes on (never logged)
    user: str | None
    team: str | None
    domain: str | None


@dataclass(frozen=True, slots=True)
class FeedbackRequest:
    """A validated ``POST /v1/feedback`` body."""

    decision_id: str
    score: float
    source: str
    candidate: str | None
    judge_model: str | None
    cost_usd: float | None
    latency_ms: float | None


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The text RouteIQ routes on: the last user message (string or text parts)."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "\n".join(
                str(p.get("text", ""))
                for p in content
                if isinstance(p, dict) and p.get("type") == "text"
            )
    return ""


def validate_messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if messages is None:
        raise BadRequest("'messages' is required", param="messages", code="missing_messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array", param="messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise BadRequest(f"messages[{i}] must be an object", param=f"messages[{i}]")
        if m.get("role") not in _ROLES:
            raise BadRequest(
                f"messages[{i}].role must be one of {sorted(_ROLES)}", param=f"messages[{i}].role"
            )
        content = m.get("content")
        if content is not None and not isinstance(content, str | list):
            raise BadRequest(
                f"messages[{i}].content must be a string or an array of parts",
                param=f"messages[{i}].content",
            )
    return messages


def parse_chat_request(body: Mapping[str, Any], headers: Mapping[str, str]) -> ChatRequest:
    """A chat-completion body and RouteIQ's ``x-routeiq-*`` headers, validated."""
    model = body.get("model", "auto")
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' must be a non-empty string", param="model")
    messages = validate_messages(body)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be a boolean", param="stream")
    user = body.get("user") if isinstance(body.get("user"), str) else None
    return ChatRequest(
        model=model,
        messages=messages,
        params={k: v for k, v in body.items() if k in PASSTHROUGH},
        stream=stream,
        text=last_user_text(messages),
        user=headers.get("x-routeiq-user") or user,
        team=headers.get("x-routeiq-team") or None,
        domain=headers.get("x-routeiq-domain") or None,
    )


def parse_feedback(
    body: Mapping[str, Any],
    *,
    check_decision_id: Callable[[str], str | None],
    groups: Collection[str],
) -> FeedbackRequest:
    """A feedback body, validated; ``check_decision_id`` says why an id is not ours (or None)."""
    decision_id = body.get("decision_id")
    if not isinstance(decision_id, str) or not decision_id:
        raise BadRequest("'decision_id' (string) is required", param="decision_id")
    why = check_decision_id(decision_id)
    if why is not None:
        raise NotFound(f"{why}: {decision_id!r}", param="decision_id", code="decision_not_found")
    score = body.get("score")
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise BadRequest("'score' must be a number in [0, 1]", param="score")
    if not 0.0 <= float(score) <= 1.0:
        raise BadRequest(f"'score' must be in [0, 1], got {score}", param="score")
    source = body.get("source", "user")
    if (
        not isinstance(source, str)
        or not 0 < len(source) <= 64
        or not set(source.lower()) <= _SOURCE_OK
    ):
        raise BadRequest("'source' must be 1-64 characters of a-z 0-9 - _ . :", param="source")
    candidate = body.get("candidate")
    if candidate is not None and candidate not in groups:
        raise BadRequest(
            f"'candidate' {candidate!r} is not a model group here ({list(groups)})",
            param="candidate",
        )
    for name in ("cost_usd", "latency_ms"):
        v = body.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or v < 0):
            raise BadRequest(f"'{name}' must be a number >= 0", param=name)
    judge = body.get("judge_model")
    if judge is not None and not isinstance(judge, str):
        raise BadRequest("'judge_model' must be a string", param="judge_model")
    unknown = set(body) - _FEEDBACK_FIELDS
    if unknown:
        raise BadRequest(f"unknown field(s) {sorted(unknown)}", param=sorted(unknown)[0])
    return FeedbackRequest(
        decision_id=decision_id,
        score=float(score),
        source=source,
        candidate=candidate,
        judge_model=judge,
        cost_usd=_optional_float(body.get("cost_usd")),
        latency_ms=_optional_float(body.get("latency_ms")),
    )


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
