"""``DeadLetter`` records: the raw record, where it came from and why it was given up on."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def header_map(headers: Mapping[str, Any] | Iterable[tuple[str, Any]] | None) -> dict[str, str]:
    """Kafka headers as text (values decoded as UTF-8 with replacement)."""
    if not headers:
        return {}
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, str] = {}
    for name, value in pairs:
        if isinstance(value, bytes | bytearray):
            out[str(name)] = bytes(value).decode("utf-8", errors="replace")
        else:
            out[str(name)] = "" if value is None else str(value)
    return out


def dead_letter(
    *,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int | None,
    key: bytes | None,
    value: bytes | None,
    headers: Mapping[str, Any] | Iterable[tuple[str, Any]] | None,
    error: BaseException,
    consumer: str,
    now_ms: int,
) -> dict[str, Any]:
    """The ``DeadLetter`` record for one record that could not be processed."""
    return {
        "source_topic": topic,
        "source_partition": partition,
        "source_offset": offset,
        "source_timestamp": timestamp_ms,
        "key": key,
        "value": value,
        "headers": header_map(headers),
        "error_type": type(error).__name__,
        "reason": str(error) or repr(error),
        "consumer": consumer,
        "failed_at": now_ms,
    }
