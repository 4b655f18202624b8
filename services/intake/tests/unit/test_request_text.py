"""Free text in requests: what its published pattern admits is what the service accepts."""

from __future__ import annotations

import re
import unicodedata
import uuid

import pytest
from pydantic import BaseModel, ValidationError

from dibao_intake.api import schemas
from dibao_intake.api.schemas import ApplicationIn, HouseholdIn, RelativeIn, StaffIn, WithdrawalIn
from dibao_intake.domain.codes import ApplicationKind

# Every character up to U+3000 (the ideographic space), and a few past it.
CHARACTERS = [chr(c) for c in range(0x3001)] + ["\ufeff", "\u180e", "\U0001f600"]


def _accepted(reason: str) -> bool:
    try:
        WithdrawalIn(reason=reason)
    except ValidationError:
        return False
    return True


def test_text_of_spaces_only_is_refused_as_the_published_pattern_says() -> None:
    """Inputs are stripped of whitespace before min_length is checked: " \\u3000" was
    admitted by the schema (minLength 1) and refused by the service (422)."""
    pattern = WithdrawalIn.model_json_schema()["properties"]["reason"]["pattern"]
    texts = [*CHARACTERS, " \t\u3000\n", " 低保 ", "a\x00", "\u2028\u2029\x85\xa0"]
    differing = [t for t in texts if _accepted(t) != bool(re.search(pattern, t))]
    assert differing == []
    assert not _accepted("\u3000 ")
    assert _accepted(" 低保 ")


# Each text the service checks for ID numbers (no_id_number), by model and field.
CHECKED: list[tuple[type[BaseModel], str]] = [
    (WithdrawalIn, "reason"),
    (ApplicationIn, "statement"),
    (HouseholdIn, "address"),
    (RelativeIn, "relation"),
    (StaffIn, "subject"),
]


def test_text_with_an_id_number_is_refused_as_the_published_schema_says() -> None:
    """The schema admitted text the service refuses for holding an ID or card number (a
    422): it now says so (``not`` that pattern), as Python's re reads it."""
    texts = [
        "户主620102197003151230",
        "卡号 6228480402564890018",
        "６２０１０２１９７００３１５１２３Ｘ",
        "电话 13800138000",
        "2026年3月",
        "信用卡 6225880212345678",
        "存折 62284804025648901",
        "村代码 620123101203",
    ]
    for model, field in CHECKED:
        schema = model.model_json_schema()["properties"][field]
        string = next(s for s in schema.get("anyOf", [schema]) if s.get("type") == "string")
        refused = string["not"]
        assert refused["type"] == "string", (model, field)
        declared = [bool(re.search(refused["pattern"], t)) for t in texts]
        assert declared == [_refused(t) for t in texts], (model, field)
        assert declared == [True, True, True, False, False, True, True, False], (model, field)


def _refused(text: str) -> bool:
    try:
        schemas.no_id_number(text)
    except ValueError:
        return True
    return False


def test_text_with_a_card_number_of_16_or_17_digits_is_refused() -> None:
    """Bank card numbers have 16 to 19 digits, and free text is published as typed (a
    statement in ApplicationSubmitted, a note in HouseholdUpdated): the check for an ID
    number's 18 characters let a 16- or 17-digit card number through, raw into Kafka and
    audit's log (ADR 0005: no account number in any event)."""
    for number in ("6225880212345678", "62284804025648901", "６２２５８８０２１２３４５６７８"):
        with pytest.raises(ValidationError):
            WithdrawalIn(reason=f"打到信用卡{number}上")
        with pytest.raises(ValidationError):
            ApplicationIn(
                household_id=uuid.uuid4(),
                applicant_person_id=uuid.uuid4(),
                statement=f"卡号 {number}",
            )
    # Shorter runs of digits are what free text holds: a phone number, a village's code.
    assert WithdrawalIn(reason="电话 13800138000，村代码 620123101203").reason


# Card and ID numbers as they are printed and copied: in groups, parted by spaces or dashes.
IN_GROUPS = [
    "6222 0212 3456 7890 123",
    "6222-0212-3456-7890",
    "卡号：6222 0212 3456 7890，开户行农行",
    "6222\u30000212\u30003456\u30007890",
    "6222 - 0212 - 3456 - 7890 - 123",
    "6222－0212－3456－7890",
    "６２２２ ０２１２ ３４５６ ７８９０",
    "620102 19800101 1234",
    "620102-19800101-123X",
    "身份证 620102 1980 0101 123x 已核",
    "6201021980 0101123X",
    "62010219800101 1234",
    "6201 0219 8001 0112 34",
    "６２０１０２ １９８００１０１ １２３Ｘ",
]
# What free text holds, with its numbers in groups too.
ORDINARY = [
    "电话 138 0013 8000",
    "电话 138-0013-8000，139 0013 9000",
    "+86 138 0013 8000",
    "电话 13800138000 13900139000",
    "0931-8888888 13800138000",
    "0931-88888888 0931-87654321",
    "730030 0931-88888888",
    "邮编 730030 13800138000",
    "3 people, 2 rooms",
    "一家 3 口 2 间房",
    "住院 2026-03-15 2026-04-15",
    "2026-03-01 至 2026-03-31",
    "20260301-20260331",
    "月收入 1,234.56 元，2025 年 12 月 1200 元",
    "村代码 620123101203",
    "区划 6201 2310 1203",
    "城关区 5-3-201 室",
    "幸福路 12 号 3 栋 2 单元 1201",
]


def test_card_and_id_numbers_in_groups_are_refused_and_other_numbers_are_not() -> None:
    """A card number in spaced or dashed groups (``6222 0212 3456 7890 123``) or an ID
    number so written (``620102 19800101 1234``) went through: the check saw runs of
    digits alone. Phone numbers, dates, amounts, division codes and house numbers in groups
    are text as before. The published schema says the same."""
    assert [t for t in IN_GROUPS if not _refused(t)] == []
    assert [t for t in ORDINARY if _refused(t)] == []
    for text in IN_GROUPS:
        with pytest.raises(ValidationError, match="bank card number"):
            WithdrawalIn(reason=f"打到 {text} 上")
    refused = WithdrawalIn.model_json_schema()["properties"]["reason"]["not"]["pattern"]
    assert [bool(re.search(refused, t)) for t in IN_GROUPS + ORDINARY] == (
        [True] * len(IN_GROUPS) + [False] * len(ORDINARY)
    )


def test_text_is_checked_as_sent_then_stripped() -> None:
    """maxLength and patterns apply to the text as sent, as the published schema says: a
    text over its limit only by its padding was accepted (it was stripped first). What is
    kept is still stripped of white space; an enum stays an enum."""
    limit = WithdrawalIn.model_json_schema()["properties"]["reason"]["maxLength"]
    assert WithdrawalIn(reason="低" * limit).reason == "低" * limit
    for padding in (" ", "\u3000", "\n"):
        with pytest.raises(ValidationError):
            WithdrawalIn(reason="低" * limit + padding)
    assert WithdrawalIn(reason=" 低保\u3000\n").reason == "低保"
    relative = {"name": "张桂芳", "id_number": "620123197203080221", "relation": "spouse"}
    assert RelativeIn(**relative).name == "张桂芳"
    with pytest.raises(ValidationError):
        RelativeIn(**relative | {"name": "张" * 50 + " "})
    # An ID number's pattern admits white space around it (the same number, stripped);
    # inside it, it is refused as sent.
    assert RelativeIn(**relative | {"id_number": " 620123197203080221\u3000"}).id_number == (
        "620123197203080221"
    )
    with pytest.raises(ValidationError):
        RelativeIn(**relative | {"id_number": "620123 197203080221"})
    assert RelativeIn(**relative | {"relation": " spouse "}).relation == "spouse"
    application = ApplicationIn(
        household_id=uuid.uuid4(), applicant_person_id=uuid.uuid4(), kind="temporary"
    )
    assert type(application.kind) is ApplicationKind


def test_what_is_stripped_is_what_the_patterns_call_white_space() -> None:
    assert sorted(schemas.WHITE_SPACE) == [
        c for c in CHARACTERS if re.fullmatch(f"[{schemas._SPACE}]", c)
    ]


def _in_models() -> list[type[BaseModel]]:
    """Every request body's model (the subclasses of ``schemas._In``, at any depth)."""
    found: list[type[BaseModel]] = []
    todo: list[type[BaseModel]] = [schemas._In]
    while todo:
        model = todo.pop()
        found.append(model)
        todo += model.__subclasses__()
    return found


def _free_text_patterns() -> dict[str, str | None]:
    """``Model.field`` -> the pattern of each string field of a request body that takes
    words (admits "低保 3 口" by its pattern, or has none); names excepted, which drop
    format characters and refuse control characters by their own rule (ADR 0016)."""
    found: dict[str, str | None] = {}
    for model in _in_models():
        for field, schema in model.model_json_schema().get("properties", {}).items():
            for string in schema.get("anyOf", [schema]):
                if string.get("type") != "string" or {"enum", "const", "format"} & set(string):
                    continue
                pattern = string.get("pattern")
                if pattern == schemas.NAME_PATTERN:
                    continue
                if pattern is None or re.search(pattern, "低保 3 口"):
                    found[f"{model.__name__}.{field}"] = pattern
    return found


def test_every_free_text_field_refuses_controls_and_direction_overrides() -> None:
    """Free text took a right-to-left override (a clerk read another text than the one
    stored), an escape sequence, a bell, a form feed, a C1 control (ADR 0005, 3 Dec 2026).
    Every free-text field of every request body says one rule in its pattern: a tab and a
    line break are text, the direction marks too (right-to-left scripts use them)."""
    found = _free_text_patterns()
    assert {"HouseholdIn.address", "ApplicationIn.statement", "WithdrawalIn.reason"} <= set(found)
    assert {"BankAccountIn.bank_name", "StaffIn.subject", "RelativeIn.relation"} <= set(found)
    assert len(found) > 12
    ruled = {schemas.PLAIN_TEXT, schemas.NOT_BLANK}
    assert {where: p for where, p in found.items() if p not in ruled} == {}
    controls = {chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Cc"}
    overrides = {chr(c) for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]}
    assert set(schemas.NOT_IN_TEXT) == controls - set("\t\n\r") | overrides
    for character in schemas.NOT_IN_TEXT:
        for pattern in ruled:
            assert not re.search(pattern, f"低保{character}低保"), hex(ord(character))
        with pytest.raises(ValidationError, match="string_pattern_mismatch"):
            WithdrawalIn(reason=f"找到工作{character}撤回")
    for character in "\t\n\r\u200e\u200f\u061c":
        assert WithdrawalIn(reason=f"找到工作{character}撤回").reason == f"找到工作{character}撤回"
