"""Examples of intake's own problems in its OpenAPI document (the kit adds its own: a
missing token or role, a malformed body, an invalid field, an Idempotency-Key in flight...).

Each is made by the function of the service layer that raises it, not typed here, so that
the example is the body a portal gets: a 409 person-in-household with its ``conflicts``,
each 409 the service layer raises (application-open with its application_id,
household-dissolved, concurrent-change (of a submission, and of a move in whose household
left changed meanwhile), application-not-withdrawable, application-decided,
open-application-in-township, already-divorced, marriage-ended, caseworker-conflict,
caseworker-of-another-township) on the operations that answer it, a 403
region-out-of-scope (of a write, and of a search, made by the search's own check), the
403 token-region-unknown of every operation whose caller is built by ``caller_with``,
identity-of-a-former-member, a broken rule's 422 (among them the marriageable-age rule
of a registration, a move in and a relationship correction, which no schema shows, and a
submission's income declaration contradicting the member's record), the
upload's 413 and 415, and the 404
every read answers for a record missing or in another region.
``tests/api/test_openapi.py`` checks each against its response's schema, and that each
operation shows the 409s it names.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any, cast

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from dibao_common.auth import Principal, Role
from dibao_common.errors import NotFound, ProblemError, add_problem_examples
from dibao_intake.api.deps import CALLER_DEPENDENCIES
from dibao_intake.domain.application import (
    CompletenessPolicy,
    Deduction,
    IncomeDeclaration,
    InKind,
    NotCountedReceipt,
    declaration_violations,
    in_kind_violations,
)
from dibao_intake.domain.changes import (
    ActiveMember,
    HouseholdState,
    check_move_out,
    check_relationship_correction,
    of_the_household_left,
)
from dibao_intake.domain.codes import (
    ApplicationKind,
    ApplicationStatus,
    DeductionKind,
    DisabilityGrade,
    DocumentType,
    EmploymentStatus,
    NotCountedKind,
    Relationship,
)
from dibao_intake.domain.divisions import DivisionTable
from dibao_intake.domain.errors import RulesViolatedError, Violation
from dibao_intake.domain.household import (
    MemberFacts,
    marriage_age_violations,
    masked_household_ref,
)
from dibao_intake.service_layer import (
    applications,
    disclosure,
    documents,
    households,
    pages,
    staff,
)
from dibao_intake.service_layer.access import AccessRefused
from dibao_intake.service_layer.runtime import (
    NOT_FOUND,
    Caller,
    Runtime,
    region_out_of_scope,
    regions_unknown,
    unknown_token_regions,
)
from dibao_intake.service_layer.views import CASE_ROLES_LISTED, missing_role

LANZHOU = "620102001001"
OTHER_HOUSEHOLD = uuid.UUID("0193a5b3-0d22-7b10-8c44-5e6f708192a3")
DOCUMENT = uuid.UUID("0193a5b5-2f10-7a4c-9d3e-7f8091a2b3c4")
APPLICATION = uuid.UUID("0193a5b6-3a21-7b5d-8e4f-8091a2b3c4d5")
TOWNSHIP = "620123101000"
MEDIA_TYPES = frozenset({"application/pdf", "image/jpeg", "image/png"})


def _search_refused() -> ProblemError:
    """What GET /households answers a clerk of Lanzhou's Chengguan district searching
    Beijing: the search's own check (which records the refusal only when awaited)."""
    principal = Principal("clerk-620102-07", frozenset({Role.INTAKE_CLERK}), ("620102",))
    criteria = households.SearchHouseholds(region_prefix="110101")
    target = pages.list_target("households", criteria, principal)
    try:
        # The runtime is used only by the refusal's record, which is not awaited here.
        pages.ensure_searchable(cast(Runtime, None), Caller(principal), criteria, target)
    except AccessRefused as refusal:
        return refusal
    raise AssertionError("a search outside the caller's regions was not refused")


def _person_in_household() -> ProblemError:
    return households._person_in_household(
        [
            {
                "pointer": "/body/members/1",
                "household_ref": masked_household_ref(OTHER_HOUSEHOLD, "620123101201"),
            }
        ]
    )


def _moving_in_from_elsewhere() -> ProblemError:
    """A move in of a person active in another household, without leaves_household_id:
    the 409 says how to record both in one change (ADR 0016, 3 Dec 2026)."""
    return households._person_in_household(
        [
            {
                "pointer": "/body/member",
                "household_ref": masked_household_ref(OTHER_HOUSEHOLD, "620123101201"),
            }
        ],
        moving_in=True,
    )


def _head_leaves_without_heir() -> ProblemError:
    """A move in naming the household left, of the person who heads it, naming no new head
    for it: domain.changes' move out rule, as the transfer reports it (ADR 0016, 3 Dec 2026)."""
    head, wife = uuid.UUID(int=1), uuid.UUID(int=2)
    state = HouseholdState(
        head,
        [
            ActiveMember(head, Relationship.HEAD, HEAD_BORN),
            ActiveMember(wife, Relationship.SPOUSE, HEAD_BORN),
        ],
        registered_on=REGISTERED_ON,
    )
    violations = check_move_out(state, head, REGISTERED_ON, None, today=REGISTERED_ON)
    return households.rules_failed(RulesViolatedError(of_the_household_left(violations)))


def _rule_broken() -> ProblemError:
    return households.rules_failed(
        RulesViolatedError(
            # domain.household's composition rule, for a second member declared head.
            [Violation("/members/1/relationship", "the household already has a head")]
        )
    )


REGISTERED_ON = date(2026, 3, 2)
HEAD_BORN, YOUNG_BORN = date(1968, 4, 2), date(2006, 3, 3)
"""A head of 57 and a partner of 19 on 2 March 2026 (20, a woman's marriage age, the next
day)."""


def _spouse_under_age(pointer: str) -> ProblemError:
    """domain.household's marriageable-age rule as a registration (``/members/<i>``) and
    a move in as the head's spouse (``/member``) apply it on their day (ADR 0016)."""
    return households.rules_failed(
        RulesViolatedError(
            marriage_age_violations(
                Relationship.SPOUSE, YOUNG_BORN, HEAD_BORN, REGISTERED_ON, pointer
            )
        )
    )


def _corrected_spouse_under_age() -> ProblemError:
    """A lodger registered at 19 corrected to the head's spouse: refused on the
    registration day, not the correction's (domain.changes, ADR 0016, 3 Dec 2026)."""
    head, lodger = uuid.UUID(int=1), uuid.UUID(int=2)
    state = HouseholdState(
        head,
        [
            ActiveMember(head, Relationship.HEAD, HEAD_BORN),
            ActiveMember(lodger, Relationship.OTHER, YOUNG_BORN),
        ],
        registered_on=REGISTERED_ON,
    )
    violations = check_relationship_correction(
        state, lodger, Relationship.SPOUSE, on=date(2026, 11, 2)
    )
    return households.rules_failed(RulesViolatedError(violations))


def _declaration_contradicted() -> ProblemError:
    """domain.application's declaration rules (ADR 0007, 3 Dec 2026), as a submission
    applies them: a man of 45 in flexible work, no disability grade, declaring the costs of
    a disability and a basic pension, more of his wage in kind than the wage, and an
    operating income in kind with none declared."""
    member = MemberFacts(
        person_id=uuid.UUID(int=1),
        relationship=Relationship.HEAD,
        birth_date=HEAD_BORN.replace(year=1981),
        counted=True,
        disability_grade=DisabilityGrade.NONE,
        seriously_ill=False,
        student=False,
        employment_status=EmploymentStatus.FLEXIBLE,
    )
    declared = IncomeDeclaration(
        member.person_id,
        95_000,
        0,
        0,
        0,
        0,
        6,
        not_counted=(NotCountedReceipt(NotCountedKind.RESIDENTS_BASIC_PENSION, 18_000),),
        deductions=(Deduction(DeductionKind.DISABILITY_COSTS, 15_000),),
        in_kind=InKind(wage_fen=100_000, operating_fen=20_000),
    )
    violations = declaration_violations(
        declared, member, "/incomes/0", today=REGISTERED_ON, policy=CompletenessPolicy()
    ) + in_kind_violations(declared, "/incomes/0")
    return households.rules_failed(RulesViolatedError(violations))


def examples() -> dict[tuple[str, str, int], list[ProblemError]]:
    """(method, path, status) -> intake's problems, for ``add_problem_examples``."""
    not_found = NotFound(NOT_FOUND)
    # The refusals of service_layer.documents.read_document and .search_applications.
    no_case_role = missing_role(documents.CONTENT_ROLES, "Documents are part of a case")
    numbers = missing_role(
        documents.CONTENT_WITH_NUMBERS_ROLES,
        f"This document ({DocumentType.ID_CARD.value}) shows ID or account numbers",
    )
    one_off = missing_role(CASE_ROLES_LISTED, "Searching by a one-off kind is casework")
    out_of_region = region_out_of_scope(LANZHOU[:9] + "000")
    table: dict[tuple[str, str, int], list[ProblemError]] = {
        ("POST", "/households", 409): [_person_in_household()],
        ("POST", "/households", 403): [out_of_region],
        ("POST", "/households", 422): [
            _rule_broken(),
            _spouse_under_age("/members/1/relationship"),
        ],
        ("POST", "/households/{household_id}/changes", 422): [
            _spouse_under_age("/member/relationship"),
            _corrected_spouse_under_age(),
            _head_leaves_without_heir(),
        ],
        ("GET", "/households", 403): [_search_refused()],
        ("GET", "/applications", 403): [_search_refused(), one_off],
        ("GET", "/documents/{document_id}", 403): [no_case_role],
        ("GET", "/documents/{document_id}/content", 403): [no_case_role, numbers],
        ("GET", "/documents/{document_id}/content", 500): [documents.content_unavailable(DOCUMENT)],
        ("POST", "/households/{household_id}/changes", 409): [
            _moving_in_from_elsewhere(),
            households.household_left_changed(),
            households.household_dissolved(),
            households.open_application_in_township(),
            households.already_divorced(),
            households.marriage_ended(),
        ],
        ("POST", "/applications", 422): [_declaration_contradicted()],
        ("POST", "/applications", 409): [
            applications.application_open(ApplicationKind.DIBAO, APPLICATION),
            households.household_dissolved(),
            applications.concurrent_change(),
        ],
        ("POST", "/applications/{application_id}/withdrawal", 409): [
            applications.not_withdrawable(ApplicationStatus.RETURNED),
            applications.application_decided(),
        ],
        ("POST", "/households/{household_id}/changes", 403): [
            out_of_region,
            households.household_left_out_of_scope(
                masked_household_ref(OTHER_HOUSEHOLD, "620123101201")
            ),
        ],
        ("GET", "/persons/{person_id}/identity", 403): [disclosure._not_current()],
        ("POST", "/townships/{township_code}/staff", 409): [
            staff._caseworker_elsewhere(TOWNSHIP),
            staff._caseworker_conflict(),
        ],
        ("POST", "/townships/{township_code}/staff", 403): [region_out_of_scope(TOWNSHIP)],
        ("POST", "/documents", 413): [documents.too_large(10 * 1024 * 1024)],
        (
            "POST",
            "/documents",
            415,
        ): [documents.unsupported_media_type("application/msword", MEDIA_TYPES)],
    }
    for path in (
        "/households/{household_id}",
        "/households/{household_id}/changes",
        "/households/{household_id}/changes/{change_id}",
        "/townships/{township_code}/staff/{staff_id}",
        "/applications",
        "/applications/{application_id}",
        "/applications/{application_id}/withdrawal",
        "/documents/{document_id}",
        "/documents/{document_id}/content",
        "/persons/{person_id}/identity",
        "/bank-accounts/{token_id}",
    ):
        method = "POST" if path.endswith(("/changes", "/withdrawal")) else "GET"
        table.setdefault((method, path, 404), []).append(not_found)
    return table


def _callers(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call in CALLER_DEPENDENCIES:
            yield dependency.call
        yield from _callers(dependency)


def token_region_examples(app: FastAPI) -> dict[tuple[str, str, int], list[ProblemError]]:
    """The 403 token-region-unknown of every operation whose caller ``caller_with`` builds
    (api.deps): the refusal of a token naming a Lanzhou district and a county code that
    names no division of the table."""
    refusal = unknown_token_regions(
        regions_unknown(
            DivisionTable.load(),
            Principal("clerk-620102-07", frozenset({Role.INTAKE_CLERK}), ("620102", "620199")),
        )
    )
    table: dict[tuple[str, str, int], list[ProblemError]] = {}
    for route in iter_route_contexts(app.routes):  # an included router's too
        if not isinstance(route.original_route, APIRoute) or route.path_format is None:
            continue
        if next(_callers(route.dependant), None) is not None:
            for method in sorted(route.methods or ()):
                table[(method, route.path_format, 403)] = [refusal]
    return table


def document_problem_examples(app: FastAPI) -> None:
    add_problem_examples(app, examples())
    add_problem_examples(app, token_region_examples(app))
