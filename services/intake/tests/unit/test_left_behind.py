"""A member whose spouse moved out is married to them still (ADR 0016, 3 Dec 2026, helper
hAG): a move out ends the couple's life in the household, not the marriage; a divorce
naming the member alone, the spouse's death (spouse_death) or the registry's word that
the marriage is over ends it."""

from __future__ import annotations

import uuid
from datetime import date

from dibao_intake.domain.changes import (
    ActiveMember,
    HouseholdState,
    LeftBy,
    PastChange,
    check_divorce,
    check_marriage,
    check_marriage_in_household,
    check_relationship_correction,
    check_spouse_death,
    left_behind,
    marriage_taken_along,
    marriages_in_household,
    relationships_to_new_head,
    still_left_behind,
)
from dibao_intake.domain.codes import ChangeKind, Relationship, Sex

R = Relationship
TODAY = date(2026, 11, 28)
HEAD, WIFE, SON, LODGER, NEWCOMER = (uuid.uuid4() for _ in range(5))
MARRIED_ON, LEFT = date(2025, 7, 1), date(2025, 12, 1)
HEAD_M = ActiveMember(HEAD, R.HEAD, date(1980, 1, 1), sex=Sex.MALE)
LODGER_M = ActiveMember(LODGER, R.OTHER, date(1990, 2, 2), sex=Sex.FEMALE)
SON_M = ActiveMember(SON, R.CHILD, date(2003, 3, 3), sex=Sex.MALE)


def _change(kind: ChangeKind, on: date, **details: object) -> PastChange:
    return PastChange(kind.value, on, {k: str(v) for k, v in details.items()})


MARRIED = _change(ChangeKind.MARRIAGE, MARRIED_ON, person_id=HEAD, spouse_person_id=WIFE)
MOVED = _change(ChangeKind.MOVE_OUT, LEFT, person_id=WIFE, spouse_person_id=HEAD)


def _state(*members: ActiveMember) -> HouseholdState:
    return HouseholdState(HEAD, list(members), date(2025, 1, 6), ())


def test_a_move_out_leaves_the_spouse_who_stays_married_to_the_one_who_left() -> None:
    """Recorded as ``left_by``; the household's own day bound is unchanged (a marriage here
    is dated on or after the move out). A death widows: nobody is left married."""
    record = marriages_in_household([MARRIED, MOVED], head_person_id=HEAD, left_as={})
    assert record.left_by == {HEAD: LeftBy(WIFE, MARRIED_ON, LEFT)}
    assert record.ended_on[HEAD] == LEFT
    died = _change(ChangeKind.DEATH, LEFT, person_id=WIFE, spouse_person_id=HEAD)
    assert marriages_in_household([MARRIED, died], head_person_id=HEAD, left_as={}).left_by == {}


def test_the_one_left_behind_marries_by_no_path_until_a_divorce_or_death() -> None:
    """A bride joining, a spouse living elsewhere, a member, a correction to the spouse:
    each refused at its field; the divorce naming the head alone and a spouse_death are
    accepted, and each ends it, as a later marriage recorded here does (records made
    before this day: read as telling it over)."""
    record = marriages_in_household([MARRIED, MOVED], head_person_id=HEAD, left_as={})
    state = _state(HEAD_M, LODGER_M)
    on = date(2026, 2, 1)
    assert [
        v.pointer for v in check_marriage(state, HEAD, on, None, today=TODAY, marriages=record)
    ] == ["/person_id"]
    _, found = check_marriage_in_household(state, HEAD, LODGER, on, today=TODAY, marriages=record)
    assert [v.pointer for v in found] == ["/person_id"]
    found = check_relationship_correction(state, LODGER, R.SPOUSE, record, on=on)
    assert [v.pointer for v in found] == ["/relationship"]
    assert check_divorce(state, HEAD, None, on, today=TODAY, marriages=record) == ({}, [])
    assert check_spouse_death(state, HEAD, on, today=TODAY, marriages=record) == []
    for end in (
        _change(ChangeKind.DIVORCE, on, person_id=HEAD),
        _change(ChangeKind.SPOUSE_DEATH, on, person_id=HEAD),
        _change(ChangeKind.MARRIAGE, on, person_id=HEAD),
    ):
        after = marriages_in_household([MARRIED, MOVED, end], head_person_id=HEAD, left_as={})
        assert after.left_by == {}, end.kind
    # The same couple meeting again is no second marriage.
    assert left_behind(record, HEAD, "/person_id", "the head", to=WIFE) == []
    # A spouse who moved in as the head's since (recorded before this day) tells it over.
    newcomer = ActiveMember(NEWCOMER, R.SPOUSE, date(1991, 1, 1), sex=Sex.FEMALE)
    assert still_left_behind(_state(HEAD_M, newcomer), record) == {}
    assert still_left_behind(state, record) == record.left_by


def test_a_new_head_left_behind_takes_no_other_spouse() -> None:
    """The son married the lodger here, she moved out; the head dies and the son heads
    the household: the other lodger given as his spouse is refused at her pointer."""
    bride = uuid.uuid4()
    married = _change(ChangeKind.MARRIAGE, MARRIED_ON, person_id=SON, spouse_person_id=bride)
    moved = _change(ChangeKind.MOVE_OUT, LEFT, person_id=bride)
    record = marriages_in_household([married, moved], head_person_id=HEAD, left_as={})
    assert record.left_by == {SON: LeftBy(bride, MARRIED_ON, LEFT)}
    _, found = relationships_to_new_head(
        _state(HEAD_M, SON_M, LODGER_M),
        HEAD,
        SON,
        {LODGER: R.SPOUSE},
        on=date(2026, 3, 1),
        marriages=record,
    )
    assert [v.pointer for v in found] == [f"/relationships/{LODGER}"]


def test_the_marriage_taken_along_ends_with_the_left_ones_divorce_and_is_taken_by_them() -> None:
    """She moved out of B: B's divorce naming the head alone, or a spouse_death of his,
    recorded since, ends the marriage she took along. And the head left behind who moves
    out too takes his marriage to her along."""
    assert marriage_taken_along([MARRIED, MOVED], person_id=WIFE, left_on=LEFT) == HEAD
    for kind in (ChangeKind.DIVORCE, ChangeKind.SPOUSE_DEATH):
        end = _change(kind, date(2026, 1, 5), person_id=HEAD)
        assert marriage_taken_along([MARRIED, MOVED, end], person_id=WIFE, left_on=LEFT) is None
    his = date(2026, 2, 1)
    he_moved = _change(ChangeKind.MOVE_OUT, his, person_id=HEAD, new_head_person_id=SON)
    assert marriage_taken_along([MARRIED, MOVED, he_moved], person_id=HEAD, left_on=his) == WIFE
