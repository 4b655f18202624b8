"""Signed notes with several signatures, and following a key rotation (docs/adr/0018).

A hand-over checkpoint names the old and the new key and is signed by both; a verifier
trusts the new key only from a hand-over a key it already trusts signed, and the old key
for no tree beyond it. Pure: notes and exports built here, no service.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from dibao_audit.checkpoint import (
    CheckpointError,
    CheckpointSigner,
    KeyTrust,
    VerifierKey,
    handover_of,
)
from dibao_audit.entry import RecordedEvent, canonical_bytes, entry_to_b64
from dibao_audit.merkle import (
    Frontier,
    consistency_ranges,
    hash_ranges,
    leaf_hash,
    range_cover,
)
from dibao_audit.settings import AuditSettings
from dibao_audit.testing import KEY_ID_TWINS
from dibao_audit.verifier import ExportHeader, verify_export
from dibao_common.testing.service_env import common_secret_values

ORIGIN = "dibao.audit/test"
AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
OLD, NEW, NEWER, MALLORY = (hashlib.sha256(n).digest() for n in (b"old", b"new", b"newer", b"m"))


def _key(seed: bytes) -> VerifierKey:
    return CheckpointSigner(seed, ORIGIN).verifier


def _signatures(note: str) -> list[str]:
    return note.partition("\n\n")[2].splitlines()


def test_a_hand_over_is_one_body_signed_by_both_keys() -> None:
    signer = CheckpointSigner(OLD, ORIGIN, next_seed=NEW)
    note, key_id = signer.sign_after(_key(OLD).key_id, 8, b"\x02" * 32, AT)
    assert key_id == _key(NEW).key_id
    assert len(_signatures(note)) == 2
    assert f"\nhandover {_key(OLD).vkey()} {_key(NEW).vkey()}\n" in note.partition("\n\n")[0] + "\n"
    for seed in (OLD, NEW):  # each signature alone verifies the one body
        checkpoint = _key(seed).verify(note)
        assert (checkpoint.tree_size, checkpoint.root_hash) == (8, b"\x02" * 32)
    found = handover_of(note)
    assert found is not None
    assert (found.tree_size, found.old, found.new) == (8, _key(OLD), _key(NEW))
    assert handover_of(CheckpointSigner(OLD, ORIGIN).sign(8, b"\x02" * 32, AT)) is None

    body, _, _ = note.partition("\n\n")
    first, _ = _signatures(note)
    other = CheckpointSigner(NEW, ORIGIN).sign(9, b"\x02" * 32, AT)
    swapped = body + "\n\n" + first + "\n" + _signatures(other)[0] + "\n"
    _key(OLD).verify(swapped)
    with pytest.raises(CheckpointError, match="does not verify"):
        _key(NEW).verify(swapped)  # the new key's line signs another body
    with pytest.raises(CheckpointError, match="no signature"):
        _key(NEW).verify(body + "\n\n" + first + "\n")


def test_the_signer_hands_over_once_then_signs_with_the_next_key_alone() -> None:
    old, new = _key(OLD), _key(NEW)
    alone = CheckpointSigner(OLD, ORIGIN)
    assert alone.sign_after(None, 1, b"\x01" * 32, AT)[1] == old.key_id
    assert alone.sign_after(old.key_id, 2, b"\x01" * 32, AT)[1] == old.key_id
    rotating = CheckpointSigner(OLD, ORIGIN, next_seed=NEW)
    handover, key_id = rotating.sign_after(old.key_id, 3, b"\x01" * 32, AT)
    assert key_id == new.key_id
    assert handover_of(handover) is not None
    after, key_id = rotating.sign_after(new.key_id, 4, b"\x01" * 32, AT)
    assert key_id == new.key_id
    assert len(_signatures(after)) == 1
    assert handover_of(after) is None
    new.verify(after)
    with pytest.raises(CheckpointError, match="no signature"):
        old.verify(after)
    # Once rotated, the new key configured alone goes on; a key no hand-over named is refused.
    assert CheckpointSigner(NEW, ORIGIN).sign_after(new.key_id, 5, b"\x01" * 32, AT)[1]
    with pytest.raises(CheckpointError, match="hand-over"):
        CheckpointSigner(NEW, ORIGIN).sign_after(old.key_id, 5, b"\x01" * 32, AT)
    with pytest.raises(ValueError, match="current one"):
        CheckpointSigner(OLD, ORIGIN, next_seed=OLD)


def _rotated(
    sizes: tuple[int, ...], handovers: dict[int, bytes], roots: dict[int, bytes] | None = None
) -> dict[int, str]:
    """Notes of an honest log (``roots`` by size, else made up): signed by the old key,
    handing over at each size of ``handovers`` to its seed."""
    notes, seed, last = {}, OLD, None
    for size in sizes:
        signer = CheckpointSigner(seed, ORIGIN, next_seed=handovers.get(size))
        root = roots[size] if roots is not None else bytes([size]) * 32
        notes[size], last = signer.sign_after(last, size, root, AT)
        seed = handovers.get(size, seed)
    return notes


def test_trust_follows_hand_overs_from_the_pinned_key_and_retires_the_old_one() -> None:
    notes = _rotated((5, 8, 9, 12, 20), {8: NEW, 12: NEWER})
    trust = KeyTrust.of(_key(OLD))
    assert trust.follow(notes.values()) == []
    assert [trust.verify(n).tree_size for n in notes.values()] == [5, 8, 9, 12, 20]
    assert [h["tree_size"] for h in trust.handovers] == [8, 12]
    summary = trust.summary()
    assert summary["pinned"] == [_key(OLD).vkey()]
    assert summary["used"] == sorted(k.vkey() for k in map(_key, (OLD, NEW, NEWER)))
    # The old key signs nothing past its hand-over; the new one nothing before it.
    with pytest.raises(CheckpointError, match="handed over at 8"):
        trust.verify(CheckpointSigner(OLD, ORIGIN).sign(9, b"\x09" * 32, AT))
    with pytest.raises(CheckpointError, match="trusted at size 7"):
        trust.verify(CheckpointSigner(NEW, ORIGIN).sign(7, b"\x07" * 32, AT))
    # Without the hand-overs the new keys are strangers.
    with pytest.raises(CheckpointError, match="trusted at size 20"):
        KeyTrust.of(_key(OLD)).verify(notes[20])


def test_a_pinned_new_key_follows_its_hand_over_back_and_several_keys_may_be_pinned() -> None:
    notes = _rotated((5, 8, 9), {8: NEW})
    back = KeyTrust.of(_key(NEW))
    assert back.follow(notes.values()) == []
    assert back.verify(notes[5]).tree_size == 5
    assert back.handovers[0]["followed"] == "backward"
    both = KeyTrust.of([_key(OLD), _key(NEW)])
    assert [both.verify(n).tree_size for n in notes.values()] == [5, 8, 9]


def test_a_forged_hand_over_moves_no_trust() -> None:
    honest = _rotated((5,), {})
    # Co-signed by a key nobody trusts, introducing the new one.
    forged, _ = CheckpointSigner(MALLORY, ORIGIN, next_seed=NEW).sign_after(
        None, 8, b"\x08" * 32, AT
    )
    later, _ = CheckpointSigner(NEW, ORIGIN).sign_after(_key(NEW).key_id, 9, b"\x09" * 32, AT)
    trust = KeyTrust.of(_key(OLD))
    problems = trust.follow([honest[5], forged, later])
    assert len(problems) == 1
    assert "signed by no key trusted there" in problems[0]
    with pytest.raises(CheckpointError, match="trusted at size 9"):
        trust.verify(later)
    # Naming the pinned key as the old one, but without its signature: not signed by both.
    genuine, _ = CheckpointSigner(OLD, ORIGIN, next_seed=NEW).sign_after(None, 8, b"\x08" * 32, AT)
    body = genuine.partition("\n\n")[0]
    unsigned = body + "\n\n" + _signatures(genuine)[1] + "\n"
    trust = KeyTrust.of(_key(OLD))
    (problem,) = trust.follow([unsigned])
    assert "not signed by both keys" in problem
    with pytest.raises(CheckpointError):
        trust.verify(later)


def test_two_hand_overs_from_one_key_are_a_fork_whichever_key_is_pinned() -> None:
    """Someone holding the old key hands it over to their own key at 6; the bureau hands
    it over at 8. Pinned to the old key, the bureau's hand-over is then signed by no key
    trusted there; pinned to the new key, the thief's is a second hand-over from the old
    one. Either way a problem, and the thief's key signs nothing accepted."""
    stolen, _ = CheckpointSigner(OLD, ORIGIN, next_seed=MALLORY).sign_after(
        None, 6, b"\x06" * 32, AT
    )
    real = _rotated((5, 8), {8: NEW})
    theirs = CheckpointSigner(MALLORY, ORIGIN).sign(7, b"\x07" * 32, AT)
    new_pinned = KeyTrust.of(_key(NEW))
    (problem,) = new_pinned.follow([real[5], stolen, real[8]])
    assert "already handed over at 8" in problem
    with pytest.raises(CheckpointError, match="trusted at size 7"):
        new_pinned.verify(theirs)
    old_pinned = KeyTrust.of(_key(OLD))
    (problem,) = old_pinned.follow([real[5], stolen, real[8]])
    assert "hand-over at 8" in problem
    assert "signed by no key trusted there" in problem


def _export(notes: dict[int, str], leaves: list[bytes]) -> ExportHeader:
    """A whole export's header of the last note, carrying the hand-overs among ``notes``."""
    nodes: dict[tuple[int, int], bytes] = {}
    frontier = Frontier()
    for leaf in leaves:
        for level, index, h in frontier.append(leaf):
            nodes[(level, index)] = h
    size = max(notes)
    return ExportHeader(
        origin=ORIGIN,
        start=0,
        end=size,
        tree_size=size,
        checkpoint=notes[size],
        cover=dict.fromkeys(range_cover(0, size, size), b""),
        handovers=[
            (s, n, hash_ranges(consistency_ranges(s, size), nodes.__getitem__))
            for s, n in notes.items()
            if handover_of(n) is not None
        ],
    )


def _log(n: int) -> tuple[list[bytes], list[dict[str, object]]]:
    events = [RecordedEvent("dibao.t.v1", 0, i, None, (), b"p%d" % i) for i in range(n)]
    leaves = [leaf_hash(canonical_bytes(e)) for e in events]
    lines = [
        {"index": i, "leaf_hash": leaves[i].hex(), "entry": entry_to_b64(e)}
        for i, e in enumerate(events)
    ]
    return leaves, lines


def _roots(leaves: list[bytes]) -> dict[int, bytes]:
    frontier = Frontier()
    roots = {}
    for size, leaf in enumerate(leaves, 1):
        frontier.append(leaf)
        roots[size] = frontier.root()
    return roots


def test_an_export_across_a_rotation_verifies_from_the_old_key_and_reports_the_hand_over() -> None:
    leaves, lines = _log(40)
    notes = _rotated((10, 20, 30, 40), {20: NEW}, _roots(leaves))
    header = ExportHeader.from_json(_export(notes, leaves).to_json())  # as the wire carries it
    assert [h[0] for h in header.handovers] == [20]
    report = verify_export(header, lines, _key(OLD))
    assert report.ok, report.problems
    keys = report.summary()["keys"]
    assert keys["handovers"][0]["tree_size"] == 20
    assert keys["handovers"][0]["to"] == _key(NEW).vkey()
    assert _key(NEW).vkey() in keys["used"]

    # Without its hand-over the export's checkpoint is by a stranger.
    bare = ExportHeader.from_json(_export(notes, leaves).to_json() | {"handovers": []})
    report = verify_export(bare, lines, _key(OLD))
    assert not report.ok
    assert "covering checkpoint: no signature" in report.problems[0]
    # A hand-over of another log (its root not this one's first 20 leaves) is refused.
    other = _rotated((20,), {20: NEW}, _roots(list(reversed(leaves))))
    forked = _export(notes, leaves)
    forked.handovers[0] = (20, other[20], forked.handovers[0][2])
    report = verify_export(forked, lines, _key(OLD))
    assert any("hand-over at 20 and checkpoint 40 disagree" in p for p in report.problems)


def test_an_export_without_a_rotation_is_written_as_before() -> None:
    leaves, _ = _log(8)
    header = _export(_rotated((8,), {}, _roots(leaves)), leaves)
    assert "handovers" not in header.to_json()
    assert list(itertools.islice(header.to_json(), 1)) == ["format"]


def test_the_next_key_is_a_secret_seed_like_the_current_one() -> None:
    base = common_secret_values() | {
        "database_url": "postgresql+asyncpg://audit@127.0.0.1/audit",
        "kafka_bootstrap": "127.0.0.1:9092",
        "audit_signing_key": base64.b64encode(OLD).decode(),
    }
    settings = AuditSettings.model_validate(base)
    assert settings.next_signing_seed() is None
    # Passed through empty (docker-compose.yml when it is not set): no hand-over.
    empty = AuditSettings.model_validate(base | {"audit_next_signing_key": ""})
    assert empty.next_signing_seed() is None
    with pytest.raises(ValidationError, match="not a placeholder"):
        AuditSettings.model_validate(base | {"audit_signing_key": ""})
    rotating = AuditSettings.model_validate(
        base | {"audit_next_signing_key": base64.b64encode(NEW).decode()}
    )
    assert rotating.next_signing_seed() == NEW
    assert base64.b64encode(NEW).decode() not in repr(rotating)
    for bad, named in (
        ("changeme", "placeholder"),
        ("not base64!", "DIBAO_AUDIT_NEXT_SIGNING_KEY is not base64"),
        (base64.b64encode(b"short").decode(), "DIBAO_AUDIT_NEXT_SIGNING_KEY must decode"),
    ):
        with pytest.raises(ValidationError, match=named):
            AuditSettings.model_validate(base | {"audit_next_signing_key": bad})


def test_a_key_that_shares_a_trusted_keys_id_is_not_that_key() -> None:
    """A C2SP key id is 4 bytes of a hash: a key with the pinned key's id is found in about
    2^32 tries. A hand-over from such a twin to the forger's key (both signatures valid)
    moves no trust; nor does one to a twin of a pinned new key, followed back."""
    log, twin = KEY_ID_TWINS
    assert _key(log).key_id == _key(twin).key_id
    assert _key(log) != _key(twin)
    honest = CheckpointSigner(log, ORIGIN).sign(5, b"\x05" * 32, AT)
    forged, _ = CheckpointSigner(twin, ORIGIN, next_seed=MALLORY).sign_after(
        None, 8, b"\x08" * 32, AT
    )
    theirs = CheckpointSigner(MALLORY, ORIGIN).sign(9, b"\x09" * 32, AT)
    trust = KeyTrust.of(_key(log))
    (problem,) = trust.follow([honest, forged])
    assert "signed by no key trusted there" in problem
    with pytest.raises(CheckpointError, match="trusted at size 9"):
        trust.verify(theirs)
    assert trust.handovers == []

    back, _ = CheckpointSigner(MALLORY, ORIGIN, next_seed=twin).sign_after(
        None, 8, b"\x08" * 32, AT
    )
    before = CheckpointSigner(MALLORY, ORIGIN).sign(7, b"\x07" * 32, AT)
    pinned_new = KeyTrust.of(_key(log))
    (problem,) = pinned_new.follow([back])
    assert "signed by no key trusted there" in problem
    with pytest.raises(CheckpointError, match="trusted at size 7"):
        pinned_new.verify(before)


def test_a_second_hand_over_from_one_key_at_the_same_size_is_a_fork() -> None:
    """The old key, stolen after its hand-over at 8, signs another at 8 (the real root) to
    the thief's key. Pinned to either key, it is a second hand-over from the old one: a
    problem, and the thief's key signs nothing accepted."""
    real = _rotated((5, 8), {8: NEW})
    stolen, _ = CheckpointSigner(OLD, ORIGIN, next_seed=MALLORY).sign_after(
        None, 8, b"\x08" * 32, AT
    )
    theirs = CheckpointSigner(MALLORY, ORIGIN).sign(9, b"\x09" * 32, AT)
    for pinned in (OLD, NEW):
        for order in ([real[5], real[8], stolen], [real[5], stolen, real[8]]):
            trust = KeyTrust.of(_key(pinned))
            (problem,) = trust.follow(order)
            assert "already handed over at 8" in problem, (pinned, problem)
            if order[1] == real[8] or pinned == NEW:  # else the thief's came first: theirs
                with pytest.raises(CheckpointError, match="trusted at size 9"):
                    trust.verify(theirs)


def test_the_key_after_a_checkpoint_is_read_from_its_signatures() -> None:
    """The signer decides from the stored note, not from a column: after a hand-over the
    next key (and the old key alone is refused, as an old replica must be); after a note
    by none of its keys, or a row holding another checkpoint's note, it signs nothing."""
    old, new = _key(OLD), _key(NEW)
    root = b"\x03" * 32
    rotating = CheckpointSigner(OLD, ORIGIN, next_seed=NEW)
    plain = CheckpointSigner(OLD, ORIGIN).sign(3, root, AT)
    handover, _ = rotating.sign_after(None, 3, root, AT)
    assert rotating.key_after(plain, 3, root) == old.key_id
    assert rotating.key_after(handover, 3, root) == new.key_id
    assert CheckpointSigner(NEW, ORIGIN).key_after(handover, 3, root) == new.key_id
    replica = CheckpointSigner(OLD, ORIGIN)
    with pytest.raises(CheckpointError, match="hand-over"):
        replica.signing_key(replica.key_after(handover, 3, root))
    with pytest.raises(CheckpointError, match="signed by none of the keys"):
        CheckpointSigner(MALLORY, ORIGIN).key_after(plain, 3, root)
    with pytest.raises(CheckpointError, match="the note of another"):
        rotating.key_after(plain, 4, root)
