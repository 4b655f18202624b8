"""The notice given to the applicant of a returned application (一次性告知书, ADR 0009)."""

from __future__ import annotations

import re
import uuid
from datetime import date

from dibao_intake.domain.application import (
    ApplicationDraft,
    AssetDeclaration,
    CompletenessPolicy,
    IncomeDeclaration,
    missing_items,
)
from dibao_intake.domain.codes import (
    ApplicationKind,
    AssetKind,
    DisabilityGrade,
    DocumentType,
    EmploymentStatus,
    MissingItemCode,
    Relationship,
)
from dibao_intake.domain.household import MemberFacts
from dibao_intake.domain.return_notice import (
    DOCUMENT_LABELS,
    ITEM_LABELS,
    KIND_LABELS,
    NoticeItem,
    ReturnNotice,
    issuer_name,
    item_words,
    render,
)

TODAY = date(2026, 12, 3)
HOUSEHOLD = uuid.UUID("0193a4f2-7c1e-7000-8000-3f9c0000a7f2")
HEAD, SPOUSE, SON = (uuid.UUID(int=n) for n in (1, 2, 3))
APPLICATION = uuid.UUID("0193a4f2-7c1e-7003-8000-3f9c0000e001")
CJK = re.compile(r"[\u4e00-\u9fff]")


def _member(
    person: uuid.UUID,
    born: date,
    *,
    grade: DisabilityGrade = DisabilityGrade.NONE,
    ill: bool = False,
    student: bool = False,
    work: EmploymentStatus = EmploymentStatus.UNEMPLOYED,
) -> MemberFacts:
    return MemberFacts(
        person_id=person,
        relationship=Relationship.HEAD if person == HEAD else Relationship.CHILD,
        birth_date=born,
        counted=True,
        disability_grade=grade,
        seriously_ill=ill,
        student=student,
        employment_status=work,
    )


MEMBERS = [
    _member(HEAD, date(1968, 4, 2), work=EmploymentStatus.EMPLOYED),
    _member(SPOUSE, date(1970, 9, 14), grade=DisabilityGrade.GRADE_2, ill=True),
    _member(SON, date(2006, 1, 5), student=True, work=EmploymentStatus.NOT_OF_WORKING_AGE),
]


def _draft(kind: ApplicationKind, **changes: object) -> ApplicationDraft:
    values: dict[str, object] = {
        "household_id": HOUSEHOLD,
        "kind": kind,
        "applicant_person_id": HEAD,
        "incomes": [IncomeDeclaration(HEAD, 0, 0, 0, 0, 0, 6)],
        "assets": [AssetDeclaration(SPOUSE, AssetKind.HOUSING, 9_000_000, 1, None, None)],
        "documents": [],
        "has_bank_account": False,
        "requested_amount_fen": None,
        "reason": None,
        "individual_inclusion_person_id": None,
    }
    return ApplicationDraft(**(values | changes))  # type: ignore[arg-type]


def _every_item_the_rules_return() -> list[NoticeItem]:
    """The items of a dibao application with nothing handed in (every member's proofs, an
    employed head declaring no pay, a home without its area, no account), of one with a
    wage declared (its proof), and of each one-off kind (amount, reason, kind documents)."""
    policy = CompletenessPolicy()
    drafts = [_draft(ApplicationKind.DIBAO)]
    drafts.append(
        _draft(ApplicationKind.DIBAO, incomes=[IncomeDeclaration(HEAD, 90_000, 0, 0, 0, 0, 6)])
    )
    drafts += [_draft(kind) for kind in ApplicationKind if kind.one_off]
    names = {HEAD: "马建国", SPOUSE: "王秀兰", SON: "马小军"}
    return [
        NoticeItem(m.code, m.document_type, names.get(m.person_id) if m.person_id else None)
        for draft in drafts
        for m in missing_items(draft, MEMBERS, today=TODAY, policy=policy)
    ]


def _notice(items: list[NoticeItem], **changes: object) -> ReturnNotice:
    values: dict[str, object] = {
        "application_id": APPLICATION,
        "kind": ApplicationKind.DIBAO,
        "issuer": issuer_name("榆中县", "夏官营镇"),
        "returned_on": TODAY,
        "applicant_name": "马建国",
        "items": items,
    }
    return ReturnNotice(**(values | changes))  # type: ignore[arg-type]


def test_every_missing_item_code_and_document_type_has_chinese_words() -> None:
    assert set(ITEM_LABELS) == set(MissingItemCode) - {MissingItemCode.KIND_DOCUMENT}
    assert set(DOCUMENT_LABELS) == set(DocumentType)
    assert set(KIND_LABELS) == set(ApplicationKind)
    for words in (*ITEM_LABELS.values(), *DOCUMENT_LABELS.values(), *KIND_LABELS.values()):
        assert CJK.search(words), words


def test_every_item_the_rules_return_has_its_code_and_its_words() -> None:
    items = _every_item_the_rules_return()
    codes = {item.code for item in items}
    # Every code the rules give is met here (the student proof, the diagnosis, the
    # no-pay proof, a kind's documents...): a new code without words fails above.
    assert codes == set(MissingItemCode)
    for item in items:
        words = item_words(item)
        assert CJK.search(words), item
        # No English description reaches the resident.
        assert not re.search(r"[A-Za-z]{3,}", words), words
        if item.member_name:
            assert words.endswith(f"家庭成员：{item.member_name}")


def test_the_notice_names_the_township_the_day_the_application_and_every_item() -> None:
    items = _every_item_the_rules_return()[:6]
    text = render(_notice(items)).decode("utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in text
    assert "榆中县夏官营镇人民政府" in text
    assert "2026年12月3日" in text
    assert str(APPLICATION) in text
    assert "<p>马建国：</p>" in text
    listed = re.findall(r"<li>(.*?)</li>", text)
    assert listed == [item_words(i) for i in items]
    assert "再次提交申请" in text
    # Printable without anything external: no link, script, image or remote font.
    assert not re.search(r"<(script|link|img|iframe)|url\(|https?://", text)


def test_every_value_is_html_escaped() -> None:
    hostile = '<script>alert("x")</script>&'
    text = render(
        _notice(
            [NoticeItem(MissingItemCode.ID_CARD, DocumentType.ID_CARD, hostile)],
            applicant_name=hostile,
            issuer=hostile,
        )
    ).decode("utf-8")
    assert "<script>" not in text
    # The township three times (it signs and is named twice), the name, the item.
    assert text.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;") == 5


def test_no_id_or_account_number_appears() -> None:
    """Names only: an ID or card number typed where a name was (before names were checked)
    is masked as the logs mask it."""
    id_number, card = "620123196804020115", "6228480402564890018"
    text = render(
        _notice(
            [
                NoticeItem(MissingItemCode.BANK_ACCOUNT),
                NoticeItem(MissingItemCode.ID_CARD, None, card),
            ],
            applicant_name=id_number,
        )
    ).decode("utf-8")
    assert id_number not in text
    assert card not in text
    assert not re.search(r"\d{15,}", text)
    assert "620123********0115" in text


def test_the_same_return_gives_the_same_bytes() -> None:
    items = _every_item_the_rules_return()
    first = render(_notice(items))
    assert render(_notice(list(items))) == first
    # Another application, another day: other bytes (a notice is its return's own).
    assert render(_notice(items, application_id=uuid.UUID(int=7))) != first
    assert render(_notice(items, returned_on=date(2026, 12, 4))) != first


def test_the_township_signs_as_its_kind_of_government() -> None:
    assert issuer_name("榆中县", "夏官营镇") == "榆中县夏官营镇人民政府"
    assert issuer_name("城关区", "酒泉路街道") == "城关区酒泉路街道办事处"
    assert issuer_name("某县", "某乡") == "某县某乡人民政府"
    assert issuer_name("城关区", "九州管委会") == "城关区九州管委会"
