"""Applicants related to staff are found by keyed hash and described without ID numbers."""

from __future__ import annotations

import uuid

from dibao_intake.domain.codes import StaffRole
from dibao_intake.domain.staff import (
    PersonOnFile,
    RosterEntry,
    find_staff_relations,
    relation_note,
)

STAFF = uuid.UUID("00000000-0000-7000-8000-000000000001")


def test_relatives_and_staff_themselves_are_found_and_described() -> None:
    wife = PersonOnFile(uuid.uuid4(), "h-wife", "王*兰")
    son = PersonOnFile(uuid.uuid4(), "h-son", "李*")
    roster = [
        RosterEntry("h-wife", STAFF, "赵*强", StaffRole.VILLAGE_COMMITTEE, "夏官营镇", "sister"),
        RosterEntry("h-other", STAFF, "赵*强", StaffRole.VILLAGE_COMMITTEE, "夏官营镇", "spouse"),
        RosterEntry("h-son", uuid.uuid4(), "李*", StaffRole.CASEWORKER, "夏官营镇", "self"),
    ]
    relations = find_staff_relations([wife, son], roster)
    assert [(r.person.person_id, r.entry.relation) for r in relations] == [
        (wife.person_id, "sister"),
        (son.person_id, "self"),
    ]
    note = relation_note(relations)
    assert note == (
        "王*兰 is the sister of 赵*强 (village committee, 夏官营镇); "
        "李* is 李* (caseworker, 夏官营镇)"
    )


def test_nobody_related_gives_no_relation() -> None:
    assert find_staff_relations([PersonOnFile(uuid.uuid4(), "h", "x")], []) == []
