"""A change's day against the member's recorded history, and the new head's derived
relationships against ages (ADR 0016, 3 Dec 2026)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date

from dibao_intake.domain.changes import (
    ActiveMember,
    HouseholdState,
    PastChange,
    check_death,
    check_divorce,
    check_marriage,
    check_marriage_in_household,
    check_move_in,
    check_move_out,
    details_changed_on,
    marriages_in_household,
    relationships_to_new_head,
)
from dibao_intake.domain.codes import (
    DisabilityGrade,
    EmploymentStatus,
    MarriageAgeBasis,
    Relationship,
    Sex,
)
from dibao_intake.domain.errors import Violation
from dibao_intake.domain.household import (
    MemberInput,
    ValidMember,
    first_marriageable_day,
    marriage_age,
    validate_member,
)
from dibao_intake.domain.resident_id import compose_resident_id

TODAY = date(2026, 3, 2)
HEAD, WIFE, SON, LODGER = (uuid.uuid4() for _ in range(4))
STATE = HouseholdState(
    head_person_id=HEAD,
    members=[
        ActiveMember(HEAD, Relationship.HEAD, date(1960, 4, 2), sex=Sex.MALE),
        ActiveMember(WIFE, Relationship.SPOUSE, date(1962, 9, 14), sex=Sex.FEMALE),
        ActiveMember(SON, Relationship.CHILD, date(1990, 1, 5), sex=Sex.MALE),
        ActiveMember(
            LODGER, Relationship.OTHER, date(1992, 6, 1), joined_on=date(2026, 2, 1), sex=Sex.FEMALE
        ),
    ],
)


def pointers(found: Sequence[Violation]) -> list[str]:
    return [v.pointer for v in found]


def member_change(person: uuid.UUID, on: date, changed: dict[str, object]) -> PastChange:
    return PastChange("member_change", on, {"person_id": str(person), "changed": changed})


def test_the_latest_change_of_details_is_one_of_the_members_own_details() -> None:
    """A member change that changed details dates the member; a name or relationship
    correction alone (``changed`` empty), another member's change, a bank account change
    (dated by the day it was entered) and a declaration of missing do not."""
    changes = [
        member_change(SON, date(2026, 1, 10), {"disability_grade": "2"}),
        member_change(SON, date(2026, 2, 25), {}),  # a name or relationship correction
        member_change(WIFE, date(2026, 2, 26), {"employment_status": "unemployed"}),
        PastChange("bank_account_change", date(2026, 2, 27), {"holder_person_id": str(SON)}),
        member_change(
            SON, date(2026, 2, 20), {"counted": False, "exclusion_reason": "declared_missing"}
        ),
        member_change(SON, date(2026, 1, 20), {"seriously_ill": True}),
    ]
    assert details_changed_on(changes, SON) == date(2026, 1, 20)
    assert details_changed_on(changes, WIFE) == date(2026, 2, 26)
    assert details_changed_on(changes, HEAD) is None
    # Imprisoned, then declared missing while still not counted: only the first dates him.
    missing = member_change(SON, date(2026, 2, 28), {"exclusion_reason": "declared_missing"})
    imprisoned = member_change(
        SON, date(2026, 2, 1), {"counted": False, "exclusion_reason": "imprisoned"}
    )
    assert details_changed_on([imprisoned, missing], SON) == date(2026, 2, 1)


def test_a_death_is_not_dated_before_the_members_latest_change_of_details() -> None:
    """A disability certificate recorded as of 20 February: a death on the 10th would
    leave a dead man's details changed (refused, naming the day); on the day, accepted."""
    found = check_death(
        STATE, SON, date(2026, 2, 10), None, today=TODAY, details_on=date(2026, 2, 20)
    )
    assert pointers(found) == ["/date_of_death"]
    assert "2026-02-20" in found[0].detail
    assert (
        check_death(STATE, SON, date(2026, 2, 20), None, today=TODAY, details_on=date(2026, 2, 20))
        == []
    )


def test_a_move_out_is_not_dated_before_the_members_own_acts_here() -> None:
    """A move out is bound as a death is: not before the member's birth, joining,
    marriage or divorce here, or latest change of details; with its other errors."""
    married = marriages_in_household(
        [
            PastChange(
                "marriage",
                date(2026, 2, 14),
                {"person_id": str(SON), "spouse_person_id": str(LODGER)},
            )
        ],
        head_person_id=HEAD,
        left_as={},
    )
    found = check_move_out(STATE, LODGER, date(2026, 2, 10), SON, today=TODAY, marriages=married)
    assert pointers(found) == ["/new_head_person_id", "/moved_on"]
    assert "2026-02-14" in found[1].detail
    found = check_move_out(
        STATE, SON, date(2026, 2, 1), None, today=TODAY, details_on=date(2026, 2, 5)
    )
    assert pointers(found) == ["/moved_on"]
    assert "member_change" in found[0].detail
    assert pointers(check_move_out(STATE, SON, date(1989, 1, 1), None, today=TODAY)) == [
        "/moved_on"
    ]
    assert (
        check_move_out(STATE, LODGER, date(2026, 2, 14), None, today=TODAY, marriages=married) == []
    )


def test_a_marriage_here_is_not_dated_before_the_member_joined() -> None:
    """The head marrying the lodger who moved in on 1 February, dated in January, and the
    lodger's marriage with a spouse joining her, dated before she did, are refused at
    ``/married_on``; a marriage to a spouse living elsewhere may precede her joining (a
    marriage she brought with her)."""
    _, found = check_marriage_in_household(STATE, HEAD, LODGER, date(2026, 1, 20), today=TODAY)
    # With the head's other errors at once (here: a wife already).
    assert pointers(found) == ["/person_id", "/married_on"]
    state = HouseholdState(
        head_person_id=HEAD, members=[m for m in STATE.members if m.person_id != WIFE]
    )
    relationships, found = check_marriage_in_household(
        state, HEAD, LODGER, date(2026, 1, 20), today=TODAY
    )
    assert (relationships, pointers(found)) == (None, ["/married_on"])
    assert check_marriage_in_household(state, HEAD, LODGER, date(2026, 2, 1), today=TODAY) == (
        {LODGER: Relationship.SPOUSE},
        [],
    )
    groom = validate_member(
        MemberInput(
            name="王强",
            id_number=compose_resident_id("620123", date(1990, 3, 3), 11),
            relationship=Relationship.OTHER,
            disability_grade=DisabilityGrade.NONE,
            seriously_ill=False,
            employment_status=EmploymentStatus.UNEMPLOYED,
            student=False,
            counted=True,
            exclusion_reason=None,
            exclusion_note=None,
        ),
        pointer="/spouse",
        today=TODAY,
    )[0]
    assert groom is not None
    found = check_marriage(STATE, LODGER, date(2026, 1, 20), groom, today=TODAY)
    assert pointers(found) == ["/married_on"]
    assert check_marriage(STATE, LODGER, date(2026, 2, 1), groom, today=TODAY) == []
    assert check_marriage(STATE, LODGER, date(2026, 1, 20), None, today=TODAY) == []


def test_derived_relationships_to_the_new_head_keep_a_registrations_age_order() -> None:
    """The head (66) dies. His son (40) heads the household: his young second wife (31)
    would be derived the son's parent, younger than him; his widow heads it: his son and a
    grandchild (33) would be derived her child and grandchild, older than her. Each is
    asked (422 at its pointer), and recorded as given; codes in age order are derived."""
    widow, son, grandchild = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    state = HouseholdState(
        head_person_id=HEAD,
        members=[
            ActiveMember(HEAD, Relationship.HEAD, date(1960, 1, 1), sex=Sex.MALE),
            ActiveMember(widow, Relationship.SPOUSE, date(1995, 1, 1), sex=Sex.FEMALE),
            ActiveMember(son, Relationship.CHILD, date(1986, 1, 1), sex=Sex.MALE),
            ActiveMember(grandchild, Relationship.GRANDCHILD, date(1993, 1, 1), sex=Sex.MALE),
        ],
    )
    rebased, found = relationships_to_new_head(
        state, HEAD, son, {grandchild: Relationship.CHILD}, on=TODAY
    )
    assert pointers(found) == [f"/relationships/{widow}"]
    assert "would make them the new head's parent" in found[0].detail
    rebased, found = relationships_to_new_head(
        state, HEAD, son, {grandchild: Relationship.CHILD, widow: Relationship.OTHER}, on=TODAY
    )
    assert (found, rebased[widow]) == ([], Relationship.OTHER)
    _, found = relationships_to_new_head(state, HEAD, widow, {}, on=TODAY)
    assert sorted(pointers(found)) == sorted(
        [f"/relationships/{son}", f"/relationships/{grandchild}"]
    )
    given = {son: Relationship.OTHER, grandchild: Relationship.OTHER_DEPENDANT}
    rebased, found = relationships_to_new_head(state, HEAD, widow, given, on=TODAY)
    assert found == []
    assert rebased == {widow: Relationship.HEAD} | given
    # An older widow: her step-son and grandchild are younger and derived as before.
    older = HouseholdState(
        head_person_id=HEAD,
        members=[
            m
            if m.person_id != widow
            else ActiveMember(widow, Relationship.SPOUSE, date(1962, 1, 1), sex=Sex.FEMALE)
            for m in state.members
        ],
    )
    rebased, found = relationships_to_new_head(older, HEAD, widow, {}, on=TODAY)
    assert (found, rebased[son], rebased[grandchild]) == (
        [],
        Relationship.CHILD,
        Relationship.GRANDCHILD,
    )


def test_a_move_out_recorded_before_this_rule_ends_no_marriage_before_its_day() -> None:
    """A record made before 3 Dec 2026 may hold a move out dated before the leaver's own
    marriage here (since refused): the marriage still ends on its own day, not before, so
    the one left behind marries again on or after it (helper-67's reading, kept)."""
    bride = uuid.uuid4()
    changes = [
        PastChange(
            "marriage",
            date(2026, 2, 14),
            {"person_id": str(HEAD), "joined_person_ids": [str(bride)]},
        ),
        PastChange(
            "move_out",
            date(2026, 2, 10),
            {"person_id": str(HEAD), "new_head_person_id": str(SON)},
        ),
    ]
    marriages = marriages_in_household(changes, head_person_id=SON, left_as={})
    assert marriages.ended_on == {HEAD: date(2026, 2, 14), bride: date(2026, 2, 14)}
    assert marriages.married_to == {}


def _joining(
    relationship: Relationship,
    born: date,
    seq: int,
    employment: EmploymentStatus = EmploymentStatus.UNEMPLOYED,
    *,
    basis: MarriageAgeBasis | None = None,
) -> ValidMember:
    """A person joining, a man for an odd ``seq`` (the ID number's sequence)."""
    valid, problems = validate_member(
        MemberInput(
            name="杨小梅",
            id_number=compose_resident_id("620123", born, seq),
            relationship=relationship,
            disability_grade=DisabilityGrade.NONE,
            seriously_ill=False,
            employment_status=employment,
            student=False,
            counted=True,
            exclusion_reason=None,
            exclusion_note=None,
            marriage_age_basis=basis,
        ),
        pointer="/spouse",
        today=TODAY,
    )
    assert valid is not None, problems
    return valid


def test_a_man_marries_from_22_and_a_woman_from_20() -> None:
    """The legal marriage ages (Civil Code art. 1047; ADR 0016, 3 Dec 2026, helper hAX):
    a man of 21 is refused as the one who marries (at his person id), as the head a spouse
    moves in with, as a partner of a marriage between members, and as a spouse joining (at
    his ID number); a woman of 19 likewise; a man on his 22nd birthday and a woman on her
    20th are of age. Before 1981 the Marriage Law of 1950's 20 and 18 held."""
    assert [marriage_age(sex, date(2026, 1, 1)) for sex in (Sex.MALE, Sex.FEMALE, None)] == [
        22,
        20,
        20,
    ]
    assert [marriage_age(sex, date(1980, 12, 31)) for sex in (Sex.MALE, Sex.FEMALE)] == [20, 18]
    assert [marriage_age(sex, date(1981, 1, 1)) for sex in (Sex.MALE, Sex.FEMALE)] == [22, 20]
    on = date(2026, 2, 14)
    young_man = ActiveMember(HEAD, Relationship.HEAD, date(2004, 6, 1), sex=Sex.MALE)
    state = HouseholdState(head_person_id=HEAD, members=[young_man])
    bride = _joining(Relationship.SPOUSE, date(2006, 2, 14), 12)  # a woman of 20 that day
    found = check_marriage(state, HEAD, on, bride, today=TODAY)
    assert [(v.pointer, v.detail.split(":")[0]) for v in found] == [
        ("/person_id", "the member is under 22 on 2026-02-14, the marriage's day")
    ]
    found = check_move_in(state, bride, on, today=TODAY)
    assert [v.detail.split(":")[0] for v in found] == ["the head is under 22 on 2026-02-14"]
    man = ActiveMember(HEAD, Relationship.HEAD, date(2004, 2, 14), sex=Sex.MALE)  # 22 that day
    of_age = HouseholdState(head_person_id=HEAD, members=[man])
    assert check_marriage(of_age, HEAD, on, bride, today=TODAY) == []
    assert check_move_in(of_age, bride, on, today=TODAY) == []
    girl = _joining(Relationship.SPOUSE, date(2006, 2, 15), 12)  # 20 the day after
    found = check_marriage(of_age, HEAD, on, girl, today=TODAY)
    assert [(v.pointer, v.detail.split(":")[0]) for v in found] == [
        ("/spouse/id_number", "the spouse is under 20 on 2026-02-14, the marriage's day")
    ]
    found = check_move_in(of_age, girl, on, today=TODAY)
    assert [(v.pointer, v.detail.split(":")[0]) for v in found] == [
        ("/member/relationship", "the spouse is under 20 on 2026-02-14")
    ]
    lodger = ActiveMember(LODGER, Relationship.OTHER, date(2006, 2, 15), sex=Sex.FEMALE)
    both = HouseholdState(head_person_id=HEAD, members=[young_man, lodger])
    _, found = check_marriage_in_household(both, HEAD, LODGER, on, today=TODAY)
    assert [(v.pointer, v.detail.split(":")[0]) for v in found] == [
        ("/person_id", "the member is under 22 on 2026-02-14, the marriage's day"),
        ("/spouse_person_id", "the spouse is under 20 on 2026-02-14, the marriage's day"),
    ]
    # A man of 21 marrying a woman: the spouse's own age counts for his sex.
    groom = _joining(Relationship.SPOUSE, date(2004, 6, 1), 11)
    woman = ActiveMember(HEAD, Relationship.HEAD, date(2000, 1, 1), sex=Sex.FEMALE)
    found = check_marriage(
        HouseholdState(head_person_id=HEAD, members=[woman]), HEAD, on, groom, today=TODAY
    )
    assert [(v.pointer, v.detail.split(":")[0]) for v in found] == [
        ("/spouse/id_number", "the spouse is under 22 on 2026-02-14, the marriage's day")
    ]
    # No detail names the person: their name is not in the state, their ID number not told.
    assert all(groom.resident_id.number not in v.detail for v in found)


def test_a_marriage_before_1981_is_held_to_the_ages_of_then() -> None:
    """A marriage dated in 1980 (recorded now, as a widow's first marriage learned late)
    is of age at the Marriage Law of 1950's 20 and 18; from 1 January 1981 at 22 and 20.
    A spouse moving in, or a couple registered, with no marriage day is of age when they
    could have married by the day: a man who was 20 in 1980 could, though 21 in 1981."""
    husband = ActiveMember(HEAD, Relationship.HEAD, date(1960, 6, 1), sex=Sex.MALE)
    state = HouseholdState(head_person_id=HEAD, members=[husband])
    bride = _joining(Relationship.SPOUSE, date(1962, 6, 1), 12, EmploymentStatus.RETIRED)
    assert check_marriage(state, HEAD, date(1980, 7, 1), bride, today=TODAY) == []
    found = check_marriage(state, HEAD, date(1981, 7, 1), bride, today=TODAY)
    assert [(v.pointer, v.detail.split(":")[0]) for v in found] == [
        ("/person_id", "the member is under 22 on 1981-07-01, the marriage's day"),
        ("/spouse/id_number", "the spouse is under 20 on 1981-07-01, the marriage's day"),
    ]
    # Moved in as the spouse on 1 July 1981: both could have married in 1980.
    assert check_move_in(state, bride, date(1981, 7, 1), today=TODAY) == []
    late = _joining(Relationship.SPOUSE, date(1963, 6, 1), 12, EmploymentStatus.RETIRED)
    # 18 only in 1981, when the age was 20 already.
    found = check_move_in(state, late, date(1981, 7, 1), today=TODAY)
    assert [v.detail.split(":")[0] for v in found] == ["the spouse is under 20 on 1981-07-01"]


ADAPTED = MarriageAgeBasis.AUTONOMOUS_ADAPTATION


def test_an_autonomous_adaptation_lowers_the_ages_to_20_and_18_and_never_below() -> None:
    """A marriage the clerk says was lawful under an autonomous area's adapted ages (ADR
    0016, 3 Dec 2026, helper hBB) is held to 20 and 18, on any day; the Civil Code's 22
    and 20 stay the default, and civil_code said is the default. A man of 21 marrying a
    woman of 19 is recorded with it; a man of 19 and a woman of 17 are refused with it,
    the detail naming the adapted age."""
    on = date(2026, 2, 14)
    assert [marriage_age(sex, on, ADAPTED) for sex in (Sex.MALE, Sex.FEMALE)] == [20, 18]
    assert [marriage_age(sex, date(1975, 1, 1), ADAPTED) for sex in (Sex.MALE, Sex.FEMALE)] == [
        20,
        18,
    ]
    civil = MarriageAgeBasis.CIVIL_CODE
    assert [marriage_age(sex, on, civil) for sex in (Sex.MALE, Sex.FEMALE)] == [22, 20]
    groom = ActiveMember(HEAD, Relationship.HEAD, date(2004, 6, 1), sex=Sex.MALE)  # 21
    state = HouseholdState(head_person_id=HEAD, members=[groom])
    bride = _joining(Relationship.SPOUSE, date(2007, 2, 14), 12)  # 19 that day
    assert pointers(check_marriage(state, HEAD, on, bride, today=TODAY)) == [
        "/person_id",
        "/spouse/id_number",
    ]
    assert pointers(check_marriage(state, HEAD, on, bride, today=TODAY, basis=civil)) == [
        "/person_id",
        "/spouse/id_number",
    ]
    assert check_marriage(state, HEAD, on, bride, today=TODAY, basis=ADAPTED) == []
    boy = ActiveMember(HEAD, Relationship.HEAD, date(2006, 6, 1), sex=Sex.MALE)  # 19
    young = HouseholdState(head_person_id=HEAD, members=[boy])
    found = check_marriage(young, HEAD, on, bride, today=TODAY, basis=ADAPTED)
    assert [(v.pointer, v.detail.split(":")[0]) for v in found] == [
        (
            "/person_id",
            "the member is under 20 on 2026-02-14, the marriage's day, even by an autonomous"
            " area's adapted ages (marriage_age_basis autonomous_adaptation",
        )
    ]
    girl = _joining(Relationship.SPOUSE, date(2008, 2, 15), 12)  # 17 that day
    found = check_marriage(state, HEAD, on, girl, today=TODAY, basis=ADAPTED)
    assert [(v.pointer, v.detail.split(",")[0]) for v in found] == [
        ("/spouse/id_number", "the spouse is under 18 on 2026-02-14")
    ]
    # Members marrying each other, and a spouse moving in (the basis is the newcomer's).
    lodger = ActiveMember(LODGER, Relationship.OTHER, date(2007, 2, 14), sex=Sex.FEMALE)
    both = HouseholdState(head_person_id=HEAD, members=[groom, lodger])
    assert check_marriage_in_household(both, HEAD, LODGER, on, today=TODAY, basis=ADAPTED)[1] == []
    assert pointers(check_marriage_in_household(both, HEAD, LODGER, on, today=TODAY)[1]) == [
        "/person_id",
        "/spouse_person_id",
    ]
    said = _joining(Relationship.SPOUSE, date(2007, 2, 14), 12, basis=ADAPTED)
    assert check_move_in(state, said, on, today=TODAY) == []
    assert pointers(check_move_in(young, said, on, today=TODAY)) == ["/member/relationship"]


def test_the_basis_is_the_head_spouses_alone_and_binds_their_divorce() -> None:
    """Only the head's spouse carries a marriage_age_basis (422 at the member's own field
    for anyone else, ADR 0016, 3 Dec 2026, helper hBB); a registered couple whose spouse
    carries the adaptation could marry at 20 and 18, so their divorce is recorded on a
    day the man is 21, which the Civil Code's ages refuse."""
    _, problems = validate_member(
        MemberInput(
            name="杨小梅",
            id_number=compose_resident_id("620123", date(2007, 2, 14), 12),
            relationship=Relationship.OTHER,
            disability_grade=DisabilityGrade.NONE,
            seriously_ill=False,
            employment_status=EmploymentStatus.UNEMPLOYED,
            student=False,
            counted=True,
            exclusion_reason=None,
            exclusion_note=None,
            marriage_age_basis=ADAPTED,
        ),
        pointer="/member",
        today=TODAY,
    )
    assert pointers(problems) == ["/member/marriage_age_basis"]
    husband = ActiveMember(HEAD, Relationship.HEAD, date(2004, 6, 1), sex=Sex.MALE)
    wife = ActiveMember(WIFE, Relationship.SPOUSE, date(2007, 2, 14), sex=Sex.FEMALE)
    said = ActiveMember(
        WIFE, Relationship.SPOUSE, date(2007, 2, 14), sex=Sex.FEMALE, marriage_age_basis=ADAPTED
    )
    _, found = check_divorce(
        HouseholdState(head_person_id=HEAD, members=[husband, wife]), HEAD, WIFE, TODAY, today=TODAY
    )
    assert pointers(found) == ["/divorced_on"]
    assert "(2027-02-14)" in found[0].detail
    adapted_couple = HouseholdState(head_person_id=HEAD, members=[husband, said])
    assert check_divorce(adapted_couple, HEAD, WIFE, TODAY, today=TODAY)[1] == []
    assert first_marriageable_day(
        (husband.birth_date, husband.sex), (said.birth_date, said.sex), basis=ADAPTED
    ) == date(2025, 2, 14)
