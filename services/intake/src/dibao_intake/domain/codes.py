"""Closed vocabularies of intake.

Each value is the lowercase suffix of the matching protobuf enum constant
(``Relationship.SPOUSE`` <-> ``RELATIONSHIP_SPOUSE``), so the mapping to the contracts
is mechanical and checked by a unit test.
"""

from __future__ import annotations

from enum import StrEnum


class AreaType(StrEnum):
    URBAN = "urban"
    RURAL = "rural"


class Sex(StrEnum):
    MALE = "male"
    FEMALE = "female"


class Relationship(StrEnum):
    HEAD = "head"
    SPOUSE = "spouse"
    CHILD = "child"
    PARENT = "parent"
    GRANDCHILD = "grandchild"
    GRANDPARENT = "grandparent"
    SIBLING = "sibling"
    CHILD_IN_LAW = "child_in_law"
    PARENT_IN_LAW = "parent_in_law"
    OTHER_DEPENDANT = "other_dependant"
    OTHER = "other"


class DisabilityGrade(StrEnum):
    NONE = "none"
    GRADE_1 = "1"
    GRADE_2 = "2"
    GRADE_3 = "3"
    GRADE_4 = "4"


class EmploymentStatus(StrEnum):
    EMPLOYED = "employed"
    SELF_EMPLOYED = "self_employed"
    FLEXIBLE = "flexible"
    UNEMPLOYED = "unemployed"
    UNABLE_TO_WORK = "unable_to_work"
    RETIRED = "retired"
    NOT_OF_WORKING_AGE = "not_of_working_age"


class ExclusionReason(StrEnum):
    IMPRISONED = "imprisoned"
    COMPULSORY_REHABILITATION = "compulsory_rehabilitation"
    DECLARED_MISSING = "declared_missing"
    RELIGIOUS_LIVING_APART = "religious_living_apart"
    MILITARY_SERVICE = "military_service"
    PROVINCIAL_OTHER = "provincial_other"


class IncomeCategory(StrEnum):
    WAGE = "wage"
    OPERATING = "operating"
    PROPERTY = "property"
    TRANSFER = "transfer"
    OTHER = "other"


class NotCountedKind(StrEnum):
    """A receipt that is not income for dibao (domain.md, "Income and assets"; the national
    list of the 2021 审核确认办法, art. 12): declared beside the counted categories so that
    verification, which finds them in the registries, does not take them for concealed
    income, and assessment does not count them."""

    SOCIAL_ASSISTANCE = "social_assistance"
    """Government social-assistance payments in money or kind (政府发放的各类社会救助款物)."""
    STATE_AWARD_OR_SCHOLARSHIP = "state_award_or_scholarship"
    """State awards, scholarships, rewards for brave deeds (奖学金、见义勇为等奖励性补助)."""
    RESIDENTS_BASIC_PENSION = "residents_basic_pension"
    """The base pension of the residents' basic pension insurance (城乡居民基础养老金), from 60."""
    CHILDCARE_SUBSIDY = "childcare_subsidy"
    """The national childcare subsidy for a child under 3 (育儿补贴, 3,600 yuan a year)."""
    SPECIAL_CARE_PENSION = "special_care_pension"
    """Preferential-treatment and special-care pensions (优待抚恤金): national, not local."""
    FAMILY_PLANNING_REWARD = "family_planning_reward"
    """Family-planning rewards and assistance (计划生育奖励与扶助金): national, not local."""
    LOCALLY_EXCLUDED = "locally_excluded"
    """An item the city's (or province's) rules exclude; the member's note says which."""


class DeductionKind(StrEnum):
    """A deduction from a member's income (domain.md). The counted categories stay net of
    taxes and social-insurance contributions, as they always were: that deduction records
    what was already taken off (gross = net + it, as the tax and social-insurance
    registries record it). The other three are claims not taken off the amounts, which
    assessment deducts as local policy allows."""

    TAXES_AND_SOCIAL_INSURANCE = "taxes_and_social_insurance"
    DISABILITY_COSTS = "disability_costs"
    SERIOUS_ILLNESS_COSTS = "serious_illness_costs"
    EMPLOYMENT_COSTS = "employment_costs"


class AssetKind(StrEnum):
    DEPOSIT = "deposit"
    SECURITIES = "securities"
    INSURANCE = "insurance"
    VEHICLE = "vehicle"
    HOUSING = "housing"
    BUSINESS_REGISTRATION = "business_registration"
    OTHER = "other"


class ApplicationKind(StrEnum):
    DIBAO = "dibao"
    TEMPORARY = "temporary"
    MEDICAL = "medical"
    EDUCATION = "education"
    HEATING = "heating"
    FESTIVAL = "festival"

    @property
    def one_off(self) -> bool:
        """One-off assistance: an amount asked for once, with a reason."""
        return self is not ApplicationKind.DIBAO


class SubmissionChannel(StrEnum):
    COUNTER = "counter"
    ONLINE = "online"
    OUTREACH = "outreach"


class DocumentType(StrEnum):
    APPLICATION_FORM = "application_form"
    ID_CARD = "id_card"
    HOUSEHOLD_REGISTER = "household_register"
    VERIFICATION_AUTHORISATION = "verification_authorisation"
    INCOME_PROOF = "income_proof"
    ASSET_PROOF = "asset_proof"
    DISABILITY_CERTIFICATE = "disability_certificate"
    MEDICAL_RECORD = "medical_record"
    STUDENT_PROOF = "student_proof"
    BANK_CARD = "bank_card"
    CUSTODY_AGREEMENT = "custody_agreement"
    DEATH_CERTIFICATE = "death_certificate"
    MARRIAGE_CERTIFICATE = "marriage_certificate"
    DIVORCE_CERTIFICATE = "divorce_certificate"
    BIRTH_CERTIFICATE = "birth_certificate"
    INVESTIGATION_FORM = "investigation_form"
    EVALUATION_MINUTES = "evaluation_minutes"
    PHOTO = "photo"
    OTHER = "other"
    RETURN_NOTICE = "return_notice"
    """The notice given to the applicant of a returned application (一次性告知书), listing
    every missing item: written by intake when it returns the application (ADR 0009,
    3 Dec 2026), never uploaded."""

    @property
    def shows_numbers(self) -> bool:
        """Whether a document of this type, by its standard form, shows a resident ID or a
        bank account number in full, or health (its content is then downloaded as a
        disclosure)."""
        return self in _SHOWING_NUMBERS


_SHOWING_NUMBERS = frozenset(
    {
        DocumentType.ID_CARD,
        # Every member's ID number.
        DocumentType.HOUSEHOLD_REGISTER,
        DocumentType.BANK_CARD,
        # The application form lists each member's ID number and the account for payments;
        # the authorisation, each signing member's ID number.
        DocumentType.APPLICATION_FORM,
        DocumentType.VERIFICATION_AUTHORISATION,
        # The account whose card staff hold.
        DocumentType.CUSTODY_AGREEMENT,
        # The disability certificate's number is the holder's ID number and two digits.
        DocumentType.DISABILITY_CERTIFICATE,
        # The deceased's, the spouses' (married or divorced), the parents' ID numbers.
        DocumentType.DEATH_CERTIFICATE,
        DocumentType.MARRIAGE_CERTIFICATE,
        DocumentType.DIVORCE_CERTIFICATE,
        DocumentType.BIRTH_CERTIFICATE,
        # The signed home-visit form carries the ID numbers disclosed for it (ADR 0007).
        DocumentType.INVESTIGATION_FORM,
        # A hospital's record heads its pages with the patient's ID number; and health
        # is sensitive personal information (PIPL art. 28), not for every role to read.
        DocumentType.MEDICAL_RECORD,
    }
)


class MissingItemCode(StrEnum):
    """What a missing item of a returned application is (``domain.application.
    missing_items``): the return notice words each in Chinese (``domain.return_notice``).
    Stored with the item, answered as its ``code`` and published in ``MissingItem.code``
    since 3 Dec 2026 (ADR 0009): clients word it in their own labels."""

    REQUESTED_AMOUNT = "requested_amount"
    REQUEST_REASON = "request_reason"
    HOUSING_FLOOR_AREA = "housing_floor_area"
    APPLICATION_FORM = "application_form"
    HOUSEHOLD_REGISTER = "household_register"
    VERIFICATION_AUTHORISATION = "verification_authorisation"
    ID_CARD = "id_card"
    INCOME_DECLARATION = "income_declaration"
    WAGE_PROOF = "wage_proof"
    NO_PAY_PROOF = "no_pay_proof"
    DISABILITY_CERTIFICATE = "disability_certificate"
    DIAGNOSIS = "diagnosis"
    STUDENT_PROOF = "student_proof"
    KIND_DOCUMENT = "kind_document"
    """A document a kind of assistance asks for (``CompletenessPolicy.kind_documents``):
    worded by its document type."""
    BANK_ACCOUNT = "bank_account"


class ApplicationStatus(StrEnum):
    """Where an application stands in intake (later stages live in assessment)."""

    SUBMITTED = "submitted"
    RETURNED = "returned"
    WITHDRAWN = "withdrawn"


class DecisionOutcome(StrEnum):
    """What assessment decided of an accepted application, as intake learns it from the
    decision's event (``application.decision``, migration 0018; ADR 0023)."""

    APPROVED = "approved"
    """``BenefitApproved``: the monthly allowance, from its first payable month."""
    REJECTED = "rejected"
    """``ApplicationRejected``: refused, with written reasons (assessment's to show)."""
    ONE_OFF_APPROVED = "one_off_approved"
    """``OneOffAssistanceApproved``: a one-off payment (temporary, medical, ...)."""


class ApplicationState(StrEnum):
    """A search's filter on where a submitted application stands (ADR 0023): beside
    ``status``, which stays intake's own (submitted, returned, withdrawn)."""

    OPEN = "open"
    """Submitted and not yet decided: the cases being worked on (one per household and
    kind, ``uq_application_open_kind``)."""
    DECIDED = "decided"
    """Decided by assessment: approved, rejected or one-off approved."""


class WithdrawalCause(StrEnum):
    """Why an application was withdrawn (``application.withdrawal_cause``, migration 0010).

    The one vocabulary not named after its protobuf constants: the contract's
    WITHDRAWAL_CAUSE_UNSPECIFIED is the applicant's withdrawal (every ApplicationWithdrawn
    published before the field), so APPLICANT_REQUEST maps to it
    (``contracts.WITHDRAWAL_CAUSES``)."""

    APPLICANT_REQUEST = "applicant_request"
    """Withdrawn at the applicant's request, by a clerk (POST
    /applications/{id}/withdrawal), with the applicant's reason in words."""
    HOUSEHOLD_DISSOLVED = "household_dissolved"
    """Closed by the change that dissolved the household (its last member's death or move
    out): nobody is left to withdraw it, no household to assess, no reason in words."""
    APPLICANT_LEFT = "applicant_left"
    """Closed by the death or move out of its applicant, or a member change leaving them
    unable to apply (living apart), when no other member who stays may apply in their
    place (none of 18 or more living at home: ADR 0016, 3 Dec 2026, migration 0016); no
    reason in words. The household stays and applies anew when it can."""


class UnassignedReason(StrEnum):
    """Why an accepted application has no assigned caseworker: the county assigns it
    (``application.unassigned_reason``, migration 0011; ADR 0009)."""

    CASEWORKER_RELATED = "caseworker_related"
    """The household is the responsible caseworker's own or holds a relative of theirs."""
    CASEWORKER_NOT_IDENTIFIED = "caseworker_not_identified"
    """The responsible caseworker is on the roster without their own ID number: whether
    the household is theirs cannot be checked."""
    NO_CASEWORKER = "no_caseworker"
    """The township has no responsible caseworker on its roster."""


class HouseholdStatus(StrEnum):
    ACTIVE = "active"
    DISSOLVED = "dissolved"


class ChangeKind(StrEnum):
    BIRTH = "birth"
    DEATH = "death"
    MARRIAGE = "marriage"
    MOVE_IN = "move_in"
    MOVE_OUT = "move_out"
    BANK_ACCOUNT_CHANGE = "bank_account_change"
    MEMBER_CHANGE = "member_change"
    """A member's own details: disability, illness, employment, school, counted or not."""
    ADDRESS_CHANGE = "address_change"
    """The whole household moved: a new address, possibly another village or community."""
    DIVORCE = "divorce"
    """A marriage ended by divorce: the partners may both stay (离婚不离家)."""
    SPOUSE_DEATH = "spouse_death"
    """The death of a member's spouse living elsewhere (no member): the marriage ends."""


class MarriageAgeBasis(StrEnum):
    """Which legal marriage age a marriage was recorded under, as the clerk said (ADR 0016,
    3 Dec 2026, helper hBB). Not saying it is the Civil Code's."""

    CIVIL_CODE = "civil_code"
    """Civil Code art. 1047: 22 for a man, 20 for a woman (20 and 18 before 1981)."""
    AUTONOMOUS_ADAPTATION = "autonomous_adaptation"
    """An autonomous area's adapted provisions (变通规定, e.g. in Xinjiang, Tibet, Inner
    Mongolia, Ningxia and some autonomous prefectures) under which the marriage was lawful:
    20 for a man, 18 for a woman, never lower."""


class LeaveReason(StrEnum):
    """Why a member is no longer an active member of a household."""

    DEATH = "death"
    MOVE_OUT = "move_out"


class StaffRole(StrEnum):
    """Roles on a township's roster that make an applicant's relatives a conflict of interest."""

    CASEWORKER = "caseworker"
    DIBAO_STAFF = "dibao_staff"
    TOWNSHIP_OFFICIAL = "township_official"
    VILLAGE_COMMITTEE = "village_committee"
