"""What a client may send: chat-completion and feedback bodies, validated into typed requests.

Pure functions of the body and headers (no I/O): every refusal is a ``BadRequest`` naming the
offending field, so bad input is always a 4xx and nothing is routed or logged for it.
"""

from __future__ import annotations

import math
import re
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
# Deeper than any OpenAI body (a tool's JSON schema included); deeper JSON is an attack.
MAX_JSON_DEPTH = 64
# A lone UTF-16 surrogate decodes from JSON ("\ud800") but is not text: it cannot be encoded,
# hashed or forwarded, so it is refused here instead of failing deep inside routing.
_SURROGATE = re.compile("[\ud800-\udfff]")
# OpenAI's ranges for the parameters RouteIQ passes through (the API reference's bounds).
_NUMBER_RANGES = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}
_INT_RANGES = {
    "n": (1, 128),
    "max_tokens": (1, 2**31 - 1),
    "max_completion_tokens": (1, 2**31 - 1),
    "seed": (-(2**63), 2**63 - 1),
    "top_logprobs": (0, 20),
}
_BOOLEANS = ("logprobs", "parallel_tool_calls")
_PART_TYPES = {"text", "image_url", "input_audio", "file", "refusal"}
_TOOL_CHOICES = {"none", "auto", "required"}
_RESPONSE_FORMATS = {"text", "json_object", "json_schema"}


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
        if isinstance(content, list):
            for j, part in enumerate(content):
                _check_part(part, f"messages[{i}].content[{j}]")
    return messages


def _check_part(part: Any, where: str) -> None:
    if not isinstance(part, dict) or part.get("type") not in _PART_TYPES:
        raise BadRequest(
            f"{where} must be an object whose type is one of {sorted(_PART_TYPES)}", param=where
        )
    if part["type"] == "text" and not isinstance(part.get("text"), str):
        raise BadRequest(f"{where}.text must be a string", param=f"{where}.text")
    image = part.get("image_url")
    if part["type"] == "image_url" and not (
        isinstance(image, dict) and isinstance(image.get("url"), str)
    ):
        raise BadRequest(f"{where}.image_url.url must be a string", param=f"{where}.image_url")


def check_json(value: Any) -> None:
    """Refuse JSON nested deeper than ``MAX_JSON_DEPTH`` or holding lone surrogates.

    Iterative, so a hostile body cannot exhaust the stack here either."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                raise BadRequest("the request holds a string that is not valid Unicode")
            continue
        if not isinstance(node, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            raise BadRequest(f"the request body is nested deeper than {MAX_JSON_DEPTH} levels")
        items = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        stack.extend((item, depth + 1) for item in items)


def check_params(params: Mapping[str, Any]) -> None:
    """The pass-through parameters' types and OpenAI's ranges: a client's mistake is a 400
    here, never a provider error after retries."""
    for name, (low, high) in _NUMBER_RANGES.items():
        v = params.get(name)
        if v is not None and (
            isinstance(v, bool) or not isinstance(v, int | float) or not low <= v <= high
        ):
            raise BadRequest(f"'{name}' must be a number in [{low:g}, {high:g}]", param=name)
    for name, (lo, hi) in _INT_RANGES.items():
        v = params.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi):
            raise BadRequest(f"'{name}' must be an integer in [{lo}, {hi}]", param=name)
    for name in _BOOLEANS:
        if name in params and not isinstance(params[name], bool):
            raise BadRequest(f"'{name}' must be a boolean", param=name)
    _check_stop(params.get("stop"))
    _check_logit_bias(params.get("logit_bias"))
    _check_tools(params.get("tools"), params.get("tool_choice"))
    response_format = params.get("response_format")
    if response_format is not None and (
        not isinstance(response_format, dict)
        or response_format.get("type") not in _RESPONSE_FORMATS
    ):
        raise BadRequest(
            f"'response_format.type' must be one of {sorted(_RESPONSE_FORMATS)}",
            param="response_format",
        )
    options = params.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise BadRequest("'stream_options' must be an object", param="stream_options")
    if "user" in params and not isinstance(params["user"], str):
        raise BadRequest("'user' must be a string", param="user")


def _check_stop(stop: Any) -> None:
    if stop is None or isinstance(stop, str):
        return
    if (
        not isinstance(stop, list)
        or not 1 <= len(stop) <= 4
        or not all(isinstance(s, str) for s in stop)
    ):
        raise BadRequest("'stop' must be a string or an array of 1-4 strings", param="stop")


def _check_logit_bias(bias: Any) -> None:
    if bias is None:
        return
    if not isinstance(bias, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and -100 <= v <= 100
        for v in bias.values()
    ):
        raise BadRequest(
            "'logit_bias' must map token ids to numbers in [-100, 100]", param="logit_bias"
        )


def _named_function(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and value.get("type") == "function"
        and isinstance(value.get("function"), dict)
        and isinstance(value["function"].get("name"), str)
    )


def _check_tools(tools: Any, choice: Any) -> None:
    if tools is not None:
        if not isinstance(tools, list):
            raise BadRequest("'tools' must be an array of tools", param="tools")
        for i, tool in enumerate(tools):
            if not _named_function(tool):
                raise BadRequest(
                    f"tools[{i}] must be {{'type': 'function', 'function': {{'name': ...}}}}",
                    param=f"tools[{i}]",
                )
    if choice is not None and choice not in _TOOL_CHOICES and not _named_function(choice):
        raise BadRequest(
            f"'tool_choice' must be one of {sorted(_TOOL_CHOICES)} or a named function",
            param="tool_choice",
        )


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
    params = {k: v for k, v in body.items() if k in PASSTHROUGH}
    check_params(params)
    return ChatRequest(
        model=model,
        messages=messages,
        params=params,
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
        if v is not None and (
            isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < math.inf
        ):
            raise BadRequest(f"'{name}' must be a finite number >= 0", param=name)
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
