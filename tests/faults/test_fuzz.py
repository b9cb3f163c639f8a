"""The live gateway fuzzed: schemathesis from its own OpenAPI document, and the malformed
requests that once answered 500 or 502. No input may produce a 5xx; every one of those
requests is a 400."""

from __future__ import annotations

from typing import Any

import httpx
import schemathesis
from faults.harness import Row, Stack
from hypothesis import given
from schemathesis.generation.modes import GenerationMode
from support.fuzz import fuzz_settings

FUZZ = fuzz_settings(max_examples=40)
# Admin operations are fuzzed without the key (the live stack's routing must not change
# under the other rows): they test the refusal path; in-process fuzzing has the key.
OPERATIONS = [
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/feedback"),
    ("PUT", "/admin/strategies"),
    ("POST", "/admin/model/rollback"),
    ("GET", "/admin/audit"),
]
_CHAT = '{"model": "auto", "messages": [{"role": "user", "content": %s}]%s}'
# The requests the issue found answering 500 or 502 (raw bodies: some are not valid JSON to
# an encoder), each of which must be a 400 naming what is wrong.
MALFORMED: dict[str, tuple[str, str]] = {
    "lone surrogate": ("/v1/chat/completions", _CHAT % ('"\\ud800"', "")),
    "nested 2,000 deep": ("/v1/chat/completions", '{"model": ' + "[" * 2000 + "]" * 2000 + "}"),
    "nested feedback": ("/v1/feedback", '{"score": ' + "[" * 2000 + "]" * 2000 + "}"),
    "tools a string": ("/v1/chat/completions", _CHAT % ('"hi"', ', "tools": "x"')),
    "temperature NaN": ("/v1/chat/completions", _CHAT % ('"hi"', ', "temperature": NaN')),
    "bogus content part": (
        "/v1/chat/completions",
        _CHAT % ('[{"type": "bogus", "text": "hi"}]', ""),
    ),
    "temperature 99": ("/v1/chat/completions", _CHAT % ('"hi"', ', "temperature": 99')),
    "top_p 5": ("/v1/chat/completions", _CHAT % ('"hi"', ', "top_p": 5')),
    "max_tokens 1e12": ("/v1/chat/completions", _CHAT % ('"hi"', ', "max_tokens": 1e12')),
    "feedback without source": ("/v1/feedback", '{"decision_id": "d", "score": 1}'),
    "feedback latency NaN": (
        "/v1/feedback",
        '{"decision_id": "d", "score": 1, "source": "user", "latency_ms": NaN}',
    ),
}


def test_gateway_fuzzed(stack: Stack, row: Row) -> None:
    schema = schemathesis.openapi.from_url(f"{stack.gateway}/openapi.json")

    def record(response: Any, what: str) -> None:
        row.sent += 1
        if response.status_code >= 500:
            row.server_errors += 1
            row.notes.append(f"{what}: {response.status_code} {response.text[:200]}")

    def fuzz(method: str, path: str, mode: GenerationMode) -> None:
        what = f"{method} {path} ({mode.value})"

        @given(case=schema[path][method].as_strategy(generation_mode=mode))
        @FUZZ
        def calls(case: Any) -> None:
            record(case.call(timeout=60), what)

        calls()

    for method, path in OPERATIONS:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(method, path, mode)

    with httpx.Client(base_url=stack.gateway, timeout=60) as client:
        for name, (path, body) in MALFORMED.items():
            response = client.post(path, content=body, headers={"content-type": "application/json"})
            record(response, name)
            if response.status_code != 400:
                row.failed += 1
                row.notes.append(f"{name}: {response.status_code}, expected 400")
