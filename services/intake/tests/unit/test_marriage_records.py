"""Which marriages between members the household's record shows, and how they end (ADR
0016): cases beside the head's own marriage."""

from __future__ import annotations

import uuid
from datetime import date

from dibao_intake.domain.changes import (
    ActiveMember,
    HouseholdState,
    Marriages,
    PastChange,
    check_marriage,
    check_marriage_in_household,
    marriages_in_household,
    spouse_left_behind,
)
from dibao_intake.domain.codes import Relationship

TODAY = date(2026, 11, 28)
HEAD, FATHER, MOTHER, LODGER = (uuid.uuid4() for _ in range(4))
WITH_PARENTS = HouseholdState(
    head_person_id=HEAD,
    members=[
        ActiveMember(HEAD, Relationship.HEAD, date(1968, 4, 2)),
        ActiveMember(FATHER, Relationship.PARENT, date(1940, 2, 2)),
        ActiveMember(MOTHER, Relationship.PARENT, date(1944, 1, 5)),
        ActiveMember(LODGER, Relationship.OTHER, date(1942, 7, 1)),
    ],
)


def test_a_parent_who_leaves_leaves_the_other_parent_behind() -> None:
    """The head's two parents (or parents-in-law) are taken to be married to each other
    (a7b1c61 refuses either's marriage while both live here): one's death or move out
    ends that marriage, and names the other as the spouse left behind, as the head's
    spouse is named. With a third member of the relationship nothing tells the couple."""
    assert spouse_left_behind(WITH_PARENTS, FATHER) == MOTHER
    assert spouse_left_behind(WITH_PARENTS, MOTHER) == FATHER
    in_laws = HouseholdState(
        HEAD,
        [
            ActiveMember(HEAD, Relationship.HEAD, date(1968, 4, 2)),
            ActiveMember(FATHER, Relationship.PARENT_IN_LAW, date(1940, 2, 2)),
            ActiveMember(MOTHER, Relationship.PARENT_IN_LAW, date(1944, 1, 5)),
        ],
    )
    assert spouse_left_behind(in_laws, MOTHER) == FATHER
    step = ActiveMember(uuid.uuid4(), Relationship.PARENT, date(1941, 3, 3))
    three = HouseholdState(HEAD, [*WITH_PARENTS.members, step])
    assert spouse_left_behind(three, FATHER) is None
    alone = HouseholdState(HEAD, [m for m in WITH_PARENTS.members if m.person_id != FATHER])
    assert spouse_left_behind(alone, MOTHER) is None


def test_the_widowed_parent_marries_on_or_after_the_other_parents_death() -> None:
    """The head's father died on 1 Mar (recorded, naming the mother left behind): the
    mother's marriage to the lodger dated 14 Feb, while her husband lived, is refused at
    married_on; on or after 1 Mar it is recorded."""
    died = date(2026, 3, 1)
    death = PastChange("death", died, {"person_id": str(FATHER), "spouse_person_id": str(MOTHER)})
    marriages = marriages_in_household(
        [death], head_person_id=HEAD, left_as={(FATHER, died): Relationship.PARENT}
    )
    assert marriages == Marriages({}, {FATHER: died, MOTHER: died})
    widowed = HouseholdState(HEAD, [m for m in WITH_PARENTS.members if m.person_id != FATHER])
    _, found = check_marriage_in_household(
        widowed, MOTHER, LODGER, date(2026, 2, 14), today=TODAY, marriages=marriages
    )
    assert [v.pointer for v in found] == ["/married_on"]
    assert "2026-03-01" in found[0].detail
    recorded, found = check_marriage_in_household(
        widowed, MOTHER, LODGER, died, today=TODAY, marriages=marriages
    )
    assert (recorded, found) == ({LODGER: Relationship.PARENT}, [])


def test_a_leaver_married_by_a_recorded_marriage_ends_it_whoever_else_is_named() -> None:
    """The father married the lodger here (recorded); the mother moved in later, so both
    are the head's parents. The father's death names the mother (the one other parent),
    but the marriage the record holds is his and the lodger's: it ends too, and she is
    married to nobody here after it."""
    married_on, died = date(2025, 5, 1), date(2026, 3, 1)
    changes = [
        PastChange(
            "marriage",
            married_on,
            {"person_id": str(FATHER), "spouse_person_id": str(LODGER), "relationships": {}},
        ),
        PastChange("death", died, {"person_id": str(FATHER), "spouse_person_id": str(MOTHER)}),
    ]
    marriages = marriages_in_household(changes, head_person_id=HEAD, left_as={})
    assert marriages.married_to == {}
    assert marriages.ended_on[LODGER] == died
    assert marriages.ended_on[FATHER] == died


def test_a_head_married_to_a_member_here_may_not_marry_again() -> None:
    """The son married the lodger here (she became a child-in-law); his father died and
    the son heads the household, his wife recorded against him as the clerk gave it
    (other). The record holds his marriage to her while both are members: he may not
    marry again, a spouse joining, living elsewhere or a member, as any other member
    married to one here may not (ADR 0016). The head was left out of that check."""
    son, wife, tenant = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    state = HouseholdState(
        head_person_id=son,
        members=[
            ActiveMember(son, Relationship.HEAD, date(1990, 4, 2)),
            ActiveMember(wife, Relationship.OTHER, date(1992, 6, 1)),
            ActiveMember(tenant, Relationship.OTHER, date(1993, 3, 3)),
        ],
    )
    marriages = Marriages({son: wife, wife: son}, {})
    on = date(2026, 7, 1)
    found = check_marriage(state, son, on, None, today=TODAY, marriages=marriages)
    assert [v.pointer for v in found] == ["/person_id"]
    _, found = check_marriage_in_household(state, son, tenant, on, today=TODAY, marriages=marriages)
    assert [v.pointer for v in found] == ["/person_id"]
    _, found = check_marriage_in_household(state, tenant, son, on, today=TODAY, marriages=marriages)
    assert [v.pointer for v in found] == ["/spouse_person_id"]
    # Unmarried here, he may.
    assert check_marriage(state, son, on, None, today=TODAY) == []


def test_the_head_who_has_a_spouse_is_refused_at_the_heads_own_field() -> None:
    """A lodger and the head, who has a spouse: refused at the head's field, whichever of
    the two the request names first (it was always /person_id, the lodger's when the
    lodger was named first)."""
    wife = uuid.uuid4()
    state = HouseholdState(
        HEAD,
        [
            ActiveMember(HEAD, Relationship.HEAD, date(1968, 4, 2)),
            ActiveMember(wife, Relationship.SPOUSE, date(1970, 9, 14)),
            ActiveMember(LODGER, Relationship.OTHER, date(1969, 7, 1)),
        ],
    )
    on = date(2026, 7, 1)
    _, found = check_marriage_in_household(state, HEAD, LODGER, on, today=TODAY)
    assert [v.pointer for v in found] == ["/person_id"]
    _, found = check_marriage_in_household(state, LODGER, HEAD, on, today=TODAY)
    assert [v.pointer for v in found] == ["/spouse_person_id"]
    assert "the head already has a spouse" in found[0].detail
