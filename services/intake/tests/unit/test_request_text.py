"""Free text in requests: what its published pattern admits is what the service accepts."""

from __future__ import annotations

import re

from pydantic import ValidationError

from dibao_intake.api.schemas import WithdrawalIn

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
