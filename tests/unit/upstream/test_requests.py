"""Request validation: every malformed body maps to the OpenAI error a client expects."""

from __future__ import annotations

from typing import Any

import pytest
from routeiq_upstream.core import parse_chat_request
from routeiq_upstream.errors import (
    InvalidTypeError,
    InvalidValueError,
    MissingParameterError,
    UpstreamError,
    error_body,
    openai_error,
)

USER = {"role": "user", "content": "hi"}


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt-4", "messages": [USER], **fields}


@pytest.mark.parametrize(
    ("payload", "error", "param"),
    [
        ([], InvalidTypeError, None),
        ({"messages": [USER]}, MissingParameterError, "model"),
        (body(model=3), InvalidTypeError, "model"),
        (body(model="  "), InvalidValueError, "model"),
        ({"model": "gpt-4"}, MissingParameterError, "messages"),
        (body(messages="hi"), InvalidTypeError, "messages"),
        (body(messages=[]), InvalidValueError, "messages"),
        (body(messages=["hi"]), InvalidTypeError, "messages[0]"),
        (body(messages=[{"content": "hi"}]), MissingParameterError, "messages[0].role"),
        (body(messages=[{"role": 1, "content": "hi"}]), InvalidTypeError, "messages[0].role"),
        (body(messages=[{"role": "robot", "content": "x"}]), InvalidValueError, "messages[0].role"),
        (body(messages=[{"role": "user"}]), MissingParameterError, "messages[0].content"),
        (body(messages=[{"role": "user", "content": 5}]), InvalidTypeError, "messages[0].content"),
        (
            body(messages=[{"role": "user", "content": [{"type": "text", "text": 1}]}]),
            InvalidTypeError,
            "messages[0].content[0].text",
        ),
        (
            body(messages=[{"role": "user", "content": ["text"]}]),
            InvalidTypeError,
            "messages[0].content[0]",
        ),
        (body(messages=[{"role": "system", "content": "x"}]), InvalidValueError, "messages"),
        (body(stream="yes"), InvalidTypeError, "stream"),
        (body(stream_options={"include_usage": True}), InvalidValueError, "stream_options"),
        (body(stream=True, stream_options=[]), InvalidTypeError, "stream_options"),
        (
            body(stream=True, stream_options={"include_usage": "y"}),
            InvalidTypeError,
            "stream_options.include_usage",
        ),
        (body(temperature="hot"), InvalidTypeError, "temperature"),
        (body(top_p=True), InvalidTypeError, "top_p"),
        (body(max_tokens=0), InvalidValueError, "max_tokens"),
        (body(max_tokens=1.5), InvalidTypeError, "max_tokens"),
        (body(max_completion_tokens=True), InvalidTypeError, "max_completion_tokens"),
        (body(n=2), InvalidValueError, "n"),
    ],
)
def test_malformed_requests_are_refused_with_a_400_naming_the_field(
    payload: Any, error: type[UpstreamError], param: str | None
) -> None:
    with pytest.raises(error) as caught:
        parse_chat_request(payload)
    assert caught.value.param == param
    assert openai_error(caught.value)[0] == 400
    shaped = error_body(caught.value)["error"]
    assert set(shaped) == {"message", "type", "param", "code"}
    assert shaped["type"] == "invalid_request_error"
    assert shaped["message"]


def test_the_last_user_message_is_the_prompt() -> None:
    request = parse_chat_request(
        body(
            messages=[
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": None, "tool_calls": []},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "second"},
                        {"type": "image_url", "image_url": {"url": "data:,"}},
                        {"type": "text", "text": "part"},
                    ],
                },
                {"role": "tool", "content": "tool output"},
            ]
        )
    )
    assert request.prompt == "second\npart"


def test_options_are_read() -> None:
    request = parse_chat_request(
        body(stream=True, stream_options={"include_usage": True}, max_tokens=7, temperature=0)
    )
    assert (request.stream, request.include_usage, request.max_tokens) == (True, True, 7)
    # max_completion_tokens (the newer name) wins over max_tokens.
    assert parse_chat_request(body(max_tokens=7, max_completion_tokens=3)).max_tokens == 3
    plain = parse_chat_request(body(stream=None, n=1, unknown_field={"kept": "ignored"}))
    assert (plain.stream, plain.include_usage, plain.max_tokens) == (False, False, None)
