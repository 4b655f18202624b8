"""Who applies, who is applied for, and what a declaration must say (domain.application)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import date

import pytest

from dibao_intake.domain.application import (
    WRITTEN_BY_INTAKE,
    ApplicationDraft,
    AssetDeclaration,
    CompletenessPolicy,
    DocumentOnFile,
    MissingItem,
    applicant_after_change,
    applicant_after_leaving,
    check_application,
    missing_items,
)
from dibao_intake.domain.codes import (
    ApplicationKind,
    AssetKind,
    DisabilityGrade,
    DocumentType,
    EmploymentStatus,
    ExclusionReason,
    MissingItemCode,
    Relationship,
)
from dibao_intake.domain.errors import RulesViolatedError
from dibao_intake.domain.household import MemberFacts

TODAY = date(2026, 11, 28)
POLICY = CompletenessPolicy()
HOUSEHOLD = uuid.uuid4()
WIFE, HUSBAND = uuid.uuid4(), uuid.uuid4()


def _members(**husband: object) -> list[MemberFacts]:
    wife = MemberFacts(
        person_id=WIFE,
        relationship=Relationship.HEAD,
        birth_date=date(1984, 2, 2),
        counted=True,
        disability_grade=DisabilityGrade.NONE,
        seriously_ill=False,
        student=False,
        employment_status=EmploymentStatus.FLEXIBLE,
    )
    other = dataclasses.replace(
        wife,
        person_id=HUSBAND,
        relationship=Relationship.SPOUSE,
        birth_date=date(1982, 7, 7),
        employment_status=EmploymentStatus.UNABLE_TO_WORK,
    )
    return [wife, dataclasses.replace(other, **husband)]  # type: ignore[arg-type]


def _draft(**changes: object) -> ApplicationDraft:
    draft = ApplicationDraft(
        household_id=HOUSEHOLD,
        kind=ApplicationKind.DIBAO,
        applicant_person_id=WIFE,
        incomes=[],
        assets=[],
        documents=[],
        has_bank_account=True,
        requested_amount_fen=None,
        reason=None,
        individual_inclusion_person_id=None,
    )
    return dataclasses.replace(draft, **changes)  # type: ignore[arg-type]


def _violations(
    draft: ApplicationDraft, members: list[MemberFacts], policy: CompletenessPolicy = POLICY
) -> list[tuple[str, str]]:
    try:
        check_application(draft, members, today=TODAY, policy=policy)
    except RulesViolatedError as error:
        return [(v.pointer, v.detail) for v in error.violations]
    return []


@pytest.mark.parametrize(
    "reason",
    [
        ExclusionReason.IMPRISONED,
        ExclusionReason.COMPULSORY_REHABILITATION,
        ExclusionReason.DECLARED_MISSING,
        ExclusionReason.RELIGIOUS_LIVING_APART,
        ExclusionReason.MILITARY_SERVICE,
    ],
)
def test_a_member_living_apart_does_not_apply(reason: ExclusionReason) -> None:
    members = _members(counted=False, exclusion_reason=reason)
    assert _violations(_draft(applicant_person_id=HUSBAND), members) == [
        ("/applicant_person_id", f"not a co-resident member: not counted, {reason.value}")
    ]
    # His wife, who lives there, applies for the household.
    assert _violations(_draft(), members) == []


def test_a_member_excluded_by_a_provincial_rule_may_apply_unless_the_province_says_so() -> None:
    """A provincial reason does not say the member lives apart: the province decides."""
    members = _members(counted=False, exclusion_reason=ExclusionReason.PROVINCIAL_OTHER)
    assert _violations(_draft(applicant_person_id=HUSBAND), members) == []
    stricter = dataclasses.replace(
        POLICY, living_apart=POLICY.living_apart | {ExclusionReason.PROVINCIAL_OTHER}
    )
    assert _violations(_draft(applicant_person_id=HUSBAND), members, stricter) == [
        ("/applicant_person_id", "not a co-resident member: not counted, provincial_other")
    ]


def test_a_member_not_counted_is_not_applied_for_alone() -> None:
    members = _members(
        counted=False,
        exclusion_reason=ExclusionReason.DECLARED_MISSING,
        disability_grade=DisabilityGrade.GRADE_1,
    )
    assert _violations(_draft(individual_inclusion_person_id=HUSBAND), members) == [
        (
            "/individual_inclusion_person_id",
            "individual inclusion is for a counted member: not counted, declared_missing",
        )
    ]
    # Counted, the same member is applied for alone.
    counted = _members(disability_grade=DisabilityGrade.GRADE_1)
    assert _violations(_draft(individual_inclusion_person_id=HUSBAND), counted) == []


def test_a_return_notice_is_no_document_the_household_hands_in() -> None:
    """Intake wrote it (ADR 0009, 3 Dec 2026): listed, it is refused at its pointer; another
    household's is refused as that household's."""
    form = DocumentOnFile(uuid.uuid4(), DocumentType.APPLICATION_FORM, HOUSEHOLD, None)
    notice = DocumentOnFile(uuid.uuid4(), DocumentType.RETURN_NOTICE, HOUSEHOLD, None)
    foreign = dataclasses.replace(notice, household_id=uuid.uuid4())
    assert _violations(_draft(documents=[form, notice, foreign]), _members()) == [
        ("/document_ids/1", WRITTEN_BY_INTAKE),
        ("/document_ids/2", "belongs to another household"),
    ]
    assert _violations(_draft(documents=[form]), _members()) == []


def test_a_home_without_its_floor_area_is_a_missing_item() -> None:
    def home(area: int | None, owner: uuid.UUID | None = None) -> AssetDeclaration:
        return AssetDeclaration(owner, AssetKind.HOUSING, 9_000_000, 1, area, None)

    draft = _draft(assets=[home(64), home(None, HUSBAND)])
    missing = missing_items(draft, _members(), today=TODAY, policy=POLICY)
    assert missing[0] == MissingItem(
        "the floor area of the declared housing",
        code=MissingItemCode.HOUSING_FLOOR_AREA,
        person_id=HUSBAND,
        field="assets[1].floor_area_m2",
    )
    complete = _draft(assets=[home(64), home(89, HUSBAND)])
    assert all(
        item.field is None or not item.field.startswith("assets")
        for item in missing_items(complete, _members(), today=TODAY, policy=POLICY)
    )


# --- who applies once the applicant dies or moves out (ADR 0016, 3 Dec 2026) ---------------

HEAD, SON, GRANDCHILD = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def _staying(**son: object) -> list[MemberFacts]:
    """Who stays after the applicant (the head's wife) left: the head, a grown son and a
    grandchild of 10."""
    head = dataclasses.replace(_members()[0], person_id=HEAD, birth_date=date(1960, 3, 3))
    grown = dataclasses.replace(
        head, person_id=SON, relationship=Relationship.CHILD, birth_date=date(1990, 5, 5)
    )
    child = dataclasses.replace(
        head,
        person_id=GRANDCHILD,
        relationship=Relationship.GRANDCHILD,
        birth_date=date(2016, 6, 6),
        employment_status=EmploymentStatus.NOT_OF_WORKING_AGE,
    )
    return [head, dataclasses.replace(grown, **son), child]  # type: ignore[arg-type]


def _after(
    staying: list[MemberFacts],
    *,
    head: uuid.UUID | None = HEAD,
    named: uuid.UUID | None = None,
    applicants: tuple[uuid.UUID, ...] = (WIFE,),
) -> tuple[uuid.UUID | None, list[tuple[str, str]]]:
    successor, problems = applicant_after_leaving(
        WIFE, applicants, staying, head, named, today=TODAY, policy=POLICY
    )
    return successor, [(v.pointer, v.detail) for v in problems]


def test_the_head_takes_over_the_application_of_the_applicant_who_left() -> None:
    """The applicant died or moved out: the head after the change applies, unless named."""
    assert _after(_staying()) == (HEAD, [])
    assert _after(_staying(), named=SON) == (SON, [])


def test_the_member_who_takes_over_is_held_to_an_applicant_s_rules() -> None:
    """Named: a member who stays, 18 or older, living at home (as at submission)."""
    [(pointer, detail)] = _after(_staying(), named=GRANDCHILD)[1]
    assert (pointer, detail) == ("/new_applicant_person_id", "the applicant must be 18 or older")
    imprisoned = _staying(counted=False, exclusion_reason=ExclusionReason.IMPRISONED)
    [(pointer, detail)] = _after(imprisoned, named=SON)[1]
    assert "not a co-resident member" in detail
    [(pointer, detail)] = _after(_staying(), named=WIFE)[1]
    assert "who stays" in detail


def test_a_member_is_named_when_the_head_cannot_take_over() -> None:
    """The head after the change is the grandchild of 10 (or nobody named): the grown son
    may apply, so he is to be named; the change is refused until he is."""
    successor, problems = _after(_staying(), head=GRANDCHILD)
    assert successor is None
    [(pointer, detail)] = problems
    assert pointer == "/new_applicant_person_id"
    assert "name the member who applies" in detail
    assert _after(_staying(), head=GRANDCHILD, named=SON) == (SON, [])


def test_with_nobody_able_to_apply_the_applications_close() -> None:
    """Only the grandchild stays, or the son is in prison: nobody may apply (None, no
    violation): the change closes the applications, it is not refused."""
    child_only = [m for m in _staying() if m.person_id == GRANDCHILD]
    assert _after(child_only, head=GRANDCHILD) == (None, [])
    away = _staying(counted=False, exclusion_reason=ExclusionReason.MILITARY_SERVICE)
    assert _after([m for m in away if m.person_id != HEAD], head=GRANDCHILD) == (None, [])


def test_nobody_takes_over_what_the_leaver_did_not_apply_for() -> None:
    """A member who applied for nothing open leaves: no successor, and naming one is an
    error; nor when the household is dissolved (its dissolution closes them)."""
    assert _after(_staying(), applicants=(HEAD,)) == (None, [])
    assert _after(_staying(), applicants=())[0] is None
    [(pointer, _)] = _after(_staying(), applicants=(HEAD,), named=SON)[1]
    assert pointer == "/new_applicant_person_id"
    assert _after([], head=None) == (None, [])
    assert _after([], head=None, named=SON)[1]


# --- who applies once a member change leaves the applicant unable to (ADR 0016, 3 Dec 2026)

IMPRISONED: dict[str, object] = {"counted": False, "exclusion_reason": ExclusionReason.IMPRISONED}


def _changed(
    details: dict[str, object],
    *,
    applicant: uuid.UUID = SON,
    named: uuid.UUID | None = None,
    applicants: tuple[uuid.UUID, ...] = (SON,),
) -> tuple[bool, uuid.UUID | None, list[tuple[str, str]]]:
    """The ``applicant`` (the son, unless said) changed as ``details`` say, in a
    household of the head, the grown son and a grandchild of 10."""
    members = _staying()
    [changed] = [
        dataclasses.replace(m, **details)  # type: ignore[arg-type]
        for m in members
        if m.person_id == applicant
    ]
    replaced, successor, problems = applicant_after_change(
        changed,
        applicants,
        [m for m in members if m.person_id != applicant],
        HEAD,
        named,
        today=TODAY,
        policy=POLICY,
    )
    return replaced, successor, [(v.pointer, v.detail) for v in problems]


def test_an_applicant_recorded_living_apart_hands_the_application_to_the_head() -> None:
    """The son who applied is recorded in prison (any reason of living apart): the head
    applies from now on unless another member is named; the named one is held to an
    applicant's rules, the son himself is no other member."""
    for reason in POLICY.living_apart:
        assert _changed({"counted": False, "exclusion_reason": reason}) == (True, HEAD, [])
    assert _changed(IMPRISONED, named=HEAD) == (True, HEAD, [])
    [(pointer, detail)] = _changed(IMPRISONED, named=GRANDCHILD)[2]
    assert (pointer, detail) == ("/new_applicant_person_id", "the applicant must be 18 or older")
    [(_, detail)] = _changed(IMPRISONED, named=SON)[2]
    assert detail == "not another active member of the household"


def test_the_head_recorded_living_apart_names_who_applies_or_closes() -> None:
    """The head applied and is recorded living apart: he cannot take over from himself,
    so the son (who may) is to be named; with the son away too, nobody may: closed."""
    replaced, successor, problems = _changed(IMPRISONED, applicant=HEAD, applicants=(HEAD,))
    assert (replaced, successor) == (True, None)
    [(pointer, detail)] = problems
    assert pointer == "/new_applicant_person_id"
    assert "may no longer apply" in detail
    assert "name the member who applies" in detail
    assert _changed(IMPRISONED, applicant=HEAD, applicants=(HEAD,), named=SON) == (True, SON, [])
    members = _staying(counted=False, exclusion_reason=ExclusionReason.MILITARY_SERVICE)
    head = dataclasses.replace(members[0], **IMPRISONED)  # type: ignore[arg-type]
    assert applicant_after_change(
        head, (HEAD,), members[1:], HEAD, None, today=TODAY, policy=POLICY
    ) == (True, None, [])


def test_a_change_that_leaves_the_applicant_able_hands_nothing_over() -> None:
    """A disability grade, a reason not of living apart (a provincial one), a member who
    applied for nothing open: nothing changes hands, and naming a successor is an
    error."""
    assert _changed({"disability_grade": DisabilityGrade.GRADE_2}) == (False, None, [])
    provincial: dict[str, object] = {
        "counted": False,
        "exclusion_reason": ExclusionReason.PROVINCIAL_OTHER,
    }
    assert _changed(provincial) == (False, None, [])
    assert _changed(IMPRISONED, applicants=(HEAD,)) == (False, None, [])
    for details, applicants in (({}, (SON,)), (IMPRISONED, (HEAD,))):
        replaced, successor, [(pointer, _)] = _changed(details, applicants=applicants, named=HEAD)
        assert (replaced, successor, pointer) == (False, None, "/new_applicant_person_id")
