"""The keyed lookup hash and the masking of ID numbers, names and bank accounts."""

from __future__ import annotations

import os

import pytest

from dibao_common.crypto import (
    PersonHasher,
    carries_id_number,
    mask_account,
    mask_id_number,
    mask_name,
    normalise_id_number,
)

KEY = b"k" * 32


def test_hash_matches_a_reference_hmac() -> None:
    # Computed outside Python: printf 62010219800101123X | openssl dgst -sha256 -hmac kkkk...(32)
    expected = "531e5533a6ad4a5731ce96224fcd2f013afba11f1a6d1ef2b2381bec0a75eb56"
    assert PersonHasher(KEY).hash_id_number("62010219800101123X") == expected


@pytest.mark.parametrize(
    "spelling",
    [
        "62010219800101123x",
        " 62010219800101123X\n",
        "620102 19800101 123X",
        "６２０１０２１９８００１０１１２３Ｘ",
    ],
)
def test_equal_numbers_hash_equal_whatever_the_spelling(spelling: str) -> None:
    hasher = PersonHasher(KEY)
    assert normalise_id_number(spelling) == "62010219800101123X"
    assert hasher.hash_id_number(spelling) == hasher.hash_id_number("62010219800101123X")


def test_hash_depends_on_the_key_and_the_number() -> None:
    a = PersonHasher(KEY).hash_id_number("62010219800101123X")
    assert PersonHasher(os.urandom(32)).hash_id_number("62010219800101123X") != a
    assert PersonHasher(KEY).hash_id_number("620102198001011231") != a
    assert len(a) == 64
    assert int(a, 16) >= 0


def test_the_key_id_tells_keys_apart() -> None:
    key_id = PersonHasher(KEY).key_id
    assert key_id == PersonHasher(bytes(KEY)).key_id
    assert key_id != PersonHasher(os.urandom(32)).key_id
    assert len(key_id) == 9
    assert key_id.startswith("h")


def test_short_hash_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        PersonHasher(b"short")


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("62010219800101123X", "620102********123X"),
        ("62010219800101123x", "620102********123X"),
        ("620102800101123", "620102*****1123"),  # first-generation 15-digit number
        ("12345", "*****"),
    ],
)
def test_mask_id_number(value: str, masked: str) -> None:
    assert mask_id_number(value) == masked


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("张三丰", "张*丰"),
        ("张三", "张*"),
        ("欧阳娜娜", "欧**娜"),
        ("王", "*"),
        (" 李四 ", "李*"),
        ("买买提·艾力", "买**·艾*"),
        ("John Smith", "J*** S****"),
        ("Jean-Luc Picard", "J***-L** P*****"),
        ("Madonna", "M******"),
        ("", ""),
    ],
)
def test_mask_name(value: str, masked: str) -> None:
    assert mask_name(value) == masked


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("6222020200112233445", "6222 **** **** 3445"),
        ("6222 0202 0011 2233", "6222 **** **** 2233"),
        ("6222-0202-0011-2233-445", "6222 **** **** 3445"),
        ("1234567", "*******"),
    ],
)
def test_mask_account(value: str, masked: str) -> None:
    assert mask_account(value) == masked


@pytest.mark.parametrize(
    "text",
    [
        "身份证62010219800101123X",
        "62010219800101123x",
        "620102198001011234",
        # Typed with a Chinese input method: full-width digits, and a full-width X.
        "身份证６２０１０２１９８００１０１１２３Ｘ",
        "６２０１０２１９８００１０１１２３ｘ",
        "６２０１０２１９８００１０１１２３４",
    ],
)
def test_what_carries_an_id_number(text: str) -> None:
    assert carries_id_number(text)


@pytest.mark.parametrize("text", ["6201021980010112X", "62010219800101123Y", "6201-0219-8001"])
def test_what_does_not_carry_an_id_number(text: str) -> None:
    assert not carries_id_number(text)
