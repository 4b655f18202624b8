"""Free text in requests: what its published pattern admits is what the service accepts."""

from __future__ import annotations

import re

from pydantic import BaseModel, ValidationError

from dibao_common.crypto import carries_id_number
from dibao_intake.api.schemas import ApplicationIn, HouseholdIn, RelativeIn, WithdrawalIn

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
    ]
    for model, field in CHECKED:
        schema = model.model_json_schema()["properties"][field]
        string = next(s for s in schema.get("anyOf", [schema]) if s.get("type") == "string")
        refused = string["not"]
        assert refused["type"] == "string", (model, field)
        declared = [bool(re.search(refused["pattern"], t)) for t in texts]
        assert declared == [carries_id_number(t) for t in texts], (model, field)
        assert declared == [True, True, True, False, False], (model, field)
