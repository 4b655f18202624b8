"""A move in naming the household the person leaves (ADR 0016, 3 Dec 2026, helper hAL):
the pure rules of the move in's fields for that move out."""

from __future__ import annotations

import uuid
from datetime import date

from dibao_intake.domain import changes as rules
from dibao_intake.domain.codes import Relationship
from dibao_intake.domain.errors import Violation

HOUSEHOLD_LEFT = uuid.UUID(int=7)
HEIR = uuid.UUID(int=8)


def test_the_move_outs_fields_are_refused_without_the_household_left() -> None:
    """new_head_person_id, relationships and new_applicant_person_id of a move in are the
    household left's: without leaves_household_id each is refused at its pointer (not
    dropped silently), and with it none is."""
    alone = rules.move_out_fields_alone(
        None,
        new_head_person_id=HEIR,
        relationships={HEIR: Relationship.CHILD},
        new_applicant_person_id=HEIR,
    )
    assert [v.pointer for v in alone] == [
        "/new_head_person_id",
        "/relationships",
        "/new_applicant_person_id",
    ]
    assert all("leaves_household_id" in v.detail for v in alone)
    assert (
        rules.move_out_fields_alone(
            None, new_head_person_id=None, relationships={}, new_applicant_person_id=None
        )
        == []
    )
    assert (
        rules.move_out_fields_alone(
            HOUSEHOLD_LEFT,
            new_head_person_id=HEIR,
            relationships={HEIR: Relationship.CHILD},
            new_applicant_person_id=HEIR,
        )
        == []
    )


def test_the_household_lefts_violations_keep_their_pointers_and_say_whose_they_are() -> None:
    """The head of the household left, leaving without a new head: the move out's own
    rule, at the move in's new_head_person_id, saying it is of the household left."""
    head, wife = uuid.UUID(int=1), uuid.UUID(int=2)
    state = rules.HouseholdState(
        head,
        [
            rules.ActiveMember(head, Relationship.HEAD, date(1950, 1, 1)),
            rules.ActiveMember(wife, Relationship.SPOUSE, date(1952, 1, 1)),
        ],
    )
    found = rules.check_move_out(state, head, date(2026, 2, 20), None, today=date(2026, 3, 2))
    assert rules.of_the_household_left(found) == [
        Violation("/new_head_person_id", "the head leaves: name the new head (the household left)")
    ]
