"""Personal data at rest: ID and account numbers encrypted with the kit, looked up by hash.

Every ciphertext is bound to its table, column and row (AES-GCM associated data), so a
value copied into another row does not decrypt.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from dibao_common.crypto import (
    FieldCipher,
    PersonHasher,
    PiiSettings,
    mask_account,
    mask_id_number,
)


def id_number_context(table: str, row_id: uuid.UUID) -> str:
    """The associated data of an ID number's ciphertext in ``table``: written here once,
    since the rotation job (``dibao_intake.rekey``) must bind exactly the same."""
    return f"intake.{table}.id_number:{row_id}"


def account_context(row_id: uuid.UUID) -> str:
    """What the ciphertext of a bank account number is bound to."""
    return f"intake.bank_account.number:{row_id}"


@dataclass(frozen=True, slots=True)
class ProtectedNumber:
    """A number as stored: lookup hash, ciphertext and masked display form."""

    id_hash: str
    cipher: bytes
    masked: str


class PersonalData:
    """Encrypts, hashes and reveals intake's personal numbers."""

    def __init__(self, cipher: FieldCipher, hasher: PersonHasher, hash_key_id: str) -> None:
        self._cipher = cipher
        self._hasher = hasher
        self.hash_key_id = hash_key_id

    @classmethod
    def from_settings(cls, settings: PiiSettings) -> PersonalData:
        hasher = PersonHasher.from_settings(settings)
        return cls(FieldCipher.from_settings(settings), hasher, hasher.key_id)

    def hash_id_number(self, id_number: str) -> str:
        return self._hasher.hash_id_number(id_number)

    def protect_id_number(
        self, id_number: str, *, table: str, row_id: uuid.UUID
    ) -> ProtectedNumber:
        return ProtectedNumber(
            id_hash=self._hasher.hash_id_number(id_number),
            cipher=self._cipher.encrypt(id_number, context=id_number_context(table, row_id)),
            masked=mask_id_number(id_number),
        )

    def reveal_id_number(self, cipher: bytes, *, table: str, row_id: uuid.UUID) -> str:
        return self._cipher.decrypt(cipher, context=id_number_context(table, row_id))

    def protect_account(self, number: str, *, row_id: uuid.UUID) -> ProtectedNumber:
        return ProtectedNumber(
            id_hash=self._hasher.hash_id_number(number),
            cipher=self._cipher.encrypt(number, context=account_context(row_id)),
            masked=mask_account(number),
        )

    def reveal_account(self, cipher: bytes, *, row_id: uuid.UUID) -> str:
        return self._cipher.decrypt(cipher, context=account_context(row_id))
