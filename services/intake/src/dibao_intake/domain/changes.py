"""Changes to a registered household: births, deaths, marriages, moves, bank accounts, and
a member's own details."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import date
from typing import Any

from dibao_intake.domain.codes import (
    AreaType,
    ChangeKind,
    DisabilityGrade,
    EmploymentStatus,
    ExclusionReason,
    MarriageAgeBasis,
    Relationship,
    Sex,
)
from dibao_intake.domain.errors import Violation
from dibao_intake.domain.household import (
    ValidMember,
    adapted,
    age_order_violations,
    check_joining_member,
    exclusion_violations,
    first_marriageable_day,
    marriage_age,
    marriage_age_violations,
    married_by,
    of_marriageable_age,
)
from dibao_intake.domain.resident_id import age_on
from dibao_intake.domain.working_age import employment_violations


@dataclass(frozen=True, slots=True)
class ActiveMember:
    person_id: uuid.UUID
    relationship: Relationship
    birth_date: date
    joined_on: date | None = None
    """When the membership began; a member cannot leave before it."""
    sex: Sex | None = None
    """As the ID number tells; None when not known. Two members of one sex are no couple
    the relationships tell (a marriage is between a man and a woman, Civil Code art.
    1049)."""
    marriage_age_basis: MarriageAgeBasis | None = None
    """For a spouse registered with the head or moved in as the head's spouse: the legal
    marriage age the clerk said their marriage was lawful under (ADR 0016, 3 Dec 2026,
    helper hBB); None: not said, the Civil Code's."""


@dataclass(frozen=True, slots=True)
class HouseholdState:
    """The active members of a household as recorded now."""

    head_person_id: uuid.UUID
    members: Sequence[ActiveMember]
    registered_on: date | None = None
    """The day the household was registered."""
    registered_with: Sequence[ActiveMember] = ()
    """The members registered with the household, still members or not, their
    relationship as last recorded: who a child-in-law registered with it is married to."""

    def member(self, person_id: uuid.UUID) -> ActiveMember | None:
        return next((m for m in self.members if m.person_id == person_id), None)

    @property
    def head(self) -> ActiveMember:
        head = self.member(self.head_person_id)
        assert head is not None, "the head is always an active member"
        return head

    def has_spouse(self) -> bool:
        return any(m.relationship is Relationship.SPOUSE for m in self.members)


def _not_after_today(day: date, today: date, pointer: str) -> list[Violation]:
    return [Violation(pointer, "cannot be in the future")] if day > today else []


def _joined_after(member: ActiveMember, day: date) -> bool:
    """The record shows ``member`` joining after ``day``: not in the household then. A
    member registered with it carries no day (``joined_on`` None) and was."""
    return member.joined_on is not None and member.joined_on > day


def _leaving(
    state: HouseholdState,
    person_id: uuid.UUID,
    new_head_person_id: uuid.UUID | None,
    on: date,
) -> list[Violation]:
    """Rules shared by a death and a move out on ``on``: who leaves, and who is head
    afterwards. The new head heads the household from ``on``: a member the record shows
    joining after it (a later move in, birth or marriage) was not in it then, and is
    refused while one who was can be named (ADR 0016). When every member who stays
    joined after ``on``, the record shows nobody there to head it; the day of a death or
    move out is what stops or changes the allowance, so it is recorded as it is and any
    of them may be named (the naming is forced, as ADR 0016's reverted rule says)."""
    if state.member(person_id) is None:
        return [Violation("/person_id", "not an active member of this household")]
    remaining = [m for m in state.members if m.person_id != person_id]
    if person_id == state.head_person_id and remaining:
        if new_head_person_id is None:
            return [Violation("/new_head_person_id", "the head leaves: name the new head")]
        heir = next((m for m in remaining if m.person_id == new_head_person_id), None)
        if heir is None:
            return [Violation("/new_head_person_id", "must be another active member")]
        if _joined_after(heir, on) and not all(_joined_after(m, on) for m in remaining):
            return [
                Violation(
                    "/new_head_person_id",
                    f"joined the household on {heir.joined_on}, after {on}: name a member"
                    " who was in it then",
                )
            ]
    elif new_head_person_id is not None and new_head_person_id != state.head_person_id:
        return [Violation("/new_head_person_id", "only when the head leaves")]
    return []


def _not_before_joining(
    state: HouseholdState, person_id: uuid.UUID, day: date, pointer: str
) -> list[Violation]:
    member = state.member(person_id)
    if member is not None and member.joined_on is not None and day < member.joined_on:
        return [
            Violation(pointer, f"is before the member joined the household ({member.joined_on})")
        ]
    return []


_R = Relationship
_SEEN_FROM_HEIR: dict[Relationship, dict[Relationship, Relationship]] = {
    _R.SPOUSE: {
        _R.CHILD: _R.CHILD,
        _R.GRANDCHILD: _R.GRANDCHILD,
        _R.CHILD_IN_LAW: _R.CHILD_IN_LAW,
        _R.PARENT: _R.PARENT_IN_LAW,
        _R.PARENT_IN_LAW: _R.PARENT,
    },
    _R.CHILD: {
        _R.SPOUSE: _R.PARENT,
        _R.CHILD: _R.SIBLING,
        _R.PARENT: _R.GRANDPARENT,
        _R.PARENT_IN_LAW: _R.GRANDPARENT,
    },
    _R.PARENT: {
        _R.SPOUSE: _R.CHILD_IN_LAW,
        _R.CHILD: _R.GRANDCHILD,
        _R.PARENT: _R.SPOUSE,
        _R.SIBLING: _R.CHILD,
    },
    _R.SIBLING: {
        _R.PARENT: _R.PARENT,
        _R.SIBLING: _R.SIBLING,
        _R.GRANDPARENT: _R.GRANDPARENT,
    },
}
"""A member's relationship to the new head, by the heir's relationship to the old head
and then the member's. What is missing cannot be told from the two alone (the old
head's grandchild may be the heir's child or a nephew) and must be given."""


def _to_new_head_violations(
    state: HouseholdState,
    marriages: Marriages,
    leaving: uuid.UUID,
    member: ActiveMember,
    relationship: Relationship,
    heir: ActiveMember,
    on: date,
    pointer: str,
) -> list[Violation]:
    """What a registration refuses of ``member`` recorded as ``relationship`` to ``heir``,
    the head from ``on``, and what the record's ``marriages`` refuse of a relationship
    correction to the spouse (the head ``leaving`` ends their own marriage)."""
    found = age_order_violations(relationship, member.birth_date, heir.birth_date, pointer)
    if relationship is Relationship.SPOUSE:
        found += _man_and_woman(heir.sex, member.sex, pointer, "the new head")
        found += marriage_age_violations(
            relationship,
            member.birth_date,
            heir.birth_date,
            on,
            pointer,
            sex=member.sex,
            head_sex=heir.sex,
        )
        found += _new_heads_spouse_by_the_record(state, marriages, leaving, member, heir, pointer)
    return found


def _new_heads_spouse_by_the_record(
    state: HouseholdState,
    marriages: Marriages,
    leaving: uuid.UUID,
    member: ActiveMember,
    heir: ActiveMember,
    pointer: str,
) -> list[Violation]:
    """What the record's ``marriages`` refuse of ``member`` as the spouse of ``heir``, the
    new head, as they refuse a relationship correction to the spouse: either married to
    another member who stays or to a spouse living elsewhere, or the two divorced."""
    return (
        _married_to_another_member(
            state,
            marriages,
            member.person_id,
            heir.person_id,
            pointer,
            head_is="the new head",
            leaving=leaving,
        )
        + _married_elsewhere(
            state, marriages, member, pointer, head=heir.person_id, head_is="the new head"
        )
        + _divorced(marriages, member.person_id, heir.person_id, pointer, "the new head")
        + left_behind(marriages, member.person_id, pointer, "the member", to=heir.person_id)
        + left_behind(marriages, heir.person_id, pointer, "the new head", to=member.person_id)
    )


def relationships_to_new_head(
    state: HouseholdState,
    leaving: uuid.UUID,
    heir: uuid.UUID,
    given: Mapping[uuid.UUID, Relationship],
    *,
    on: date,
    marriages: Marriages | None = None,
) -> tuple[dict[uuid.UUID, Relationship], list[Violation]]:
    """Each remaining member's relationship to ``heir``, who becomes head as the head
    ``leaving`` goes on ``on``: as ``given`` (pointer ``/relationships/<person id>``),
    else derived from the relationships to the old head; a violation for each that is
    neither. A code given is held to the rules a registration, a member joining and a
    relationship correction apply (ADR 0016, 3 Dec 2026): a child or grandchild younger
    than the new head, a parent or grandparent older, a spouse of the other sex, both 18
    or more on ``on``; and a spouse neither of whom the household's ``marriages`` show
    married to another member who stays, nor to a spouse living elsewhere (but the new
    head's, who moved in on or after that marriage's day), nor divorced from each other;
    a member the record shows married to the new head is their spouse."""
    marriages = marriages or NO_MARRIAGES
    heir_member = state.member(heir)
    assert heir_member is not None
    seen_from_heir = _SEEN_FROM_HEIR.get(heir_member.relationship, {})
    others = [m for m in state.members if m.person_id not in (leaving, heir)]
    found: list[Violation] = []
    for person_id, relationship in given.items():
        pointer = f"/relationships/{person_id}"
        member = next((m for m in others if m.person_id == person_id), None)
        if member is None:
            found.append(Violation(pointer, "not a member who stays under the new head"))
        elif relationship is Relationship.HEAD:
            found.append(Violation(pointer, "the new head is new_head_person_id"))
        else:
            found += _to_new_head_violations(
                state, marriages, leaving, member, relationship, heir_member, on, pointer
            )
    rebased: dict[uuid.UUID, Relationship] = {heir: Relationship.HEAD}
    for m in others:
        derived = seen_from_heir.get(m.relationship)
        pointer = f"/relationships/{m.person_id}"
        why = ""
        if derived is Relationship.SPOUSE and _same_sex(heir_member.sex, m.sex):
            # The old head's two parents of one sex are no couple (a marriage is between
            # a man and a woman): what the one is to the other is not told, but asked.
            derived = None
        elif derived is Relationship.SPOUSE:
            # Nor are two parents the record shows divorced, or one of them married to
            # somebody else: asked, as a relationship correction to the spouse is refused.
            refused = _new_heads_spouse_by_the_record(
                state, marriages, leaving, m, heir_member, pointer
            )
            if refused:
                derived, why = None, f", taken for the new head's spouse, but {refused[0].detail}"
        elif derived is not None:
            # A registration's age order (ADR 0016, 3 Dec 2026): the old head's young second
            # wife is no parent of his older son, nor the old head's grandchild older than
            # his widow her grandchild. Asked, as a code the record cannot tell is.
            refused = age_order_violations(derived, m.birth_date, heir_member.birth_date, pointer)
            if refused:
                why = (
                    f", which would make them the new head's {derived.value}, but"
                    f" {refused[0].detail} (the new head)"
                )
                derived = None
        to_heir = given.get(m.person_id) or derived
        if to_heir is None:
            found.append(
                Violation(
                    pointer,
                    f"the member was the old head's {m.relationship.value}{why}: give their"
                    " relationship to the new head",
                )
            )
        else:
            rebased[m.person_id] = to_heir
    for m in others:
        to_heir = rebased.get(m.person_id)
        if marriages.married_to.get(m.person_id) == heir and to_heir not in (None, _R.SPOUSE):
            # As a relationship correction refuses it: the record shows the two married.
            found.append(
                Violation(
                    f"/relationships/{m.person_id}",
                    "the record shows the member married to the new head by a marriage"
                    " recorded here: the new head's spouse (a divorce ends a marriage)",
                )
            )
    if sum(r is Relationship.SPOUSE for r in rebased.values()) > 1:
        found.append(Violation("/relationships", "the new head would have two spouses"))
    return rebased, found


def check_death(
    state: HouseholdState,
    person_id: uuid.UUID,
    died_on: date,
    new_head_person_id: uuid.UUID | None,
    *,
    today: date,
    marriages: Marriages | None = None,
    details_on: date | None = None,
) -> list[Violation]:
    """A member died. Not before they were born or joined, nor before the day the record
    shows them marry or divorce here (``marriages.acted_on``): a divorce is not dated
    after a partner's death, whichever of the two is recorded first; nor before their
    latest change of details recorded (``details_on``, ``details_changed_on``: a
    certificate, a job, school, counted or not, ADR 0016, 3 Dec 2026). Being widowed (or
    left by a spouse who moved out), named head, or declared missing is no such day: none
    is the member's own act, and an old couple's deaths are often recorded in the other
    order than they happened."""
    return _leaves_on(
        state,
        person_id,
        new_head_person_id,
        died_on,
        ("/date_of_death", "a death"),
        today=today,
        marriages=marriages,
        details_on=details_on,
    )


def _leaves_on(
    state: HouseholdState,
    person_id: uuid.UUID,
    new_head_person_id: uuid.UUID | None,
    on: date,
    field: tuple[str, str],
    *,
    today: date,
    marriages: Marriages | None,
    details_on: date | None,
) -> list[Violation]:
    """A member leaves the household on ``on`` (a death, a move out: ``field`` is its
    pointer and its name): not after today, nor before they were born or joined, nor
    before the day the record shows them marry or divorce here (``marriages.acted_on``)
    or their latest change of details recorded (``details_on``; ADR 0016, 3 Dec 2026)."""
    pointer, what = field
    found = _leaving(state, person_id, new_head_person_id, on)
    found += _not_after_today(on, today, pointer)
    member = state.member(person_id)
    if member is not None and on < member.birth_date:
        found.append(Violation(pointer, "is before the member's birth date"))
    else:
        found += _not_before_joining(state, person_id, on, pointer)
    acted_on = (marriages or NO_MARRIAGES).acted_on.get(person_id)
    if acted_on is not None and on < acted_on:
        found.append(
            Violation(
                pointer,
                f"is before {acted_on}, when the record shows the member marry or divorce"
                f" here: {what} is dated on or after it",
            )
        )
    elif details_on is not None and on < details_on:
        found.append(Violation(pointer, _after_details(details_on, what)))
    return found


def _after_details(details_on: date, what: str) -> str:
    return (
        f"is before {details_on}, when the record shows the member's details change here"
        f" (a member_change): {what} is dated on or after it"
    )


def check_move_out(
    state: HouseholdState,
    person_id: uuid.UUID,
    moved_on: date,
    new_head_person_id: uuid.UUID | None,
    *,
    today: date,
    marriages: Marriages | None = None,
    details_on: date | None = None,
) -> list[Violation]:
    """A member moved out on ``moved_on``: not before they were born or joined, nor before
    the day the record shows them marry or divorce here (``marriages.acted_on``: both
    partners of a marriage or divorce recorded here are members that day) or their latest
    change of details recorded (``details_on``), as for a death (ADR 0016, 3 Dec 2026)."""
    return _leaves_on(
        state,
        person_id,
        new_head_person_id,
        moved_on,
        ("/moved_on", "a move out"),
        today=today,
        marriages=marriages,
        details_on=details_on,
    )


SHOWS_NOTHING_OF_THE_MEMBER = frozenset({ExclusionReason.DECLARED_MISSING.value})
"""An exclusion recorded by a member change that is no act of the member's: a court's
declaration that their whereabouts are unknown (宣告失踪), often followed by the finding of
a death before it. It bounds no death nor move out."""

_EXCLUSION_DETAILS = frozenset({"counted", "exclusion_reason", "exclusion_note"})


def details_changed_on(changes: Sequence[PastChange], person_id: uuid.UUID) -> date | None:
    """The day of the latest change of ``person_id``'s own details the record holds (a
    ``member_change`` whose ``changed`` is not empty: a disability certificate, an
    illness, a job, school, counted or not), which shows the member alive and a member
    that day (ADR 0016, 3 Dec 2026). Not a name or relationship correction alone (dated
    by nothing, or by the day the error was found: ``changed`` is empty), not a
    declaration of missing (``SHOWS_NOTHING_OF_THE_MEMBER``), nor a change dated by the
    day it was entered (a bank account change)."""
    latest: date | None = None
    for change in changes:
        if change.kind != ChangeKind.MEMBER_CHANGE:
            continue
        if str(change.details.get("person_id")) != str(person_id):
            continue
        changed = change.details.get("changed") or {}
        if not changed:
            continue
        if (
            changed.get("exclusion_reason") in SHOWS_NOTHING_OF_THE_MEMBER
            and set(changed) <= _EXCLUSION_DETAILS
        ):
            continue
        if latest is None or change.effective_on > latest:
            latest = change.effective_on
    return latest


BIRTH_REGISTERED_UNDER = 18
"""A birth registers a minor: the child is under 18 (the age of majority, Civil Code art.
17) on the day it is recorded (ADR 0016, 3 Dec 2026, helper hAH)."""


def check_birth(state: HouseholdState, child: ValidMember, *, today: date) -> list[Violation]:
    """A child or grandchild of the head is born into the household: younger than the head,
    and under 18 on ``today``, the day it is recorded. A birth registered late (a child
    left without hukou, registered years after) is lawful and dated on the day of birth,
    the member joining then; an adult never registered joins by a ``move_in`` on the day
    they join, not by a birth that would date their membership decades back (ADR 0016,
    3 Dec 2026, helper hAH)."""
    found = check_joining_member(child, head_birth_date=state.head.birth_date, pointer="/member")
    if child.input.relationship not in (Relationship.CHILD, Relationship.GRANDCHILD):
        found.append(Violation("/member/relationship", "a newborn is a child or grandchild"))
    age = age_on(child.birth_date, today)
    if age >= BIRTH_REGISTERED_UNDER:
        found.append(
            Violation(
                "/member/id_number",
                f"the ID number gives a person of {age} on {today}: a birth registers a child"
                f" under {BIRTH_REGISTERED_UNDER}, however late; an adult never registered"
                " joins by a move_in on the day they join",
            )
        )
    return found


ONLY_WITH_LEAVES = (
    "only with leaves_household_id: the move out of the household left, when the person"
    " heads it or applied for its open application"
)


def move_out_fields_alone(
    leaves_household_id: uuid.UUID | None,
    *,
    new_head_person_id: uuid.UUID | None,
    relationships: Mapping[uuid.UUID, Relationship],
    new_applicant_person_id: uuid.UUID | None,
) -> list[Violation]:
    """A move in's fields of the move out of the household left, given without naming that
    household (``leaves_household_id``): refused at each, rather than dropped (ADR 0016,
    3 Dec 2026, helper hAL)."""
    if leaves_household_id is not None:
        return []
    given = {
        "/new_head_person_id": new_head_person_id is not None,
        "/relationships": bool(relationships),
        "/new_applicant_person_id": new_applicant_person_id is not None,
    }
    return [Violation(pointer, ONLY_WITH_LEAVES) for pointer, on in given.items() if on]


def of_the_household_left(violations: Sequence[Violation]) -> list[Violation]:
    """The violations of the move out a move in records in the household left, as the move
    in's answer shows them: at the same pointers (the move in's body names the move out's
    fields alike), each saying which household it is of (ADR 0016, 3 Dec 2026)."""
    return [Violation(v.pointer, f"{v.detail} (the household left)") for v in violations]


def check_move_in(
    state: HouseholdState,
    member: ValidMember,
    moved_on: date,
    *,
    today: date,
    marriages: Marriages | None = None,
) -> list[Violation]:
    """A member moves in on ``moved_on``. As the head's spouse: the head has none, by the
    relationships nor by the household's ``marriages`` (a head married here to a member
    recorded otherwise, as a relationship correction to the spouse refuses it, ADR 0016),
    of the other sex, both 18 that day."""
    found = check_joining_member(member, head_birth_date=state.head.birth_date, pointer="/member")
    married_to = (marriages or NO_MARRIAGES).married_to.get(state.head_person_id)
    partner = None if married_to is None else state.member(married_to)
    if member.input.relationship is Relationship.SPOUSE and state.has_spouse():
        found.append(Violation("/member/relationship", "the head already has a spouse"))
    elif member.input.relationship is Relationship.SPOUSE and partner is not None:
        found.append(
            Violation(
                "/member/relationship",
                "the record shows the head married to another member by a marriage recorded"
                f" here (recorded as the head's {partner.relationship.value}: a member_change"
                " corrects that to spouse)",
            )
        )
    elif member.input.relationship is Relationship.SPOUSE:
        found += _man_and_woman(state.head.sex, member.sex, "/member/relationship", "the head")
        found += marriage_age_violations(
            Relationship.SPOUSE,
            member.birth_date,
            state.head.birth_date,
            moved_on,
            "/member/relationship",
            sex=member.sex,
            head_sex=state.head.sex,
            basis=member.input.marriage_age_basis,
        )
    if moved_on < member.birth_date:
        found.append(Violation("/moved_on", "is before the member's birth date"))
    return found + _not_after_today(moved_on, today, "/moved_on")


def check_spouse_moving_in(
    state: HouseholdState, marriages: Marriages, person_id: uuid.UUID
) -> list[Violation]:
    """``person_id`` moves in as the head's spouse (known once the ID number is): not one
    the record shows divorced from the head and not married to them again here, as a
    relationship correction to the spouse is refused (ADR 0016, 3 Dec 2026). Their
    marriage since is recorded as a marriage, the spouse joining, on its day."""
    return _divorced(
        marriages,
        person_id,
        state.head_person_id,
        "/member/relationship",
        then="their marriage since is recorded as one (kind marriage, the spouse joining),"
        " on its day",
    )


@dataclass(frozen=True, slots=True)
class PastChange:
    """A change recorded before, as the household's record holds it."""

    kind: str
    effective_on: date
    details: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class LeftBy:
    """A member's marriage to a spouse who moved out of the household (ADR 0016, 3 Dec
    2026, helper hAG): the move out ended the couple's life here, not the marriage, which
    now is one to a spouse living elsewhere whom the registry knows (``partner``, by person
    id). ``married_on``: the marriage's day when a marriage recorded here has it;
    ``left_on``: the move out's day."""

    partner: uuid.UUID
    married_on: date | None
    left_on: date


@dataclass(frozen=True, slots=True)
class Marriages:
    """The marriages the household's record shows between its members: who is married to
    whom now (those a marriage recorded, both still members), and when each person's last
    marriage here ended (the day their spouse died or moved out, or they did, or the two
    divorced).

    ``married_on``: the day each current marriage a marriage recorded was made, by each
    partner (a divorce is dated on or after it); ``elsewhere``: the members whose
    marriage to a spouse living elsewhere was recorded and has not ended here, by its day;
    ``divorced``: each couple whose divorce was recorded (a member and a spouse elsewhere:
    the member alone); ``acted_on``: the day of each person's last marriage or divorce
    recorded here, acts of their own that show them alive then (being widowed, or left
    by a spouse who moved out, is none); ``ended_elsewhere``: the members whose last
    marriage recorded is one to a spouse living elsewhere that ended here (a divorce
    naming the member alone, or that spouse's death); ``left_by``: the members whose
    spouse moved out, the marriage ended since by nothing recorded here (``LeftBy``)."""

    married_to: Mapping[uuid.UUID, uuid.UUID]
    ended_on: Mapping[uuid.UUID, date]
    married_on: Mapping[uuid.UUID, date] = field(default_factory=dict)
    elsewhere: Mapping[uuid.UUID, date] = field(default_factory=dict)
    divorced: frozenset[frozenset[uuid.UUID]] = frozenset()
    acted_on: Mapping[uuid.UUID, date] = field(default_factory=dict)
    ended_elsewhere: frozenset[uuid.UUID] = frozenset()
    left_by: Mapping[uuid.UUID, LeftBy] = field(default_factory=dict)

    @property
    def known(self) -> frozenset[uuid.UUID]:
        """Everybody the record shows married, or whose marriage here ended."""
        return frozenset(self.married_to.keys() | self.ended_on.keys() | self.elsewhere.keys())


NO_MARRIAGES = Marriages({}, {})


def marriages_in_household(
    changes: Sequence[PastChange],
    *,
    head_person_id: uuid.UUID,
    left_as: Mapping[tuple[uuid.UUID, date], Relationship],
) -> Marriages:
    """The marriages between members that ``changes`` (in the order recorded) show.

    A couple is a marriage's member and its spouse when the spouse joined or was a member
    (a spouse living elsewhere makes none here), and the head and the member recorded as
    their spouse. A death or move out ends the leaver's marriage here: with the spouse the
    change names (``spouse_person_id``, recorded since 1 Dec 2026), else the one a
    marriage recorded, else, for a member who left as the spouse (``left_as``: the
    relationship each ended membership had, by person and day left), the head then (the
    head before each change follows from the changes that named a new head); a marriage
    ends on its own day at the earliest (a move out dated before it, recorded after it).
    A ``spouse_death`` ends the member's marriage to a spouse living elsewhere on its day
    (not before the marriage's), as a divorce naming the member alone does; being widowed
    is no act of the member's (``acted_on``). A later marriage ends the earlier marriage
    elsewhere of either partner it names (``person_id`` or ``spouse_person_id``: ADR
    0016 reads it as telling that one over). A move out leaves the spouse who stays
    married to the one who left (``left_by``, ADR 0016, 3 Dec 2026, helper hAG): a
    divorce naming them (alone), a ``spouse_death``, a later marriage of theirs recorded
    here (the registry's word that they were free: read so for records made before this
    day, which refused none) or their own death or move out ends that here; the registry
    may end it elsewhere (the partner's death, or a later act of theirs). ``head_person_id``
    is the head now."""
    heads_before: list[uuid.UUID] = []
    head = head_person_id
    for change in reversed(changes):
        if change.details.get("new_head_person_id"):
            head = uuid.UUID(str(change.details["person_id"]))
        heads_before.append(head)
    heads_before.reverse()
    married_to: dict[uuid.UUID, uuid.UUID] = {}
    ended_on: dict[uuid.UUID, date] = {}
    married_on: dict[uuid.UUID, date] = {}
    elsewhere: dict[uuid.UUID, date] = {}
    divorced: set[frozenset[uuid.UUID]] = set()
    acted_on: dict[uuid.UUID, date] = {}
    ended_elsewhere: set[uuid.UUID] = set()
    left_by: dict[uuid.UUID, LeftBy] = {}

    def end(person: uuid.UUID, on: date) -> None:
        # Not before the marriage's own day: a move out recorded after a marriage and
        # dated before it ended nothing earlier (the partner's next marriage would have
        # preceded this one).
        on = max(on, married_on.pop(person, on))
        ended_on[person] = max(ended_on.get(person, on), on)

    def act(person: uuid.UUID, on: date) -> None:
        acted_on[person] = max(acted_on.get(person, on), on)

    for change, head_then in zip(changes, heads_before, strict=True):
        details = change.details
        spouse = details.get("spouse_person_id")
        if change.kind == ChangeKind.MARRIAGE:
            member = uuid.UUID(str(details["person_id"]))
            spouse = spouse or next(iter(details.get("joined_person_ids") or ()), None)
            # A marriage of a member married elsewhere tells that marriage is over.
            elsewhere.pop(member, None)
            left_by.pop(member, None)
            ended_elsewhere.discard(member)
            act(member, change.effective_on)
            if not spouse:
                elsewhere[member] = married_on[member] = change.effective_on
                continue
            partner = uuid.UUID(str(spouse))
            # Whichever of the two the change names first: the spouse's marriage
            # elsewhere is over too (it showed again once this one ended here).
            elsewhere.pop(partner, None)
            left_by.pop(partner, None)
            ended_elsewhere.discard(partner)
            act(partner, change.effective_on)
            married_to[member], married_to[partner] = partner, member
            married_on[member] = married_on[partner] = change.effective_on
        elif change.kind == ChangeKind.DIVORCE:
            member = uuid.UUID(str(details["person_id"]))
            couple = {member} | ({uuid.UUID(str(spouse))} if spouse else set())
            for person in couple:
                married_to.pop(person, None)
                elsewhere.pop(person, None)
                left_by.pop(person, None)
                end(person, change.effective_on)
                act(person, change.effective_on)
            divorced.add(frozenset(couple))
            if not spouse:
                ended_elsewhere.add(member)
        elif change.kind == ChangeKind.SPOUSE_DEATH:
            member = uuid.UUID(str(details["person_id"]))
            elsewhere.pop(member, None)
            left_by.pop(member, None)
            end(member, change.effective_on)
            ended_elsewhere.add(member)
        elif change.kind in (ChangeKind.DEATH, ChangeKind.MOVE_OUT):
            leaver = uuid.UUID(str(details["person_id"]))
            elsewhere.pop(leaver, None)
            left_by.pop(leaver, None)
            # The marriage recorded here, and the spouse the change names: the same person
            # but for a parent who married here and was later joined by another parent
            # (the change names that one); both end.
            recorded = married_to.pop(leaver, None)
            left = set() if recorded is None else {recorded}
            if details.get("spouse_person_id"):
                left.add(uuid.UUID(str(details["spouse_person_id"])))
            elif not left and left_as.get((leaver, change.effective_on)) is _R.SPOUSE:
                left.add(head_then)
            for partner in left:
                if married_to.get(partner) == leaver:
                    del married_to[partner]
                if change.kind == ChangeKind.MOVE_OUT and partner != leaver:
                    # The couple's life here ends, not the marriage (ADR 0016, 3 Dec 2026).
                    left_by[partner] = LeftBy(
                        leaver,
                        married_on.get(partner),
                        max(change.effective_on, married_on.get(partner, date.min)),
                    )
                else:
                    left_by.pop(partner, None)
                for person in (leaver, partner):
                    end(person, change.effective_on)
    return Marriages(
        married_to,
        ended_on,
        married_on,
        elsewhere,
        frozenset(divorced),
        acted_on,
        frozenset(ended_elsewhere),
        left_by,
    )


def spouse_left_behind(
    state: HouseholdState, person_id: uuid.UUID, marriages: Marriages = NO_MARRIAGES
) -> uuid.UUID | None:
    """The spouse in the household of a member who dies or moves out: the head's spouse
    when the head leaves, the head when their spouse does, and the partner of a couple
    the relationships tell (``taken_couples``: the head's two parents or parents-in-law)
    when one of the two leaves. A child and a child-in-law registered together are not
    named: that they are a couple is a guess (ADR 0016), which permits their divorce and
    is published as nothing."""
    member = state.member(person_id)
    if person_id == state.head_person_id:
        return next((m.person_id for m in state.members if m.relationship is _R.SPOUSE), None)
    if member is not None and member.relationship is _R.SPOUSE:
        return state.head_person_id
    return taken_couples(state, marriages).get(person_id)


def taken_couples(
    state: HouseholdState, marriages: Marriages, *, registered: bool = False
) -> dict[uuid.UUID, uuid.UUID]:
    """Couples no marriage recorded here, which the relationships to the head tell (ADR
    0016), each partner to the other: the head's two parents, or two parents-in-law, when
    exactly two live here; and, with ``registered`` (a divorce's check alone), a child and
    a child-in-law registered with the household when exactly one child-in-law and one
    child of age on the registration day were, and the record names neither in a marriage
    (a son and his wife registered together; or a widowed daughter-in-law and her late
    husband's unmarried brother, whom the guess would take for her husband: so it refuses
    no marriage and names no spouse left behind). A couple whose divorce was recorded is
    none, nor are two of one sex (a daughter and her late brother's widow)."""
    pairs: list[tuple[uuid.UUID, uuid.UUID]] = []
    for relationship in _ONE_COUPLE:
        same = [m.person_id for m in state.members if m.relationship is relationship]
        if len(same) == 2:
            pairs.append((same[0], same[1]))
    registered_on = state.registered_on
    if registered and registered_on is not None:
        in_law = [m for m in state.registered_with if m.relationship is _R.CHILD_IN_LAW]
        of_age = [
            m
            for m in state.registered_with
            if m.relationship is _R.CHILD and married_by(m.birth_date, m.sex, registered_on)
        ]
        couple = [m.person_id for m in in_law + of_age]
        if (
            len(in_law) == len(of_age) == 1
            and all(state.member(p) is not None for p in couple)
            and not marriages.known.intersection(couple)
        ):
            pairs.append((couple[1], couple[0]))
    couples: dict[uuid.UUID, uuid.UUID] = {}
    sex_of = {m.person_id: m.sex for m in state.members}
    for one, other in pairs:
        if _same_sex(sex_of[one], sex_of[other]):
            continue  # a daughter and a widowed daughter-in-law, two mothers: no couple
        if frozenset((one, other)) not in marriages.divorced and not (
            _married_elsewhere_here(marriages, one, other)
            or _married_elsewhere_here(marriages, other, one)
        ):
            couples[one], couples[other] = other, one
    return couples


def _same_sex(one: Sex | None, other: Sex | None) -> bool:
    return one is not None and one is other


def _married_elsewhere_here(marriages: Marriages, person: uuid.UUID, other: uuid.UUID) -> bool:
    """A marriage recorded here ties ``person`` to someone other than ``other``."""
    return marriages.married_to.get(person, other) != other


def partner_in_household(
    state: HouseholdState, marriages: Marriages, person_id: uuid.UUID
) -> uuid.UUID | None:
    """The member the record takes ``person_id`` to be married to now, for a divorce: by a
    marriage recorded here, as the head and the head's spouse, or as a couple the
    relationships tell (``taken_couples``, a child and a child-in-law registered together
    included: the one rule that guess serves)."""
    recorded = marriages.married_to.get(person_id)
    if recorded is not None and state.member(recorded) is not None:
        return recorded
    member = state.member(person_id)
    if member is None:
        return None
    if person_id == state.head_person_id or member.relationship is _R.SPOUSE:
        return spouse_left_behind(state, person_id)
    return taken_couples(state, marriages, registered=True).get(person_id)


def _head_with_spouse(state: HouseholdState, person_id: uuid.UUID) -> bool:
    """The head with a spouse recorded, refused as that (once) rather than as married to
    a member; a head married here to a member recorded otherwise (the heir's wife given as
    other when the heir became head) is married to a member all the same."""
    return person_id == state.head_person_id and state.has_spouse()


def _after_last_marriage(
    marriages: Marriages, person_id: uuid.UUID, married_on: date, who: str
) -> list[Violation]:
    """A member marries on or after the end of their last marriage in the household."""
    ended = marriages.ended_on.get(person_id)
    if ended is not None and married_on < ended:
        return [
            Violation(
                "/married_on",
                f"is before the end of {who}'s last marriage in this household ({ended}):"
                f" a marriage is dated on or after {ended}",
            )
        ]
    return []


def still_left_behind(state: HouseholdState, marriages: Marriages) -> dict[uuid.UUID, LeftBy]:
    """``marriages.left_by`` without the members the household's relationships show
    married here since (ADR 0016, 3 Dec 2026, helper hAG): a head with a spouse, or a
    member recorded as the head's spouse, the head not the one who moved out. Recorded
    before this day (a spouse moving in was not refused then), that is read as telling the
    earlier marriage over, as a later marriage recorded here is."""
    found: dict[uuid.UUID, LeftBy] = {}
    for person, left in marriages.left_by.items():
        member = state.member(person)
        if member is None:
            continue
        if person == state.head_person_id and state.has_spouse():
            continue
        if member.relationship is _R.SPOUSE and state.head_person_id != left.partner:
            continue
        found[person] = left
    return found


def left_behind(
    marriages: Marriages,
    person_id: uuid.UUID,
    pointer: str,
    who: str,
    *,
    to: uuid.UUID | None = None,
) -> list[Violation]:
    """A marriage of ``person_id`` (to ``to``, None: nobody the record names) while the
    record shows them married to a spouse who moved out of the household (``left_by``),
    ended by no divorce nor death since (ADR 0016, 3 Dec 2026, helper hAG): a move out ends
    the couple's life here, not the marriage (Civil Code art. 1042). The same couple
    meeting again (``to`` the one who moved out) is no second marriage."""
    left = marriages.left_by.get(person_id)
    if left is None or (to is not None and to == left.partner):
        return []
    return [
        Violation(
            pointer,
            f"the record shows {who} married to a spouse who moved out of the household on"
            f" {left.left_on}, and no divorce or death since: one person has one spouse"
            " (Civil Code art. 1042); a move out ends the couple's life here, not the"
            f" marriage; record the divorce naming {who} alone (kind divorce) or, if that"
            " spouse has died, the death (kind spouse_death; where the registry holds the"
            " spouse alive in another household, their death is recorded there) first",
        )
    ]


def _left_spouse_married_on(marriages: Marriages, person_id: uuid.UUID) -> date | None:
    """The day of the member's marriage to a spouse living elsewhere that a divorce naming
    them alone, or a ``spouse_death``, ends: one recorded without the spouse joining, or
    one to a spouse who moved out since (``date.min`` when the record has no day)."""
    married_on = marriages.elsewhere.get(person_id)
    if married_on is not None:
        return married_on
    left = marriages.left_by.get(person_id)
    if left is None:
        return None
    return left.married_on or date.min


def check_marriage(
    state: HouseholdState,
    person_id: uuid.UUID,
    married_on: date,
    spouse: ValidMember | None,
    *,
    today: date,
    marriages: Marriages = NO_MARRIAGES,
    basis: MarriageAgeBasis | None = None,
) -> list[Violation]:
    """A member married; the spouse joins the household when given. ``marriages``: the
    household's, as recorded (a member married to another is refused, and a marriage
    dated before the end of the member's last one here). ``basis``: the legal marriage
    age the clerk says the marriage was lawful under (ADR 0016, 3 Dec 2026, helper hBB)."""
    found = _not_after_today(married_on, today, "/married_on")
    member = state.member(person_id)
    if member is None:
        return [*found, Violation("/person_id", "not an active member of this household")]
    found += _marriageable(
        member.birth_date, married_on, "/person_id", "the member", member.sex, basis
    )
    if (
        member.relationship is Relationship.SPOUSE
        or (person_id == state.head_person_id and state.has_spouse() and spouse is None)
        or (person_id in marriages.married_to and not _head_with_spouse(state, person_id))
    ):
        # Married to the head, the head with a spouse in the household, or a marriage
        # recorded with a member still here: a second marriage needs the first to end first
        # (a death or a move out).
        found.append(Violation("/person_id", "is married to a member of the household"))
    else:
        found += _taken_married(state, marriages, member, "/person_id")
    found += left_behind(marriages, person_id, "/person_id", "the member")
    found += _after_last_marriage(marriages, person_id, married_on, "the member")
    if spouse is None:
        # A marriage to a spouse living elsewhere may precede the member's joining: it
        # records a marriage the member brought with them (ended later by a divorce or a
        # spouse_death, each dated after the joining).
        return found
    if member.joined_on is not None and married_on < member.joined_on:
        # The spouse joins on the day: the member's household, which they were not in yet.
        found.append(
            Violation(
                "/married_on",
                f"is before the member joined the household ({member.joined_on}): the spouse"
                " joins the member's household on the marriage's day",
            )
        )
    found += _marriageable(
        spouse.birth_date, married_on, "/spouse/id_number", "the spouse", spouse.sex, basis
    )
    found += _man_and_woman(member.sex, spouse.sex, "/spouse/id_number")
    found += check_joining_member(spouse, head_birth_date=state.head.birth_date, pointer="/spouse")
    allowed = _SPOUSE_OF.get(member.relationship, _NO_IN_LAW_CODE)
    if spouse.input.relationship not in allowed:
        found.append(
            Violation(
                "/spouse/relationship",
                f"the spouse of the head's {member.relationship} is the head's"
                f" {' or '.join(sorted(allowed))}",
            )
        )
    if member.relationship is Relationship.HEAD and state.has_spouse():
        found.append(Violation("/spouse", "the head already has a spouse"))
    return found


_NO_IN_LAW_CODE = frozenset({Relationship.OTHER, Relationship.OTHER_DEPENDANT})
_SPOUSE_OF: dict[Relationship, frozenset[Relationship]] = {
    Relationship.HEAD: frozenset({Relationship.SPOUSE}),
    Relationship.CHILD: frozenset({Relationship.CHILD_IN_LAW}),
    Relationship.PARENT: frozenset({Relationship.PARENT}) | _NO_IN_LAW_CODE,
    Relationship.PARENT_IN_LAW: frozenset({Relationship.PARENT_IN_LAW}) | _NO_IN_LAW_CODE,
    Relationship.GRANDPARENT: frozenset({Relationship.GRANDPARENT}) | _NO_IN_LAW_CODE,
}
"""Who a member's new spouse is to the head, by the member's relationship to the head: the
head's spouse, a child's child-in-law, a parent's step-parent (a parent, or other when
younger than the head); a sibling's, a grandchild's or a child-in-law's spouse has no code
of their own and is other."""


def _man_and_woman(
    one: Sex | None, other: Sex | None, pointer: str, who: str = "the member"
) -> list[Violation]:
    """A marriage is between a man and a woman (Civil Code arts. 1046, 1049): two of one
    sex, as their ID numbers tell, is a wrong number or a wrong member."""
    if _same_sex(one, other):
        return [
            Violation(
                pointer,
                f"the spouse is {other} as {who} is, by the ID numbers: a marriage is"
                " between a man and a woman",
            )
        ]
    return []


def _marriageable(
    birth_date: date,
    married_on: date,
    pointer: str,
    who: str,
    sex: Sex | None,
    basis: MarriageAgeBasis | None = None,
) -> list[Violation]:
    """``who`` was of the legal marriage age on ``married_on``, by the law of that day
    (``marriage_age``: 22 for a man and 20 for a woman since 1981, 20 and 18 before; the
    birthday itself is of age): else 422 at ``pointer``, the member's own (their person id,
    or the ID number of a spouse joining, which gives the birth date and sex), never their
    name (ADR 0016, 3 Dec 2026, helper hAX). A day before the birth is the day's error.
    ``basis`` autonomous_adaptation: 20 and 18, never lower (helper hBB)."""
    if married_on < birth_date:
        return [Violation("/married_on", f"is before {who}'s birth date")]
    if not of_marriageable_age(birth_date, sex, married_on, basis):
        return [
            Violation(
                pointer,
                f"{who} is under {marriage_age(sex, married_on, basis)} on {married_on}, the"
                f" marriage's day{adapted(basis)}: {MARRIES_NOBODY_YOUNGER}",
            )
        ]
    return []


MARRIES_NOBODY_YOUNGER = (
    "nobody younger may marry (Civil Code art. 1047: 22 for a man, 20 for a woman; 20 and 18"
    " for a marriage before 1981, by the Marriage Law of 1950, or one lawful under an"
    " autonomous area's adapted ages, which marriage_age_basis autonomous_adaptation says);"
    " check the ID number and married_on"
)

BASIS_ON_THE_MARRIAGE = (
    "a marriage says the legal marriage age it was lawful under once, as the marriage's own"
    " marriage_age_basis, not its spouse's"
)


def check_bank_account_change(
    *,
    custody_agreement: bool,
    custody_document_id: uuid.UUID | None,
    custodian_subject: str | None,
) -> list[Violation]:
    """Staff may hold a recipient's card only under a written custody agreement."""
    if not custody_agreement:
        if custody_document_id is not None or custodian_subject is not None:
            return [Violation("/custody_agreement", "custody details given without an agreement")]
        return []
    found: list[Violation] = []
    if custody_document_id is None:
        found.append(Violation("/custody_document_id", "the signed custody agreement is required"))
    if not custodian_subject:
        found.append(Violation("/custodian_subject", "say which staff member holds the card"))
    return found


@dataclass(frozen=True, slots=True)
class MemberDetails:
    """A member's own details, as recorded: what a member change may change. The name is
    the person's (corrected, not changed: the same person in every household they were
    in)."""

    name: str
    disability_grade: DisabilityGrade
    seriously_ill: bool
    employment_status: EmploymentStatus
    student: bool
    counted: bool
    exclusion_reason: ExclusionReason | None
    exclusion_note: str | None


@dataclass(frozen=True, slots=True)
class NewMemberDetails:
    """The details a member change gives; None: as recorded."""

    name: str | None = None
    disability_grade: DisabilityGrade | None = None
    seriously_ill: bool | None = None
    employment_status: EmploymentStatus | None = None
    student: bool | None = None
    counted: bool | None = None
    exclusion_reason: ExclusionReason | None = None
    exclusion_note: str | None = None


def details_after(current: MemberDetails, new: NewMemberDetails) -> MemberDetails:
    """The details once ``new`` is recorded. A member counted again has no exclusion
    reason nor note left; a note goes with its reason (kept while the reason stays, gone
    with it unless given anew)."""
    counted = current.counted if new.counted is None else new.counted
    if counted:
        reason, note = new.exclusion_reason, new.exclusion_note
    else:
        reason = new.exclusion_reason or current.exclusion_reason
        kept = current.exclusion_note if reason is current.exclusion_reason else None
        note = new.exclusion_note if new.exclusion_note is not None else kept
    return replace(
        current,
        name=new.name or current.name,
        disability_grade=new.disability_grade or current.disability_grade,
        seriously_ill=current.seriously_ill if new.seriously_ill is None else new.seriously_ill,
        employment_status=new.employment_status or current.employment_status,
        student=current.student if new.student is None else new.student,
        counted=counted,
        exclusion_reason=reason,
        exclusion_note=note,
    )


def changed_details(before: MemberDetails, after: MemberDetails) -> dict[str, object]:
    """The details that differ, with their new values (codes as their values)."""
    changed: dict[str, object] = {}
    for f in fields(MemberDetails):
        old, new = getattr(before, f.name), getattr(after, f.name)
        if old != new:
            changed[f.name] = (
                new.value
                if isinstance(new, DisabilityGrade | EmploymentStatus | ExclusionReason)
                else new
            )
    return changed


def check_member_change(
    state: HouseholdState,
    person_id: uuid.UUID,
    current: MemberDetails | None,
    new: NewMemberDetails,
    effective_on: date,
    *,
    today: date,
    latest_on: date | None = None,
    relationship: Relationship | None = None,
    note: str | None = None,
    marriages: Marriages = NO_MARRIAGES,
) -> tuple[MemberDetails | None, list[Violation]]:
    """A member's own details changed on ``effective_on`` (a disability certificate, an
    illness, a job, school, counted or not): the details after the change, or the
    violations. ``current`` is the member's as recorded (None for one not active here).
    The member's rules at registration hold for the details after it (employment by age
    on the day, a reason for a member not counted and none for one counted); a change
    that changes nothing is refused.

    ``latest_on`` is when the member's latest recorded change of details took effect: the
    record holds the member's details as of then, so a change of details dated before it
    is refused (it would pass for the current details while a later one holds). A name
    correction alone is dated by nothing and bound by nothing.

    ``relationship`` corrects the member's relationship to the head, recorded wrongly
    (``check_relationship_correction``, with the household's ``marriages``); a ``note``
    must say why. Like a name correction it is no change of details: it is bound by no
    earlier change and bounds none."""
    found = _not_after_today(effective_on, today, "/effective_on")
    member = state.member(person_id)
    if member is None or current is None:
        return None, [*found, Violation("/person_id", "not an active member of this household")]
    if effective_on < member.birth_date:
        found.append(Violation("/effective_on", "is before the member's birth date"))
    else:
        found += _not_before_joining(state, person_id, effective_on, "/effective_on")
    details_given = any(
        getattr(new, f.name) is not None for f in fields(NewMemberDetails) if f.name != "name"
    )
    if details_given and latest_on is not None and effective_on < latest_on:
        found.append(
            Violation(
                "/effective_on",
                f"is before the member's change of details recorded as of {latest_on}:"
                " a member's details are recorded in the order they changed",
            )
        )
    after = details_after(current, new)
    found += _employment_after(member, current, new, after, effective_on)
    if after.counted and new.exclusion_note is not None:
        found.append(Violation("/exclusion_note", "only for a member not counted"))
    found += exclusion_violations(after.counted, after.exclusion_reason, after.exclusion_note, "")
    if relationship is not None:
        found += check_relationship_correction(
            state, person_id, relationship, marriages, on=effective_on
        )
        if not note:
            found.append(Violation("/note", "say why the relationship recorded was wrong"))
    if not found and after == current and relationship is None:
        given = [f.name for f in fields(NewMemberDetails) if getattr(new, f.name) is not None]
        found += [Violation(f"/{name}", "is what is recorded already") for name in given] or [
            Violation("", "give at least one of the member's details that changed")
        ]
    return (None if found else after), found


def _employment_violations_of(
    member: ActiveMember, details: MemberDetails, on: date
) -> list[Violation]:
    return employment_violations(
        details.employment_status,
        member.birth_date,
        member.sex,
        on,
        "",
        disability_grade=details.disability_grade,
        seriously_ill=details.seriously_ill,
        student=details.student,
    )


def _employment_after(
    member: ActiveMember,
    current: MemberDetails,
    new: NewMemberDetails,
    after: MemberDetails,
    on: date,
) -> list[Violation]:
    """The employment status after a change fits the member's age on its day (ADR 0021):
    checked when the change gives it, or when it gives a detail the status leans on (a
    disability, an illness, full-time study) and so breaks a status that held before. A
    status recorded before the rule does not hold up a change of anything else."""
    if new.employment_status is not None:
        return _employment_violations_of(member, after, on)
    leaned_on = (new.disability_grade, new.seriously_ill, new.student)
    if all(given is None for given in leaned_on) or _employment_violations_of(member, current, on):
        return []
    return _employment_violations_of(member, after, on)


@dataclass(frozen=True, slots=True)
class Address:
    """Where a household lives: its village or community, urban or rural, and address."""

    region_code: str
    area_type: AreaType
    address: str


def check_address_change(
    current: Address,
    new: Address,
    moved_on: date,
    *,
    known_village: bool,
    today: date,
    latest_on: date | None = None,
) -> list[Violation]:
    """The whole household moved on ``moved_on``: to a village or community of the
    division table (``known_village``), not in the future, and somewhere else.

    ``latest_on`` is when the household's latest recorded move took place: the record
    holds where it lives since then, so a move dated before it is refused (it would pass
    for the current address while the later move holds). The same day is allowed."""
    found = _not_after_today(moved_on, today, "/moved_on")
    if latest_on is not None and moved_on < latest_on:
        found.append(
            Violation(
                "/moved_on",
                f"is before the household's move recorded as of {latest_on}: a household's"
                " moves are recorded in the order they took place",
            )
        )
    if not known_village:
        found.append(Violation("/region_code", "not a village or community in the division table"))
    if not found and new == current:
        found.append(Violation("/address", "is the household's address as recorded"))
    return found


MARRIES_THE_HEAD = frozenset({Relationship.OTHER, Relationship.OTHER_DEPENDANT})
"""Who in the household may become the head's spouse by marrying them: a member not
related to the head (a relative is within the degrees the Civil Code forbids, art. 1048,
or already has a place of their own). Of two other members who marry each other, one at
least must be such a member: two of the head's relatives or in-laws may be related to
each other within those degrees, which relationships to the head cannot tell."""

_SPOUSE_OF_MEMBER: dict[Relationship, Relationship] = {
    Relationship.CHILD: Relationship.CHILD_IN_LAW,
    Relationship.PARENT: Relationship.PARENT,
    Relationship.PARENT_IN_LAW: Relationship.PARENT_IN_LAW,
    Relationship.GRANDPARENT: Relationship.GRANDPARENT,
}
"""What a co-resident not related to the head becomes to the head by marrying a member of
this relationship, as a spouse joining from outside would (``_SPOUSE_OF``): a child's
spouse is a child-in-law, a parent's a step-parent (parent), a parent-in-law's or a
grandparent's the like; a parent or grandparent only when older than the head (else other,
as recorded). A sibling's, a grandchild's, a child-in-law's or another co-resident's spouse
has no code of their own and stays as recorded (other, other dependant)."""

_OLDER_THAN_HEAD = frozenset({Relationship.PARENT, Relationship.GRANDPARENT})
"""As at a registration: a parent or grandparent is older than the head."""

_ONE_COUPLE = frozenset({Relationship.PARENT, Relationship.PARENT_IN_LAW})
"""Relationships of which two members are taken to be a couple: the head's parents (or
parents-in-law) living with them are married to each other as far as the record tells."""


def check_marriage_in_household(
    state: HouseholdState,
    person_id: uuid.UUID,
    spouse_person_id: uuid.UUID,
    married_on: date,
    *,
    today: date,
    marriages: Marriages = NO_MARRIAGES,
    basis: MarriageAgeBasis | None = None,
) -> tuple[dict[uuid.UUID, Relationship] | None, list[Violation]]:
    """Two members married each other: the relationships to the head it records anew
    (possibly none), or the violations.

    With the head: the other becomes the head's spouse; they must be unrelated to the head
    (other, other dependant), the head without a spouse. Neither the head: one of the two
    at least must be unrelated to the head, and becomes to the head what the other's
    spouse is (``_SPOUSE_OF_MEMBER``; nothing changes when that has no code, or both are
    unrelated); neither may be the head's spouse, nor a parent (parent-in-law) beside
    another. Either way both of age on the day, married to no member, and past the end of
    their last marriage in the household (``marriages``)."""
    found = _not_after_today(married_on, today, "/married_on")
    member = state.member(person_id)
    partner = state.member(spouse_person_id)
    if member is None:
        found.append(Violation("/person_id", "not an active member of this household"))
    if partner is None:
        found.append(Violation("/spouse_person_id", "not an active member of this household"))
    if member is None or partner is None:
        return None, found
    if person_id == spouse_person_id:
        return None, [*found, Violation("/spouse_person_id", "is the member who married")]
    pointer_of = {person_id: "/person_id", spouse_person_id: "/spouse_person_id"}
    found += _man_and_woman(member.sex, partner.sex, "/spouse_person_id")
    recorded: dict[uuid.UUID, Relationship] = {}
    if state.head_person_id in pointer_of:
        other = partner if person_id == state.head_person_id else member
        pointer = pointer_of[other.person_id]
        if other.relationship is Relationship.SPOUSE:
            return None, [*found, Violation(pointer, "is married to the head already")]
        if state.has_spouse():
            found.append(
                Violation(pointer_of[state.head_person_id], "the head already has a spouse")
            )
        if other.relationship not in MARRIES_THE_HEAD:
            found.append(
                Violation(pointer, f"the head's {other.relationship} cannot become their spouse")
            )
        recorded[other.person_id] = Relationship.SPOUSE
    else:
        found += _between_members(state, marriages, member, partner, pointer_of, recorded)
    found += _marriageable(
        member.birth_date, married_on, "/person_id", "the member", member.sex, basis
    )
    found += _marriageable(
        partner.birth_date, married_on, "/spouse_person_id", "the spouse", partner.sex, basis
    )
    joined = max((p.joined_on for p in (member, partner) if p.joined_on is not None), default=None)
    if joined is not None and married_on < joined:
        # Two co-residents married: both were members that day (a divorce of two members
        # is not dated before either joined, alike).
        found.append(
            Violation(
                "/married_on",
                f"is before {joined}, when the record shows the second of the two join the"
                " household: a marriage of two members is dated on or after it",
            )
        )
    for person in (member, partner):
        if person.person_id in marriages.married_to and not _head_with_spouse(
            state, person.person_id
        ):
            found.append(
                Violation(pointer_of[person.person_id], "is married to a member of the household")
            )
    for one, two, who in (
        (person_id, spouse_person_id, "the member"),
        (spouse_person_id, person_id, "the spouse"),
    ):
        found += left_behind(marriages, one, pointer_of[one], who, to=two)
    found += _after_last_marriage(marriages, person_id, married_on, "the member")
    found += _after_last_marriage(marriages, spouse_person_id, married_on, "the spouse")
    return (None if found else recorded), found


def _taken_married(
    state: HouseholdState, marriages: Marriages, person: ActiveMember, pointer: str
) -> list[Violation]:
    """``person`` is taken to be married to a member no marriage recorded here: another
    of the head's parents (parents-in-law) beside them, of the other sex, neither divorced
    from them nor married here to somebody else (``taken_couples``; not a child-in-law
    registered with a child, a guess that refuses no marriage)."""
    others = [
        m
        for m in state.members
        if m.person_id != person.person_id
        and frozenset((m.person_id, person.person_id)) not in marriages.divorced
        and not _married_elsewhere_here(marriages, m.person_id, person.person_id)
        and (
            (
                person.relationship in _ONE_COUPLE
                and m.relationship is person.relationship
                and not _same_sex(m.sex, person.sex)
            )
            or taken_couples(state, marriages).get(person.person_id) == m.person_id
        )
    ]
    if not others:
        return []
    return [
        Violation(
            pointer,
            f"the head's {others[0].relationship} lives in the household: the two are taken"
            " to be married to each other (record a death, a move out or their divorce"
            " first)",
        )
    ]


def _between_members(
    state: HouseholdState,
    marriages: Marriages,
    member: ActiveMember,
    partner: ActiveMember,
    pointer_of: Mapping[uuid.UUID, str],
    recorded: dict[uuid.UUID, Relationship],
) -> list[Violation]:
    """Two members neither of whom is the head married each other: what the marriage
    records of their relationships to the head (into ``recorded``), or why it cannot."""
    found: list[Violation] = []
    for person in (member, partner):
        pointer = pointer_of[person.person_id]
        if person.relationship is Relationship.SPOUSE:
            found.append(Violation(pointer, "is married to the head"))
        else:
            found += _taken_married(state, marriages, person, pointer)
    if found:
        return found
    unrelated = [p for p in (member, partner) if p.relationship in MARRIES_THE_HEAD]
    if not unrelated:
        return [
            Violation(
                "/spouse_person_id",
                f"the head's {member.relationship} and the head's {partner.relationship}: one"
                " of two members marrying must be unrelated to the head (other,"
                " other_dependant); two relatives or in-laws of the head may be related to"
                " each other within the degrees the Civil Code forbids (art. 1048)",
            )
        ]
    if len(unrelated) == 1:
        [joining] = unrelated
        relative = partner if joining is member else member
        becomes = _SPOUSE_OF_MEMBER.get(relative.relationship)
        older = joining.birth_date < state.head.birth_date
        if becomes is not None and (becomes not in _OLDER_THAN_HEAD or older):
            recorded[joining.person_id] = becomes
    return []


FORMER_SPOUSE = Relationship.OTHER
"""What a divorced spouse who stays is to the head: the head's former spouse and a
child's former spouse are no relatives of the head any more (ADR 0016); counted or not
stays as recorded."""


def divorce_recorded(
    state: HouseholdState,
    marriages: Marriages,
    person_id: uuid.UUID,
    spouse_person_id: uuid.UUID | None,
) -> bool:
    """The record shows this couple's divorce already (and no marriage of the two since):
    a second divorce of them is a conflict with the record, not a request to check."""
    couple = frozenset({person_id} if spouse_person_id is None else {person_id, spouse_person_id})
    if couple not in marriages.divorced:
        return False
    if spouse_person_id is None:
        return person_id not in marriages.elsewhere and person_id not in marriages.left_by
    return partner_in_household(state, marriages, person_id) != spouse_person_id


def check_divorce(
    state: HouseholdState,
    person_id: uuid.UUID,
    spouse_person_id: uuid.UUID | None,
    divorced_on: date,
    *,
    today: date,
    marriages: Marriages = NO_MARRIAGES,
    given: Mapping[uuid.UUID, Relationship] | None = None,
) -> tuple[dict[uuid.UUID, Relationship] | None, list[Violation]]:
    """A member divorced on ``divorced_on``: the relationships to the head it records anew
    (possibly none; the couple's first), or the violations.

    The couple is one the record knows (``partner_in_household``): a marriage recorded
    here, the head and the head's spouse, the head's two parents (parents-in-law), a child
    and a child-in-law registered together; or, without ``spouse_person_id``, the member
    and the spouse living elsewhere a marriage recorded. Not in the future, not before the
    marriage's day when the record has it, nor before either joined. The head's spouse
    and a child's child-in-law become ``FORMER_SPOUSE``; anyone else's relationship (a
    step-parent) stays, but for the kin through the marriage ``given`` names
    (``_kin_through_the_marriage``: the head's parents-in-law must be named when the head
    divorces)."""
    given = given or {}
    found = _not_after_today(divorced_on, today, "/divorced_on")
    member = state.member(person_id)
    if member is None:
        return None, [*found, Violation("/person_id", "not an active member of this household")]
    if spouse_person_id is None:
        # To a spouse living elsewhere: recorded so, or one who moved out since.
        married_on = _left_spouse_married_on(marriages, person_id)
        # A partner here comes first: a spouse living elsewhere who moved in since (as
        # the head's spouse) is the member the marriage is to, and a divorce naming the
        # member alone would leave them married by the record.
        if partner_in_household(state, marriages, person_id) is not None:
            found.append(
                Violation(
                    "/spouse_person_id",
                    "the member's marriage the record shows is to a member: name them",
                )
            )
            return None, found
        if married_on is None:
            found.append(
                Violation(
                    "/person_id",
                    "no marriage of the member is recorded here (to a member, or to a spouse"
                    " living elsewhere)",
                )
            )
            return None, found
        found += _not_before_marriage(married_on, divorced_on)
        kin, refused = _kin_through_the_marriage(state, (member,), given)
        found += refused
        return (None if found else kin), found
    partner = state.member(spouse_person_id)
    if partner is None or spouse_person_id == person_id:
        detail = "not an active member of this household" if partner is None else "is the member"
        return None, [*found, Violation("/spouse_person_id", detail)]
    if partner_in_household(state, marriages, person_id) != spouse_person_id:
        return None, [
            *found,
            Violation(
                "/spouse_person_id",
                "is not married to the member as the record shows (a marriage recorded here,"
                " the head and the head's spouse, the head's two parents or parents-in-law, a"
                " child and a child-in-law registered together)",
            ),
        ]
    married_on = marriages.married_on.get(person_id)
    if married_on is not None and marriages.married_to.get(person_id) == spouse_person_id:
        found += _not_before_marriage(married_on, divorced_on)
    for joined in (person_id, spouse_person_id):
        found += _not_before_joining(state, joined, divorced_on, "/divorced_on")
    found += _not_before_of_age(member, partner, divorced_on)
    recorded: dict[uuid.UUID, Relationship] = {}
    for one, other in ((member, partner), (partner, member)):
        if (one.relationship is _R.SPOUSE and other.person_id == state.head_person_id) or (
            one.relationship is _R.CHILD_IN_LAW and other.relationship is _R.CHILD
        ):
            recorded[one.person_id] = FORMER_SPOUSE
    kin, refused = _kin_through_the_marriage(state, (member, partner), given)
    found += refused
    return (None if found else recorded | kin), found


NO_LONGER_KIN = frozenset({Relationship.OTHER, Relationship.OTHER_DEPENDANT})
"""What a member related to the head through a marriage that ended may become."""


def _kin_through_the_marriage(
    state: HouseholdState,
    couple: Sequence[ActiveMember],
    given: Mapping[uuid.UUID, Relationship],
) -> tuple[dict[uuid.UUID, Relationship], list[Violation]]:
    """The relationships to the head ``given`` records anew for members related to the
    head through the marriage a divorce ends (pointer ``/relationships/<person id>``), or
    the violations (ADR 0016, 2 Dec 2026).

    When the head divorces (a spouse here or elsewhere), every member recorded as the
    head's ``parent_in_law`` must be given: the former spouse's parents are no longer the
    head's in-laws (the affinity ends with the divorce), an earlier spouse's parents still
    are, and only the clerk knows whose they are. The head's ``child`` and ``grandchild``
    may be given (a step-child of the former spouse, whom the record cannot tell from the
    head's own); so may a ``grandchild`` when a child of the head divorces. Each becomes
    ``other`` or ``other_dependant``, or keeps the code recorded; nobody else's
    relationship runs through the marriage."""
    ids = {m.person_id for m in couple}
    codes = {m.relationship for m in couple}
    may: frozenset[Relationship] = frozenset()
    required: frozenset[Relationship] = frozenset()
    if state.head_person_id in ids:
        may = frozenset({_R.PARENT_IN_LAW, _R.CHILD, _R.GRANDCHILD})
        required = frozenset({_R.PARENT_IN_LAW})
    elif _R.CHILD in codes and codes <= {_R.CHILD, _R.CHILD_IN_LAW}:
        may = frozenset({_R.GRANDCHILD})
    found: list[Violation] = []
    recorded: dict[uuid.UUID, Relationship] = {}
    for person_id, relationship in given.items():
        pointer = f"/relationships/{person_id}"
        member = state.member(person_id)
        if member is None:
            found.append(Violation(pointer, "not an active member of this household"))
        elif person_id in ids:
            found.append(
                Violation(pointer, "is one of the couple: the divorce records their relationship")
            )
        elif member.relationship not in may:
            found.append(
                Violation(
                    pointer,
                    f"the member is recorded as the head's {member.relationship.value}, not"
                    " related to the head through this marriage: the divorce changes no"
                    " relationship of theirs (a member_change corrects one recorded wrongly)",
                )
            )
        elif relationship is not member.relationship and relationship not in NO_LONGER_KIN:
            found.append(
                Violation(
                    pointer,
                    f"the member's relationship to the head after the divorce is their"
                    f" {member.relationship.value} as recorded, other or other_dependant",
                )
            )
        elif relationship is not member.relationship:
            recorded[person_id] = relationship
    for m in state.members:
        if m.relationship in required and m.person_id not in given and m.person_id not in ids:
            found.append(
                Violation(
                    f"/relationships/{m.person_id}",
                    f"the member is recorded as the head's {m.relationship.value}: give their"
                    " relationship to the head after the divorce (other or other_dependant"
                    " for the former spouse's parents, whose in-law tie the divorce ends;"
                    f" {m.relationship.value} for the parents of an earlier spouse)",
                )
            )
    return recorded, found


def spouse_death_recorded(
    state: HouseholdState, marriages: Marriages, person_id: uuid.UUID
) -> bool:
    """The record shows the member's marriage to a spouse living elsewhere ended already
    (divorced or widowed) and no marriage of the member since: a spouse's death of it is a
    conflict with the record, not a request to check."""
    return (
        state.member(person_id) is not None
        and person_id in marriages.ended_elsewhere
        and person_id not in marriages.elsewhere
        and person_id not in marriages.left_by
        and partner_in_household(state, marriages, person_id) is None
    )


def check_spouse_death(
    state: HouseholdState,
    person_id: uuid.UUID,
    died_on: date,
    *,
    today: date,
    marriages: Marriages = NO_MARRIAGES,
) -> list[Violation]:
    """A member's spouse living elsewhere died on ``died_on`` (ADR 0016): the member's
    marriage recorded without the spouse joining ends on that day, as a divorce naming the
    member alone would end it. Refused: a non-member; a member whose marriage the record
    shows is to a member here (that member's death is recorded instead), or with no marriage
    to a spouse living elsewhere recorded; a day in the future, before the marriage's day or
    before the member joined."""
    found = _not_after_today(died_on, today, "/date_of_death")
    if state.member(person_id) is None:
        return [*found, Violation("/person_id", "not an active member of this household")]
    if partner_in_household(state, marriages, person_id) is not None:
        return [
            *found,
            Violation(
                "/person_id",
                "the member's marriage the record shows is to a member of the household:"
                " record that member's death instead",
            ),
        ]
    married_on = _left_spouse_married_on(marriages, person_id)
    if married_on is None:
        return [
            *found,
            Violation(
                "/person_id",
                "no marriage of the member to a spouse living elsewhere is recorded here",
            ),
        ]
    if died_on < married_on:
        found.append(
            Violation(
                "/date_of_death",
                f"is before the marriage recorded as of {married_on}: a spouse's death is"
                f" dated on or after {married_on}",
            )
        )
    return found + _not_before_joining(state, person_id, died_on, "/date_of_death")


def spouse_alive(ref: str | None) -> Violation:
    """The refusal of a ``spouse_death`` of a spouse the registry holds alive: an active
    member of another household (``ref``, its masked reference) or of this one (None), no
    death of theirs recorded anywhere (ADR 0016, 3 Dec 2026, helper hAH). Recording a
    living person's death would end a marriage falsely; their death, when it came, is
    recorded in the household they are a member of (kind death), which ends it."""
    where = (
        "of this household: record their death (kind death)"
        if ref is None
        else f"of another household ({ref}): their death is recorded there (kind death)"
    )
    return Violation(
        "/person_id",
        "the registry holds the spouse alive, an active member"
        f" {where}, which ends the marriage; a divorce naming the member alone (kind"
        " divorce) ends it otherwise",
    )


def _not_before_of_age(
    one: ActiveMember, other: ActiveMember, divorced_on: date
) -> list[Violation]:
    """A couple with no marriage day recorded (registered together, a spouse who moved in)
    is bound by no marriage; but they married once both were of the legal age of the day
    (``first_marriageable_day``: 22 and 20 since 1981, 20 and 18 before; ADR 0016, 3 Dec
    2026, helper hAX), and a divorce is not dated before (ADR 0016, 2 Dec 2026). A couple
    recorded as married under an autonomous area's adapted ages (the spouse's
    ``marriage_age_basis``) could marry at 20 and 18 (helper hBB)."""
    basis = one.marriage_age_basis or other.marriage_age_basis
    of_age = first_marriageable_day(
        (one.birth_date, one.sex), (other.birth_date, other.sex), basis=basis
    )
    if divorced_on < of_age:
        return [
            Violation(
                "/divorced_on",
                f"is before both partners were of marriageable age ({of_age}), the earliest"
                f" they could have married: a divorce is dated on or after {of_age}",
            )
        ]
    return []


def _not_before_marriage(married_on: date, divorced_on: date) -> list[Violation]:
    if divorced_on < married_on:
        return [
            Violation(
                "/divorced_on",
                f"is before the marriage recorded as of {married_on}: a divorce is dated on"
                f" or after {married_on}",
            )
        ]
    return []


def check_relationship_correction(
    state: HouseholdState,
    person_id: uuid.UUID,
    relationship: Relationship,
    marriages: Marriages = NO_MARRIAGES,
    *,
    on: date | None = None,
) -> list[Violation]:
    """A member's relationship to the head was recorded wrongly (a data-entry error): is
    ``relationship`` one the record can hold for them (ADR 0016)? What a registration
    refuses of that member: the head (who changes only with a death or move out naming
    the new head), a second spouse of the head, a spouse of the head's sex by the ID
    numbers, a spouse or head under 18 on the day the code was first recorded
    (``_spouse_of_age``; ``on``, the correction's day, when the record has none), a
    child or grandchild not younger than the head, a parent or grandparent not
    older. And what the record's marriages refuse: the head's spouse while the head or the
    member is married to another member by a marriage recorded here, or to a spouse living
    elsewhere (``_married_elsewhere``), or after the record shows the two divorced (a
    marriage records a new one); a member married to the head
    by a marriage recorded here corrected to anything but the spouse (a divorce ends
    that). Couples the relationships tell (the head's two parents, a child and a
    child-in-law registered together) are no bar: they are read from the relationship
    being corrected, and follow the correction."""
    pointer = "/relationship"
    member = state.member(person_id)
    if member is None:
        return []  # refused at /person_id
    if person_id == state.head_person_id or relationship is _R.HEAD:
        return [
            Violation(
                pointer,
                "the head changes only with a death or a move out naming the new head",
            )
        ]
    if relationship is member.relationship:
        return [Violation(pointer, "is what is recorded already")]
    head = state.head_person_id
    married_to_head = marriages.married_to.get(person_id) == head
    if married_to_head and relationship is not _R.SPOUSE:
        return [
            Violation(
                pointer,
                "the record shows the member married to the head by a marriage recorded"
                " here: a divorce ends it",
            )
        ]
    found = age_order_violations(relationship, member.birth_date, state.head.birth_date, pointer)
    if relationship is not _R.SPOUSE:
        return found
    if state.has_spouse():
        found.append(Violation(pointer, "the head already has a spouse"))
    found += _man_and_woman(state.head.sex, member.sex, pointer, "the head")
    found += _married_to_another_member(state, marriages, person_id, head, pointer)
    found += _married_elsewhere(state, marriages, member, pointer)
    found += left_behind(marriages, person_id, pointer, "the member", to=head)
    found += left_behind(marriages, head, pointer, "the head", to=person_id)
    if not married_to_head:
        found += _spouse_of_age(state, marriages, member, on, pointer)
    found += _divorced(marriages, person_id, head, pointer)
    return found


def _divorced(
    marriages: Marriages,
    person_id: uuid.UUID,
    head: uuid.UUID,
    pointer: str,
    head_is: str = "the head",
    *,
    then: str = "a marriage records a new one",
) -> list[Violation]:
    """``person_id`` recorded as ``head``'s spouse after the record shows the two divorced
    and not married again here: a marriage records a new one, on its day (a relationship
    correction, and the relationships given to a new head, ADR 0016)."""
    if (
        frozenset((person_id, head)) in marriages.divorced
        and marriages.married_to.get(person_id) != head
    ):
        return [
            Violation(
                pointer,
                f"the record shows the member and {head_is} divorced: {then}",
            )
        ]
    return []


def _married_to_another_member(
    state: HouseholdState,
    marriages: Marriages,
    person_id: uuid.UUID,
    head: uuid.UUID,
    pointer: str,
    *,
    head_is: str = "the head",
    leaving: uuid.UUID | None = None,
) -> list[Violation]:
    """``person_id`` recorded as ``head``'s spouse while the record shows either of the two
    married to another member still here by a marriage recorded here: the record would
    show a person with two spouses (a relationship correction, and the relationships given
    to a new head, ADR 0016). ``leaving``: the member who leaves by the change, whose
    marriage ends with it."""
    found: list[Violation] = []
    for person, other, who in ((person_id, head, "the member"), (head, person_id, head_is)):
        partner = marriages.married_to.get(person)
        if partner is not None and partner not in (other, leaving) and state.member(partner):
            found.append(
                Violation(
                    pointer,
                    f"the record shows {who} married to another member by a marriage recorded here",
                )
            )
    return found


def _spouse_of_age(
    state: HouseholdState,
    marriages: Marriages,
    member: ActiveMember,
    on: date | None,
    pointer: str,
) -> list[Violation]:
    """``member`` corrected to the head's spouse, with no marriage of the two recorded
    here (whose day a marriage checked): both were of marriageable age on the day the
    record must then take them for married (ADR 0016, 3 Dec 2026; ``married_by``, 22 and
    20, 3 Dec 2026, helper hAX). A correction says the code was wrong
    from the start, not that the two married since (a marriage records that, on its day),
    so the registration, move in, birth or marriage that brought the member in is read as
    bringing in the head's spouse, and the registration's and the move in's rule holds on
    its day: the member's, the registration day for a member registered with the household,
    or the day the head joined when that is later (a head registered with it always was
    there). Where the record holds the day of the marriage itself, that day: the head's
    marriage to a spouse living elsewhere, which a member who moved in since is read as
    (``_married_elsewhere``). ``on`` (the correction's day) when the record has no day."""
    head = state.head
    elsewhere_on = marriages.elsewhere.get(head.person_id)
    day: date | None
    if (
        elsewhere_on is not None
        and member.joined_on is not None
        and member.joined_on >= elsewhere_on
    ):
        day = elsewhere_on
        since = (
            "the day of the head's marriage recorded to a spouse living elsewhere, which the"
            " correction reads as the member's"
        )
    elif member.joined_on is not None:
        day, since = member.joined_on, "when the member joined the household"
    else:
        day, since = state.registered_on, "when the household was registered with the member"
    if head.joined_on is not None and (day is None or head.joined_on > day):
        day, since = head.joined_on, "when the head joined the household"
    if day is None:
        day, since = on, "the correction's day"
    if day is None:
        return []
    # On the marriage's own day, the law of that day; on a day the record takes them
    # married by, of age by then (one who married before 1981 at that law's age was):
    # ADR 0016, 3 Dec 2026, helper hAX.
    of_age = of_marriageable_age if day == elsewhere_on else married_by
    return [
        Violation(
            pointer,
            f"{who} is under {marriage_age(sex, day)} on {day}, {since}: nobody younger is"
            " married in China (Civil Code art. 1047: 22 for a man, 20 for a woman; 20 and 18"
            " before 1981), and a correction records the member as the"
            " head's spouse from then; if the two married later, record the marriage on its"
            " day (kind marriage, spouse_person_id)",
        )
        for who, born, sex in (
            ("the member", member.birth_date, member.sex),
            ("the head", head.birth_date, head.sex),
        )
        if not of_age(born, sex, day)
    ]


def _married_elsewhere(
    state: HouseholdState,
    marriages: Marriages,
    member: ActiveMember,
    pointer: str,
    *,
    head: uuid.UUID | None = None,
    head_is: str = "the head",
) -> list[Violation]:
    """``member`` corrected to the head's spouse while the record shows the member or the
    head married to a spouse living elsewhere (``marriages.elsewhere``: a marriage recorded
    without the spouse joining, ended by no divorce naming the one married alone nor by
    that spouse's death): the record would show a person with two spouses. The member's
    spouse elsewhere is not the head, who lives here. The head's may be the member: a
    spouse living elsewhere who moved in since is read as the one the marriage is to (as
    one who moves in as ``spouse`` is: a divorce names them), so a member who joined by a
    change dated on or after the marriage's day is not refused. One registered with the
    household was a member when the marriage was recorded (after the registration), and
    one who joined before its day lived here then: neither is that spouse. ``head``: the
    one whose spouse the member is to be (a new head, ``head_is``), else the head."""
    found: list[Violation] = []
    head = state.head_person_id if head is None else head
    for person, who in ((member.person_id, "the member"), (head, head_is)):
        married_on = marriages.elsewhere.get(person)
        if married_on is None:
            continue
        if person == head and member.joined_on is not None and member.joined_on >= married_on:
            continue  # the head's spouse living elsewhere, moved in since
        found.append(
            Violation(
                pointer,
                f"the record shows {who} married to a spouse living elsewhere (a marriage"
                f" recorded as of {married_on}), not divorced or widowed"
                + ("" if person != head else ", and the member lived here before it")
                + ": record that marriage's end first (a divorce, or that spouse's death:"
                " kind spouse_death)",
            )
        )
    return found


# --- a marriage carried from another household (ADR 0016, 3 Dec 2026, helper hAE) ---------


def marriage_taken_along(
    changes: Sequence[PastChange],
    *,
    person_id: uuid.UUID,
    left_on: date,
) -> uuid.UUID | None:
    """The member of a household that ``person_id`` was married to when they moved out of
    it on ``left_on``, by that household's record (``changes``, in the order recorded),
    when nothing recorded there since ends the marriage: None otherwise.

    The partner is the spouse the move out named (``spouse_person_id``: the head's spouse
    when the head left, the head when the spouse did, a parent's partner), else the member
    a marriage recorded here tied them to. The move out ends the couple's life in that
    household, which that household's rules take as the end of the marriage there (a
    marriage there is dated after it), not the marriage: only a divorce or a death does.
    After it that household can still record the partner's death, or a later marriage of
    the partner (whose certificate is the marriage registry's word that the partner was
    free: the marriage is over), and nothing else of the couple; since 3 Dec 2026 (helper
    hAG) also the partner's divorce naming them alone, or a ``spouse_death`` of theirs.
    A person left behind by a spouse who moved out before them takes that marriage along
    (``Marriages.left_by``). A marriage to a spouse living elsewhere names nobody the
    registry knows and is none here."""
    index = next(
        (
            i
            for i in range(len(changes) - 1, -1, -1)
            if changes[i].kind == ChangeKind.MOVE_OUT
            and str(changes[i].details.get("person_id")) == str(person_id)
            and changes[i].effective_on == left_on
        ),
        None,
    )
    if index is None:
        return None
    move = changes[index]
    named = move.details.get("spouse_person_id")
    if named:
        partner = uuid.UUID(str(named))
    else:
        # Without left_as the heads before each change are not read: any id serves.
        before = marriages_in_household(changes[:index], head_person_id=person_id, left_as={})
        recorded = before.married_to.get(person_id)
        left = before.left_by.get(person_id)
        if recorded is not None:
            partner = recorded
        elif left is not None:
            # The spouse who moved out before them (ADR 0016, 3 Dec 2026, helper hAG).
            partner = left.partner
        else:
            return None
    for change in changes[index + 1 :]:
        names = {
            str(change.details.get("person_id")),
            str(change.details.get("spouse_person_id")),
        }
        if change.kind == ChangeKind.MARRIAGE and str(partner) in names:
            return None
        if change.kind == ChangeKind.DEATH and str(change.details.get("person_id")) == str(partner):
            return None
        if (
            change.kind in (ChangeKind.DIVORCE, ChangeKind.SPOUSE_DEATH)
            and str(change.details.get("person_id")) == str(partner)
            and not change.details.get("spouse_person_id")
        ):
            # The partner left behind divorced them, naming themself alone, or recorded
            # their death (ADR 0016, 3 Dec 2026, helper hAG): the marriage is over.
            return None
    return partner


def carried_marriage_dealt_with(marriages: Marriages, person_id: uuid.UUID) -> bool:
    """Whether the household a person joined since has recorded what follows a marriage
    they brought with them: a divorce naming them, a spouse's death, or a marriage of
    theirs (one recorded before this rule, read as telling the earlier one over, ADR 0016,
    2 Dec 2026): any act or end of their marriage here."""
    return person_id in marriages.acted_on or person_id in marriages.ended_on


def married_in_another_household(pointer: str, who: str, ref: str, *, joining: bool) -> Violation:
    """The refusal of a marriage of ``who`` while the registry shows them married to a
    person recorded in another household (``ref``, masked): which ends are recorded, and
    where. Nothing of that household but the masked reference is told."""
    then = (
        " move them in first (not as a spouse), then record the divorce naming them alone"
        " (kind divorce) or, if their spouse has died, the death (kind spouse_death, or in"
        " the household the registry holds the spouse in), then the marriage"
        if joining
        else " record the divorce naming them alone (kind divorce) or, if their spouse has"
        " died, the death (kind spouse_death, or in the household the registry holds the"
        " spouse in) first"
    )
    return Violation(
        pointer,
        f"the registry shows {who} married to a person recorded in another household ({ref}),"
        " and no divorce or death of either since: one person has one spouse (Civil Code art."
        f" 1042); a move out ends neither marriage;{then}",
    )
