"""The contract files themselves: parse, history intact, compatible, documented, text-free."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from routeiq.contracts import CONTRACTS, TOPICS, schemas_dir
from routeiq.contracts.compatibility import check_compatibility, parse_schema
from routeiq.errors import IncompatibleSchemaError
from routeiq_cli import schemas as schema_ops

ROOT = schemas_dir()


def test_every_contract_has_a_topic_and_history() -> None:
    assert {spec.contract for spec in TOPICS} == set(CONTRACTS)
    for contract in CONTRACTS:
        released = contract.released()
        assert released, contract.stem
        for _, text in released:
            parse_schema(text)
        assert contract.is_released(), f"{contract.stem}: unreleased working copy committed"


def test_released_versions_are_never_edited() -> None:
    recorded = {}
    for line in (ROOT / "released" / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        recorded[name] = digest
    on_disk = {
        str(path.relative_to(ROOT / "released")): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in (ROOT / "released").glob("*/v*.avsc")
    }
    assert on_disk == recorded


@pytest.mark.parametrize("spec", TOPICS, ids=lambda s: s.name)
def test_working_copy_compatible_with_every_released_version(spec) -> None:
    released = [(n, parse_schema(t)) for n, t in spec.contract.released()]
    assert check_compatibility(spec.contract.working_schema(), released, spec.compatibility) == []


def test_offline_check_reports_all_ok() -> None:
    findings = schema_ops.check(TOPICS, registry_url=None)
    assert findings
    assert all(f.ok for f in findings), [f.message for f in findings if not f.ok]


FORBIDDEN = {
    "prompt",
    "prompts",
    "response",
    "responses",
    "messages",
    "content",
    "text",
    "completion",
    "query",
    "answer",
    "question",
}


def _field_names(schema) -> set[str]:
    names: set[str] = set()
    if isinstance(schema, list):
        for branch in schema:
            names |= _field_names(branch)
    elif isinstance(schema, dict):
        for field in schema.get("fields", []):
            names.add(field["name"].lower())
            names |= _field_names(field["type"])
        for key in ("items", "values"):
            if key in schema:
                names |= _field_names(schema[key])
    return names


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.stem)
def test_no_contract_can_carry_prompt_or_response_text(contract) -> None:
    texts = [contract.working_text()] + [t for _, t in contract.released()]
    for text in texts:
        assert not (_field_names(json.loads(text)) & FORBIDDEN)


def test_docs_are_generated_from_the_current_schemas() -> None:
    docs = ROOT.parent / "docs" / "contracts.md"
    assert docs.read_text() == schema_ops.render_docs(TOPICS), "run `make docs`"


def test_docs_say_which_version_introduced_each_field() -> None:
    text = schema_ops.render_docs(TOPICS)
    assert "| `candidate_deployments[].propensity` | double (nullable) | null | v2 |" in text
    assert "| `event_id` | string | — | v1 |" in text


def _copy_schemas(tmp_path: Path) -> Path:
    root = tmp_path / "schemas"
    shutil.copytree(ROOT, root)
    return root


def test_release_freezes_a_compatible_change_and_records_its_hash(tmp_path) -> None:
    root = _copy_schemas(tmp_path)
    path = root / "feedback.avsc"
    doc = json.loads(path.read_text())
    doc["fields"].append(
        {"name": "locale", "type": ["null", "string"], "default": None, "doc": "test"}
    )
    path.write_text(json.dumps(doc, indent=2))
    # The next version after those already released.
    new = f"v{len(list((root / 'released' / 'feedback').glob('v*.avsc'))) + 1}.avsc"
    written = schema_ops.release(TOPICS, root=root)
    assert [p.relative_to(root).as_posix() for p in written] == [f"released/feedback/{new}"]
    assert written[0].read_text() == path.read_text()
    sums = (root / "released" / "SHA256SUMS").read_text()
    assert f"{hashlib.sha256(path.read_bytes()).hexdigest()}  feedback/{new}" in sums
    assert schema_ops.release(TOPICS, root=root) == []  # idempotent


def test_release_refuses_an_incompatible_change_and_says_why(tmp_path) -> None:
    root = _copy_schemas(tmp_path)
    path = root / "feedback.avsc"
    doc = json.loads(path.read_text())
    # A new required field without a default: new readers cannot read old feedback.
    doc["fields"].append({"name": "rubric", "type": "string", "doc": "test"})
    path.write_text(json.dumps(doc))
    released = sorted((root / "released" / "feedback").glob("v*.avsc"))
    with pytest.raises(IncompatibleSchemaError) as info:
        schema_ops.release(TOPICS, root=root)
    assert any("rubric" in r and "version 1" in r for r in info.value.reasons), info.value.reasons
    assert sorted((root / "released" / "feedback").glob("v*.avsc")) == released
