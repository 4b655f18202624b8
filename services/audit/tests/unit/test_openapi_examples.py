"""The audit OpenAPI document as a first-time integrator reads it: every parameter said,
every answer shown by an example, and the examples a log that verifies (2 Dec 2026: the
document had no example, and the `limit`, `tree_size`, `start`, `end`, `from_size` and
`to_size` parameters no description)."""

from __future__ import annotations

import base64
import json
from http import HTTPStatus
from typing import Any

import pytest
from pydantic import BaseModel

from dibao_audit import api, examples
from dibao_audit.checkpoint import VerifierKey
from dibao_audit.entry import RecordedEvent, canonical_bytes
from dibao_audit.main import create_app
from dibao_audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from dibao_audit.settings import AuditSettings
from dibao_audit.testing import TEST_SEED
from dibao_audit.verifier import read_export, verify_export
from dibao_common.errors import PROBLEM_TYPE_BASE
from dibao_common.testing.auth_fixtures import make_auth_settings
from dibao_common.testing.openapi import problem_examples, problem_examples_wrong
from dibao_common.testing.service_env import common_secret_values


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    settings = AuditSettings(
        database_url="postgresql+asyncpg://unused@127.0.0.1:1/unused",
        kafka_bootstrap="127.0.0.1:1",
        **common_secret_values(),
        audit_signing_key=base64.b64encode(TEST_SEED).decode(),
    )
    return create_app(settings, auth=make_auth_settings()).openapi()


def _operations(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", op)
        for path, item in spec["paths"].items()
        if path.startswith("/audit/")
        for method, op in item.items()
    ]


def test_every_parameter_is_described(spec: dict[str, Any]) -> None:
    undescribed = [
        (name, p["name"])
        for name, op in _operations(spec)
        for p in op.get("parameters", [])
        if not p.get("description", "").strip()
    ]
    assert len(_operations(spec)) == 9
    assert undescribed == []


def test_every_operation_reaching_the_log_declares_its_503(spec: dict[str, Any]) -> None:
    """Every audit operation reads the database: a client is told it may retry an outage
    (ADR 0022), 503 database-unavailable with Retry-After, shown by the kit's problem."""
    for path, item in spec["paths"].items():
        if not path.startswith("/audit/"):
            continue
        for method, operation in item.items():
            unavailable = operation["responses"]["503"]
            assert "Retry-After" in unavailable["headers"], (method, path)
            examples = unavailable["content"]["application/problem+json"]["examples"]
            # And, when it takes a token, the issuer's keys out of reach (ADR 0004).
            token = {"authentication-unavailable"} if "401" in operation["responses"] else set()
            assert {e["value"]["type"] for e in examples.values()} == {
                PROBLEM_TYPE_BASE + slug for slug in {"database-unavailable", *token}
            }, (method, path)


def test_every_answer_has_an_example(spec: dict[str, Any]) -> None:
    missing = [
        (name, media_type)
        for name, op in _operations(spec)
        for media_type, content in op["responses"]["200"]["content"].items()
        if "example" not in content and "examples" not in content
    ]
    assert missing == []
    schemas = spec["components"]["schemas"]
    for problem in ("EntryNotCovered", "CheckpointNotFound"):
        assert schemas[problem].get("examples"), problem


_MODELS: dict[str, type[BaseModel]] = {
    "GET /audit/public-key": api.PublicKeyOut,
    "GET /audit/checkpoints/latest": api.CheckpointOut,
    "GET /audit/checkpoints": api.CheckpointPage,
    "GET /audit/checkpoints/{tree_size}": api.CheckpointOut,
    "GET /audit/entries": api.EntryPage,
    "GET /audit/entries/{index}": api.EntryWithProofOut,
    "GET /audit/proofs/consistency": api.ConsistencyProofOut,
    "GET /audit/households/{household_id}/timeline": api.TimelineOut,
}


def test_each_example_is_what_its_operation_answers(spec: dict[str, Any]) -> None:
    """Each JSON example is read by the response model without loss (no member the model
    lacks, none it requires missing), and each problem example is a problem of its kind."""
    for name, op in _operations(spec):
        if name not in _MODELS:
            continue
        example = op["responses"]["200"]["content"]["application/json"]["example"]
        model = _MODELS[name]
        parsed = model.model_validate(example)
        again = json.loads(parsed.model_dump_json())
        assert again == json.loads(json.dumps(example)), name
    schemas = spec["components"]["schemas"]
    for problem, model in (
        ("EntryNotCovered", api.EntryNotCovered),
        ("CheckpointNotFound", api.CheckpointNotFound),
    ):
        for example in schemas[problem]["examples"]:
            model.model_validate(example)
            assert example["type"].startswith(PROBLEM_TYPE_BASE), example
            assert example["title"] == HTTPStatus(example["status"]).phrase, example


def test_the_examples_are_a_log_that_verifies() -> None:
    """What an integrator would check with the examples alone: the entry's record hashes
    to its leaf, its proof leads to the signed root, the key the public-key example
    publishes signed both checkpoints, the consistency proof joins them, and the export
    example verifies offline with that key."""
    key = VerifierKey.parse(examples.PUBLIC_KEY["vkey"])
    latest = key.verify(examples.CHECKPOINT["signed_note"])
    earlier = key.verify(examples.CHECKPOINT_2["signed_note"])
    assert latest.root_hash.hex() == examples.CHECKPOINT["root_hash"]
    assert (earlier.tree_size, latest.tree_size) == (2, 4)
    shown = examples.ENTRY_WITH_PROOF
    record = RecordedEvent(
        topic=shown["entry"]["topic"],
        partition=shown["entry"]["partition"],
        offset=shown["entry"]["offset"],
        key=base64.b64decode(shown["record_key"]),
        headers=tuple((k, base64.b64decode(v)) for k, v in shown["headers"]),
        payload=base64.b64decode(shown["payload"]),
    )
    leaf = leaf_hash(canonical_bytes(record))
    assert leaf.hex() == shown["proof"]["leaf_hash"] == shown["entry"]["leaf_hash"]
    assert shown["proof"]["checkpoint"] == examples.CHECKPOINT["signed_note"]
    verify_inclusion(
        shown["proof"]["index"],
        shown["proof"]["tree_size"],
        leaf,
        [bytes.fromhex(h) for h in shown["proof"]["path"]],
        latest.root_hash,
    )
    proof = examples.CONSISTENCY
    verify_consistency(
        proof["from_size"],
        proof["to_size"],
        earlier.root_hash,
        latest.root_hash,
        [bytes.fromhex(h) for h in proof["path"]],
    )
    for item in examples.ENTRY_PAGE["items"]:
        assert item["leaf_hash"] == examples.LEAVES[item["index"]].hex()
    header, lines = read_export(examples.EXPORT.splitlines())
    report = verify_export(header, lines, key, kept=[examples.CHECKPOINT_2["signed_note"]])
    assert report.ok, report.problems
    assert (report.checked, report.redacted) == (1, 1)


def test_every_error_response_shows_examples_its_schema_takes(spec: dict[str, Any]) -> None:
    """2 Dec 2026: the problem responses had no example (the kit dropped them moving each
    to problem+json). Each declared 4xx/5xx now shows examples its schema takes; a status
    with a problem model of its own shows that problem's, on the operation's own path."""
    assert problem_examples_wrong(spec) == []
    shown: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for name, status, example, _ in problem_examples(spec):
        shown.setdefault((name, status), []).append(example)
    for name, op in _operations(spec):
        for status in op["responses"]:
            if status.startswith(("4", "5")):
                assert shown.get((name, status)), (name, status)

    def types(name: str, status: str) -> set[str]:
        return {e["type"].removeprefix(PROBLEM_TYPE_BASE) for e in shown[(name, status)]}

    assert types("GET /audit/entries/{index}", "409") == {"entry-not-covered"}
    assert types("GET /audit/entries/{index}", "404") == {"entry-not-found", "checkpoint-not-found"}
    assert types("GET /audit/export", "400") >= {"bad-range", "bad-tree-sizes"}
    assert types("GET /audit/proofs/consistency", "400") == {"bad-tree-sizes"}
    assert types("GET /audit/households/{household_id}/timeline", "404") == {"household-not-found"}
    assert types("GET /audit/entries", "400") == {"bad-time", "invalid-cursor"}
    for example in shown[("GET /audit/export", "404")]:
        assert example["instance"] == "/audit/export"
    waiting = shown[("GET /audit/checkpoints/latest", "404")]
    assert sorted(e["log_size"] for e in waiting) == [0, 3]
