"""Divorce (ADR 0016): which couples the record knows, what a divorce records, and what
it frees (a marriage after it), besides couples registered together other than the
head's and the head's parents."""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from dibao_intake.domain.changes import (
    FORMER_SPOUSE,
    ActiveMember,
    HouseholdState,
    LeftBy,
    Marriages,
    PastChange,
    check_death,
    check_divorce,
    check_marriage,
    check_marriage_in_household,
    check_relationship_correction,
    check_spouse_death,
    divorce_recorded,
    marriages_in_household,
    spouse_left_behind,
)
from dibao_intake.domain.codes import (
    ChangeKind,
    DisabilityGrade,
    EmploymentStatus,
    Relationship,
    Sex,
)
from dibao_intake.domain.household import MemberInput, ValidMember, validate_member
from dibao_intake.domain.resident_id import compose_resident_id

TODAY = date(2026, 11, 28)
REGISTERED = date(2025, 1, 6)
HEAD, WIFE, FATHER, MOTHER, LODGER, SON, DAUGHTER_IN_LAW = (uuid.uuid4() for _ in range(7))
R = Relationship


def _state(
    *members: ActiveMember, registered_with: tuple[ActiveMember, ...] = ()
) -> HouseholdState:
    return HouseholdState(HEAD, list(members), REGISTERED, registered_with)


HEAD_M = ActiveMember(HEAD, R.HEAD, date(1968, 4, 2))
WIFE_M = ActiveMember(WIFE, R.SPOUSE, date(1970, 9, 14))
FATHER_M = ActiveMember(FATHER, R.PARENT, date(1940, 2, 2))
MOTHER_M = ActiveMember(MOTHER, R.PARENT, date(1944, 1, 5))
LODGER_M = ActiveMember(LODGER, R.OTHER, date(1942, 7, 1))
SON_M = ActiveMember(SON, R.CHILD, date(1994, 5, 5))
DIL_M = ActiveMember(DAUGHTER_IN_LAW, R.CHILD_IN_LAW, date(1996, 6, 6))


def _spouse_joining(
    born: date, relationship: Relationship, employment: EmploymentStatus
) -> ValidMember:
    checked, problems = validate_member(
        MemberInput(
            name="杨秀兰",
            id_number=compose_resident_id("620102", born, 22),
            relationship=relationship,
            disability_grade=DisabilityGrade.NONE,
            seriously_ill=False,
            employment_status=employment,
            student=False,
            counted=True,
            exclusion_reason=None,
            exclusion_note=None,
        ),
        pointer="/spouse",
        today=TODAY,
    )
    assert checked is not None, problems
    return checked


def test_the_head_and_the_heads_spouse_divorce_and_the_former_spouse_is_other() -> None:
    """The head's wife, divorced, stays as the head's other (counted as recorded: the
    relationship is all a divorce changes). Refused: a day in the future, a non-member,
    the member twice, a member the head is not married to."""
    state = _state(HEAD_M, WIFE_M, LODGER_M)
    on = date(2026, 3, 2)
    assert check_divorce(state, HEAD, WIFE, on, today=TODAY) == ({WIFE: FORMER_SPOUSE}, [])
    assert FORMER_SPOUSE is R.OTHER
    # Whichever of the two the request names first.
    assert check_divorce(state, WIFE, HEAD, on, today=TODAY) == ({WIFE: R.OTHER}, [])
    _, found = check_divorce(state, HEAD, WIFE, date(2026, 11, 29), today=TODAY)
    assert [v.pointer for v in found] == ["/divorced_on"]
    _, found = check_divorce(state, uuid.uuid4(), WIFE, on, today=TODAY)
    assert [v.pointer for v in found] == ["/person_id"]
    for other in (uuid.uuid4(), HEAD, LODGER):
        _, found = check_divorce(state, HEAD, other, on, today=TODAY)
        assert [v.pointer for v in found] == ["/spouse_person_id"], other


def test_a_couple_married_here_divorces_on_or_after_the_marriage() -> None:
    """The son married the lodger's daughter here on 1 May 2025 (she became a
    child-in-law): a divorce dated before it is refused at divorced_on naming the day;
    on it, she is the head's other. The record then shows the marriage ended that day,
    the couple divorced, and a second divorce of theirs is the record's already."""
    bride = uuid.uuid4()
    state = _state(HEAD_M, SON_M, ActiveMember(bride, R.CHILD_IN_LAW, date(1997, 1, 1)))
    married = PastChange(
        "marriage",
        date(2025, 5, 1),
        {"person_id": str(SON), "spouse_person_id": str(bride), "relationships": {}},
    )
    marriages = marriages_in_household([married], head_person_id=HEAD, left_as={})
    _, found = check_divorce(state, SON, bride, date(2025, 4, 30), today=TODAY, marriages=marriages)
    assert [v.pointer for v in found] == ["/divorced_on"]
    assert "2025-05-01" in found[0].detail
    on = date(2026, 3, 2)
    assert check_divorce(state, bride, SON, on, today=TODAY, marriages=marriages) == (
        {bride: R.OTHER},
        [],
    )
    assert not divorce_recorded(state, marriages, SON, bride)
    divorce = PastChange(
        "divorce", on, {"person_id": str(SON), "spouse_person_id": str(bride), "relationships": {}}
    )
    after = marriages_in_household([married, divorce], head_person_id=HEAD, left_as={})
    assert (after.married_to, after.ended_on) == ({}, {SON: on, bride: on})
    assert after.divorced == {frozenset((SON, bride))}
    divorced = _state(HEAD_M, SON_M, ActiveMember(bride, R.OTHER, date(1997, 1, 1)))
    assert divorce_recorded(divorced, after, bride, SON)
    _, found = check_divorce(divorced, SON, bride, on, today=TODAY, marriages=after)
    assert [v.pointer for v in found] == ["/spouse_person_id"]


def test_a_marriage_follows_the_divorce_before_it() -> None:
    """Divorced on 2 Mar, the head may marry again (the lodger, a spouse joining) on or
    after that day, not before: the divorce is the end of the marriage, as a death is."""
    on = date(2026, 3, 2)
    divorce = PastChange(
        "divorce", on, {"person_id": str(HEAD), "spouse_person_id": str(WIFE), "relationships": {}}
    )
    marriages = marriages_in_household([divorce], head_person_id=HEAD, left_as={})
    state = _state(HEAD_M, ActiveMember(WIFE, R.OTHER, WIFE_M.birth_date), LODGER_M)
    _, found = check_marriage_in_household(
        state, HEAD, LODGER, date(2026, 3, 1), today=TODAY, marriages=marriages
    )
    assert [v.pointer for v in found] == ["/married_on"]
    assert check_marriage_in_household(
        state, HEAD, LODGER, on, today=TODAY, marriages=marriages
    ) == ({LODGER: R.SPOUSE}, [])
    # The two may marry each other again too: the former wife is other now.
    assert check_marriage_in_household(state, WIFE, HEAD, on, today=TODAY, marriages=marriages) == (
        {WIFE: R.SPOUSE},
        [],
    )


def test_a_spouse_living_elsewhere_is_divorced_without_a_partner_here() -> None:
    """A marriage to a spouse living elsewhere (no spouse given) is ended by a divorce
    naming the member alone, on or after the marriage; a member whose marriage the
    record shows is to a member here must name them; a member with no marriage recorded
    here has nothing to end."""
    married_on = date(2025, 5, 1)
    away = PastChange("marriage", married_on, {"person_id": str(SON)})
    marriages = marriages_in_household([away], head_person_id=HEAD, left_as={})
    assert marriages.elsewhere == {SON: married_on}
    state = _state(HEAD_M, WIFE_M, SON_M)
    assert check_divorce(state, SON, None, date(2026, 3, 2), today=TODAY, marriages=marriages) == (
        {},
        [],
    )
    _, found = check_divorce(state, SON, None, date(2025, 4, 1), today=TODAY, marriages=marriages)
    assert [v.pointer for v in found] == ["/divorced_on"]
    _, found = check_divorce(state, HEAD, None, date(2026, 3, 2), today=TODAY)
    assert [v.pointer for v in found] == ["/spouse_person_id"]
    _, found = check_divorce(state, SON, None, date(2026, 3, 2), today=TODAY)
    assert [v.pointer for v in found] == ["/person_id"]
    on = date(2026, 3, 2)
    divorce = PastChange("divorce", on, {"person_id": str(SON), "relationships": {}})
    after = marriages_in_household([away, divorce], head_person_id=HEAD, left_as={})
    assert (after.elsewhere, after.ended_on) == ({}, {SON: on})
    assert divorce_recorded(state, after, SON, None)
    # Married again elsewhere, the son's new marriage is the one a divorce would end.
    again = PastChange("marriage", date(2026, 6, 1), {"person_id": str(SON)})
    remarried = marriages_in_household([away, divorce, again], head_person_id=HEAD, left_as={})
    assert not divorce_recorded(state, remarried, SON, None)


def test_the_heads_parents_divorce_and_each_may_marry_again() -> None:
    """The head's father and mother, taken to be married to each other, divorce: neither
    relationship changes (a step-parent who raised the head stays their parent), the
    record no longer takes them for a couple, and the mother may marry the lodger; a
    death of one of them leaves nobody behind."""
    state = _state(HEAD_M, FATHER_M, MOTHER_M, LODGER_M)
    on = date(2026, 3, 2)
    assert check_divorce(state, MOTHER, FATHER, on, today=TODAY) == ({}, [])
    _, found = check_marriage_in_household(state, MOTHER, LODGER, on, today=TODAY)
    assert [v.pointer for v in found] == ["/person_id"]
    divorce = PastChange(
        "divorce",
        on,
        {"person_id": str(MOTHER), "spouse_person_id": str(FATHER), "relationships": {}},
    )
    marriages = marriages_in_household([divorce], head_person_id=HEAD, left_as={})
    assert check_marriage_in_household(
        state, MOTHER, LODGER, on, today=TODAY, marriages=marriages
    ) == ({LODGER: R.PARENT}, [])
    assert spouse_left_behind(state, FATHER) == MOTHER
    assert spouse_left_behind(state, FATHER, marriages) is None


def test_a_parent_marries_a_spouse_joining_only_once_the_other_parents_marriage_ended() -> None:
    """Both marriage paths agree: a parent beside the other parent is taken to be married
    to them, whether the new spouse joins from outside (accepted before) or is a member
    already (refused); after the parents' divorce both are accepted."""
    state = _state(HEAD_M, FATHER_M, MOTHER_M, LODGER_M)
    on = date(2026, 3, 2)
    joining = _spouse_joining(date(1946, 3, 3), R.PARENT, EmploymentStatus.NOT_OF_WORKING_AGE)
    found = check_marriage(state, MOTHER, on, joining, today=TODAY)
    assert "/person_id" in [v.pointer for v in found]
    assert "taken to be married" in next(v.detail for v in found if v.pointer == "/person_id")
    divorced = Marriages(
        {}, {MOTHER: on, FATHER: on}, divorced=frozenset({frozenset((MOTHER, FATHER))})
    )
    found = check_marriage(state, MOTHER, on, joining, today=TODAY, marriages=divorced)
    assert "/person_id" not in [v.pointer for v in found]


def test_a_child_and_child_in_law_registered_together_may_divorce_and_nothing_more() -> None:
    """A son of age and his wife registered with the household (the only child of age
    and the only child-in-law then): the record takes them for a couple they may divorce
    (she becomes the head's other). That is a guess, and it may be wrong (a widowed
    daughter-in-law and her late husband's unmarried brother), so it does nothing else:
    his marriage is accepted (it was refused, taken to be married to her, with no way for
    the clerk to record it) and his death or move out names no spouse left behind. With
    two children of age then, or once the record names either in a marriage, nothing
    tells whose wife she is."""
    minor = ActiveMember(uuid.uuid4(), R.CHILD, date(2010, 3, 3))
    registered = (HEAD_M, SON_M, DIL_M, minor)
    state = _state(*registered, registered_with=registered)
    on = date(2026, 3, 2)
    assert check_divorce(state, SON, DAUGHTER_IN_LAW, on, today=TODAY) == (
        {DAUGHTER_IN_LAW: R.OTHER},
        [],
    )
    found = check_marriage(
        state,
        SON,
        on,
        _spouse_joining(date(1998, 3, 3), R.CHILD_IN_LAW, EmploymentStatus.UNEMPLOYED),
        today=TODAY,
    )
    assert found == []
    assert spouse_left_behind(state, SON) is None
    assert spouse_left_behind(state, DAUGHTER_IN_LAW) is None
    # Once his marriage is recorded, the record names whose husband he is: not hers.
    wed = PastChange("marriage", on, {"person_id": str(SON)})
    married = marriages_in_household([wed], head_person_id=HEAD, left_as={})
    _, found = check_divorce(state, SON, DAUGHTER_IN_LAW, on, today=TODAY, marriages=married)
    assert [v.pointer for v in found] == ["/spouse_person_id"]
    # A second son of age at registration: whose wife she is, nothing tells.
    brother = ActiveMember(uuid.uuid4(), R.CHILD, date(1992, 2, 2))
    two = (*registered, brother)
    ambiguous = _state(*two, registered_with=two)
    _, found = check_divorce(ambiguous, SON, DAUGHTER_IN_LAW, on, today=TODAY)
    assert [v.pointer for v in found] == ["/spouse_person_id"]
    # The brother moved out since: still two at registration, still nothing tells.
    left = _state(HEAD_M, SON_M, DIL_M, minor, registered_with=two)
    _, found = check_divorce(left, SON, DAUGHTER_IN_LAW, on, today=TODAY)
    assert [v.pointer for v in found] == ["/spouse_person_id"]
    # Joined by a move in, not registered with the household: no couple either.
    moved_in = _state(*registered, registered_with=(HEAD_M, SON_M, minor))
    _, found = check_divorce(moved_in, SON, DAUGHTER_IN_LAW, on, today=TODAY)
    assert [v.pointer for v in found] == ["/spouse_person_id"]
    # Her husband's death recorded (naming her), she is a widow, not the brother's wife.
    died = PastChange(
        "death", on, {"person_id": str(SON), "spouse_person_id": str(DAUGHTER_IN_LAW)}
    )
    widowed = marriages_in_household([died], head_person_id=HEAD, left_as={})
    after = _state(HEAD_M, DIL_M, minor, registered_with=registered)
    assert check_divorce(after, DAUGHTER_IN_LAW, SON, on, today=TODAY, marriages=widowed)[1]


def test_a_death_is_not_dated_before_the_record_shows_the_member_alive() -> None:
    """A divorce recorded on 2 Mar, the former wife's death dated 1 Mar is refused at
    date_of_death naming the day (a divorce is not dated after a death, whichever is
    recorded first); on 2 Mar it is recorded. So with a marriage: the son's, to a spouse
    living elsewhere, on 1 May 2025, and his death dated before it."""
    on = date(2026, 3, 2)
    divorce = PastChange(
        "divorce", on, {"person_id": str(HEAD), "spouse_person_id": str(WIFE), "relationships": {}}
    )
    married = PastChange("marriage", date(2025, 5, 1), {"person_id": str(SON)})
    marriages = marriages_in_household([married, divorce], head_person_id=HEAD, left_as={})
    state = _state(HEAD_M, ActiveMember(WIFE, R.OTHER, WIFE_M.birth_date), SON_M)
    found = check_death(state, WIFE, date(2026, 3, 1), None, today=TODAY, marriages=marriages)
    assert [v.pointer for v in found] == ["/date_of_death"]
    assert "2026-03-02" in found[0].detail
    assert check_death(state, WIFE, on, None, today=TODAY, marriages=marriages) == []
    found = check_death(state, SON, date(2025, 4, 30), None, today=TODAY, marriages=marriages)
    assert [v.pointer for v in found] == ["/date_of_death"]
    # Without the record's marriages, nothing bounds it (as before).
    assert check_death(state, SON, date(2025, 4, 30), None, today=TODAY) == []


def test_a_parent_married_here_to_another_is_nobodys_taken_spouse() -> None:
    """The head's parents divorced; the mother married the lodger here (a step-parent,
    parent). The father, beside two parents, is taken to be married to neither: the
    mother is his former wife, the step-father the mother's husband by the record; he
    may marry. A father beside a step-parent no marriage ties was refused, and still is."""
    on, later = date(2026, 3, 2), date(2026, 5, 1)
    changes = [
        PastChange(
            "divorce",
            on,
            {"person_id": str(MOTHER), "spouse_person_id": str(FATHER), "relationships": {}},
        ),
        PastChange(
            "marriage",
            later,
            {
                "person_id": str(MOTHER),
                "spouse_person_id": str(LODGER),
                "relationships": {str(LODGER): "parent"},
            },
        ),
    ]
    marriages = marriages_in_household(changes, head_person_id=HEAD, left_as={})
    state = _state(HEAD_M, FATHER_M, MOTHER_M, ActiveMember(LODGER, R.PARENT, date(1942, 7, 1)))
    joining = _spouse_joining(date(1946, 3, 3), R.PARENT, EmploymentStatus.NOT_OF_WORKING_AGE)
    assert check_marriage(state, FATHER, later, joining, today=TODAY, marriages=marriages) == []
    assert spouse_left_behind(state, FATHER, marriages) is None
    found = check_marriage(state, FATHER, later, joining, today=TODAY)
    assert [v.pointer for v in found] == ["/person_id"]


@pytest.mark.parametrize("leaving", [ChangeKind.DEATH, ChangeKind.MOVE_OUT])
def test_a_marriage_here_ends_the_spouses_marriage_elsewhere_too(leaving: ChangeKind) -> None:
    """A woman lodging with the head married a man living elsewhere in March 2025, then,
    in May, the old lodger here, the marriage naming him (person_id) and her as the spouse
    (spouse_person_id). The later marriage tells her earlier one over (ADR 0016), as it
    does for the member named by person_id: it is no longer in ``elsewhere``. When he
    dies or moves out she is widowed (or left) by the record, not married elsewhere again:
    a divorce naming her alone and a spouse_death find no marriage of hers to end, and her
    correction to the head's spouse is not refused as married elsewhere (all three were
    read from her March marriage, which showed again). Since 3 Dec 2026 (helper hAG) a
    move out ends the couple's life here, not the marriage: left by him, she is married to
    him (``left_by``), which a divorce naming her alone or his death (spouse_death) ends,
    and which refuses her correction to the head's spouse."""
    her = uuid.uuid4()
    her_m = ActiveMember(her, R.OTHER, date(1971, 8, 8))
    away = PastChange("marriage", date(2025, 3, 1), {"person_id": str(her)})
    here_on = date(2025, 5, 1)
    here = PastChange(
        "marriage",
        here_on,
        {"person_id": str(LODGER), "spouse_person_id": str(her), "relationships": {}},
    )
    married = marriages_in_household([away, here], head_person_id=HEAD, left_as={})
    assert married.elsewhere == {}
    assert married.married_to == {LODGER: her, her: LODGER}
    left_on = date(2026, 2, 1)
    left = PastChange(leaving.value, left_on, {"person_id": str(LODGER)})
    after = marriages_in_household([away, here, left], head_person_id=HEAD, left_as={})
    assert (after.elsewhere, after.married_to) == ({}, {})
    assert after.ended_on == {LODGER: left_on, her: left_on}
    assert after.ended_elsewhere == frozenset()
    assert after.acted_on == {LODGER: here_on, her: here_on}
    state = _state(HEAD_M, her_m)
    on = date(2026, 3, 2)
    _, found = check_divorce(state, her, None, on, today=TODAY, marriages=after)
    found_death = check_spouse_death(state, her, on, today=TODAY, marriages=after)
    corrected = check_relationship_correction(state, her, R.SPOUSE, after)
    if leaving is ChangeKind.DEATH:
        assert after.left_by == {}
        assert [v.pointer for v in found] == ["/person_id"]
        assert [v.pointer for v in found_death] == ["/person_id"]
        assert corrected == []
    else:
        assert after.left_by == {her: LeftBy(LODGER, here_on, left_on)}
        assert (found, found_death) == ([], [])
        assert [v.pointer for v in corrected] == ["/relationship"]
        assert "moved out of the household on 2026-02-01" in corrected[0].detail


MIL = uuid.uuid4()
MIL_M = ActiveMember(MIL, R.PARENT_IN_LAW, date(1946, 3, 3))
GRANDCHILD = uuid.uuid4()
GRANDCHILD_M = ActiveMember(GRANDCHILD, R.GRANDCHILD, date(2018, 8, 8))


def test_the_heads_divorce_names_the_in_laws_relationship_anew() -> None:
    """The head's mother-in-law kept parent_in_law after the head's divorce, though the
    former wife's parents are his in-laws no more (and an earlier, late wife's parents
    still are: the record cannot tell whose she is). The head's divorce, from a spouse
    here or elsewhere, now needs each parent-in-law's relationship after it (at
    /relationships/<id>): other or other_dependant, or parent_in_law kept. A child or
    grandchild of the head may be given too (a step-child); nobody else, nor the couple,
    nor another code."""
    on = date(2026, 3, 2)
    state = _state(HEAD_M, WIFE_M, MIL_M, SON_M, LODGER_M)
    mil = f"/relationships/{MIL}"
    _, found = check_divorce(state, HEAD, WIFE, on, today=TODAY)
    assert [v.pointer for v in found] == [mil]
    assert "parent_in_law" in found[0].detail
    assert check_divorce(state, HEAD, WIFE, on, today=TODAY, given={MIL: R.OTHER}) == (
        {WIFE: FORMER_SPOUSE, MIL: R.OTHER},
        [],
    )
    assert check_divorce(state, WIFE, HEAD, on, today=TODAY, given={MIL: R.PARENT_IN_LAW}) == (
        {WIFE: FORMER_SPOUSE},
        [],
    )
    # The son as the former wife's child whom the head no longer raises.
    given = {MIL: R.OTHER_DEPENDANT, SON: R.OTHER}
    assert check_divorce(state, HEAD, WIFE, on, today=TODAY, given=given) == (
        {WIFE: FORMER_SPOUSE, MIL: R.OTHER_DEPENDANT, SON: R.OTHER},
        [],
    )
    stranger = uuid.uuid4()
    for wrong, pointer in (
        ({MIL: R.PARENT}, mil),
        ({MIL: R.OTHER, LODGER: R.OTHER_DEPENDANT}, f"/relationships/{LODGER}"),
        ({MIL: R.OTHER, WIFE: R.OTHER_DEPENDANT}, f"/relationships/{WIFE}"),
        ({MIL: R.OTHER, stranger: R.OTHER}, f"/relationships/{stranger}"),
        ({MIL: R.OTHER, SON: R.SIBLING}, f"/relationships/{SON}"),
    ):
        relationships, found = check_divorce(state, HEAD, WIFE, on, today=TODAY, given=wrong)
        assert relationships is None
        assert [v.pointer for v in found] == [pointer], wrong
    # A spouse living elsewhere: her mother lives with the head all the same.
    away = PastChange("marriage", date(2020, 5, 1), {"person_id": str(HEAD)})
    marriages = marriages_in_household([away], head_person_id=HEAD, left_as={})
    alone = _state(HEAD_M, MIL_M)
    _, found = check_divorce(alone, HEAD, None, on, today=TODAY, marriages=marriages)
    assert [v.pointer for v in found] == [mil]
    assert check_divorce(
        alone, HEAD, None, on, today=TODAY, marriages=marriages, given={MIL: R.OTHER}
    ) == ({MIL: R.OTHER}, [])


def test_a_childs_divorce_may_name_a_grandchild_and_no_in_law() -> None:
    """The son and his registered wife divorce: the head's parent-in-law is no kin of
    theirs (not required, not accepted); a grandchild may be given (her child from an
    earlier marriage); the head's parents' divorce names nobody else."""
    on = date(2026, 3, 2)
    state = _state(
        HEAD_M, WIFE_M, MIL_M, SON_M, DIL_M, GRANDCHILD_M, registered_with=(HEAD_M, SON_M, DIL_M)
    )
    assert check_divorce(state, SON, DAUGHTER_IN_LAW, on, today=TODAY) == (
        {DAUGHTER_IN_LAW: FORMER_SPOUSE},
        [],
    )
    assert check_divorce(
        state, SON, DAUGHTER_IN_LAW, on, today=TODAY, given={GRANDCHILD: R.OTHER_DEPENDANT}
    ) == ({DAUGHTER_IN_LAW: FORMER_SPOUSE, GRANDCHILD: R.OTHER_DEPENDANT}, [])
    _, found = check_divorce(state, SON, DAUGHTER_IN_LAW, on, today=TODAY, given={MIL: R.OTHER})
    assert [v.pointer for v in found] == [f"/relationships/{MIL}"]
    parents = _state(HEAD_M, FATHER_M, MOTHER_M, GRANDCHILD_M)
    _, found = check_divorce(parents, FATHER, MOTHER, on, today=TODAY, given={GRANDCHILD: R.OTHER})
    assert [v.pointer for v in found] == [f"/relationships/{GRANDCHILD}"]


def test_a_couple_with_no_marriage_day_divorces_once_both_were_of_age() -> None:
    """The head and his registered wife have no marriage day recorded, and the divorce
    was bound by nothing: a day typed 1986 for 2006 passed, and ended the marriage,
    by the record, before the wife could marry (and before she could marry again). Now it
    is refused at divorced_on, naming the first day both were of the legal age of the day
    (20 for a woman, and for a person of unknown sex, since 1981: ADR 0016, 3 Dec 2026,
    helper hAX); on that day it is recorded."""
    state = _state(HEAD_M, WIFE_M)
    # The wife, born 14 September 1970, was 20 on 14 September 1990.
    _, found = check_divorce(state, HEAD, WIFE, date(1986, 5, 1), today=TODAY)
    assert [v.pointer for v in found] == ["/divorced_on"]
    assert "1990-09-14" in found[0].detail
    _, found = check_divorce(state, HEAD, WIFE, date(1990, 9, 13), today=TODAY)
    assert [v.pointer for v in found] == ["/divorced_on"]
    assert check_divorce(state, WIFE, HEAD, date(1990, 9, 14), today=TODAY) == (
        {WIFE: FORMER_SPOUSE},
        [],
    )
    # A man born on 29 February is 22 on 1 March of a year that has none.
    leap = ActiveMember(HEAD, R.HEAD, date(1972, 2, 29), sex=Sex.MALE)
    _, found = check_divorce(_state(leap, WIFE_M), HEAD, WIFE, date(1994, 2, 28), today=TODAY)
    assert "(1994-03-01)" in found[0].detail


def test_a_couple_who_could_marry_before_1981_was_of_age_at_the_ages_of_then() -> None:
    """Before 1 January 1981 the Marriage Law of 1950 married a man at 20 and a woman at
    18: a couple of those ages could have married in 1979, and their divorce in 1980 is
    recorded; a woman who turned 18 only in 1981 could not marry until 20 (ADR 0016, 3 Dec
    2026, helper hAX)."""
    husband = ActiveMember(HEAD, R.HEAD, date(1958, 3, 1), sex=Sex.MALE)
    wife = ActiveMember(WIFE, R.SPOUSE, date(1961, 5, 1), sex=Sex.FEMALE)
    state = _state(husband, wife)
    assert check_divorce(state, HEAD, WIFE, date(1980, 1, 1), today=TODAY)[1] == []
    _, found = check_divorce(state, HEAD, WIFE, date(1979, 4, 30), today=TODAY)
    assert [v.pointer for v in found] == ["/divorced_on"]
    assert "(1979-05-01)" in found[0].detail
    late = ActiveMember(WIFE, R.SPOUSE, date(1963, 3, 1), sex=Sex.FEMALE)
    _, found = check_divorce(_state(husband, late), HEAD, WIFE, date(1982, 1, 1), today=TODAY)
    assert "(1983-03-01)" in found[0].detail
