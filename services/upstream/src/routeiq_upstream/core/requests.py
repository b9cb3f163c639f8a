"""OpenAI chat-completion requests: validation of the JSON body into a ``ChatRequest``.

Only what the upstream uses is interpreted (model, messages, stream, stream_options, max
tokens, n); common sampling fields are type-checked so malformed requests fail as they would
at OpenAI, and everything else is accepted and ignored, as a real provider ignores what does
not change its answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from routeiq_upstream.core.tokens import message_text
from routeiq_upstream.errors import (
    InvalidTypeError,
    InvalidValueError,
    MissingParameterError,
)

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_NUMBERS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")


@dataclass(frozen=True)
class ChatRequest:
    """A validated chat-completion request."""

    model: str
    messages: Sequence[Mapping[str, Any]]
    prompt: str  # text of the last user message, the lookup key before normalisation
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "null" if value is None else "number"
    )


# How OpenAI's messages name each JSON type a field may expect (float: any number).
_EXPECTED = {
    str: "a string",
    list: "an array",
    dict: "an object",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
}


def _field(
    container: Mapping[str, Any], name: str, kind: type, *, required: bool = False, where: str = ""
) -> Any:
    """``container[name]`` if it is a ``kind`` (None when absent or null and not required),
    else the OpenAI-shaped error naming the field; ``where`` is the path of ``container``."""
    path = f"{where}.{name}" if where else name
    value = container.get(name)
    if value is None:
        if required:
            raise MissingParameterError(f"Missing required parameter: '{path}'.", param=path)
        return None
    accepted = (int, float) if kind is float else kind
    # JSON's true and false are Python ints: only a boolean field takes them.
    if not isinstance(value, accepted) or (isinstance(value, bool) and kind is not bool):
        raise InvalidTypeError(
            f"Invalid type for '{path}': expected {_EXPECTED[kind]}, but got {_type_name(value)}.",
            param=path,
        )
    return value


def _check_message(i: int, message: Any) -> None:
    where = f"messages[{i}]"
    if not isinstance(message, dict):
        raise InvalidTypeError(
            f"Invalid type for '{where}': expected an object, but got {_type_name(message)}.",
            param=where,
        )
    role = _field(message, "role", str, required=True, where=where)
    if role not in ROLES:
        raise InvalidValueError(
            f"Invalid value: '{role}'. Supported values are: "
            f"{', '.join(repr(r) for r in sorted(ROLES))}.",
            param=f"{where}.role",
        )
    content = message.get("content")
    if content is None:
        if role in {"user", "system", "developer", "tool"}:
            raise MissingParameterError(
                f"Missing required parameter: '{where}.content'.", param=f"{where}.content"
            )
        return
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise InvalidTypeError(
            f"Invalid type for '{where}.content': expected one of a string or array of "
            f"objects, but got {_type_name(content)}.",
            param=f"{where}.content",
        )
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise InvalidTypeError(
                f"Invalid type for '{at}': expected an object with a string 'type'.", param=at
            )
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise InvalidTypeError(
                f"Invalid type for '{at}.text': expected a string, but got "
                f"{_type_name(part.get('text'))}.",
                param=f"{at}.text",
            )


def _optional_int(body: Mapping[str, Any], name: str, minimum: int) -> int | None:
    value: int | None = _field(body, name, int)
    if value is not None and value < minimum:
        raise InvalidValueError(
            f"Invalid '{name}': integer below minimum value. Expected a value >= {minimum}, "
            f"but got {value} instead.",
            param=name,
        )
    return value


def parse_chat_request(body: Any) -> ChatRequest:
    """Validate an already-decoded JSON body; raise the OpenAI-shaped error for the first
    problem found."""
    if not isinstance(body, dict):
        raise InvalidTypeError(
            f"The request body must be a JSON object, but got {_type_name(body)}.", param=None
        )
    model: str = _field(body, "model", str, required=True)
    if not model.strip():
        raise InvalidValueError("Invalid 'model': empty string.", param="model")
    messages: list[Any] = _field(body, "messages", list, required=True)
    if not messages:
        raise InvalidValueError(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            param="messages",
        )
    for i, message in enumerate(messages):
        _check_message(i, message)
    users = [m for m in messages if m["role"] == "user"]
    if not users:
        raise InvalidValueError(
            "Invalid 'messages': the offline upstream answers the last user message, and "
            "there is none.",
            param="messages",
        )
    stream: bool = _field(body, "stream", bool) or False
    include_usage = False
    options = _field(body, "stream_options", dict)
    if options is not None:
        if not stream:
            raise InvalidValueError(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
            )
        flag = options.get("include_usage", False)
        if not isinstance(flag, bool):
            raise InvalidTypeError(
                f"Invalid type for 'stream_options.include_usage': expected a boolean, but got "
                f"{_type_name(flag)}.",
                param="stream_options.include_usage",
            )
        include_usage = flag
    for name in _NUMBERS:
        _field(body, name, float)
    max_tokens = _optional_int(body, "max_completion_tokens", 1)
    legacy = _optional_int(body, "max_tokens", 1)
    n = _optional_int(body, "n", 1)
    if n is not None and n != 1:
        raise InvalidValueError(
            f"Invalid 'n': the offline upstream returns one choice (n=1), got {n}.", param="n"
        )
    return ChatRequest(
        model=model,
        messages=messages,
        prompt=message_text(users[-1].get("content")),
        stream=stream,
        include_usage=include_usage,
        max_tokens=max_tokens if max_tokens is not None else legacy,
    )
