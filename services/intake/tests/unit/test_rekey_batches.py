"""The rotation job's pure parts: which columns, what each value is bound to, a batch
re-encrypted or refused whole, and what it prints (the database side is in
``tests/integration/test_rekey.py``)."""

from __future__ import annotations

import uuid

import pytest

from dibao_common.crypto import (
    DecryptionFailedError,
    FieldCipher,
    PersonHasher,
    carries_id_number,
    key_id_of,
)
from dibao_intake.adapters.pii import PersonalData
from dibao_intake.models import Base
from dibao_intake.rekey import (
    ENCRYPTED_COLUMNS,
    ColumnResult,
    EncryptedColumn,
    RekeyError,
    RekeyReport,
    StoredValue,
    describe,
    parse_args,
    reencrypt_batch,
    unknown_keys,
)

OLD = bytes(range(32))
NEW = bytes(range(1, 33))
ID_NUMBER = "62012319800101123X"
ACCOUNT = "6222020200112233445"
PERSON = next(c for c in ENCRYPTED_COLUMNS if c.table == "person")


def _number_for(column: EncryptedColumn) -> str:
    return ACCOUNT if column.table == "bank_account" else ID_NUMBER


def test_every_encrypted_column_of_the_models_is_rotated() -> None:
    in_models = {
        (table.name, column.name)
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if column.name.endswith("_cipher")
    }
    assert {(c.table, c.column) for c in ENCRYPTED_COLUMNS} == in_models


@pytest.mark.parametrize("column", ENCRYPTED_COLUMNS, ids=lambda c: c.name)
def test_each_column_binds_what_the_service_binds(column: EncryptedColumn) -> None:
    cipher = FieldCipher({"old": OLD}, "old")
    pii = PersonalData(cipher, PersonHasher(NEW), "h0")
    row_id = uuid.uuid4()
    if column.table == "bank_account":
        blob = pii.protect_account(ACCOUNT, row_id=row_id).cipher
    else:
        blob = pii.protect_id_number(ID_NUMBER, table=column.table, row_id=row_id).cipher
    assert cipher.decrypt(blob, context=column.context(row_id)) == _number_for(column)
    # And only that row's: a context of another row does not do.
    with pytest.raises(DecryptionFailedError):
        cipher.decrypt(blob, context=column.context(uuid.uuid4()))


def test_a_batch_comes_back_under_the_active_key_and_reads_the_same() -> None:
    old = FieldCipher({"old": OLD}, "old")
    both = FieldCipher({"old": OLD, "new": NEW}, "new")
    ids = [uuid.uuid4() for _ in range(3)]
    rows = [StoredValue(i, old.encrypt(ID_NUMBER, context=PERSON.context(i))) for i in ids]
    out = reencrypt_batch(both, PERSON, rows)
    assert [key_id_of(blob) for blob in out] == ["new"] * 3
    only_new = FieldCipher({"new": NEW}, "new")
    for row, blob in zip(rows, out, strict=True):
        assert only_new.decrypt(blob, context=PERSON.context(row.row_id)) == ID_NUMBER


def test_a_value_under_a_key_not_in_the_ring_stops_the_batch_naming_the_key() -> None:
    old = FieldCipher({"old": OLD}, "old")
    new = FieldCipher({"new": NEW}, "new")
    good = uuid.uuid4()
    bad = uuid.uuid4()
    rows = [
        StoredValue(good, new.encrypt(ID_NUMBER, context=PERSON.context(good))),
        StoredValue(bad, old.encrypt(ID_NUMBER, context=PERSON.context(bad))),
    ]
    with pytest.raises(RekeyError) as raised:
        reencrypt_batch(new, PERSON, rows)
    message = str(raised.value)
    assert f"person.id_number_cipher row {bad}" in message
    assert "'old'" in message
    assert "not in DIBAO_PII_KEYS" in message
    assert not carries_id_number(message)


def test_a_value_copied_from_another_row_stops_the_batch() -> None:
    both = FieldCipher({"old": OLD, "new": NEW}, "new")
    elsewhere = uuid.uuid4()
    here = uuid.uuid4()
    copied = FieldCipher({"old": OLD}, "old").encrypt(ID_NUMBER, context=PERSON.context(elsewhere))
    with pytest.raises(RekeyError, match=rf"row {here}: does not decrypt under key 'old'"):
        reencrypt_batch(both, PERSON, [StoredValue(here, copied)])
    with pytest.raises(RekeyError, match="not a ciphertext of this format"):
        reencrypt_batch(both, PERSON, [StoredValue(here, b"\x02\x03abc" + bytes(40))])


def test_keys_the_ring_lacks_are_named_per_column() -> None:
    census: dict[str, dict[str | None, int]] = {
        "person.id_number_cipher": {"old": 3, "new": 2},
        "bank_account.number_cipher": {None: 1},
        "staff_relative.id_number_cipher": {},
    }
    assert unknown_keys(census, {"old", "new"}) == [
        "bank_account.number_cipher: 1 value(s) without a readable key id header"
    ]
    assert unknown_keys(census, {"new"}) == [
        "person.id_number_cipher: 3 value(s) under key 'old', which is not in DIBAO_PII_KEYS",
        "bank_account.number_cipher: 1 value(s) without a readable key id header",
    ]


def test_what_a_run_prints() -> None:
    person, account = ENCRYPTED_COLUMNS[0], ENCRYPTED_COLUMNS[1]
    report = RekeyReport(
        "new",
        {person.name: {"new": 1, "old": 4}, account.name: {}},
        [ColumnResult(person, 3, 1, 0), ColumnResult(account, 0, 0, 0)],
    )
    assert describe(report, dry_run=True) == [
        "active key: new",
        "person.id_number_cipher: new 1, old 4",
        "bank_account.number_cipher: no values",
        "dry run: 4 value(s) to re-encrypt, nothing written",
    ]
    assert describe(report, dry_run=False)[-3:] == [
        "person.id_number_cipher: 3 re-encrypted, 1 skipped (changed meanwhile), 0 left under"
        " other keys",
        "bank_account.number_cipher: 0 re-encrypted, 0 skipped (changed meanwhile), 0 left"
        " under other keys",
        "done: 3 re-encrypted, every value is under key new",
    ]
    again = RekeyReport("new", {person.name: {"new": 5}}, [ColumnResult(person, 0, 0, 0)])
    assert describe(again, dry_run=False)[-1] == (
        "nothing to re-encrypt: every value is under key new"
    )
    unfinished = RekeyReport("new", {person.name: {"old": 5}}, [ColumnResult(person, 4, 0, 1)])
    assert describe(unfinished, dry_run=False)[-1].startswith(
        "4 re-encrypted; 1 still under other keys"
    )


def test_the_batch_size_is_positive() -> None:
    assert parse_args([]).batch_size == 500
    assert parse_args(["--batch-size", "7", "--dry-run"]).dry_run is True
    with pytest.raises(SystemExit):
        parse_args(["--batch-size", "0"])
