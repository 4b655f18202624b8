"""A spouse living elsewhere dies (ADR 0016): the member's marriage recorded without the
spouse joining ends on the spouse's date of death, and the record shows them widowed."""

from __future__ import annotations

import uuid
from datetime import date

from dibao_intake.domain.changes import (
    ActiveMember,
    HouseholdState,
    PastChange,
    check_divorce,
    check_marriage,
    check_spouse_death,
    marriages_in_household,
    spouse_death_recorded,
)
from dibao_intake.domain.codes import ChangeKind, Relationship

TODAY = date(2026, 11, 28)
REGISTERED = date(2025, 1, 6)
HEAD, WIFE, SON, STRANGER = (uuid.uuid4() for _ in range(4))
R = Relationship
HEAD_M = ActiveMember(HEAD, R.HEAD, date(1968, 4, 2))
WIFE_M = ActiveMember(WIFE, R.SPOUSE, date(1970, 9, 14))
SON_M = ActiveMember(SON, R.CHILD, date(1994, 5, 5))
STATE = HouseholdState(HEAD, [HEAD_M, WIFE_M, SON_M], REGISTERED, [])
MARRIED_ON = date(2025, 5, 1)
AWAY = PastChange("marriage", MARRIED_ON, {"person_id": str(SON)})


def _widowed(on: date) -> PastChange:
    return PastChange(ChangeKind.SPOUSE_DEATH.value, on, {"person_id": str(SON)})


def test_a_spouse_elsewhere_dies_on_or_after_the_marriage() -> None:
    """The son's wife living elsewhere died: on or after the marriage's day, not in the
    future, not before he joined."""
    marriages = marriages_in_household([AWAY], head_person_id=HEAD, left_as={})
    assert not spouse_death_recorded(STATE, marriages, SON)
    assert check_spouse_death(STATE, SON, date(2026, 3, 2), today=TODAY, marriages=marriages) == []
    assert check_spouse_death(STATE, SON, MARRIED_ON, today=TODAY, marriages=marriages) == []
    found = check_spouse_death(STATE, SON, date(2025, 4, 30), today=TODAY, marriages=marriages)
    assert [v.pointer for v in found] == ["/date_of_death"]
    assert str(MARRIED_ON) in found[0].detail
    found = check_spouse_death(STATE, SON, date(2026, 11, 29), today=TODAY, marriages=marriages)
    assert [v.pointer for v in found] == ["/date_of_death"]
    joined = ActiveMember(SON, R.CHILD, date(1994, 5, 5), date(2025, 6, 1))
    late = HouseholdState(HEAD, [HEAD_M, WIFE_M, joined], REGISTERED, [])
    found = check_spouse_death(late, SON, date(2025, 5, 20), today=TODAY, marriages=marriages)
    assert [v.pointer for v in found] == ["/date_of_death"]
    assert "2025-06-01" in found[0].detail


def test_a_spouse_death_needs_a_marriage_to_a_spouse_elsewhere() -> None:
    """No marriage elsewhere recorded, a marriage to a member here (the head and his
    wife: her death is recorded instead), a non-member: refused at person_id."""
    marriages = marriages_in_household([AWAY], head_person_id=HEAD, left_as={})
    on = date(2026, 3, 2)
    found = check_spouse_death(STATE, SON, on, today=TODAY)
    assert [v.pointer for v in found] == ["/person_id"]
    found = check_spouse_death(STATE, HEAD, on, today=TODAY, marriages=marriages)
    assert [v.pointer for v in found] == ["/person_id"]
    assert "death instead" in found[0].detail
    found = check_spouse_death(STATE, STRANGER, on, today=TODAY, marriages=marriages)
    assert [v.pointer for v in found] == ["/person_id"]


def test_the_record_shows_the_member_widowed_after_a_spouse_death() -> None:
    """Read back, the spouse's death ends the marriage on its day: a later marriage is
    dated on or after it, a divorce finds no marriage to end, a second spouse death (or
    one after a divorce) is a conflict with the record; a new marriage elsewhere may end
    by one again."""
    died_on = date(2026, 3, 2)
    after = marriages_in_household([AWAY, _widowed(died_on)], head_person_id=HEAD, left_as={})
    assert (after.elsewhere, after.ended_on, after.married_on) == ({}, {SON: died_on}, {})
    assert after.acted_on == {SON: MARRIED_ON}  # being widowed is no act of his
    found = check_marriage(STATE, SON, date(2026, 3, 1), None, today=TODAY, marriages=after)
    assert [v.pointer for v in found] == ["/married_on"]
    assert str(died_on) in found[0].detail
    assert check_marriage(STATE, SON, died_on, None, today=TODAY, marriages=after) == []
    _, found = check_divorce(STATE, SON, None, date(2026, 4, 1), today=TODAY, marriages=after)
    assert [v.pointer for v in found] == ["/person_id"]
    assert spouse_death_recorded(STATE, after, SON)
    divorce = PastChange("divorce", died_on, {"person_id": str(SON), "relationships": {}})
    divorced = marriages_in_household([AWAY, divorce], head_person_id=HEAD, left_as={})
    assert spouse_death_recorded(STATE, divorced, SON)
    again = PastChange("marriage", date(2026, 6, 1), {"person_id": str(SON)})
    remarried = marriages_in_household(
        [AWAY, _widowed(died_on), again], head_person_id=HEAD, left_as={}
    )
    assert not spouse_death_recorded(STATE, remarried, SON)
    assert remarried.elsewhere == {SON: date(2026, 6, 1)}


def test_a_spouse_death_dated_before_the_marriage_ends_it_on_its_own_day() -> None:
    """Recorded before this rule or otherwise out of order: the end is not before the
    marriage's day."""
    after = marriages_in_household(
        [AWAY, _widowed(date(2025, 1, 1))], head_person_id=HEAD, left_as={}
    )
    assert after.ended_on == {SON: MARRIED_ON}
