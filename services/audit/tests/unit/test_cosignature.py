"""Witness cosignatures (C2SP tlog-cosignature, Ed25519 cosignature/v1; docs/adr/0024).

Known answers from the spec and from a reference implementation, then the properties:
the signature covers the whole body (extension lines too), names its witness by name and
key ID, carries its time, and a quorum counts distinct trusted witnesses only.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest

from dibao_audit.checkpoint import CheckpointSigner, VerifierKey
from dibao_audit.cosignature import (
    CosignatureError,
    Cosigner,
    WitnessKey,
    check_quorum,
    note_body,
    signed_message,
    timestamp_of,
    with_cosignatures,
)

ORIGIN = "dibao.audit/test"
AT = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
ROOT = hashlib.sha256(b"root").digest()
# C2SP tlog-cosignature's example (checkpoint, its cosignature line by witness.example.com/w1,
# and the message it documents for time 1679315147).
SPEC_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SPEC_COSIGNATURE = (
    "\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dl"
    "rDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA=="
)


def _seed(name: bytes) -> bytes:
    return hashlib.sha256(name).digest()


def _note() -> str:
    return CheckpointSigner(_seed(b"log"), ORIGIN).sign(7, ROOT, AT)


def test_the_spec_example_message_and_timestamp() -> None:
    """tlog-cosignature's example: the line's timestamp is the one its message shows, and
    the message is header, time line and the checkpoint body, byte for byte."""
    assert timestamp_of(SPEC_COSIGNATURE) == 1679315147
    assert signed_message(SPEC_BODY, 1679315147) == (
        b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
        b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )
    # key ID 8d66cf3f, big-endian timestamp after it
    raw = base64.b64decode(SPEC_COSIGNATURE.rpartition(" ")[2])
    assert raw[:4].hex() == "8d66cf3f"


def test_a_published_witness_vkey_and_a_reference_timestamp() -> None:
    """transparency-dev/formats' vectors: a live witness's cosignature/v1 vkey (type 0x04)
    parses with its key ID (SHA-256 over name, newline, 0x04, key), and its timestamp test
    signature carries 1727964367."""
    key = WitnessKey.parse("remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2")
    assert key.name == "remora.n621.de"
    assert key.key_id == "da77ade7"
    assert key.vkey() == "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
    line = (
        "\u2014 x ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxE"
        "HWWOworDcFiEBYJXORmnFBOBA=="
    )
    assert timestamp_of(line) == 1727964367


def test_a_log_key_is_not_a_witness_key() -> None:
    """The type byte keeps the two apart: a log vkey (0x01) is refused as a witness's."""
    log_vkey = CheckpointSigner(_seed(b"log"), ORIGIN).verifier.vkey()
    with pytest.raises(CosignatureError, match="type 0x04"):
        WitnessKey.parse(log_vkey)
    witness = Cosigner(_seed(b"w1"), "witness.test/w1").key
    assert witness.key_id != VerifierKey("witness.test/w1", witness.public_raw).key_id
    with pytest.raises(CosignatureError, match="key ID"):
        WitnessKey.parse(witness.vkey().replace(witness.key_id, "00000000"))


def test_a_cosignature_round_trips_and_the_log_signature_still_verifies() -> None:
    cosigner = Cosigner(_seed(b"w1"), "witness.test/w1")
    note = _note()
    cosigned = with_cosignatures(note, [cosigner.cosign(note, 1_796_300_000)])
    found = WitnessKey.parse(cosigner.key.vkey()).verify(cosigned)
    assert found.timestamp == 1_796_300_000
    assert found.signed_at == datetime.fromtimestamp(1_796_300_000, UTC)
    # The log's own verifier ignores the witness's line.
    checkpoint = CheckpointSigner(_seed(b"log"), ORIGIN).verifier.verify(cosigned)
    assert checkpoint.tree_size == 7
    assert note_body(cosigned) == note_body(note)


def test_the_signature_covers_the_time_the_body_and_its_extension_lines() -> None:
    cosigner = Cosigner(_seed(b"w1"), "witness.test/w1")
    note = _note()
    line = cosigner.cosign(note, 1_796_300_000)
    raw = bytearray(base64.b64decode(line.rpartition(" ")[2]))
    raw[11] ^= 1  # another time
    other_time = line.rpartition(" ")[0] + " " + base64.b64encode(bytes(raw)).decode() + "\n"
    with pytest.raises(CosignatureError, match="does not verify"):
        cosigner.key.verify(with_cosignatures(note, [other_time]))
    # the time line (an extension line) edited: the cosignature no longer verifies
    edited = note.replace("time ", "time 1", 1)
    with pytest.raises(CosignatureError, match="does not verify"):
        cosigner.key.verify(with_cosignatures(edited, [line]))
    # another root
    other = CheckpointSigner(_seed(b"log"), ORIGIN).sign(7, hashlib.sha256(b"x").digest(), AT)
    with pytest.raises(CosignatureError, match="does not verify"):
        cosigner.key.verify(with_cosignatures(other, [line]))


def test_another_witness_or_none_is_no_cosignature() -> None:
    note = _note()
    w1 = Cosigner(_seed(b"w1"), "witness.test/w1")
    w2 = Cosigner(_seed(b"w2"), "witness.test/w2")
    with pytest.raises(CosignatureError, match=r"no cosignature by witness\.test/w2"):
        w2.key.verify(with_cosignatures(note, [w1.cosign(note, 1)]))
    with pytest.raises(CosignatureError, match="no cosignature"):
        w1.key.verify(note)
    # w2's key under w1's name: named w1, but the key ID is w2's, so w1's is not there
    impostor = Cosigner(_seed(b"w2"), "witness.test/w1")
    with pytest.raises(CosignatureError, match="no cosignature"):
        w1.key.verify(with_cosignatures(note, [impostor.cosign(note, 1)]))


def test_a_quorum_counts_distinct_trusted_witnesses() -> None:
    note = _note()
    w1, w2, w3 = (Cosigner(_seed(n), f"witness.test/{n.decode()}") for n in (b"w1", b"w2", b"w3"))
    keys = [w1.key, w2.key, w3.key]
    two = with_cosignatures(note, [w1.cosign(note, 5), w2.cosign(note, 6)])
    assert check_quorum(two, keys, 2).met
    short = check_quorum(two, keys, 3)
    assert not short.met
    assert short.missing == [w3.key]
    assert short.problems == []
    # the same witness twice counts once
    twice = with_cosignatures(note, [w1.cosign(note, 5), w1.cosign(note, 6)])
    assert not check_quorum(twice, keys, 2).met
    # a forged line by a trusted witness: not counted, and named
    raw = bytearray(base64.b64decode(w2.cosign(note, 6).rpartition(" ")[2]))
    raw[-1] ^= 1
    forged = f"\u2014 witness.test/w2 {base64.b64encode(bytes(raw)).decode()}"
    q = check_quorum(with_cosignatures(note, [w1.cosign(note, 5), forged]), keys, 2)
    assert not q.met
    assert q.problems == [f"the cosignature by witness.test/w2+{w2.key.key_id} does not verify"]
    with pytest.raises(CosignatureError, match="quorum"):
        check_quorum(two, keys, 4)
    with pytest.raises(CosignatureError, match="quorum"):
        check_quorum(two, keys, 0)
