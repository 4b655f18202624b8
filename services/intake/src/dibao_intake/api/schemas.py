"""The HTTP API's request and response bodies (separate from the ORM models).

Inputs forbid unknown fields and carry their defaults; outputs have no defaults, so every
field is always present in a response and required in the published schema.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
)

from dibao_common.crypto import ID_NUMBER_LIKE, carries_id_number, normalise_id_number
from dibao_common.errors import explain_pattern
from dibao_common.text import NOT_IN_TEXT as NOT_IN_TEXT
from dibao_common.text import NOT_IN_TEXT_CLASS, TEXT_RULE, class_of
from dibao_common.text import PLAIN_TEXT as PLAIN_TEXT
from dibao_intake.domain import names
from dibao_intake.domain.codes import (
    ApplicationKind,
    ApplicationStatus,
    AreaType,
    AssetKind,
    ChangeKind,
    DecisionOutcome,
    DeductionKind,
    DisabilityGrade,
    DocumentType,
    EmploymentStatus,
    ExclusionReason,
    HouseholdStatus,
    LeaveReason,
    MarriageAgeBasis,
    MissingItemCode,
    NotCountedKind,
    Relationship,
    Sex,
    StaffRole,
    SubmissionChannel,
    UnassignedReason,
    WithdrawalCause,
)
from dibao_intake.domain.divisions import DivisionLevel
from dibao_intake.service_layer.views import View

RegionCode = Annotated[
    str,
    Field(
        pattern=r"^[0-9]{12}$",
        description="12-digit statistical division code (village or community level)",
        examples=["620102001001"],
    ),
]


def json_integer(value: Any) -> Any:
    """A JSON integer as the schema says one: ``true`` or ``"100"`` is another JSON type
    (pydantic would take them as 1 and 100: a flag as one fen), ``100.0`` is an integer
    in JSON Schema and is taken as 100."""
    if isinstance(value, bool | str):
        raise ValueError("must be a JSON integer")
    return value


Integer = Annotated[int, BeforeValidator(json_integer)]
"""An integer as JSON Schema has one. A bounded one puts its bounds on the ``int``, before
the validator (``Fen``, ``FloorArea``, ``MemberIndex``): bounds given on ``Integer`` itself,
in a union or by a second ``Annotated``, are enforced but published as ``ge``/``le``, no
JSON Schema keyword, so a client reads the field as unbounded."""
_FULL_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def json_date(value: Any) -> Any:
    """A date as the schema says one (format date: "2026-03-02"): pydantic would also
    take 0 or "86400" as Unix seconds (1970-01-01, 1970-01-02) and a date-time at
    midnight as its day."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _FULL_DATE.fullmatch(value):
        return value
    raise ValueError("must be a date as YYYY-MM-DD")


Day = Annotated[date, BeforeValidator(json_date)]
MONTHLY_ITEM_MAX_FEN = 10_000_000
"""A receipt or a deduction above 100,000 yuan a month is a typing error, not a declaration
of a household applying for a minimum living allowance."""
Fen = Annotated[
    int,
    Field(ge=0, le=10**12, description="Amount in fen (0.01 yuan)"),
    BeforeValidator(json_integer),
]
ONE_OFF_MAX_FEN = 100_000_000
"""A one-off amount asked for above 1,000,000 yuan is a typing error, not a request (ADR
0007, 3 Dec 2026): medical assistance, the largest kind, is capped by local rules at a
few hundred thousand yuan a person a year at most; temporary assistance is a few months
of the local standard, education aid, heating and festival subsidies hundreds to a few
thousand yuan. One cap for every kind: the amounts of each are local policy, which
assessment applies; this only refuses what no kind reaches. And at least 1 fen (3 Dec
2026): a one-off assistance asking nothing is a typing error too, not an amount missing
(an application without one is returned for it)."""
OneOffFen = Annotated[
    int,
    Field(
        ge=1,
        le=ONE_OFF_MAX_FEN,
        description="Amount in fen (0.01 yuan), at least 1 fen and at most 1,000,000 yuan:"
        " nothing, or more, is a typing error (no one-off assistance reaches it)",
    ),
    BeforeValidator(json_integer),
]
FloorArea = Annotated[int, Field(ge=1, le=100_000), BeforeValidator(json_integer)]
MemberIndex = Annotated[int, Field(ge=0), BeforeValidator(json_integer)]


# Free text (PLAIN_TEXT, NOT_BLANK) follows the kit's one rule, NOT_IN_TEXT
# (dibao_common.text, ADR 0005, 3 Dec 2026), which audit's text filters follow too.
_SPACE = r"\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
r"""What inputs are stripped of (Unicode White_Space), spelled out: each regex engine's
``\s`` is another set (Python's adds U+001C-U+001F, ECMAScript's U+FEFF, not U+0085)."""
NOT_BLANK = explain_pattern(
    f"^[^{NOT_IN_TEXT_CLASS}]*[^{NOT_IN_TEXT_CLASS}{_SPACE}][^{NOT_IN_TEXT_CLASS}]*$",
    f"must not be blank: something besides white space, and {TEXT_RULE}",
)
"""Free text that must not be empty once stripped: something besides white space, and
nothing ``PLAIN_TEXT`` refuses."""


def id_number_spelling(value: str) -> str:
    """A resident ID number in its one spelling (``normalise_id_number``: no white space,
    upper-case X), once checked as sent: a number typed with spaces around it or a
    lower-case ``x`` is the same person's, and is stored, masked and hashed as one number
    wherever it is taken (a registration, a member, a staff relative, a lookup)."""
    return normalise_id_number(value)


IdNumber = Annotated[
    str,
    Field(
        pattern=explain_pattern(
            rf"^[{_SPACE}]*[0-9]{{17}}[0-9Xx][{_SPACE}]*$",
            "must be 18 characters: 17 digits, then a digit or X",
        ),
        description="18-character resident ID number (GB 11643); the check digit is verified."
        " White space around it is removed and a lower-case x upper-cased: the same number",
        examples=["620102197003151230"],
    ),
    AfterValidator(id_number_spelling),
]


CARD_NUMBER_LIKE = re.compile(r"\d{16}")
"""A run of 16 digits or more: a bank card number (16 to 19 digits), which an ID number's
pattern (18 characters) misses at 16 and 17 digits. Full-width digits are digits too."""

_GROUP_SEPARATOR = r"[ \u00a0\u3000\-\u2010-\u2013\uff0d]{1,3}"
"""Between the groups of a number written in groups: spaces (no-break, ideographic), a
hyphen or dash (full-width too), up to three of them (``6222 - 0212``)."""
_ID_YEAR = r"(?:[1１][89８９]|[2２][0０])\d{2}"
_ID_MONTH_DAY = r"[01０１]\d[0-3０-３]\d"
NUMBER_IN_GROUPS = re.compile(
    rf"(?<!\d)\d{{4}}(?:{_GROUP_SEPARATOR}\d{{4}}){{3}}"
    rf"|(?<!\d)\d{{6}}(?:{_GROUP_SEPARATOR})?{_ID_YEAR}(?:{_GROUP_SEPARATOR})?{_ID_MONTH_DAY}"
    rf"(?:{_GROUP_SEPARATOR})?\d{{3}}[\dXxＸｘ]"
)
"""A card or ID number written in groups, as one is printed and copied: four groups of
four digits or more (``6222 0212 3456 7890 123``, ``6222-0212-3456-7890``, an ID number
``6201 0219 8001 0112 34``), or an ID number's 18 characters parted where its fields part
(region, year, month and day, the rest: ``620102 19800101 1234``; the year and the date
as an ID number's are, so that a postal code and a telephone number, ``730030
0931-88888888``, are none). Not the groups of a phone number (``138 0013 8000``,
``0931-8888888``), a date, a house number or a division code: groups of other lengths, or
too few (ADR 0005)."""


_WITHOUT_INVISIBLE = str.maketrans(dict.fromkeys(names.INVISIBLE, None))
"""Drops what shows as nothing (``names.INVISIBLE``: format characters, Hangul fillers)."""


def no_id_number(text: str) -> str:
    """Free text is stored and published as typed: a resident ID or card number in it
    would escape the encryption and masking of the fields made for them (ADR 0005). It is
    looked for in the text as it shows, without invisible characters: a number with a zero
    width space or a soft hyphen inside is that number on every screen (ADR 0005, 3 Dec
    2026)."""
    shown = text.translate(_WITHOUT_INVISIBLE)
    if carries_id_number(shown) or CARD_NUMBER_LIKE.search(shown) or NUMBER_IN_GROUPS.search(shown):
        raise ValueError(
            "must not contain a resident ID or bank card number: record a person as a"
            " member and an account as bank_account"
        )
    return text


NO_ID_NUMBER: dict[str, Any] = {
    "not": {
        "type": "string",
        "pattern": "|".join(
            p.pattern for p in (ID_NUMBER_LIKE, CARD_NUMBER_LIKE, NUMBER_IN_GROUPS)
        ),
    }
}
"""``no_id_number`` as the published schema says it (``json_schema_extra``: the validator
checks, with its own message)."""


_CONTROLS = class_of(names.CONTROLS)
NAME_PATTERN = explain_pattern(
    f"^[^{_CONTROLS}]*[^{_CONTROLS}{_SPACE}{class_of(names.SEPARATORS)}][^{_CONTROLS}]*$",
    "must hold a name: something besides white space, dots and invisible characters, and"
    " no control character",
)
"""A name holds something besides white space, separators (dots, full stops) and
invisible characters (format characters, Hangul fillers), and no control character that
is no white space: what ``names.normalise_name`` refuses, as the schema says it."""


def person_name(value: str) -> str:
    """A person's name in its one spelling (``names.normalise_name``), once checked as
    sent: the name stored, published and compared with the recorded one."""
    return names.normalise_name(value)


Name = Annotated[
    str,
    Field(
        min_length=1,
        max_length=50,
        pattern=NAME_PATTERN,
        json_schema_extra=NO_ID_NUMBER,
        description="A person's name, as on their ID card. Taken in one spelling: NFKC"
        " (full-width letters and digits as ASCII), the separator of a name's parts as"
        " U+00B7 MIDDLE DOT (GB 18030 0xA1A4) however typed (U+2027, U+30FB, U+FF0E between"
        " Chinese characters, U+2022, U+22C5...) and without white space around it, white"
        " space stripped and each run inside one space (none between two Chinese"
        " characters: 王\u3000芳 is 王芳), invisible characters dropped",
        examples=["马建国", "买买提·艾力"],
    ),
    AfterValidator(person_name),
    AfterValidator(no_id_number),
]
"""A person's name (a member, a spouse, an account's holder, a staff member, a staff
member's relative): stored in clear, in one spelling, and published masked."""
BankName = Annotated[
    str,
    Field(min_length=1, max_length=50, pattern=NOT_BLANK, json_schema_extra=NO_ID_NUMBER),
    AfterValidator(no_id_number),
]
"""A bank's name, as typed (stripped)."""
Subject = Annotated[
    str,
    Field(max_length=100, pattern=PLAIN_TEXT, json_schema_extra=NO_ID_NUMBER),
    AfterValidator(no_id_number),
]
"""A staff member's token subject, as typed (published as it is)."""
Note = Annotated[
    str,
    Field(min_length=1, max_length=500, pattern=NOT_BLANK, json_schema_extra=NO_ID_NUMBER),
    AfterValidator(no_id_number),
]
Statement = Annotated[
    str,
    Field(max_length=2000, pattern=PLAIN_TEXT, json_schema_extra=NO_ID_NUMBER),
    AfterValidator(no_id_number),
]


WHITE_SPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + ("\u2028\u2029\u202f\u205f\u3000")
)
"""Unicode White_Space, the characters of ``_SPACE``: what text in requests is stripped of."""


class _In(BaseModel):
    """A request body. Text is checked as sent, against the limits and patterns the
    published schema states (a name padded past maxLength is refused, as a client
    validating against the schema would refuse it), then stripped of white space."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="after")
    @classmethod
    def _stripped(cls, value: Any) -> Any:
        # Exactly str: an enum member is a str too, and stays what it is.
        return value.strip(WHITE_SPACE) if type(value) is str else value


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


VIEW_DESCRIPTION = (
    "case: shown whole, to the roles that work or audit cases (intake clerk, investigator,"
    " village committee, township reviewer, county approver, auditor). limited: for the"
    " other roles (publicity officer, finance officer, policy administrator): what the"
    " public lists may show and the household's make-up, nothing the lists never show."
    " Names masked; the address, incomes, assets, health and disability (employment status"
    " too: unable_to_work tells of them; a bank card held by staff, and by whom), why a"
    " member is not counted, documents, missing"
    " items, timeline details, a one-off kind and its amount asked for, and every text"
    " written in words about the household null"
)
_WITHHELD = " (null in the limited view)"


# --- households ---------------------------------------------------------------------------


MARRIAGE_AGE_BASIS_DESCRIPTION = (
    "The legal marriage age under which the marriage was lawful, as the marriage certificate"
    " shows (ADR 0016, 3 Dec 2026, helper hBB). Not given (or civil_code): the Civil Code's,"
    " art. 1047, 22 for a man and 20 for a woman (20 and 18 for a marriage before 1981),"
    " which the record holds everyone to by default: a younger spouse is most often a"
    " mistyped ID number. autonomous_adaptation: lawful under an autonomous area's adapted"
    " provisions (变通规定: Xinjiang, Tibet, Inner Mongolia, Ningxia and some autonomous"
    " prefectures lower the ages to 20 and 18, often for the minority nationalities there):"
    " 20 for a man and 18 for a woman, never lower (a man of 19 is refused whatever is"
    " said). The record holds neither where the marriage was registered nor ethnicity: the"
    " clerk says it. Any other value is 422. Only the case roles read it back (it hints at"
    " ethnicity)."
)


class MemberIn(_In):
    """A household member as declared; birth date and sex, if given, must match the ID."""

    name: Name
    id_number: IdNumber
    relationship: Relationship = Field(description="Relationship to the head of household")
    disability_grade: DisabilityGrade = DisabilityGrade.NONE
    seriously_ill: StrictBool = False
    employment_status: EmploymentStatus
    student: StrictBool = Field(False, description="Full-time student up to bachelor level")
    counted: StrictBool = Field(True, description="Counted towards household size and income")
    exclusion_reason: ExclusionReason | None = Field(
        None, description="Why the member is not counted (required when counted is false)"
    )
    exclusion_note: Note | None = None
    birth_date: Day | None = Field(None, description="Optional cross-check of the ID number")
    sex: Sex | None = Field(None, description="Optional cross-check of the ID number")
    name_correction: StrictBool = Field(
        False,
        description="The person (a former member of some household) is recorded under a"
        " wrong name and name corrects it, wherever the person is recorded, as a"
        " member_change giving name would (the change's details say name_corrected). Only"
        " for a member joining by a change (move_in's member, marriage's spouse), with the"
        " person's ID card or household register in the change's document_ids; 422 when the"
        " name is the one recorded or the person is new (nothing to correct). Without it, a"
        " known ID number under another name is refused",
    )
    marriage_age_basis: MarriageAgeBasis | None = Field(
        None,
        description=MARRIAGE_AGE_BASIS_DESCRIPTION
        + " Here: only for the head's spouse registered with the household or moving in as"
        " the head's spouse (relationship spouse), for the couple's marriage, which has no"
        " day in the record: both must have been of that age by the registration day or"
        " moved_on. Stored with the membership, shown as the member's marriage_age_basis,"
        " published as the member's. For any other member 422 here, and on a marriage's"
        " spouse too (the marriage says it, as its own marriage_age_basis)",
        examples=["autonomous_adaptation"],
    )


class BankAccountIn(_In):
    account_number: str = Field(pattern=r"^[0-9]{12,19}$", examples=["6228480402564890018"])
    bank_code: str = Field(
        pattern=r"^[0-9]{3,12}$", description="Bank code or CNAPS number", examples=["103"]
    )
    bank_name: BankName = Field(examples=["中国农业银行榆中县支行"])
    holder_person_id: uuid.UUID | None = Field(
        None, description="The holder, when a member of the household"
    )
    holder_name: Name | None = Field(
        None, description="The holder's name when not a member (a custodian's account)"
    )


class RegistrationBankAccountIn(_In):
    account_number: str = Field(pattern=r"^[0-9]{12,19}$")
    bank_code: str = Field(pattern=r"^[0-9]{3,12}$")
    bank_name: BankName
    holder_member_index: MemberIndex | None = Field(
        None, description="Index in members of the holder (default: the head)"
    )


_HOUSEHOLD_EXAMPLE: dict[str, Any] = {
    "region_code": "620123101203",
    "area_type": "rural",
    "address": "榆中县夏官营镇夏官营村三社12号",
    "members": [
        {
            "name": "马建国",
            "id_number": "620123196804020115",
            "relationship": "head",
            "employment_status": "flexible",
        },
        {
            "name": "王秀兰",
            "id_number": "620123197009140227",
            "relationship": "spouse",
            "disability_grade": "2",
            "employment_status": "unable_to_work",
        },
        {
            "name": "马小军",
            "id_number": "620123201201050335",
            "relationship": "child",
            "employment_status": "not_of_working_age",
            "student": True,
        },
    ],
    "bank_account": {
        "account_number": "6228480402564890018",
        "bank_code": "103",
        "bank_name": "中国农业银行榆中县支行",
    },
}


class HouseholdIn(_In):
    """A household to register: region, urban or rural, address and every member.

    Refused (422, errors[] naming each field, nothing registered) beyond what this schema
    shows: an ID number with a wrong check digit or an impossible or future birth date, or
    disagreeing with the member's birth_date or sex when given (at members/<i>/id_number,
    birth_date, sex); the same person twice (at the later one's id_number); no head (at
    members), a second head or a second spouse (at members/<i>/relationship); the head's
    spouse of the head's sex by the ID numbers, or under 20 (a woman) or 22 (a man) on the
    registration day, or a head under that age that day when a spouse is registered: nobody
    younger is married in China (Civil Code art. 1047; 18 and 20 for one who could marry
    before 1981; no marriage date is asked, the ID numbers bound it) (at
    members/<i>/relationship); a child or grandchild not younger
    than the head, a parent or grandparent not older (there too); an employment_status the member's
    age that day rules out (ADR 0021): a member under 16 employed, self_employed, flexible,
    unemployed or retired, retired under 45 (a woman) or 50 (a man) with no disability or serious
    illness recorded, not_of_working_age from 16 until the statutory retirement age for
    the sex and birth month unless a student, unemployed from the highest statutory
    retirement age that can apply (a man's 60 to 63, a woman cadre's 55 to 58, by birth
    month) (at members/<i>/employment_status); a
    member not counted without exclusion_reason, a counted
    one with one, provincial_other without exclusion_note; name_correction (only for a
    member joining by a change); region_code not a village or community of the division
    table; bank_account.holder_member_index not one of members; a known ID number given
    another name (at name: the recorded one is not told) or of a person recorded as
    deceased (at id_number). A member active in another household is 409
    person-in-household."""

    model_config = ConfigDict(json_schema_extra={"examples": [_HOUSEHOLD_EXAMPLE]})

    region_code: RegionCode
    area_type: AreaType
    address: Annotated[str, AfterValidator(no_id_number)] = Field(
        min_length=1, max_length=200, pattern=NOT_BLANK, json_schema_extra=NO_ID_NUMBER
    )
    members: list[MemberIn] = Field(min_length=1, max_length=30)
    bank_account: RegistrationBankAccountIn | None = None


class MemberOut(_Out):
    person_id: uuid.UUID
    name: str = Field(description="Masked in the limited view")
    id_number_masked: str = Field(examples=["620123********0115"])
    birth_date: date
    sex: Sex
    relationship: Relationship
    disability_grade: DisabilityGrade | None = Field(description="Health:" + _WITHHELD)
    seriously_ill: bool | None = Field(description="Health:" + _WITHHELD)
    employment_status: EmploymentStatus | None = Field(
        description="unable_to_work tells of a disability or an illness" + _WITHHELD
    )
    student: bool
    counted: bool
    exclusion_reason: ExclusionReason | None = Field(
        description="Why not counted (imprisonment, compulsory rehabilitation...)" + _WITHHELD
    )
    exclusion_note: str | None = Field(description="Why not counted, in words" + _WITHHELD)
    active: bool
    joined_on: date
    left_on: date | None
    left_reason: LeaveReason | None
    marriage_age_basis: MarriageAgeBasis | None = Field(
        description="For the head's spouse registered with the household or moved in as the"
        " head's spouse: the legal marriage age the clerk said their marriage was lawful"
        " under (MemberIn.marriage_age_basis); null when nothing was said (the Civil"
        " Code's) and for every other member" + _WITHHELD,
    )


class BankAccountOut(_Out):
    token_id: uuid.UUID = Field(description="The token other services know the account by")
    masked_number: str = Field(examples=["6228 **** **** 0018"])
    bank_code: str
    bank_name: str
    holder_name: str | None = Field(
        description="The holder's name; a custodian's account is held by someone outside the"
        " household" + _WITHHELD
    )
    holder_person_id: uuid.UUID | None = Field(
        description="The member holding it (null for a custodian's account)" + _WITHHELD
    )
    custody_agreement: bool | None = Field(
        description="Staff hold the card under a written agreement: the holder cannot manage"
        " it" + _WITHHELD
    )
    custodian_subject: str | None = Field(description="The staff member holding it" + _WITHHELD)
    created_at: datetime


class ChangeOut(_Out):
    id: uuid.UUID
    kind: ChangeKind
    effective_on: date
    details: dict[str, Any] = Field(
        description="What changed, by id, date, code and flag, never a name nor an address"
        " (a name correction is name_corrected; a move's region codes and area type). In the"
        " limited view custody_agreement and document_ids are left out, and of a"
        " member_change only its person_id shows, not which details changed nor to what"
    )
    note: str | None = Field(description="In words" + _WITHHELD)
    recorded_by: str
    recorded_at: datetime


class HouseholdOut(_Out):
    view: View = Field(description=VIEW_DESCRIPTION)
    id: uuid.UUID
    region_code: str
    region_name: str = Field(examples=["甘肃省兰州市榆中县夏官营镇夏官营村委会"])
    area_type: AreaType
    address: str | None = Field(description="The household's address" + _WITHHELD)
    status: HouseholdStatus
    head_person_id: uuid.UUID | None
    version: int
    members: list[MemberOut]
    bank_account: BankAccountOut | None
    changes: list[ChangeOut]
    created_at: datetime
    updated_at: datetime


class ChangeReadOut(ChangeOut):
    """One change of a household (GET /households/{household_id}/changes/{change_id}): the
    entry GET /households/{household_id} shows among its changes, with the view it is
    shown in."""

    view: View = Field(description=VIEW_DESCRIPTION)


class PersonInHouseholdConflict(_Out):
    """One member who is already active in another household."""

    pointer: str = Field(examples=["/body/members/1"])
    household_ref: str = Field(
        description="Masked reference of the other household", examples=["620102-****-a7f2"]
    )


# --- household changes ---------------------------------------------------------------------


RelationshipsToNewHead = Annotated[
    dict[uuid.UUID, Relationship],
    Field(
        max_length=30,
        description="When the head leaves: each remaining member's relationship to the new"
        " head, by person id. Derived where the old relationships tell it (the late head's"
        " child is the widow's child); required where they do not (a grandchild of the old"
        " head may be the new head's child or a nephew).",
    ),
]


class _ChangeIn(_In):
    note: Note | None = None
    document_ids: list[uuid.UUID] = Field(
        default_factory=list,
        max_length=20,
        description="Supporting documents (uploaded first); a return_notice, which intake"
        " writes, is refused (422 at its index)",
    )


class BirthIn(_ChangeIn):
    kind: Literal["birth"]
    member: MemberIn = Field(
        description="The child, under 18 on the day recorded: born then, or registered late"
        " (a child without hukou); an adult never registered joins by a move_in (ADR 0016)"
    )


_NEW_APPLICANT_OF_LEAVER = (
    "When the member leaving applied for an open application (submitted, not yet decided):"
    " the member who applies for it now, an active member who stays, 18 or older, living at"
    " home (not counted for a reason of living apart refuses them). Unless given, the head"
    " after the change takes it over when they may; when they may not and another member may,"
    " one must be named (422). When nobody who stays may apply, the change closes it"
    " (withdrawn, withdrawal_cause applicant_left; ADR 0016)"
)
"""The successor's field of a death and of a move out (ADR 0016, 3 Dec 2026)."""


class DeathIn(_ChangeIn):
    kind: Literal["death"]
    person_id: uuid.UUID
    date_of_death: Day
    new_head_person_id: uuid.UUID | None = Field(
        None,
        description="Required if the head died: another active member, in the household on"
        " date_of_death (one the record shows joining later is refused while one who was there"
        " can be named)",
    )
    relationships: RelationshipsToNewHead = Field(default_factory=dict)
    new_applicant_person_id: uuid.UUID | None = Field(None, description=_NEW_APPLICANT_OF_LEAVER)


class MarriageIn(_ChangeIn):
    """A member married: the spouse joins the household (spouse), is a member already
    (spouse_person_id: the head and a co-resident, or two other members, ADR 0016), or
    neither (lives elsewhere)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "kind": "marriage",
                    "person_id": "01a22f99-44a7-7311-a94d-13dcb93d3c3e",
                    "married_on": "2026-02-14",
                    "spouse": {
                        "name": "杨秀兰",
                        "id_number": "620123197506184829",
                        "relationship": "spouse",
                        "employment_status": "flexible",
                    },
                },
                {
                    "kind": "marriage",
                    "person_id": "01a22f99-44a7-7311-a94d-13dcb93d3c3e",
                    "married_on": "2026-02-14",
                    "spouse_person_id": "01a22f99-41d4-73be-9784-45c266209619",
                },
                {
                    "kind": "marriage",
                    "person_id": "01a22f99-44a7-7311-a94d-13dcb93d3c3e",
                    "married_on": "2026-02-14",
                    "spouse": {
                        "name": "阿依古丽",
                        "id_number": "650102200702140020",
                        "relationship": "spouse",
                        "employment_status": "flexible",
                    },
                    "marriage_age_basis": "autonomous_adaptation",
                    "note": "在自治区依变通规定登记结婚，凭结婚证",
                },
            ]
        }
    )

    kind: Literal["marriage"]
    person_id: uuid.UUID
    married_on: Day = Field(
        description="Not in the future, both of age on the day, and on or after the end of"
        " each one's last marriage in this household (their spouse's death or move out, or"
        " their own; 422 here naming that day). A member married to a member still here"
        " cannot marry (422 at person_id or spouse_person_id)"
    )
    spouse: MemberIn | None = Field(None, description="The spouse, when joining the household")
    spouse_person_id: uuid.UUID | None = Field(
        None,
        description="The spouse, when a member already: the head and a co-resident member"
        " not related to them (other, other_dependant) married each other, and the member"
        " becomes the head's spouse (the head must have no spouse); or two other members,"
        " one at least not related to the head, who becomes what the other's spouse is to"
        " the head (a child's: child_in_law; a parent's or grandparent's older than the head:"
        " parent, grandparent; a parent-in-law's: parent_in_law) or stays as recorded. Both"
        " must be of age, neither married to a member; not with spouse",
    )
    marriage_age_basis: MarriageAgeBasis | None = Field(
        None,
        description=MARRIAGE_AGE_BASIS_DESCRIPTION
        + " Here: both partners (the member, and the spouse joining or already a member)"
        " must be of that age on married_on, else 422 at person_id, spouse/id_number or"
        " spouse_person_id. Stored in the change's details and published in"
        " HouseholdUpdated.marriage.marriage_age_basis",
        examples=["autonomous_adaptation"],
    )


class MoveInIn(_ChangeIn):
    """A person moved into the household. A former member recorded under a wrong name
    joins under the right one with name_correction, their ID card in document_ids.

    Refused (422, nothing written) beyond what this schema shows: the member as a
    registration checks them (ID number and its cross-checks, employment by age, counted
    and exclusion; at member/...); at member/relationship: head, spouse while the head has
    one, spouse of the head's sex by the ID numbers, spouse when the spouse or the head is
    under 20 (a woman) or 22 (a man) on moved_on (nobody younger is married in China, Civil
    Code art. 1047; 18 and 20 for one who could marry before 1981; no marriage date is
    asked, the ID numbers bound it), a child or
    grandchild not younger than the head, a parent or grandparent not older; at moved_on: in the
    future, before the member's birth, or before the person left their last household; at
    member/id_number: already a member here, or recorded as deceased; at member/name: a
    known ID number under another name (the recorded one is not told), unless
    name_correction with the person's ID card or household register in document_ids (else
    at document_ids); name_correction for a new person or the name recorded (at
    member/name_correction). A person active in another household is 409
    person-in-household, unless leaves_household_id names that household: then its move
    out is recorded in the same change (ADR 0016, 3 Dec 2026), with every rule a move_out
    of it applies (at moved_on, new_head_person_id, relationships, new_applicant_person_id,
    each detail ending "(the household left)")."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "kind": "move_in",
                    "moved_on": "2026-02-25",
                    "member": {
                        "name": "王秀芝",
                        "id_number": "620123197009140227",
                        "relationship": "other_dependant",
                        "employment_status": "unable_to_work",
                        "name_correction": True,
                    },
                    "document_ids": ["01a22f9c-10d4-73fd-a930-7b036a461589"],
                    "note": "原登记姓名有误，凭身份证更正",
                },
                {
                    "kind": "move_in",
                    "moved_on": "2026-02-25",
                    "member": {
                        "name": "李淑珍",
                        "id_number": "620123194803120027",
                        "relationship": "parent",
                        "employment_status": "retired",
                    },
                    "leaves_household_id": "0193a5b3-0d22-7b10-8c44-5e6f708192a3",
                    "new_head_person_id": "01a22f99-41d4-73be-9784-45c266209619",
                    "note": "随子女生活",
                },
            ]
        }
    )

    kind: Literal["move_in"]
    member: MemberIn
    moved_on: Day
    leaves_household_id: uuid.UUID | None = Field(
        None,
        description="The household the person is an active member of and leaves on moved_on"
        " (a daughter marrying into another household, a parent moving to a son's): its"
        " move_out is recorded in the same change, as a move_out of it would be, dated"
        " moved_on, and published as its own HouseholdUpdated (move_out.to_household_id this"
        " household; this move_in's from_household_id that one). Any other household, this"
        " one or none is 422 here, nothing written; one outside the caller's regions is 403"
        " region-out-of-scope, naming it by its masked reference alone (ADR 0016)",
    )
    new_head_person_id: uuid.UUID | None = Field(
        None,
        description="With leaves_household_id, when the person heads the household left: its"
        " new head, another active member there on moved_on (as a move_out's)",
    )
    relationships: RelationshipsToNewHead = Field(
        default_factory=dict,
        description="With leaves_household_id, when the person heads the household left:"
        " each member staying there, by person id, to its new head, where not derived (as a"
        " move_out's)",
    )
    new_applicant_person_id: uuid.UUID | None = Field(
        None,
        description="With leaves_household_id, for the household left. " + _NEW_APPLICANT_OF_LEAVER,
    )


class MoveOutIn(_ChangeIn):
    kind: Literal["move_out"]
    person_id: uuid.UUID
    moved_on: Day
    new_head_person_id: uuid.UUID | None = Field(
        None,
        description="Required if the head left: another active member, in the household on"
        " moved_on (one the record shows joining later is refused while one who was there"
        " can be named)",
    )
    to_region_code: RegionCode | None = None
    relationships: RelationshipsToNewHead = Field(default_factory=dict)
    new_applicant_person_id: uuid.UUID | None = Field(None, description=_NEW_APPLICANT_OF_LEAVER)


class BankAccountChangeIn(_ChangeIn):
    kind: Literal["bank_account_change"]
    account: BankAccountIn
    custody_agreement: StrictBool = Field(
        False, description="Staff hold the card under a written custody agreement"
    )
    custody_document_id: uuid.UUID | None = Field(
        None, description="The signed agreement (also listed in document_ids)"
    )
    custodian_subject: Subject | None = Field(
        None,
        description="The staff member holding the card (their token subject), published in"
        " HouseholdUpdated",
    )


class MemberChangeIn(_ChangeIn):
    """A member's own details changed (a disability certificate issued or its grade
    changed, an illness diagnosed or cured, a job found or lost, school finished, counted
    or no longer), or their name or relationship to the head was recorded wrongly: only
    the details given change (null is as not given), and at least one must. A member
    counted again has no exclusion reason nor note left; a note goes with its reason.

    Refused (422, errors[] naming each field, nothing written) beyond what this schema
    shows: a person_id not an active member of the household (at person_id); an
    effective_on in the future, before the member's birth date, before the member joined
    the household, or, when details other than the name are given, before the member's
    latest recorded change of details (at effective_on); an employment_status the
    member's age on effective_on rules out (ADR 0021, as a registration checks it: a
    member under 16 employed, self_employed, flexible, unemployed or retired, retired
    under 45 (a woman) or 50 (a man) with no disability or serious illness recorded,
    not_of_working_age from 16 until the statutory retirement age for the sex and birth
    month unless a student, unemployed from the highest statutory retirement age that can
    apply), checked when the change gives the status, or gives disability_grade,
    seriously_ill or student and so breaks a status that held (a student leaving school
    at 16 or more is given the status that holds then) (at employment_status); a member
    not counted without exclusion_reason, a counted one with one, provincial_other
    without exclusion_note (at exclusion_reason, exclusion_note), an exclusion_note for
    a member counted (at exclusion_note); a relationship correction the registration or
    the record's marriages would refuse (at relationship: head or the head's own, what is
    recorded already, spouse while the head has one or of the head's sex, a child or
    grandchild not younger than the head, a parent or grandparent not older; spouse while
    the member or the head is married to another member or to a spouse living elsewhere
    by a marriage recorded and not ended, or after their divorce recorded; anything but
    spouse for a member married to the head by a marriage recorded here; and spouse when
    either was under 20 (a woman) or 22 (a man) on the day the code was first recorded, not
    effective_on, nobody
    younger being married in China, Civil Code art. 1047: MemberChangeIn.relationship),
    or without a note saying why (at note); a change that changes nothing: each detail
    given is what is recorded already (at that field), or none is given (at the body); a
    document not of this household, or another member's disability certificate, medical
    record or proof of studies (at document_ids/<i>)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "kind": "member_change",
                    "person_id": "01a22f99-41d4-73be-9784-45c266209619",
                    "effective_on": "2026-02-10",
                    "disability_grade": "2",
                    "employment_status": "unable_to_work",
                    "document_ids": ["01a22f9c-10d4-73fd-a930-7b036a461589"],
                },
                {
                    "kind": "member_change",
                    "person_id": "01a22f99-41d4-73be-9784-45c266209619",
                    "effective_on": "2026-02-27",
                    "name": "王秀芝",
                    "note": "户口簿姓名录入有误",
                },
                {
                    "kind": "member_change",
                    "person_id": "01a22f99-41d4-73be-9784-45c266209619",
                    "effective_on": "2026-02-27",
                    "relationship": "grandchild",
                    "note": "登记时与户主关系录入有误：系孙女，非儿媳（见户口簿）",
                },
            ]
        }
    )

    kind: Literal["member_change"]
    person_id: uuid.UUID
    effective_on: Day = Field(
        description="When it changed (the certificate's or diagnosis' date, the first day of"
        " the job...): not in the future, not before the member joined, not before the"
        " member's latest recorded change of details (ADR 0016; a name correction alone is"
        " bound by none)"
    )
    name: Name | None = Field(
        None,
        description="A correction of the person's recorded name, as on their ID card: the"
        " person is the ID number, so the name is corrected wherever the person is recorded"
        " (their former households and the accounts they hold too); the change's details"
        " say name_corrected, not the name. A registration, birth, move in or marriage"
        " giving another name for a known ID number is refused instead",
    )
    relationship: Relationship | None = Field(
        None,
        description="A correction of the member's relationship to the head, recorded wrongly"
        " (a data-entry error): recorded anew from now on, and the couples the record takes"
        " follow it (ADR 0016); the note must say why (422 at note), the change's details"
        " give the code in relationships, and HouseholdUpdated.member_change's member has"
        " it. Refused (422 at relationship, nothing written) as a registration would refuse"
        " it: head, or the head's own (the head changes only with a death or a move out"
        " naming the new head), what is recorded already, spouse while the head has a"
        " spouse, spouse of the head's sex by the ID numbers, a child or grandchild not"
        " younger than the head, a parent or grandparent not older; and as the record's"
        " marriages would: spouse while the member or the head is married to another"
        " member by a marriage recorded here, or to a spouse living elsewhere by a marriage"
        " recorded without the spouse joining and not ended (naming whose and its day: a"
        " divorce or kind spouse_death ends it; the head's bars no member who joined on or"
        " after its day, who may be that spouse moved in), or after their divorce recorded,"
        " and anything but spouse for a member married to the head by a marriage recorded"
        " here (a divorce ends it). And spouse when the member or the head was under 20 (a"
        " woman) or 22 (a man) on the day the code was first recorded, nobody younger being"
        " married in China (Civil Code art. 1047): a correction says the code was wrong from"
        " the start, so the day is the one the member joined by a change, the registration"
        " day for a member registered with the household, or the day the head joined when"
        " later (for a member who moved in on or after the head's marriage to a spouse living"
        " elsewhere, that marriage's day; none when a marriage of the two is recorded here), not"
        " effective_on; the detail names the day. Two who married after it are recorded by"
        " kind marriage with spouse_person_id, on its day. Bound by no earlier change of"
        " details, and bounds none",
    )
    disability_grade: DisabilityGrade | None = None
    seriously_ill: StrictBool | None = None
    employment_status: EmploymentStatus | None = None
    student: StrictBool | None = Field(None, description="Full-time student up to bachelor level")
    counted: StrictBool | None = Field(
        None, description="Counted towards household size and income"
    )
    exclusion_reason: ExclusionReason | None = Field(
        None, description="Why the member is not counted (required when counted becomes false)"
    )
    exclusion_note: Note | None = None
    new_applicant_person_id: uuid.UUID | None = Field(
        None,
        description="When the member applied for an open application (submitted, not yet"
        " decided) and this change leaves them unable to apply (not counted for a reason of"
        " living apart: imprisoned, compulsory_rehabilitation, declared_missing,"
        " religious_living_apart, military_service): the member who applies for it now,"
        " another active member, 18 or older, living at home. Unless given, the head takes it"
        " over when they may; when they may not and another member may, one must be named"
        " (422). When no other member may apply, the change closes it (withdrawn,"
        " withdrawal_cause applicant_left). Naming one for a change that leaves the member"
        " able to apply, or applying for nothing open, is refused (422; ADR 0016)",
    )


class AddressChangeIn(_ChangeIn):
    """The whole household moved (a member moving alone is a move_out and a move_in): a
    new address, and its village or community and area type when they change too (not
    given: as recorded). The caller must be allowed to write in the old region and the new
    one. A move to another township while an application of the household is being
    decided is refused (409 open-application-in-township): the application stays with the
    township that accepted it; a move within the township enters its timeline."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "kind": "address_change",
                    "moved_on": "2026-02-15",
                    "address": "榆中县夏官营镇红柳沟村二社8号",
                    "region_code": "620123101204",
                    "note": "全户迁入本镇红柳沟村",
                }
            ]
        }
    )

    kind: Literal["address_change"]
    moved_on: Day = Field(
        description="When the household moved: not in the future, not before the"
        " household's latest recorded move (the same day is allowed; ADR 0016)"
    )
    address: Annotated[str, AfterValidator(no_id_number)] = Field(
        min_length=1, max_length=200, pattern=NOT_BLANK, json_schema_extra=NO_ID_NUMBER
    )
    region_code: RegionCode | None = Field(
        None,
        description="The village or community moved to, when another (a division table's"
        " village level code)",
    )
    area_type: AreaType | None = Field(None, description="Urban or rural, when it changes")


class DivorceIn(_ChangeIn):
    """A couple the record knows divorced (离婚); both may stay in the household
    (离婚不离家). The couple: the head and the head's spouse, two members a marriage
    recorded here, the head's two parents (or parents-in-law), a child and a child-in-law
    registered together (the only ones of each, the child of age then, a man and a
    woman); or, without
    spouse_person_id, a member and the spouse living elsewhere a marriage recorded. The
    head's former spouse and a child's former spouse become the head's other, counted as
    recorded (a member_change with a reason when the township decides they are not); a
    step-parent stays parent (ADR 0016). The head's divorce gives each of the head's
    parents-in-law's relationship after it in relationships (422 without). Not dated
    before both were 18. Either may marry again on or after the day. 409
    already-divorced: the record shows this divorce."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "kind": "divorce",
                    "person_id": "01a22f99-44a7-7311-a94d-13dcb93d3c3e",
                    "spouse_person_id": "01a22f99-41d4-73be-9784-45c266209619",
                    "divorced_on": "2026-03-02",
                    "document_ids": ["01a22f9c-10d4-73fd-a930-7b036a461589"],
                    "note": "离婚后仍同住",
                },
                {
                    "kind": "divorce",
                    "person_id": "01a22f99-44a7-7311-a94d-13dcb93d3c3e",
                    "divorced_on": "2026-03-02",
                    "note": "与外地配偶离婚",
                },
            ]
        }
    )

    kind: Literal["divorce"]
    person_id: uuid.UUID
    divorced_on: Day = Field(
        description="The divorce certificate's or judgment's date: not in the future, not"
        " before the marriage when recorded here, nor before either partner joined (422"
        " here)"
    )
    spouse_person_id: uuid.UUID | None = Field(
        None,
        description="The former spouse, a member married to person_id as the record shows"
        " (else 422 here); not given: the spouse lives elsewhere, and a marriage of"
        " person_id to a spouse living elsewhere must be recorded (else 422 at person_id)",
    )
    relationships: dict[uuid.UUID, Relationship] = Field(
        default_factory=dict,
        max_length=30,
        description="The head's kin through the marriage, by person id: their relationship"
        " to the head after the divorce, other or other_dependant (or the code recorded,"
        " kept). Required when the head divorces for each member recorded as the head's"
        " parent_in_law (the former spouse's parents are in-laws no more; an earlier"
        " spouse's parents still are: 422 at relationships/<person id> when one is left"
        " out); the head's child or grandchild may be given (a step-child of the former"
        " spouse), and a grandchild when a child of the head divorces. Anyone else: 422.",
    )


class SpouseDeathIn(_ChangeIn):
    """A member's spouse living elsewhere died (丧偶): the spouse is no member (a marriage
    recorded without the spouse joining), so a death cannot name them. The member's
    marriage ends on that day, as a divorce naming the member alone ends it: a later
    marriage is dated on or after it, and the record shows the member widowed (ADR 0016).
    A spouse who is a member: record their death instead. 409 marriage-ended: the record
    shows that marriage ended already (divorced or widowed)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "kind": "spouse_death",
                    "person_id": "01a22f99-44a7-7311-a94d-13dcb93d3c3e",
                    "date_of_death": "2026-03-02",
                    "document_ids": ["01a22f9c-10d4-73fd-a930-7b036a461589"],
                    "note": "外地配偶病故",
                }
            ]
        }
    )

    kind: Literal["spouse_death"]
    person_id: uuid.UUID = Field(
        description="The member left widowed: a marriage of theirs to a spouse living"
        " elsewhere must be recorded, and not one to a member here (else 422 here)"
    )
    date_of_death: Day = Field(
        description="The spouse's date of death: not in the future, not before the marriage"
        " recorded here, nor before the member joined (422 here)"
    )


HouseholdChangeIn = Annotated[
    BirthIn
    | DeathIn
    | MarriageIn
    | MoveInIn
    | MoveOutIn
    | BankAccountChangeIn
    | MemberChangeIn
    | AddressChangeIn
    | DivorceIn
    | SpouseDeathIn,
    Field(discriminator="kind"),
]


class HouseholdChangeOut(_Out):
    change_id: uuid.UUID
    kind: ChangeKind
    household: HouseholdOut


# --- documents -----------------------------------------------------------------------------


class DocumentOut(_Out):
    id: uuid.UUID
    household_id: uuid.UUID
    person_id: uuid.UUID | None
    document_type: DocumentType
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int
    media_type: str
    uploaded_by: str
    created_at: datetime


# --- applications --------------------------------------------------------------------------


MonthlyFen = Annotated[
    int,
    Field(
        ge=1,
        le=MONTHLY_ITEM_MAX_FEN,
        description="Average monthly amount over the declared period, in fen (0.01 yuan):"
        " more than zero (an item of nothing is left out), at most 100,000 yuan",
    ),
    BeforeValidator(json_integer),
]


class NotCountedIn(_In):
    """A receipt that is not counted as income (domain.md), at most one of each kind a
    member: social_assistance (government social-assistance payments), state_award_or_
    scholarship, residents_basic_pension (from 60), childcare_subsidy (for a child under 3
    of the household; paid to a member of 16 or more, at most 300 yuan a month per such
    child), special_care_pension (优待抚恤金), family_planning_reward (计划生育奖励与扶助金),
    locally_excluded (an item the city excludes: say which in the note)."""

    kind: NotCountedKind
    monthly_fen: MonthlyFen


class DeductionIn(_In):
    """A deduction from the member's income (domain.md), at most one of each kind a member.
    taxes_and_social_insurance: what was withheld or paid, already taken off the net
    amounts (gross = net + it). disability_costs (a member with a disability grade),
    serious_illness_costs (a member recorded seriously ill) and employment_costs (a member
    employed, self-employed or in flexible work; at most their wage and operating income):
    claims not taken off the amounts, which assessment deducts as local policy allows."""

    kind: DeductionKind
    monthly_fen: MonthlyFen


class InKindIn(_In):
    """The part of each category's amount the member received in kind (实物收入), valued in
    fen a month: a rural household's own grain, vegetables and livestock consumed
    (operating), wages paid in goods (wage), rent paid in grain (property), support from
    relatives in goods (transfer). Each part is within its category's amount (0 to it;
    none of a category declared zero); the rest of the amount is cash. A category left out
    is all cash."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"operating_fen": 40000}]})

    wage_fen: Fen = 0
    operating_fen: Fen = 0
    property_fen: Fen = 0
    transfer_fen: Fen = 0
    other_fen: Fen = 0


class IncomeIn(_In):
    """A member's average monthly income over the period, by category, in fen, net of
    taxes and social-insurance contributions (as the member receives it); with the
    receipts that are not counted and the deductions, declared beside it."""

    person_id: uuid.UUID
    wage_fen: Fen = 0
    operating_fen: Fen = 0
    property_fen: Fen = 0
    transfer_fen: Fen = 0
    other_fen: Fen = 0
    period_months: Integer = Field(6, ge=1, le=12)
    note: Note | None = Field(
        None, description="The member's income in words, once (the source of each amount)"
    )
    not_counted: list[NotCountedIn] = Field(
        default_factory=list,
        max_length=len(NotCountedKind),
        description="Receipts not counted as income (none when not given)",
    )
    deductions: list[DeductionIn] = Field(
        default_factory=list,
        max_length=len(DeductionKind),
        description="Deductions from the member's income (none when not given)",
    )
    in_kind: InKindIn = Field(
        default_factory=InKindIn,
        description="The part of each category's amount received in kind, within it (all"
        ' cash when not given); e.g. {"operating_fen": 40000}: 400 yuan of the operating'
        " income is the family's own grain and vegetables eaten (ADR 0007, 3 Dec 2026)",
    )


class AssetIn(_In):
    person_id: uuid.UUID | None = Field(None, description="Owner; none when held jointly")
    kind: AssetKind
    value_fen: Fen
    quantity: Integer = Field(1, ge=1, le=1000)
    floor_area_m2: FloorArea | None = None
    description: Note | None = None


_APPLICATION_EXAMPLE: dict[str, Any] = {
    "household_id": "0193a4f2-7c1e-7000-8000-3f9c0000a7f2",
    "kind": "dibao",
    "applicant_person_id": "0193a4f2-7c1e-7001-8000-3f9c0000b001",
    "incomes": [
        {
            "person_id": "0193a4f2-7c1e-7001-8000-3f9c0000b001",
            "wage_fen": 95000,
            "period_months": 6,
            "note": "在小区做保洁，按月发工资",
            "deductions": [
                {"kind": "taxes_and_social_insurance", "monthly_fen": 10500},
                {"kind": "employment_costs", "monthly_fen": 8000},
            ],
        },
        {
            "person_id": "0193a4f2-7c1e-7001-8000-3f9c0000b002",
            "transfer_fen": 20000,
            "not_counted": [
                {"kind": "residents_basic_pension", "monthly_fen": 18000},
                {"kind": "social_assistance", "monthly_fen": 5000},
            ],
            "deductions": [{"kind": "disability_costs", "monthly_fen": 15000}],
        },
        {
            "person_id": "0193a4f2-7c1e-7001-8000-3f9c0000b003",
            "operating_fen": 60000,
            "note": "种两亩玉米和土豆，自家吃掉约四百元，余粮卖了",
            "in_kind": {"operating_fen": 40000},
        },
    ],
    "assets": [{"kind": "deposit", "value_fen": 300000, "description": "活期存款"}],
    "document_ids": ["0193a4f2-8000-7000-8000-00000000d001"],
    "statement": "丈夫打零工收入不稳定，妻子二级残疾需长期照料。",
}


class ApplicationIn(_In):
    """An application of a registered household; incomplete ones are returned, not refused."""

    model_config = ConfigDict(json_schema_extra={"examples": [_APPLICATION_EXAMPLE]})

    household_id: uuid.UUID
    kind: ApplicationKind = ApplicationKind.DIBAO
    channel: SubmissionChannel = SubmissionChannel.COUNTER
    applicant_person_id: uuid.UUID = Field(description="The co-resident member applying")
    incomes: list[IncomeIn] = Field(default_factory=list, max_length=30)
    assets: list[AssetIn] = Field(default_factory=list, max_length=100)
    document_ids: list[uuid.UUID] = Field(
        default_factory=list,
        max_length=100,
        description="The documents handed in (uploaded first); a return_notice, which intake"
        " writes, is refused (422 at its index)",
    )
    bank_account: BankAccountIn | None = Field(
        None, description="Account for payments; default: the household's current one"
    )
    statement: Statement | None = Field(None, description="Statement of hardship")
    reason: Note | None = Field(
        None,
        description="Reason for a one-off request (one-off kinds only: a dibao application's"
        " account of hardship is its statement)",
    )
    requested_amount_fen: OneOffFen | None = Field(
        None,
        description="Amount asked (one-off kinds), 1 fen to 1,000,000 yuan; leave it out"
        " when the applicant has not said (the application is returned for it)",
    )
    individual_inclusion_person_id: uuid.UUID | None = Field(
        None, description="Individual inclusion (单人保): the member applied for"
    )
    completes_application_id: uuid.UUID | None = Field(
        None,
        description="The household's returned application this one completes, sent again"
        " with what it lacked (ADR 0009): of the same household, returned, of this"
        " application's kind, and completed by no other application (else 422 at"
        " completes_application_id, nothing written)."
        " Shown in both applications' timelines and published in ApplicationSubmitted"
        " (ApplicationReturned when returned again)",
    )


class NotCountedOut(_Out):
    kind: NotCountedKind
    monthly_fen: int


class DeductionOut(_Out):
    kind: DeductionKind
    monthly_fen: int


class InKindOut(_Out):
    """The part of each category's amount received in kind, in fen a month; the rest is
    cash. All zeros: all cash, or an application from before 3 Dec 2026, which could not
    say."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "wage_fen": 0,
                    "operating_fen": 40000,
                    "property_fen": 0,
                    "transfer_fen": 0,
                    "other_fen": 0,
                }
            ]
        }
    )

    wage_fen: int
    operating_fen: int
    property_fen: int
    transfer_fen: int
    other_fen: int


class IncomeOut(_Out):
    person_id: uuid.UUID
    wage_fen: int
    operating_fen: int
    property_fen: int
    transfer_fen: int
    other_fen: int
    total_fen: int = Field(
        description="The five counted categories' sum, net of taxes and social-insurance"
        " contributions; before the deductions claimed (employment, disability, illness"
        " costs), which assessment applies"
    )
    period_months: int
    note: str | None = Field(description="In words")
    not_counted: list[NotCountedOut] = Field(
        description="Receipts not counted as income (empty for applications before 3 Dec"
        " 2026, which could not declare them)"
    )
    deductions: list[DeductionOut] = Field(
        description="Deductions declared (empty for applications before 3 Dec 2026)"
    )
    in_kind: InKindOut = Field(
        description="The part of each category's amount received in kind (counted in the"
        " amount and in total_fen); the rest is cash"
    )


class AssetOut(_Out):
    person_id: uuid.UUID | None
    kind: AssetKind
    value_fen: int
    quantity: int
    floor_area_m2: int | None
    description: str | None = Field(description="In words")


class MissingItemOut(_Out):
    description: str = Field(
        examples=["a copy of the member's ID card"],
        description="What the applicant must bring, in English words that may be reworded:"
        " a client shows its own label by code",
    )
    code: MissingItemCode | None = Field(
        description="Which item it is, one of a fixed vocabulary, for a client to word in"
        " its own labels (the return notice words it in Chinese): two items of one"
        " document_type differ by it (wage_proof and no_pay_proof are both an"
        " income_proof; kind_document is named by its document_type). Null for an"
        " application returned before 3 Dec 2026 (ADR 0009)",
        examples=["id_card", "no_pay_proof"],
    )
    document_type: DocumentType | None
    person_id: uuid.UUID | None
    field: str | None


class TimelineEntryOut(_Out):
    ce_id: uuid.UUID
    type: str = Field(examples=["dibao.intake.ApplicationSubmitted.v1"])
    source: str = Field(examples=["dibao/intake"])
    occurred_at: datetime
    actor: str | None
    summary: str = Field(
        examples=["Application submitted"],
        description="In the limited view the event's name alone (no item, no rule)",
    )
    details: dict[str, Any] | None = Field(
        description="Structured facts of the event, never free text (ADR 0009)" + _WITHHELD
    )


_KIND_LIMITED = (
    " (in the limited view null for a one-off kind: medical assistance tells of an illness)"
)


class DecisionOut(_Out):
    """What assessment decided, as intake learnt it from the decision's event (ADR 0023)."""

    # No example of a refusal: the published document drops a null (FastAPI writes it
    # with exclude_none), and an example without amount_fen would not be what is sent.
    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [
                {"outcome": "approved", "decided_at": "2026-03-20T07:30:00Z", "amount_fen": 52000},
                {
                    "outcome": "one_off_approved",
                    "decided_at": "2026-03-20T07:30:00Z",
                    "amount_fen": 150000,
                },
            ]
        },
    )

    outcome: DecisionOutcome = Field(
        description="The decision's event: approved (BenefitApproved: the monthly"
        " allowance), rejected (ApplicationRejected: refused, the written reasons are"
        " assessment's), one_off_approved (OneOffAssistanceApproved: a one-off payment)",
        examples=["approved"],
    )
    decided_at: datetime = Field(
        description="When it was decided: the decision event's occurred_at",
        examples=["2026-03-20T07:30:00Z"],
    )
    amount_fen: int | None = Field(
        description="The amount granted, in fen, as the event gives it: monthly,"
        " supplements included, when approved (the final public list shows it); once, when"
        " one_off_approved. Null when rejected, and when the event named none. In the limited"
        " view null for one_off_approved (the amount tells the kind, as the amount asked for"
        " would)",
        examples=[52000],
    )


_DECISION = (
    "What assessment decided, once it has (the timeline shows its event too): intake's"
    " status stays submitted, and a decided application is no longer open (no withdrawal;"
    " the household may apply for its kind again). Null while undecided, and for returned"
    " and withdrawn applications (a decision arriving after the withdrawal decides nothing"
    " here; its timeline entry says so)"
)


class ApplicationOut(_Out):
    view: View = Field(description=VIEW_DESCRIPTION)
    id: uuid.UUID
    household_id: uuid.UUID
    region_code: str
    region_name: str
    kind: ApplicationKind | None = Field(description="What is applied for" + _KIND_LIMITED)
    channel: SubmissionChannel
    status: ApplicationStatus
    applicant_person_id: uuid.UUID
    applicant_name: str = Field(description="Masked in the limited view")
    statement: str | None = Field(description="The applicant's statement" + _WITHHELD)
    reason: str | None = Field(description="A one-off kind's reason" + _WITHHELD)
    requested_amount_fen: int | None = Field(
        description="The amount a one-off kind asks for; a figure the household declared,"
        " and one that tells the kind (medical assistance asks more than a festival"
        " grant)" + _WITHHELD
    )
    individual_inclusion_person_id: uuid.UUID | None = Field(
        description="The severely disabled or seriously ill member applied for alone" + _WITHHELD
    )
    incomes: list[IncomeOut] | None = Field(description="Declared incomes" + _WITHHELD)
    assets: list[AssetOut] | None = Field(description="Declared assets" + _WITHHELD)
    documents: list[DocumentOut] | None = Field(
        description="Their types may tell health (a medical record, a disability"
        " certificate)" + _WITHHELD
    )
    bank_account: BankAccountOut | None
    staff_related: bool = Field(description="Related to staff: the county must visit")
    staff_relation_note: str | None = Field(description="Who the relation is with" + _WITHHELD)
    assigned_caseworker: str | None
    unassigned_reason: UnassignedReason | None = Field(
        description="Why an accepted application has no assigned_caseworker (the county"
        " assigns it): caseworker_related (the household is the township's responsible"
        " caseworker's own or holds a relative of theirs; staff_related), caseworker_not_"
        "identified (the caseworker is on the roster without their own ID number, so that"
        " cannot be checked: name them again with it, ADR 0009), no_caseworker (the"
        " township has none). Null when assigned or returned, and for applications accepted"
        " before 1 Dec 2026",
        examples=["caseworker_not_identified"],
    )
    missing_items: list[MissingItemOut] | None = Field(
        description="Every missing item, when returned; they may name a disability"
        " certificate or a diagnosis" + _WITHHELD
    )
    notice: DocumentOut | None = Field(
        description="The notice given to the applicant of a returned application"
        " (一次性告知书, document_type return_notice): the township's name, the date, the"
        " application's id, the applicant's name and every missing item in Chinese, with"
        " how to complete them; a printable HTML page (text/html), read with GET"
        " /documents/{id}/content as other documents are (recorded). Null for an accepted"
        " application and for one returned before 3 Dec 2026 (ADR 0009)" + _WITHHELD
    )
    submitted_at: datetime
    submitted_by: str
    accepted_on: date | None
    withdrawn_at: datetime | None
    withdrawal_reason: str | None = Field(
        description="In the applicant's words (none when the household's dissolution closed"
        " it)" + _WITHHELD
    )
    withdrawal_cause: WithdrawalCause | None = Field(
        description="Why it was withdrawn, when it was: applicant_request (POST"
        " /applications/{id}/withdrawal, by a clerk) or household_dissolved (the change that"
        " dissolved the household closed it) or applicant_left (its applicant died or moved"
        " out, or a member_change left them unable to apply, and nobody else may apply: that"
        " change closed it); what its"
        " ApplicationWithdrawn says (cause UNSPECIFIED is the applicant's, HOUSEHOLD_DISSOLVED"
        " and APPLICANT_LEFT the others)",
        examples=["applicant_request"],
    )
    completes_application_id: uuid.UUID | None = Field(
        description="The household's returned application this one completes (ADR 0009);"
        " null for a first application and for applications submitted before 3 Dec 2026",
    )
    decision: DecisionOut | None = Field(description=_DECISION)
    timeline: list[TimelineEntryOut] = Field(
        description="Every service's events about the application, oldest first"
    )


class ApplicationSummaryOut(_Out):
    id: uuid.UUID
    household_id: uuid.UUID
    region_code: str
    kind: ApplicationKind | None = Field(description="What is applied for" + _KIND_LIMITED)
    status: ApplicationStatus
    applicant_masked_name: str = Field(examples=["马*国"])
    staff_related: bool
    assigned_caseworker: str | None
    submitted_at: datetime
    decision: DecisionOut | None = Field(description=_DECISION)


class ApplicationPageOut(_Out):
    view: View = Field(description=VIEW_DESCRIPTION)
    items: list[ApplicationSummaryOut]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null at the end")


class WithdrawalIn(_In):
    reason: Note = Field(examples=["家庭成员找到稳定工作，主动撤回申请"])


# --- staff ---------------------------------------------------------------------------------


class RelativeIn(_In):
    name: Name
    id_number: IdNumber
    relation: Annotated[str, AfterValidator(no_id_number)] = Field(
        min_length=1,
        max_length=30,
        pattern=NOT_BLANK,
        json_schema_extra=NO_ID_NUMBER,
        examples=["spouse", "brother"],
        description="Copied as typed into the relation note of applications it flags",
    )


class StaffIn(_In):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "李明",
                    "role": "caseworker",
                    "subject": "cw-xiaguanying-01",
                    "responsible_caseworker": True,
                    "id_number": "62012319790512003X",
                    "relatives": [
                        {"name": "张桂芳", "id_number": "620123197203080221", "relation": "spouse"}
                    ],
                }
            ]
        }
    )

    name: Name
    role: StaffRole
    id_number: IdNumber | None = None
    subject: Subject | None = Field(
        None,
        description="Token subject (caseworkers), published as typed: no ID number in it",
    )
    responsible_caseworker: StrictBool = Field(
        False, description="Cases of the township are assigned to this caseworker"
    )
    relatives: list[RelativeIn] = Field(default_factory=list, max_length=50)


class RelativeOut(_Out):
    id: uuid.UUID
    relation: str
    name: str
    masked_id: str


class StaffOut(_Out):
    id: uuid.UUID
    township_code: str
    name: str
    role: StaffRole
    subject: str | None
    responsible_caseworker: bool
    masked_id: str | None
    active: bool
    created_at: datetime
    deactivated_at: datetime | None = Field(
        description="When taken off the roster (empty while active, and for members"
        " deactivated before this was recorded)"
    )
    deactivated_by: str | None = Field(description="Token subject of who took them off")
    relatives: list[RelativeOut]


# --- divisions and disclosure --------------------------------------------------------------


class DivisionBrief(_Out):
    code: str
    name: str
    level: DivisionLevel


class DivisionOut(_Out):
    code: str
    name: str
    full_name: str
    level: DivisionLevel
    parent_code: str | None
    children: list[DivisionBrief]


class HouseholdSummaryOut(_Out):
    id: uuid.UUID
    region_code: str
    area_type: AreaType
    status: HouseholdStatus
    head_person_id: uuid.UUID | None
    head_masked_name: str | None = Field(examples=["马*国"])
    active_members: int = Field(
        description="Its members now, counted or not (one in prison is a member not counted)"
    )
    created_at: datetime
    updated_at: datetime


class HouseholdPageOut(_Out):
    view: View = Field(description=VIEW_DESCRIPTION)
    items: list[HouseholdSummaryOut]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null at the end")


class HouseholdLookupIn(_In):
    id_number: IdNumber


class HouseholdLookupOut(_Out):
    household_id: uuid.UUID
    region_code: str
    region_name: str
    person_id: uuid.UUID
    id_number_masked: str = Field(examples=["620123********0115"])
    relationship: Relationship = Field(description="The person's, to the household's head")


class IdentityOut(_Out):
    person_id: uuid.UUID
    name: str
    id_number: str


class BankAccountDisclosureOut(_Out):
    token_id: uuid.UUID
    account_number: str
    bank_code: str
    bank_name: str
    holder_name: str = Field(description="In full, disclosed with the number")
    holder_person_id: uuid.UUID | None
    custody_agreement: bool
    current: bool = Field(description="False once the household changed its account")
