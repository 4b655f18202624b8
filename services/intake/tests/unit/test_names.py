"""A person's name in its one spelling, whatever code points a portal typed it in."""

from __future__ import annotations

import re
import unicodedata

import pytest
from pydantic import ValidationError

from dibao_intake.api.schemas import (
    NAME_PATTERN,
    BankAccountIn,
    MemberChangeIn,
    MemberIn,
    RelativeIn,
    StaffIn,
)
from dibao_intake.domain import names
from dibao_intake.domain.names import (
    NAME_DOT,
    ControlCharacterError,
    EmptyNameError,
    normalise_name,
    same_name,
)

UYGHUR = "买买提" + NAME_DOT + "艾力"

SPELLINGS = [
    "买买提·艾力",  # U+00B7, the standard's
    "买买提‧艾力",  # U+2027 hyphenation point (Big5)
    "买买提・艾力",  # U+30FB katakana middle dot (GB 2312 0xA1A4 in some tables)
    "买买提･艾力",  # U+FF65 half-width katakana middle dot
    "买买提．艾力",  # U+FF0E full-width full stop
    "买买提.艾力",  # a full stop
    "买买提•艾力",  # U+2022 bullet
    "买买提⋅艾力",  # U+22C5 dot operator
    "买买提∙艾力",  # U+2219 bullet operator
    "买买提\u0387艾力",  # U+0387 Greek ano teleia
    " 买买提 · 艾力\u3000",
    "买买提\u3000·\u3000艾力",
    "买买提··艾力",
    "买买提…艾力",
    "\ufeff买买提\u200b·艾力",
    "买买提。艾力",  # U+3002, what a Chinese input method types for "."
    "买买提｡艾力",  # U+FF61, its half-width form
    "买买提ㆍ艾力",  # U+318D Hangul araea, what a Korean input method types for the dot
    "\u200e买买提\u200d·\u202e艾力\u2069",  # direction marks, a joiner, an override pasted
    "买买提\u2063·艾力\U000e0041",  # an invisible separator, a tag
]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_every_spelling_of_a_minority_name_is_one(spelling: str) -> None:
    assert normalise_name(spelling) == UYGHUR
    assert same_name(spelling, UYGHUR)


def test_width_white_space_and_latin_names() -> None:
    assert normalise_name("ＪＯＨＮ\u3000\u3000ＳＭＩＴＨ") == "JOHN SMITH"
    assert normalise_name(" John \t Smith ") == "John Smith"
    # A full stop among Latin letters is one: only between Chinese characters a separator.
    assert normalise_name("J. Smith") == "J. Smith"
    assert normalise_name("⼀丁") == "一丁"  # a Kangxi radical pasted for the character
    assert normalise_name("马建国") == "马建国"
    # No white space between Chinese characters: a name padded for alignment is the name.
    assert normalise_name("王\u3000芳") == normalise_name("王 芳") == "王芳"
    assert normalise_name("马 建国") == "马建国"
    assert same_name("王\u3000\u3000芳", "王芳")
    assert normalise_name("\U00020000 \u4e00") == "\U00020000\u4e00"  # extension B
    # Elsewhere white space inside is kept, as one space (words of a Latin name).
    assert normalise_name("Ma\u3000Li") == "Ma Li"
    assert normalise_name("马 Li") == "马 Li"
    assert not same_name("买买提·艾力", "买买提·艾木")


@pytest.mark.parametrize(
    "empty",
    [
        *("·", " · ", "．", "…", "\u200b", "\ufeff\u3000", ". ·", "。", "ㆍ"),
        *("\u200d", "\u200e\u202e", "\u3164", "\uffa0 ", "\u2066\u2069", "\U000e0001"),
    ],
)
def test_a_name_of_separators_only_is_refused(empty: str) -> None:
    with pytest.raises(EmptyNameError):
        normalise_name(empty)
    assert not re.search(NAME_PATTERN, empty)
    with pytest.raises(ValidationError):
        RelativeIn(name=empty, id_number="620123197203080221", relation="spouse")


@pytest.mark.parametrize("name", ["王\x07芳", "\x1b[31m王芳", "王芳\x9b", "王\x00芳", "\x7f"])
def test_a_name_with_a_control_character_is_refused(name: str) -> None:
    with pytest.raises(ControlCharacterError):
        normalise_name(name)
    assert not re.search(NAME_PATTERN, name)
    with pytest.raises(ValidationError, match="string_pattern_mismatch"):
        RelativeIn(name=name, id_number="620123197203080221", relation="spouse")


def test_a_name_recorded_with_a_control_character_is_the_name_without_it() -> None:
    """Recorded before control characters were refused, the name is still the person's."""
    assert same_name("王\x07芳\u200d", "王芳")


def _accepted(name: str) -> bool:
    try:
        normalise_name(name)
    except (EmptyNameError, ControlCharacterError):
        return False
    return True


def test_the_published_pattern_refuses_what_the_service_does() -> None:
    """Every code point alone (some with white space or dots around it): the schema's
    pattern admits it exactly when the service takes it as a name."""
    pattern = re.compile(NAME_PATTERN)
    texts = [chr(c) for c in range(1, 0x110000) if not 0xD800 <= c < 0xE000]
    texts += [f" {c}\u3000" for c in texts[:0x3100]] + [f"·{c}．" for c in names.SEPARATORS]
    differing = [t for t in texts if _accepted(t) != bool(pattern.search(t))]
    assert differing == []


def test_the_separators_are_what_nfkc_makes_dots_of() -> None:
    """SEPARATORS lists every code point NFKC turns into nothing but dots, full stops,
    invisible characters or white space (so the pattern knows them)."""
    kept = set(names.SEPARATORS + names.WHITE_SPACE)
    found = {
        chr(c)
        for c in range(0x110000)
        if not 0xD800 <= c < 0xE000
        and chr(c) not in kept
        and all(x in kept for x in unicodedata.normalize("NFKC", chr(c)))
    }
    assert found == set()


def test_every_name_a_request_takes_is_normalised_and_a_bank_s_is_not() -> None:
    member = {
        "name": "买买提・艾力",
        "id_number": "620123196804020115",
        "relationship": "head",
        "employment_status": "flexible",
    }
    assert MemberIn(**member).name == UYGHUR
    account = BankAccountIn(
        account_number="6228480402564890018",
        bank_code="103",
        bank_name="中国农业银行 ．榆中县支行",
        holder_name="买买提．艾力",
    )
    assert (account.holder_name, account.bank_name) == (UYGHUR, "中国农业银行 ．榆中县支行")
    change = MemberChangeIn(
        kind="member_change",
        person_id="01a22f99-41d4-73be-9784-45c266209619",
        effective_on="2026-02-27",
        name="买买提 ‧ 艾力",
    )
    assert change.name == UYGHUR
    relative = {"name": "阿依古丽•买买提", "id_number": "620123197203080221", "relation": "x"}
    staff = StaffIn(name="买买提⋅艾力", role="caseworker", subject="cw", relatives=[relative])
    assert (staff.name, staff.relatives[0].name) == (UYGHUR, "阿依古丽·买买提")
