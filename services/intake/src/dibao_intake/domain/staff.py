"""Conflicts of interest: applicants related to dibao staff or village committee members.

Such applications are registered separately and the county must visit the household
itself. Matching is on keyed hashes of ID numbers, so the roster never needs decrypting.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dibao_intake.domain.codes import StaffRole


@dataclass(frozen=True, slots=True)
class RosterEntry:
    """A person the roster links to a staff member: a relative, or the staff member themself."""

    id_hash: str
    staff_id: uuid.UUID
    staff_masked_name: str
    staff_role: StaffRole
    township_name: str
    relation: str
    """How the person is related to the staff member, e.g. ``spouse``; ``self`` for themself."""


@dataclass(frozen=True, slots=True)
class PersonOnFile:
    person_id: uuid.UUID
    id_hash: str
    masked_name: str


@dataclass(frozen=True, slots=True)
class StaffRelation:
    person: PersonOnFile
    entry: RosterEntry


def find_staff_relations(
    persons: Sequence[PersonOnFile], roster: Iterable[RosterEntry]
) -> list[StaffRelation]:
    """Every (household member, roster entry) pair with the same ID number."""
    by_hash: dict[str, list[RosterEntry]] = {}
    for entry in roster:
        by_hash.setdefault(entry.id_hash, []).append(entry)
    return [
        StaffRelation(person, entry)
        for person in persons
        for entry in sorted(by_hash.get(person.id_hash, []), key=lambda e: str(e.staff_id))
    ]


def relation_note(relations: Sequence[StaffRelation]) -> str:
    """Who the relation is with and how, in words, with masked names and no ID numbers."""
    parts = []
    for r in relations:
        who = (
            "is"
            if r.entry.relation == "self"
            else f"is the {r.entry.relation.replace('_', ' ')} of"
        )
        parts.append(
            f"{r.person.masked_name} {who} {r.entry.staff_masked_name} "
            f"({r.entry.staff_role.replace('_', ' ')}, {r.entry.township_name})"
        )
    return "; ".join(parts)
