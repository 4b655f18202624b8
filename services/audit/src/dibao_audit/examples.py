"""Examples of the auditor interface's answers, for its OpenAPI document.

They are one small log made with the log's own code, not typed by hand: four records of
``dibao.intake.v1`` (two households registered, in Lanzhou and Beijing, then an
application of the first withdrawn and the second household registered again), their
leaves, the tree, and two checkpoints (sizes 2 and 4) signed with an example key
(:data:`EXAMPLE_SEED`, published nowhere). So a client's engineer can run a verifier on
them: the entry's canonical bytes hash to its ``leaf_hash``, its inclusion proof leads to
the root of the checkpoint of size 4, whose signature verifies with the example
``vkey``, and the consistency proof from 2 to 4 joins the two roots
(``tests/api/test_openapi_examples.py`` does exactly that).
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message

from dibao.common.v1 import types_pb2
from dibao.intake.v1 import events_pb2 as intake_pb2
from dibao.intake.v1 import types_pb2 as intake_types
from dibao_audit import merkle
from dibao_audit.checkpoint import CheckpointSigner
from dibao_audit.entry import RecordedEvent, canonical_bytes, entry_to_b64
from dibao_audit.projection import decoded_view
from dibao_audit.service import mask_personal
from dibao_audit.verifier import ExportHeader
from dibao_common.messaging.envelope import Envelope, EventRegistry, ce_type_of, topic_of

EXAMPLE_SEED = hashlib.sha256(b"dibao audit OpenAPI example key: signs nothing real").digest()
ORIGIN = "dibao.audit/example"
LANZHOU = "620102001001"
BEIJING = "110101001001"
HOUSEHOLD = "0193a5b2-7c41-7e8a-9f10-2b3c4d5e6f70"
OTHER_HOUSEHOLD = "0193a5b3-0d22-7b10-8c44-5e6f708192a3"
APPLICATION = "0193a5b4-51e0-7c3d-a2b1-93c4d5e6f7a8"
ACTOR = "clerk-620102-07"
_T0 = datetime(2026, 11, 3, 1, 12, 5, tzinfo=UTC)
_APPENDED = datetime(2026, 11, 3, 1, 12, 6, 412000, tzinfo=UTC)
_SIGNED = (
    datetime(2026, 11, 3, 1, 12, 30, tzinfo=UTC),
    datetime(2026, 11, 3, 1, 13, 30, tzinfo=UTC),
)


def _registered(household: str, region: str, name: str) -> intake_pb2.HouseholdRegistered:
    person = types_pb2.PersonRef(
        person_id=f"{household[:8]}-p1", keyed_hash="3f9a" * 16, masked_name=name
    )
    return intake_pb2.HouseholdRegistered(
        household_id=household,
        region=types_pb2.RegionCode(code=region),
        household=intake_types.HouseholdSnapshot(
            household_id=household, members=[intake_types.Member(person=person)]
        ),
    )


_MESSAGES: list[tuple[Message, str]] = [
    (_registered(HOUSEHOLD, LANZHOU, "张*丰"), HOUSEHOLD),
    (_registered(OTHER_HOUSEHOLD, BEIJING, "李*"), OTHER_HOUSEHOLD),
    (
        intake_pb2.ApplicationWithdrawn(
            household_id=HOUSEHOLD,
            region=types_pb2.RegionCode(code=LANZHOU),
            application_id=APPLICATION,
        ),
        HOUSEHOLD,
    ),
    (_registered(OTHER_HOUSEHOLD, BEIJING, "李*"), OTHER_HOUSEHOLD),
]


def _record(i: int, message: Message, key: str) -> RecordedEvent:
    envelope = Envelope(
        ce_id=uuid.UUID(int=0x0193A5B2_7C41_7E8A_8000_000000000000 + i),
        ce_type=ce_type_of(message),
        ce_source="dibao/intake",
        ce_time=_T0.replace(second=_T0.second + i),
        ce_subject=None,
        key=key,
        payload=message.SerializeToString(),
        actor=ACTOR,
    )
    return RecordedEvent(
        topic=topic_of(message),
        partition=0,
        offset=1040 + i,
        key=key.encode(),
        headers=tuple(envelope.to_headers()),
        payload=envelope.payload,
    )


RECORDS = [_record(i, m, k) for i, (m, k) in enumerate(_MESSAGES)]
LEAVES = [merkle.leaf_hash(canonical_bytes(r)) for r in RECORDS]
_SIGNER = CheckpointSigner(EXAMPLE_SEED, ORIGIN)
VKEY = _SIGNER.verifier.vkey()


def _hashes(ranges: list[merkle.Range]) -> list[str]:
    return [merkle.root_of(LEAVES[lo:hi]).hex() for lo, hi in ranges]


def _checkpoint(size: int, signed_at: datetime, previous: int | None) -> dict[str, Any]:
    root = merkle.root_of(LEAVES[:size])
    return {
        "checkpoint_id": str(uuid.UUID(int=0x0193A5B2_9000_7000_8000_000000000000 + size)),
        "tree_size": size,
        "root_hash": root.hex(),
        "signed_note": _SIGNER.sign(size, root, signed_at),
        "key_id": _SIGNER.verifier.key_id,
        "signed_at": signed_at.isoformat().replace("+00:00", "Z"),
        "previous_tree_size": previous,
        "cosigned_note": _SIGNER.sign(size, root, signed_at),
        "cosignatures": [],
    }


CHECKPOINT_2 = _checkpoint(2, _SIGNED[0], None)
CHECKPOINT = _checkpoint(4, _SIGNED[1], 2)


def _entry(i: int) -> dict[str, Any]:
    message, _ = _MESSAGES[i]
    record = RECORDS[i]
    region = LANZHOU if i in (0, 2) else BEIJING
    return {
        "index": i,
        "ce_id": str(uuid.UUID(int=0x0193A5B2_7C41_7E8A_8000_000000000000 + i)),
        "ce_type": ce_type_of(message),
        "ce_time": _T0.replace(second=_T0.second + i).isoformat().replace("+00:00", "Z"),
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "household_id": HOUSEHOLD if i in (0, 2) else OTHER_HOUSEHOLD,
        "application_id": APPLICATION if i == 2 else None,
        "case_id": None,
        "region": region,
        "actor": ACTOR,
        "regions": None,
        "leaf_hash": LEAVES[i].hex(),
        "appended_at": _APPENDED.isoformat().replace("+00:00", "Z"),
        "contradicted": {},
    }


def _masked_view(i: int) -> Any:
    return mask_personal(decoded_view(RECORDS[i], EventRegistry.default()))


ENTRY_WITH_PROOF: dict[str, Any] = {
    "entry": _entry(0),
    "decoded": _masked_view(0),
    "masked": True,
    "headers": [[k, base64.b64encode(v).decode()] for k, v in sorted(RECORDS[0].headers)],
    "payload": base64.b64encode(RECORDS[0].payload).decode(),
    "record_key": base64.b64encode(RECORDS[0].key or b"").decode(),
    "proof": {
        "index": 0,
        "tree_size": 4,
        "leaf_hash": LEAVES[0].hex(),
        "path": _hashes(merkle.inclusion_ranges(0, 4)),
        "checkpoint": CHECKPOINT["signed_note"],
    },
}
ENTRY_PAGE: dict[str, Any] = {
    "items": [_entry(0), _entry(2)],
    "next_cursor": base64.urlsafe_b64encode(b"i:2").decode(),
    "regions_without_entries": [],
}
CHECKPOINT_PAGE: dict[str, Any] = {"items": [CHECKPOINT, CHECKPOINT_2], "next_cursor": None}
CONSISTENCY: dict[str, Any] = {
    "from_size": 2,
    "to_size": 4,
    "path": _hashes(merkle.consistency_ranges(2, 4)),
}
PUBLIC_KEY: dict[str, Any] = {
    "algorithm": "Ed25519",
    "origin": ORIGIN,
    "key_id": _SIGNER.verifier.key_id,
    "vkey": VKEY,
    "public_key": base64.b64encode(_SIGNER.verifier.public_raw).decode(),
    "keys": [
        {"vkey": VKEY, "key_id": _SIGNER.verifier.key_id, "from_tree_size": 0, "to_tree_size": None}
    ],
    "handovers": [],
}
TIMELINE: dict[str, Any] = {
    "household_id": HOUSEHOLD,
    "masked": True,
    "items": [
        {
            "index": i,
            "ce_type": _entry(i)["ce_type"],
            "ce_time": _entry(i)["ce_time"],
            "actor": ACTOR,
            "application_id": _entry(i)["application_id"],
            "case_id": None,
            "decoded": _masked_view(i),
            "contradicted": {},
        }
        for i in (0, 2)
    ],
    "next_cursor": None,
}


def _export() -> str:
    """``GET /audit/export?start=1&end=3&from_size=2`` by a Lanzhou auditor: the header,
    Beijing's entry 1 by its leaf hash only, Lanzhou's entry 2 in full."""
    header = ExportHeader(
        origin=ORIGIN,
        start=1,
        end=3,
        tree_size=4,
        checkpoint=CHECKPOINT["signed_note"],
        cover={(lo, hi): merkle.root_of(LEAVES[lo:hi]) for lo, hi in merkle.range_cover(1, 3, 4)},
        history=[CHECKPOINT_2["signed_note"]],
        consistency={(2, 4): [bytes.fromhex(h) for h in CONSISTENCY["path"]]},
    )
    lines = [
        header.to_json(),
        {"index": 1, "leaf_hash": LEAVES[1].hex(), "redacted": True},
        {"index": 2, "leaf_hash": LEAVES[2].hex(), "entry": entry_to_b64(RECORDS[2])},
    ]
    return "".join(json.dumps(line) + "\n" for line in lines)


EXPORT = _export()
