"""How much of a household's or an application's personal data a reader is shown.

Every role reads households and applications within its regions, but not every role
works cases. The roles that take in, investigate, evaluate, review, approve or audit a
case see it whole (the case view). The others read intake's records for their own work
(publicity officers, whose lists show a masked name, the household size and the amount;
finance officers, who pay a ``BankAccountRef`` and get the account behind it from the
disclosure endpoint, for a purpose; policy administrators, who keep the policy and the
staff roster), and are shown no more than the public lists may show, with the household's
make-up (ADR 0005: "masked values are what API responses for roles without a need show";
domain.md: lists never show ID numbers, addresses, income details, health or disability).

The limited view masks names (the members', the applicant's) and leaves out (null) the
address, the declared incomes and assets, disability grades and serious illness, employment
status (unable to work tells of them, and a null for it alone would too), whether staff hold
a member's bank card under a custody agreement, and who (the holder cannot manage it), who
holds the bank account at all (a holder outside the household is a custodian, and a masked
name matching no member, or a null member id, would tell it), the member applied for alone
(单人保 is for the severely disabled or ill), why a member is not counted (imprisonment,
compulsory rehabilitation), that a marriage was recorded as lawful under an autonomous
area's adapted marriage ages (marriage_age_basis: it hints at ethnicity), which of a
member's own details a member change changed and to what (its details show the person id
alone), the documents (their types tell health), the
items a returned application lacks (they name documents too: "the disability certificate",
"the diagnosis of the illness") and the notice to its applicant listing them, the details
of the timeline's entries (declared and
assessed incomes, the member applied for alone, the missing items again), and every text
written in words about the household: the applicant's statement and reasons, exclusion and
change notes, the staff relation note. An application's kind is shown when it is dibao and
withheld for the one-off kinds (medical assistance tells of an illness, and a null that
stood for medical alone would tell it as well), and so is the amount a one-off application
asks for (a festival grant asks a small fixed sum, medical assistance the cost of a
treatment: the figure would tell the kind); those roles may not search by a one-off kind
either. What stays: region, status, dates, relationships, sex and birth dates, student
status, counted or not, the masked ID numbers, flags, and what happened to an application
when and by whom. Document descriptions and content are for the case roles. The access
record names what was shown, so an auditor can tell the two views apart."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from dibao_common.auth import Principal, Role
from dibao_common.errors import Forbidden

CASE_ROLES = frozenset(
    {
        Role.INTAKE_CLERK,
        Role.INVESTIGATOR,
        Role.VILLAGE_COMMITTEE,
        Role.TOWNSHIP_REVIEWER,
        Role.COUNTY_APPROVER,
        Role.AUDITOR,
    }
)
"""The roles that work or audit cases: they are shown households and applications whole."""
CASE_ROLES_LISTED = tuple(r for r in Role if r in CASE_ROLES)
"""The same, in the order the roles are declared (as a 403 lists them)."""


KIND_IF_DIBAO = "kind_if_dibao"
"""How an access record names an application's kind in the limited view."""


class View(StrEnum):
    CASE = "case"
    LIMITED = "limited"


def view_of(principal: Principal) -> View:
    """The case view for a principal holding a case role, the limited view otherwise."""
    return View.CASE if principal.roles & CASE_ROLES else View.LIMITED


def shown(fields: tuple[str, ...], limited: dict[str, str | None], view: View) -> tuple[str, ...]:
    """The fields an access record names for ``view``: in the limited view each field in
    ``limited`` becomes its masked form, or is left out when that is None."""
    if view is View.CASE:
        return fields
    named = (limited.get(f, f) if f in limited else f for f in fields)
    return tuple(f for f in named if f is not None)


def missing_role(wanted: Iterable[Role], why: str) -> Forbidden:
    """403 ``missing-role``: ``why``, and the roles that may (``required_roles``, in the
    order given)."""
    roles = [r.value for r in wanted]
    return Forbidden(
        f"{why}; it needs one of the roles: " + ", ".join(roles),
        type_slug="missing-role",
        required_roles=roles,
    )
