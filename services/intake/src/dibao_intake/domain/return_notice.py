"""The notice given to the applicant of a returned application (一次性告知书).

domain.md, "Procedure and deadlines": an incomplete application gets "one notice listing
every missing item". Intake renders it when it returns an application, stores it as a
document of the household (type ``return_notice``) and names it in ApplicationReturned
(ADR 0009, 3 Dec 2026).

The notice is one UTF-8 HTML page with its CSS inside (``text/html``): any browser at a
township's counter shows and prints it, Chinese included, with nothing fetched and no font
embedded (a PDF would have to carry a Chinese font, megabytes, or rely on one installed).
Every value is HTML-escaped. It names the applicant and the members that items concern by
name (it is for them), never an ID or account number: names pass through the logs' masking
as well, so that a number typed as a name before names were checked is masked.

The same return gives the same bytes: no clock is read here, nothing depends on the order
of a set or a dict, and the date is the day of the return on the China calendar.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from html import escape

from dibao_common.observability import mask_card_and_id_numbers_in
from dibao_intake.domain.codes import ApplicationKind, DocumentType, MissingItemCode

NOTICE_MEDIA_TYPE = "text/html"
"""As stored and served (Starlette adds ``; charset=utf-8``); the page declares it too."""

ITEM_LABELS: dict[MissingItemCode, str] = {
    MissingItemCode.REQUESTED_AMOUNT: "申请救助的金额",
    MissingItemCode.REQUEST_REASON: "申请救助的理由（写明遇到了什么困难）",
    MissingItemCode.HOUSING_FLOOR_AREA: "所申报住房的建筑面积（以房产证或购房合同为准）",
    MissingItemCode.APPLICATION_FORM: "申请人签字的申请书",
    MissingItemCode.HOUSEHOLD_REGISTER: "户口簿",
    MissingItemCode.VERIFICATION_AUTHORISATION: (
        "家庭经济状况核对授权书（由共同生活的家庭成员签字）"
    ),
    MissingItemCode.ID_CARD: "居民身份证复印件",
    MissingItemCode.INCOME_DECLARATION: "每月收入申报（没有收入的也要申报，填写为0）",
    MissingItemCode.WAGE_PROOF: "工资收入证明（由工作单位出具）",
    MissingItemCode.NO_PAY_PROOF: "工作单位出具的未发放工资证明，或停薪留职证明",
    MissingItemCode.DISABILITY_CERTIFICATE: "残疾人证",
    MissingItemCode.DIAGNOSIS: "医院出具的疾病诊断证明",
    MissingItemCode.STUDENT_PROOF: "学校出具的全日制在读证明",
    MissingItemCode.BANK_ACCOUNT: "用于领取救助金的银行卡或存折",
}
"""Each item as a resident reads it. ``KIND_DOCUMENT`` has none of its own: it is worded by
its document type (``DOCUMENT_LABELS``), which a province's policy chooses."""

DOCUMENT_LABELS: dict[DocumentType, str] = {
    DocumentType.APPLICATION_FORM: "申请书",
    DocumentType.ID_CARD: "居民身份证",
    DocumentType.HOUSEHOLD_REGISTER: "户口簿",
    DocumentType.VERIFICATION_AUTHORISATION: "家庭经济状况核对授权书",
    DocumentType.INCOME_PROOF: "收入证明",
    DocumentType.ASSET_PROOF: "财产证明",
    DocumentType.DISABILITY_CERTIFICATE: "残疾人证",
    DocumentType.MEDICAL_RECORD: "病历或疾病诊断证明",
    DocumentType.STUDENT_PROOF: "学校出具的在读证明",
    DocumentType.BANK_CARD: "银行卡或存折",
    DocumentType.CUSTODY_AGREEMENT: "银行卡代管协议",
    DocumentType.DEATH_CERTIFICATE: "死亡证明",
    DocumentType.MARRIAGE_CERTIFICATE: "结婚证",
    DocumentType.DIVORCE_CERTIFICATE: "离婚证，或法院的离婚判决书、调解书",
    DocumentType.BIRTH_CERTIFICATE: "出生医学证明",
    DocumentType.INVESTIGATION_FORM: "入户调查表",
    DocumentType.EVALUATION_MINUTES: "民主评议会议记录",
    DocumentType.PHOTO: "照片",
    DocumentType.OTHER: "其他证明材料",
    DocumentType.RETURN_NOTICE: "一次性告知书",
}

KIND_LABELS: dict[ApplicationKind, str] = {
    ApplicationKind.DIBAO: "最低生活保障",
    ApplicationKind.TEMPORARY: "临时救助",
    ApplicationKind.MEDICAL: "医疗救助",
    ApplicationKind.EDUCATION: "教育救助",
    ApplicationKind.HEATING: "取暖救助",
    ApplicationKind.FESTIVAL: "节日救助",
}


@dataclass(frozen=True, slots=True)
class NoticeItem:
    """One missing item as the notice lists it."""

    code: MissingItemCode
    document_type: DocumentType | None = None
    """The document a ``KIND_DOCUMENT`` item asks for (the others are worded by code)."""
    member_name: str | None = None
    """The member it concerns, by name; None for the household's items."""


@dataclass(frozen=True, slots=True)
class ReturnNotice:
    application_id: uuid.UUID
    kind: ApplicationKind
    issuer: str
    """The accepting township, as it signs (``issuer_name``)."""
    returned_on: date
    """The day of the return (the submission's), on the China calendar."""
    applicant_name: str
    items: Sequence[NoticeItem]


def issuer_name(county: str, township: str) -> str:
    """How the accepting township signs: 榆中县夏官营镇人民政府, 城关区酒泉路街道办事处; a
    township of another kind (a development zone's committee) by its name alone."""
    if township.endswith("街道"):
        return f"{county}{township}办事处"
    if township.endswith(("镇", "乡")):
        return f"{county}{township}人民政府"
    return f"{county}{township}"


def item_words(item: NoticeItem) -> str:
    """The item in a resident's words, with the member it concerns by name."""
    if item.code is MissingItemCode.KIND_DOCUMENT:
        what = (
            DOCUMENT_LABELS[item.document_type] if item.document_type else "其他证明材料"
        ) + "（申请此类救助需要提供）"
    else:
        what = ITEM_LABELS[item.code]
    if item.member_name:
        return f"{what}——家庭成员：{_name(item.member_name)}"
    return what


def _name(name: str) -> str:
    return mask_card_and_id_numbers_in(name)


def _day(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


_STYLE = """\
@page { size: A4; margin: 25mm 20mm; }
body { font-family: "SimSun", "Songti SC", "Noto Serif CJK SC", serif; font-size: 16px;
  line-height: 1.9; color: #000; max-width: 170mm; margin: 0 auto; }
h1 { font-size: 24px; text-align: center; letter-spacing: 4px; margin: 0 0 4px; }
.number { text-align: right; font-size: 13px; margin: 0 0 16px; }
.body { text-indent: 2em; margin: 8px 0; }
ol { margin: 8px 0 8px 2em; padding: 0; }
li { margin: 4px 0; }
.signed { text-align: right; margin-top: 40px; }
.receipt { margin-top: 48px; border-top: 1px dashed #000; padding-top: 12px; font-size: 14px; }
"""


def render(notice: ReturnNotice) -> bytes:
    """The notice as UTF-8 HTML: the same notice, the same bytes."""
    h = escape
    application = h(str(notice.application_id))
    issuer = h(notice.issuer)
    day = h(_day(notice.returned_on))
    kind = h(KIND_LABELS[notice.kind])
    items = "\n".join(f"<li>{h(item_words(item))}</li>" for item in notice.items)
    lines = [
        "<!DOCTYPE html>",
        '<html lang="zh-CN">',
        "<head>",
        '<meta charset="utf-8">',
        "<title>申请材料一次性告知书</title>",
        f"<style>\n{_STYLE}</style>",
        "</head>",
        "<body>",
        "<h1>申请材料一次性告知书</h1>",
        f'<p class="number">申请编号：{application}</p>',
        f"<p>{h(_name(notice.applicant_name))}：</p>",
        f'<p class="body">您于{day}向{issuer}提交的{kind}申请，经审查，申请材料不齐全，'
        "本次申请暂不予受理。现将需要补齐的全部材料一次性告知如下：</p>",
        "<ol>",
        items,
        "</ol>",
        '<p class="body">以上是本次申请需要补齐的全部材料。请备齐后，携带本告知书到'
        f"{issuer}再次提交申请；工作人员会在新的申请中注明它补齐的是编号为"
        f"{application}的申请。</p>",
        '<p class="body">如对本告知有疑问，可向受理窗口咨询。</p>',
        f'<p class="signed">{issuer}<br>{day}</p>',
        '<p class="receipt">申请人签收：____________　　日期：____________</p>',
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(lines).encode("utf-8")
