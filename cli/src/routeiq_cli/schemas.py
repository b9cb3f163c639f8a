"""`routeiq schemas register|check|release|docs`: contract governance.

Released versions (``schemas/released/<stem>/vN.avsc``) are immutable history. ``check`` proves
the working copy is compatible with every one of them under the topic's declared level, both
with Apache Avro's checker locally and through the running registry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from routeiq.contracts.catalog import schemas_dir
from routeiq.contracts.compatibility import canonical_text, check_compatibility, parse_schema
from routeiq.contracts.topics import TopicSpec
from routeiq.errors import ContractError, IncompatibleSchemaError, RegistryError


@dataclass(frozen=True)
class RegisterResult:
    subject: str
    label: str  # "v1", "v2", or "working copy"
    schema_id: int
    registered: bool  # False when it was already there


def _versions_to_register(spec: TopicSpec) -> list[tuple[str, str]]:
    released = [(f"v{n}", text) for n, text in spec.contract.released()]
    if not released:
        raise ContractError(f"{spec.contract.stem}: no released version in {schemas_dir()}")
    if not spec.contract.is_released():
        # A development working copy is registered after the history so local services can
        # use it; `routeiq schemas check` flags it until it is released.
        released.append(("working copy", spec.contract.working_text()))
    return released


def register_all(client: SchemaRegistryClient, specs: Iterable[TopicSpec]) -> list[RegisterResult]:
    """Set each subject's compatibility level, then register its versions oldest first.

    Registering in order makes the registry enforce the level on the whole history; doing it
    again is a no-op (a lookup finds each version).
    """
    results: list[RegisterResult] = []
    for spec in specs:
        subject = spec.value_subject
        try:
            current = _subject_level(client, subject)
            if current != spec.compatibility.value:
                client.set_compatibility(subject, spec.compatibility.value)
            for label, text in _versions_to_register(spec):
                schema = Schema(canonical_text(parse_schema(text)), "AVRO")
                try:
                    found = client.lookup_schema(subject, schema)
                    results.append(RegisterResult(subject, label, int(found.schema_id), False))
                    continue
                except SchemaRegistryError as exc:
                    if exc.http_status_code != 404:
                        raise
                schema_id = int(client.register_schema(subject, schema))
                results.append(RegisterResult(subject, label, schema_id, True))
        except SchemaRegistryError as exc:
            if exc.http_status_code == 409:
                raise IncompatibleSchemaError(
                    f"{subject}: the registry refused a version: {exc.error_message}"
                ) from exc
            raise RegistryError(
                f"{subject}: {exc.error_message}",
                error_code=exc.error_code,
                http_status=exc.http_status_code,
            ) from exc
    return results


def _subject_level(client: SchemaRegistryClient, subject: str) -> str | None:
    try:
        return str(client.get_compatibility(subject))
    except SchemaRegistryError as exc:
        if exc.http_status_code == 404:
            return None
        raise


@dataclass(frozen=True)
class CheckFinding:
    subject: str
    ok: bool
    message: str


def check(specs: Iterable[TopicSpec], registry_url: str | None) -> list[CheckFinding]:
    """Check every working copy against released history and, if given, the registry."""
    findings: list[CheckFinding] = []
    for spec in specs:
        subject, contract = spec.value_subject, spec.contract
        try:
            working = contract.working_schema()
            released = [(n, parse_schema(text)) for n, text in contract.released()]
        except ContractError as exc:
            findings.append(CheckFinding(subject, False, str(exc)))
            continue
        problems = check_compatibility(working, released, spec.compatibility)
        for problem in problems:
            findings.append(
                CheckFinding(subject, False, f"{spec.compatibility}: {problem.explain()}")
            )
        if not problems:
            findings.append(
                CheckFinding(
                    subject,
                    True,
                    f"working copy is {spec.compatibility} with released "
                    f"v1..v{len(released)} (Apache Avro checker)",
                )
            )
        if not contract.is_released():
            findings.append(
                CheckFinding(
                    subject,
                    True,
                    f"working copy differs from v{len(released)}: unreleased change "
                    "(`routeiq schemas release` freezes it)",
                )
            )
        if registry_url is not None:
            findings.extend(_check_registry(registry_url, spec, working))
    return findings


def _check_registry(registry_url: str, spec: TopicSpec, working: Any) -> list[CheckFinding]:
    """Ask the running registry (REST, verbose) whether the working copy may be registered."""
    subject = spec.value_subject
    base = f"{registry_url}/subjects/{quote(subject, safe='')}"
    headers = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
    try:
        config = httpx.get(f"{registry_url}/config/{quote(subject, safe='')}", timeout=10)
        if (
            config.status_code == 404
            or httpx.get(f"{base}/versions", timeout=10).status_code == 404
        ):
            return [
                CheckFinding(
                    subject,
                    False,
                    "registry: subject not registered; run `routeiq schemas register`",
                )
            ]
        level = config.json().get("compatibilityLevel")
        verdict = httpx.post(
            f"{registry_url}/compatibility/subjects/{quote(subject, safe='')}/versions/latest",
            params={"verbose": "true"},
            headers=headers,
            content=json.dumps({"schema": canonical_text(working)}),
            timeout=10,
        )
    except httpx.HTTPError as exc:
        return [CheckFinding(subject, False, f"registry unreachable at {registry_url}: {exc}")]
    out = []
    if level != spec.compatibility.value:
        out.append(
            CheckFinding(
                subject, False, f"registry: level is {level}, declared {spec.compatibility.value}"
            )
        )
    if verdict.status_code != 200:
        out.append(
            CheckFinding(subject, False, f"registry: HTTP {verdict.status_code} {verdict.text}")
        )
        return out
    body = verdict.json()
    ok = bool(body.get("is_compatible"))
    detail = "; ".join(body.get("messages") or [])
    out.append(
        CheckFinding(
            subject,
            ok,
            f"registry: working copy is {'compatible' if ok else 'INCOMPATIBLE'} under {level}"
            + (f": {detail}" if detail else ""),
        )
    )
    return out


def release(specs: Iterable[TopicSpec], *, root: Path | None = None) -> list[Path]:
    """Freeze each changed working copy as the next released version (after checking it).

    The new file's sha256 is appended to ``released/SHA256SUMS``, which a unit test checks so
    that a released version can never be edited in place.
    """
    root = root or schemas_dir()
    written = []
    for spec in specs:
        contract = spec.contract
        if contract.is_released(root):
            continue
        released = [(n, parse_schema(t)) for n, t in contract.released(root)]
        problems = check_compatibility(contract.working_schema(root), released, spec.compatibility)
        if problems:
            raise IncompatibleSchemaError(
                f"{contract.stem}: not releasing an incompatible working copy",
                reasons=[p.explain() for p in problems],
            )
        path = contract.released_dir(root) / f"v{len(released) + 1}.avsc"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = contract.working_text(root)
        path.write_text(text)
        with (root / "released" / "SHA256SUMS").open("a") as sums:
            digest = hashlib.sha256(text.encode()).hexdigest()
            sums.write(f"{digest}  {path.relative_to(root / 'released')}\n")
        written.append(path)
    return written


# ------------------------------------------------------------------ docs


def _type_name(avro_type: Any) -> str:
    if isinstance(avro_type, list):
        names = [_type_name(t) for t in avro_type]
        if len(names) == 2 and "null" in names:
            return f"{next(n for n in names if n != 'null')} (nullable)"
        return " \\| ".join(names)
    if isinstance(avro_type, dict):
        kind = avro_type["type"]
        if "logicalType" in avro_type:
            return f"{avro_type['logicalType']} ({kind})"
        if kind == "array":
            return f"array<{_type_name(avro_type['items'])}>"
        if kind == "map":
            return f"map<string, {_type_name(avro_type['values'])}>"
        if kind in {"record", "enum", "fixed"}:
            if kind == "enum":
                return f"enum {avro_type['name']} {{{', '.join(avro_type['symbols'])}}}"
            return f"{kind} {avro_type['name']}"
        return _type_name(kind)
    return str(avro_type)


def _walk(fields: list[dict[str, Any]], prefix: str = "") -> Iterable[tuple[str, dict[str, Any]]]:
    for field in fields:
        path = f"{prefix}{field['name']}"
        yield path, field
        inner = field["type"]
        if isinstance(inner, list):
            inner = next((t for t in inner if t != "null"), inner)
        suffix = ""
        if isinstance(inner, dict) and inner.get("type") == "array":
            inner, suffix = inner["items"], "[]"
        if isinstance(inner, dict) and inner.get("type") == "record":
            yield from _walk(inner["fields"], f"{path}{suffix}.")


def _paths(schema_text: str) -> set[str]:
    return {path for path, _ in _walk(json.loads(schema_text)["fields"])}


def render_docs(specs: Iterable[TopicSpec]) -> str:
    """Markdown: one table of fields per contract, with the version that introduced each."""
    out = [
        "# Event contracts",
        "",
        "Generated by `routeiq schemas docs` from `schemas/`; do not edit by hand "
        "(a unit test fails when this file is stale).",
        "",
        "Values are Avro in Confluent's wire format (magic byte 0, 4-byte schema id); subjects "
        "follow TopicNameStrategy (`<topic>-value`); keys are UTF-8 strings.",
        "",
    ]
    for spec in specs:
        contract = spec.contract
        released = contract.released()
        first_seen: dict[str, int] = {}
        for number, text in released:
            for path in _paths(text):
                first_seen.setdefault(path, number)
        doc = json.loads(contract.working_text())
        out += [
            f"## {doc['name']} — `{spec.name}`",
            "",
            doc.get("doc", ""),
            "",
            f"- key: {spec.key}; subject `{spec.value_subject}`; compatibility "
            f"`{spec.compatibility.value}`; partitions {spec.partitions}"
            + (f"; configs `{spec.configs}`" if spec.configs else ""),
            f"- released versions: {', '.join(f'v{n}' for n, _ in released)} "
            f"(`schemas/released/{contract.stem}/`)",
            "",
            "| field | type | default | since | description |",
            "| --- | --- | --- | --- | --- |",
        ]
        for path, field in _walk(doc["fields"]):
            default = json.dumps(field["default"]) if "default" in field else "—"
            since = f"v{first_seen[path]}" if path in first_seen else "unreleased"
            description = field.get("doc", "").replace("|", "\\|")
            out.append(
                f"| `{path}` | {_type_name(field['type'])} | {default} | {since} | {description} |"
            )
        out.append("")
    return "\n".join(out)
