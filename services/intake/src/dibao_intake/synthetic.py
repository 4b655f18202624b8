"""Synthetic but valid households: realistic names, compositions, incomes and ID numbers.

Every ID number is made up and carries a correct check digit (computed by the library);
none belongs to a real person. Used by the demo loader, the benchmark and the tests, as
JSON payloads of the public API.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from dibao_intake.domain.codes import (
    AreaType,
    DisabilityGrade,
    EmploymentStatus,
    ExclusionReason,
    Relationship,
    Sex,
)
from dibao_intake.domain.resident_id import compose_resident_id

SURNAMES = "王李张刘陈杨马赵何魏牛朱郭苏汪孙徐高罗谢韩金蒲"
GIVEN_MALE = (
    "建国",
    "志强",
    "永福",
    "国庆",
    "文斌",
    "海军",
    "伟",
    "明",
    "德明",
    "小龙",
    "浩然",
    "子轩",
    "宇航",
    "保平",
    "天佑",
    "学军",
    "富贵",
    "振华",
    "俊杰",
    "鹏",
)
GIVEN_FEMALE = (
    "秀兰",
    "桂英",
    "玉兰",
    "丽",
    "娟",
    "红霞",
    "小梅",
    "淑珍",
    "雪",
    "欣怡",
    "梓涵",
    "丽娜",
    "桂芳",
    "春燕",
    "彩霞",
    "金花",
    "慧敏",
    "晓燕",
    "雨桐",
    "芳",
)
PLACE_CODES = ("620102", "620103", "620121", "620122", "620123")
SHAPE_WEIGHTS: dict[AreaType, dict[str, int]] = {
    AreaType.URBAN: {
        "elderly_alone": 34,
        "elderly_couple": 14,
        "seriously_ill_head": 14,
        "single_parent": 13,
        "disabled_spouse": 9,
        "unemployed_single": 8,
        "three_generations": 5,
        "member_imprisoned": 3,
    },
    AreaType.RURAL: {
        "elderly_alone": 50,
        "elderly_couple": 14,
        "seriously_ill_head": 10,
        "disabled_spouse": 7,
        "single_parent": 6,
        "unemployed_single": 6,
        "three_generations": 5,
        "member_imprisoned": 2,
    },
}
"""How often each composition is drawn, in percent, like a dibao caseload (ADR 0021): the
groups domain.md's classified support names (the elderly, minors, the severely disabled,
the seriously ill) make up most of it, a member in prison or compulsory rehabilitation is
rare. The seed gives no split by type, only small households: 145 households of 248
people in its urban community (1.7 each), 1,180 of 1,549 in its rural town (1.3), which
the one- and two-person elderly households weigh most in (the weights' mean registered
size is 1.9 urban and 1.7 rural: a household's members are not all covered, domain.md's
individual inclusion). Judgement, not a statistic: the seed and domain.md give no more."""
SHAPES = tuple(SHAPE_WEIGHTS[AreaType.URBAN])
BANKS = (
    ("103", "中国农业银行"),
    ("102", "中国工商银行"),
    ("403", "中国邮政储蓄银行"),
    ("402", "甘肃农村信用社"),
)


@dataclass
class PlannedMember:
    name: str
    id_number: str
    sex: Sex
    birth_date: date
    relationship: Relationship
    employment_status: EmploymentStatus
    disability_grade: DisabilityGrade = DisabilityGrade.NONE
    seriously_ill: bool = False
    student: bool = False
    counted: bool = True
    exclusion_reason: ExclusionReason | None = None
    wage_fen: int = 0
    operating_fen: int = 0
    transfer_fen: int = 0
    not_counted: dict[str, int] = field(default_factory=dict)
    """Receipts not counted as income, by kind, in fen a month (a basic pension...)."""
    deductions: dict[str, int] = field(default_factory=dict)
    """Deductions, by kind, in fen a month (the extra costs of an illness...)."""
    in_kind: dict[str, int] = field(default_factory=dict)
    """The part of a category's amount received in kind, by the category's field
    (``operating_fen``...), in fen a month: a farming family's own produce eaten."""

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "id_number": self.id_number,
            "relationship": self.relationship.value,
            "disability_grade": self.disability_grade.value,
            "seriously_ill": self.seriously_ill,
            "employment_status": self.employment_status.value,
            "student": self.student,
            "counted": self.counted,
        }
        if self.exclusion_reason is not None:
            body["exclusion_reason"] = self.exclusion_reason.value
        return body


@dataclass
class PlannedHousehold:
    region_code: str
    area_type: AreaType
    address: str
    members: list[PlannedMember]
    account_number: str
    bank_code: str
    bank_name: str
    shape: str
    deposit_fen: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """The body of ``POST /households``."""
        return {
            "region_code": self.region_code,
            "area_type": self.area_type.value,
            "address": self.address,
            "members": [m.payload() for m in self.members],
            "bank_account": {
                "account_number": self.account_number,
                "bank_code": self.bank_code,
                "bank_name": self.bank_name,
            },
        }


class Synthesizer:
    """A deterministic source of synthetic people (same seed, same households)."""

    def __init__(
        self,
        seed: int | str,
        today: date,
        *,
        used: set[str] | None = None,
        babies: bool = True,
        in_kind: bool = True,
    ) -> None:
        """``used``: ID numbers already handed out, shared by synthesizers whose people
        go into one database (tests seeded apart would otherwise, now and then, draw the
        same person twice and see a 409); it is extended with this one's. ``babies``: a
        mother under 40 has a child under 3 (the demo's households); without, each shape
        has its fixed members (a test's household, whose members it names by position).
        ``in_kind``: a rural family declares part of its income received in kind (the
        demo's); without, every amount is cash, each category one DeclaredIncome entry (a
        test's, which counts them)."""
        self.rng = random.Random(seed)  # noqa: S311 - reproducible fake data, not secrets
        self.today = today
        self._used: set[str] = used if used is not None else set()
        self.babies = babies
        self.in_kind = in_kind

    def id_number(self, birth_date: date, sex: Sex, place_code: str | None = None) -> str:
        place = place_code or self.rng.choice(PLACE_CODES)
        while True:
            sequence = self.rng.randrange(0, 500) * 2 + (1 if sex is Sex.MALE else 0)
            number = compose_resident_id(place, birth_date, sequence)
            if number not in self._used:
                self._used.add(number)
                return number

    def birth_date(self, age_from: int, age_to: int) -> date:
        days = self.rng.randrange(age_from * 365 + 1, age_to * 365 + 364)
        return self.today - timedelta(days=days)

    def name(self, sex: Sex, surname: str | None = None) -> str:
        given = GIVEN_MALE if sex is Sex.MALE else GIVEN_FEMALE
        return (surname or self.rng.choice(SURNAMES)) + self.rng.choice(given)

    def member(
        self,
        relationship: Relationship,
        sex: Sex,
        ages: tuple[int, int],
        employment: EmploymentStatus,
        *,
        surname: str | None = None,
        place_code: str | None = None,
        **extra: Any,
    ) -> PlannedMember:
        born = self.birth_date(*ages)
        return PlannedMember(
            name=self.name(sex, surname),
            id_number=self.id_number(born, sex, place_code),
            sex=sex,
            birth_date=born,
            relationship=relationship,
            employment_status=employment,
            **extra,
        )

    def account_number(self) -> str:
        return "62" + "".join(str(self.rng.randrange(10)) for _ in range(17))

    def household(
        self, region_code: str, area_type: AreaType, address: str, shape: str | None = None
    ) -> PlannedHousehold:
        """One household of a realistic composition for a dibao applicant (or of ``shape``)."""
        if shape is None:
            weights = SHAPE_WEIGHTS[area_type]
            shape = self.rng.choices(tuple(weights), weights=tuple(weights.values()))[0]
        members = self._receipts_and_deductions(
            getattr(self, f"_{shape}")(region_code[:6], area_type)
        )
        if area_type is AreaType.RURAL and self.in_kind:
            self._produce_eaten(members)
        bank_code, bank_name = self.rng.choice(BANKS)
        return PlannedHousehold(
            region_code=region_code,
            area_type=area_type,
            address=address,
            members=members,
            account_number=self.account_number(),
            bank_code=bank_code,
            bank_name=bank_name,
            shape=shape,
            deposit_fen=self.rng.randrange(0, 40) * 50_000,
        )

    # Compositions. Incomes are monthly net averages in fen, near Lanzhou's standards
    # (urban about 800 yuan, rural about 550 yuan per person and month). Employment
    # statuses fit the ages (ADR 0021): the elderly of a dibao household never retired
    # from a job (a retiree's pension would be above the standard; a farmer does not
    # retire) and draw the residents' basic pension, so they are not of working age; a
    # full-time student of 16 or more is not_of_working_age with student set.

    @staticmethod
    def _fen(member: PlannedMember, what: str, low_yuan: int, high_yuan: int) -> int:
        """A whole number of yuan in [low, high], in fen, drawn from the member's ID number:
        the same person declares the same, and the seeded draws of every other household
        stay as they were (receipts and deductions were added after the demo's people)."""
        digest = hashlib.sha256(f"{what} {member.id_number}".encode()).digest()
        return (low_yuan + int.from_bytes(digest[:4], "big") % (high_yuan - low_yuan + 1)) * 100

    def _receipts_and_deductions(self, members: list[PlannedMember]) -> list[PlannedMember]:
        """What a dibao household of these members declares beside its counted income
        (domain.md): an elderly member's residents' basic pension (150 to 200 yuan a month
        in Gansu), a childcare subsidy of 300 yuan a month for each child under 3, paid to
        the mother (or the head); the extra costs of a severe disability or a serious
        illness; a working member's costs of working, and a self-employed member's own
        residents' pension and medical insurance contributions."""
        under_three = [m for m in members if _age(m.birth_date, self.today) < 3]
        for m in members:
            if not m.counted:
                continue
            if _age(m.birth_date, self.today) >= 60:
                m.not_counted["residents_basic_pension"] = self._fen(m, "pension", 150, 200)
            if m.disability_grade in (DisabilityGrade.GRADE_1, DisabilityGrade.GRADE_2):
                m.deductions["disability_costs"] = self._fen(m, "disability", 200, 400)
            if m.seriously_ill:
                m.deductions["serious_illness_costs"] = self._fen(m, "illness", 300, 800)
            if m.wage_fen and m.employment_status is EmploymentStatus.FLEXIBLE:
                m.deductions["employment_costs"] = m.wage_fen // 1000 * 100
            if m.operating_fen and m.employment_status is EmploymentStatus.SELF_EMPLOYED:
                m.deductions["taxes_and_social_insurance"] = self._fen(m, "insurance", 40, 70)
        if under_three:
            parent = next((m for m in members if m.relationship is Relationship.SPOUSE), members[0])
            parent.not_counted["childcare_subsidy"] = 30_000 * len(under_three)
        return members

    def _produce_eaten(self, members: list[PlannedMember]) -> None:
        """What a rural family receives in kind (实物收入), valued at local prices, drawn
        from the ID number as the receipts are, so that the seeded draws stay as they were
        (ADR 0007, 3 Dec 2026). A self-employed member's operating income is farming: three
        families in four eat part of their harvest (the grain, potatoes and vegetables, the
        pig they keep), 30 to 70 per cent of it; the fourth sells all of it. Three elderly
        members in four get part of their children's support as flour, oil and vegetables,
        20 to 50 per cent of it."""
        for m in members:
            if m.operating_fen and m.employment_status is EmploymentStatus.SELF_EMPLOYED:
                part = self._part(m, "produce eaten", m.operating_fen, 30, 70)
                if part:
                    m.in_kind["operating_fen"] = part
            if m.transfer_fen and _age(m.birth_date, self.today) >= 60:
                part = self._part(m, "support in kind", m.transfer_fen, 20, 50)
                if part:
                    m.in_kind["transfer_fen"] = part

    @staticmethod
    def _part(member: PlannedMember, what: str, amount: int, low: int, high: int) -> int:
        """Nothing for one member in four, else ``low`` to ``high`` per cent of ``amount``
        in whole yuan, from the member's ID number."""
        digest = hashlib.sha256(f"{what} {member.id_number}".encode()).digest()
        if digest[0] % 4 == 0:
            return 0
        share = low + int.from_bytes(digest[1:5], "big") % (high - low + 1)
        return amount * share // 100 // 100 * 100

    def _baby(self, mother: PlannedMember, surname: str, place: str) -> list[PlannedMember]:
        """A mother under 40 has a child under 3 too (the childcare subsidy's); none
        otherwise. Drawn apart, from the mother's number, so that every other draw stays
        as it was before babies were added (the demo's people are the same)."""
        if not self.babies or _age(mother.birth_date, self.today) >= 40:
            return []
        apart = Synthesizer(f"baby {mother.id_number}", self.today, used=self._used)
        return [
            apart.member(
                Relationship.CHILD,
                apart.rng.choice((Sex.MALE, Sex.FEMALE)),
                (0, 1),
                EmploymentStatus.NOT_OF_WORKING_AGE,
                surname=surname,
                place_code=place,
            )
        ]

    def _pension(self, area: AreaType) -> int:
        # Residents' basic pension is not counted; what remains is support from children.
        return (
            self.rng.randrange(5, 30) * 1000
            if area is AreaType.RURAL
            else self.rng.randrange(10, 60) * 1000
        )

    def _elderly_alone(self, place: str, area: AreaType) -> list[PlannedMember]:
        sex = self.rng.choice((Sex.MALE, Sex.FEMALE))
        head = self.member(
            Relationship.HEAD, sex, (70, 88), EmploymentStatus.NOT_OF_WORKING_AGE, place_code=place
        )
        head.transfer_fen = self._pension(area)
        head.seriously_ill = self.rng.random() < 0.3
        return [head]

    def _elderly_couple(self, place: str, area: AreaType) -> list[PlannedMember]:
        surname = self.rng.choice(SURNAMES)
        head = self.member(
            Relationship.HEAD,
            Sex.MALE,
            (68, 82),
            EmploymentStatus.NOT_OF_WORKING_AGE,
            surname=surname,
            place_code=place,
        )
        wife = self.member(
            Relationship.SPOUSE,
            Sex.FEMALE,
            (65, 80),
            EmploymentStatus.NOT_OF_WORKING_AGE,
            place_code=place,
        )
        head.transfer_fen = self._pension(area)
        wife.disability_grade = self.rng.choice((DisabilityGrade.NONE, DisabilityGrade.GRADE_3))
        return [head, wife]

    def _single_parent(self, place: str, area: AreaType) -> list[PlannedMember]:
        sex = self.rng.choice((Sex.MALE, Sex.FEMALE))
        surname = self.rng.choice(SURNAMES)
        head = self.member(
            Relationship.HEAD,
            sex,
            (33, 48),
            EmploymentStatus.FLEXIBLE,
            surname=surname,
            place_code=place,
        )
        head.wage_fen = self.rng.randrange(60, 140) * 1000
        kids = [
            self.member(
                Relationship.CHILD,
                self.rng.choice((Sex.MALE, Sex.FEMALE)),
                (7, 15),
                EmploymentStatus.NOT_OF_WORKING_AGE,
                surname=surname,
                place_code=place,
                student=True,
            )
            for _ in range(self.rng.randrange(1, 3))
        ]
        return [head, *kids, *(self._baby(head, surname, place) if sex is Sex.FEMALE else [])]

    def _disabled_spouse(self, place: str, area: AreaType) -> list[PlannedMember]:
        surname = self.rng.choice(SURNAMES)
        head = self.member(
            Relationship.HEAD,
            Sex.MALE,
            (45, 58),
            EmploymentStatus.FLEXIBLE,
            surname=surname,
            place_code=place,
        )
        head.wage_fen = self.rng.randrange(80, 160) * 1000
        wife = self.member(
            Relationship.SPOUSE,
            Sex.FEMALE,
            (43, 56),
            EmploymentStatus.UNABLE_TO_WORK,
            place_code=place,
            disability_grade=self.rng.choice((DisabilityGrade.GRADE_1, DisabilityGrade.GRADE_2)),
        )
        # A full-time student of working age: not_of_working_age because student is set
        # (the statuses have none for study; ADR 0021).
        student = self.member(
            Relationship.CHILD,
            self.rng.choice((Sex.MALE, Sex.FEMALE)),
            (18, 21),
            EmploymentStatus.NOT_OF_WORKING_AGE,
            surname=surname,
            place_code=place,
            student=True,
        )
        return [head, wife, student]

    def _three_generations(self, place: str, area: AreaType) -> list[PlannedMember]:
        surname = self.rng.choice(SURNAMES)
        head = self.member(
            Relationship.HEAD,
            Sex.MALE,
            (38, 50),
            EmploymentStatus.SELF_EMPLOYED,
            surname=surname,
            place_code=place,
        )
        head.operating_fen = self.rng.randrange(80, 180) * 1000
        wife = self.member(
            Relationship.SPOUSE, Sex.FEMALE, (36, 48), EmploymentStatus.FLEXIBLE, place_code=place
        )
        wife.wage_fen = self.rng.randrange(30, 90) * 1000
        # The head's mother kept her own surname, as Chinese women do: drawn like a spouse's.
        mother = self.member(
            Relationship.PARENT,
            Sex.FEMALE,
            (70, 85),
            EmploymentStatus.NOT_OF_WORKING_AGE,
            place_code=place,
            seriously_ill=True,
        )
        kid = self.member(
            Relationship.CHILD,
            self.rng.choice((Sex.MALE, Sex.FEMALE)),
            (6, 14),
            EmploymentStatus.NOT_OF_WORKING_AGE,
            surname=surname,
            place_code=place,
            student=True,
        )
        return [head, wife, mother, kid, *self._baby(wife, surname, place)]

    def _unemployed_single(self, place: str, area: AreaType) -> list[PlannedMember]:
        sex = self.rng.choice((Sex.MALE, Sex.FEMALE))
        # Out of work from 40 (the "4050" hard to place), of working age still six years on:
        # unemployed ends with the statutory retirement age, 55 at the least for a woman
        # (a cadre's) and 60 for a man (ADR 0021).
        ages = (40, 53) if sex is Sex.MALE else (40, 48)
        head = self.member(
            Relationship.HEAD, sex, ages, EmploymentStatus.UNEMPLOYED, place_code=place
        )
        head.wage_fen = self.rng.randrange(0, 30) * 1000
        return [head]

    def _member_imprisoned(self, place: str, area: AreaType) -> list[PlannedMember]:
        surname = self.rng.choice(SURNAMES)
        head = self.member(
            Relationship.HEAD, Sex.FEMALE, (35, 50), EmploymentStatus.FLEXIBLE, place_code=place
        )
        head.wage_fen = self.rng.randrange(50, 120) * 1000
        husband = self.member(
            Relationship.SPOUSE,
            Sex.MALE,
            (37, 52),
            EmploymentStatus.UNABLE_TO_WORK,
            surname=surname,
            place_code=place,
            counted=False,
            exclusion_reason=ExclusionReason.IMPRISONED,
        )
        kid = self.member(
            Relationship.CHILD,
            self.rng.choice((Sex.MALE, Sex.FEMALE)),
            (5, 13),
            EmploymentStatus.NOT_OF_WORKING_AGE,
            surname=surname,
            place_code=place,
            student=True,
        )
        return [head, husband, kid]

    def _seriously_ill_head(self, place: str, area: AreaType) -> list[PlannedMember]:
        surname = self.rng.choice(SURNAMES)
        head = self.member(
            Relationship.HEAD,
            Sex.MALE,
            (50, 62),
            EmploymentStatus.UNABLE_TO_WORK,
            surname=surname,
            place_code=place,
            seriously_ill=True,
        )
        wife = self.member(
            Relationship.SPOUSE, Sex.FEMALE, (48, 60), EmploymentStatus.FLEXIBLE, place_code=place
        )
        wife.wage_fen = self.rng.randrange(60, 120) * 1000
        return [head, wife]


def application_payload(
    household_id: str,
    person_ids: list[str],
    plan: PlannedHousehold,
    document_ids: list[str],
    *,
    statement: str | None = None,
) -> dict[str, Any]:
    """The body of ``POST /applications`` declaring the plan's incomes and assets."""
    incomes = [
        {
            "person_id": pid,
            "wage_fen": m.wage_fen,
            "operating_fen": m.operating_fen,
            "transfer_fen": m.transfer_fen,
            "period_months": 6,
            **(
                {"not_counted": [{"kind": k, "monthly_fen": v} for k, v in m.not_counted.items()]}
                if m.not_counted
                else {}
            ),
            **(
                {"deductions": [{"kind": k, "monthly_fen": v} for k, v in m.deductions.items()]}
                if m.deductions
                else {}
            ),
            **({"in_kind": dict(m.in_kind)} if m.in_kind else {}),
        }
        for pid, m in zip(person_ids, plan.members, strict=True)
        if m.counted
    ]
    body: dict[str, Any] = {
        "household_id": household_id,
        "kind": "dibao",
        "applicant_person_id": person_ids[0],
        "incomes": incomes,
        "assets": (
            [{"kind": "deposit", "value_fen": plan.deposit_fen, "description": "活期存款"}]
            if plan.deposit_fen
            else []
        ),
        "document_ids": document_ids,
    }
    if statement:
        body["statement"] = statement
    return body


def required_documents(
    plan: PlannedHousehold, today: date, adult_age: int = 16
) -> list[tuple[str, int | None]]:
    """(document type, member index or None) of each document a complete dibao application needs."""
    needed: list[tuple[str, int | None]] = [
        ("application_form", None),
        ("household_register", None),
        ("verification_authorisation", None),
    ]
    for index, m in enumerate(plan.members):
        age = (
            today.year
            - m.birth_date.year
            - ((today.month, today.day) < (m.birth_date.month, m.birth_date.day))
        )
        adult = age >= adult_age
        if m.counted and adult:
            needed.append(("id_card", index))
            # A wage's proof; an employed member paid none shows proof of that instead.
            if m.wage_fen > 0 or m.employment_status is EmploymentStatus.EMPLOYED:
                needed.append(("income_proof", index))
        if m.disability_grade is not DisabilityGrade.NONE:
            needed.append(("disability_certificate", index))
        if m.seriously_ill:
            needed.append(("medical_record", index))
        if m.student and adult:
            needed.append(("student_proof", index))
    return needed


def _age(born: date, day: date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def pdf_bytes(title: str) -> bytes:
    """A tiny, valid one-page PDF with ``title`` in its metadata (a stand-in for a scan)."""
    safe = title.encode("ascii", "replace").decode().replace("(", "[").replace(")", "]")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
        f"<< /Title ({safe}) >>".encode(),
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 4 0 R >>\n".encode()
    out += f"startxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def multipart_upload(
    fields: dict[str, str], content: bytes, *, filename: str, media_type: str = "application/pdf"
) -> tuple[bytes, str]:
    """The body and content type of ``POST /documents``, with a boundary derived from the
    content, so that a retried upload sends the same bytes (the Idempotency-Key needs that)."""
    boundary = "dibao-" + hashlib.sha256(content).hexdigest()[:24]
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {media_type}\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
