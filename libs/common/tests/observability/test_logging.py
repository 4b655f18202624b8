"""JSON logs: trace and correlation ids on every line, ID numbers masked everywhere."""

from __future__ import annotations

import logging
import re
import uuid

from dibao_common.observability import (
    configure_logging,
    get_logger,
    mask_id_numbers,
    use_trace,
)

from .conftest import LogLines

ID_LIKE = re.compile(r"\d{17}[\dXx]")
RAW = "62010219800101123X"
MASKED = "620102********123X"


def test_lines_are_json_with_trace_and_correlation_ids(log_lines: LogLines) -> None:
    log = get_logger("dibao.test")
    with use_trace(correlation_id="corr-42") as ctx:
        log.info("case.opened", case="c-1", amount_fen=31500)
    log.info("outside.any.trace")
    inside, outside = log_lines()
    assert inside["event"] == "case.opened"
    assert inside["level"] == "info"
    assert inside["logger"] == "dibao.test"
    assert inside["service"] == "obs-test"
    assert inside["trace_id"] == ctx.trace_id
    assert inside["span_id"] == ctx.span_id
    assert inside["correlation_id"] == "corr-42"
    assert inside["amount_fen"] == 31500
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", inside["timestamp"])
    assert "trace_id" not in outside
    assert "correlation_id" not in outside


def test_stdlib_loggers_share_the_format_and_the_context(log_lines: LogLines) -> None:
    with use_trace() as ctx:
        logging.getLogger("sqlalchemy.engine").warning("slow query %s ms", 1500)
    (line,) = log_lines()
    assert line["event"] == "slow query 1500 ms"
    assert line["level"] == "warning"
    assert line["logger"] == "sqlalchemy.engine"
    assert line["trace_id"] == ctx.trace_id


def test_id_numbers_never_reach_the_output(log_lines: LogLines) -> None:
    log = get_logger("dibao.test")
    log.info(
        f"member {RAW} registered",
        member={"id_number": RAW.lower(), "others": [("620102198001011234",), {"x": RAW}]},
        as_int=620102198001011234,
        inside_text=f"身份证号{RAW}，已核验",
        bank_account="6222020200112233445",
        household_id=uuid.UUID("0192f0c8-7f2a-7b4e-9a43-5d7c2b8e1f00"),
    )
    logging.getLogger("asyncpg").error("duplicate key (id_number)=(%s)", RAW)
    try:
        raise ValueError(f"duplicate member {RAW}")
    except ValueError:
        log.exception("member.rejected")
    first, foreign, failed = log_lines()
    assert first["event"] == f"member {MASKED} registered"
    assert first["member"]["id_number"] == MASKED
    assert first["member"]["others"] == [["620102********1234"], {"x": MASKED}]
    assert first["as_int"] == "620102********1234"
    assert first["inside_text"] == f"身份证号{MASKED}，已核验"
    assert first["household_id"] == "0192f0c8-7f2a-7b4e-9a43-5d7c2b8e1f00"
    assert foreign["event"] == f"duplicate key (id_number)=({MASKED})"
    assert "ValueError: duplicate member " + MASKED in failed["exception"]
    for line in (first, foreign, failed):
        assert not ID_LIKE.search(repr(line)), line


def test_id_numbers_typed_full_width_are_masked_too() -> None:
    # A Chinese input method gives full-width digits, and a full-width X (U+FF38).
    event = {"event": "x", "typed": "身份证６２０１０２１９８００１０１１２３Ｘ。"}
    assert mask_id_numbers(None, "info", event)["typed"] == f"身份证{MASKED}。"


def test_the_processor_masks_at_any_depth() -> None:
    event = {
        "event": "x",
        "nested": {"deeper": {"list": [RAW, {"set": frozenset({RAW})}]}},
        "number": 3.5,
        "flag": True,
        "nothing": None,
        "short": "6201021980",
    }
    masked = mask_id_numbers(None, "info", event)
    assert masked["nested"] == {"deeper": {"list": [MASKED, {"set": [MASKED]}]}}
    assert masked["number"] == 3.5
    assert masked["flag"] is True
    assert masked["nothing"] is None
    assert masked["short"] == "6201021980"


def test_keys_of_mappings_are_masked_too() -> None:
    # E.g. a count or a result per person, keyed by the number.
    event = {"event": "x", "by_person": {RAW: 2, "other": {620102198001011234: "ok"}}, RAW: 1}
    masked = mask_id_numbers(None, "info", event)
    assert masked["by_person"] == {MASKED: 2, "other": {"620102********1234": "ok"}}
    assert masked[MASKED] == 1
    assert not ID_LIKE.search(repr(masked))


def test_deep_or_cyclic_values_are_still_masked() -> None:
    deep: list[object] = [RAW]
    for _ in range(40):
        deep = [deep]
    cyclic: dict[str, object] = {"id": RAW}
    cyclic["self"] = cyclic
    masked = mask_id_numbers(None, "info", {"deep": deep, "cyclic": cyclic})
    assert not ID_LIKE.search(repr(masked))
    assert MASKED in repr(masked)


# Bank card numbers have 16 to 19 digits: masked as an ID number is (first six, last four).
CARDS = {
    "6222021234567890": "622202******7890",
    "62220212345678901": "622202*******8901",
    "622202123456789012": "622202********9012",
    "6222021234567890123": "622202*********0123",
}


def test_bank_card_numbers_of_16_to_19_digits_never_reach_the_output(log_lines: LogLines) -> None:
    """ID_NUMBER_LIKE catches 18 characters: a 16- or 17-digit card number went out in
    clear, and a 19-digit one with its last five digits."""
    log = get_logger("dibao.test")
    for card, masked in CARDS.items():
        log.info(
            f"paid to {card}",
            account={"number": card, "others": [(card,)]},
            as_int=int(card),
            inside_text=f"卡号{card}，户名王芳",
            keyed={card: 1},
        )
        logging.getLogger("asyncpg").error("duplicate key (account_number)=(%s)", card)
        try:
            raise ValueError(f"unknown card {card}")
        except ValueError:
            log.exception("payment.rejected")
        first, foreign, failed = log_lines()[-3:]
        assert first["event"] == f"paid to {masked}"
        assert first["account"] == {"number": masked, "others": [[masked]]}
        assert first["as_int"] == masked
        assert first["inside_text"] == f"卡号{masked}，户名王芳"
        assert first["keyed"] == {masked: 1}
        assert foreign["event"] == f"duplicate key (account_number)=({masked})"
        assert "ValueError: unknown card " + masked in failed["exception"]
        for line in (first, foreign, failed):
            assert card not in repr(line)
            assert card[-5:] not in repr(line), line
    full_width = {"event": "x", "typed": "卡号６２２２０２１２３４５６７８９０。"}
    assert mask_id_numbers(None, "info", full_width)["typed"] == "卡号622202******7890。"


def test_what_is_not_a_card_number_is_left_as_it_is() -> None:
    """What our logs hold legitimately: offsets, indexes, sizes and millisecond times (15
    digits or fewer), UUIDs, and hex digests or ids (a sha256 holds 16 digits in a row
    one time in ~40: inside a hex run of 32 or more they are not a card). An ID number
    ending in X is masked as one (four characters kept), not as a 17-digit card."""
    digest = "ab1234567890123456cd" + "e" * 44
    starts_with_digits = "62220212345678901" + "f" * 47
    event = {
        "event": "audit_checkpoint_signed",
        "offset": 123456789012345,
        "tree_size": 2**40,
        "at_ms": 1764633600000,
        "took_ms": 12.5,
        "short_run": "order 622202123456789",
        "sha256": digest,
        "root": starts_with_digits,
        "trace_id": "1234567890123456abcdefabcdefabcd",
        "household_id": uuid.UUID("01234567-8901-7234-9678-901234567890"),
        "id_number": RAW,
    }
    masked = mask_id_numbers(None, "info", event)
    assert masked == event | {"id_number": MASKED}


def test_later_configuration_changes_only_the_level(log_lines: LogLines) -> None:
    log = get_logger("dibao.test")
    log.debug("shown")
    configure_logging("WARNING")
    log.info("hidden")
    logging.getLogger("other").info("hidden too")
    log.warning("shown too")
    configure_logging("DEBUG")
    assert [line["event"] for line in log_lines()] == ["shown", "shown too"]


def _sha256_with_digits(digits: str, at: int = 10) -> str:
    """A sha256 in hex (64 characters, letters around) holding ``digits`` at ``at``."""
    filler = "abcdef" * 11
    return (filler[:at] + digits + filler)[:64]


def test_an_id_number_like_run_inside_a_hex_digest_or_id_is_left_as_it_is() -> None:
    """The ID rule masked 18 digits in a row wherever they stood: inside a sha256 (one
    logged digest in ~100, e.g. document_store's sha256=), a trace id or a UUID's hex, as
    the card rule already did not. A run of digits with no hex letter around it is no
    digest: two ID numbers written together are masked both."""
    digest = _sha256_with_digits("620102198001011234")
    nineteen = _sha256_with_digits("6201021980010112345", at=0)
    trace_id = "abc620102198001011234def0123abcd"
    uuid_hex = uuid.UUID("620102198001011234abcdef01234567").hex
    event = {
        "event": f"document.stored sha256={digest}",
        "sha256": digest,
        "root": nineteen,
        "trace_id": trace_id,
        "household_id": uuid_hex,
        "upper": digest.upper(),
    }
    assert mask_id_numbers(None, "info", event) == event
    two = "620102198001011234" + "62010219800101123X"
    masked = mask_id_numbers(None, "info", {"event": two, "digits": "1" * 40})
    assert masked == {"event": "620102********1234620102********123X", "digits": masked["digits"]}
    assert not ID_LIKE.search(masked["digits"])


def test_an_id_number_outside_a_digest_is_masked_wherever_it_stands() -> None:
    """Next to letters, an equals sign, a comma, an X; near a digest but not in it."""
    digest = _sha256_with_digits("1234")
    texts = {
        "id=620102198001011234,": "id=620102********1234,",
        "id=62010219800101123X,": "id=620102********123X,",
        "abc620102198001011234def": "abc620102********1234def",
        "cafe62010219800101123Xcafe": "cafe620102********123Xcafe",
        f"{digest} 620102198001011234": f"{digest} 620102********1234",
        f"{digest}:620102198001011234": f"{digest}:620102********1234",
        # 17 digits and an X are no hex: masked even where hex letters surround them.
        "abcdefabcdefabcd62010219800101123Xabcdefabcdef": (
            "abcdefabcdefabcd620102********123Xabcdefabcdef"
        ),
        # Full-width digits are in no digest.
        "abcdefabcdefabcdef６２０１０２１９８００１０１１２３４abcdef": (
            "abcdefabcdefabcdef620102********1234abcdef"
        ),
        "abcdefabcdefabcdef６２２２０２１２３４５６７８９０abcdef": (
            "abcdefabcdefabcdef622202******7890abcdef"
        ),
    }
    for text, expected in texts.items():
        assert mask_id_numbers(None, "info", {"event": text})["event"] == expected, text


def test_what_a_float_prints_after_its_point_is_no_card_number() -> None:
    """16 or 17 digits after a point are what a float prints (17 significant digits at
    most), not a card; a card number after a full stop, after a list's "1." or with more
    digits than a float has is masked still."""
    floats = [
        str(0.1 + 0.2),  # 0.30000000000000004
        str(1 / 3),  # 0.3333333333333333
        repr(2 / 3 * 1e-4),  # 6.666666666666667e-05
        "-1.2345678901234567",
        str(0.00012345678901234567),  # 0.00012345678901234567: 20 digits after the point
        "ratio=0.12345678901234567,",
    ]
    for text in floats:
        event = {"event": f"score {text}"}
        assert mask_id_numbers(None, "info", event) == event, text
    cards = {
        "card no.6222021234567890123": "card no.622202*********0123",
        "卡号.6222021234567890": "卡号.622202******7890",
        "1.6222021234567890123": "1.622202*********0123",
        "12.6222021234567890": "12.622202******7890",
        "0.6222021234567890123": "0.622202*********0123",
        "1.620102198001011234": "1.620102********1234",
        "0.620102198001011234": "0.620102********1234",
        "1.62010219800101123X": "1.620102********123X",
        # Four zeros after the point: a float prints e-05 there. 22 digits: the first 18 go.
        "0.0000620102198001011234": "0.000062********01011234",
        "1.６２２２０２１２３４５６７８９０": "1.622202******7890",
    }
    for text, expected in cards.items():
        assert mask_id_numbers(None, "info", {"event": text})["event"] == expected, text


# Characters that show as nothing, as they come pasted inside a number (ADR 0005, 3 Dec
# 2026): zero width space, soft hyphen, word joiner, byte order mark, zero width joiner,
# left-to-right and right-to-left marks, an isolate, a Hangul filler, a tag.
HIDDEN = ["\u200b", "\u00ad", "\u2060", "\ufeff", "\u200d", "\u200e", "\u200f", "\u2066", "\u3164"]


def test_a_number_with_invisible_characters_inside_is_masked() -> None:
    """An ID or card number with a zero width space or a soft hyphen between its fields
    shows as that number on every screen and in a log reader, and went out in clear: the
    mask looked for digits in a row. It is masked as the number alone is, the characters
    inside it dropped with its digits; the text around it stays as it was."""
    for mark in HIDDEN:
        id_number = mark.join(["620102", "19800101", "123X"])
        card = mark.join(["6222", "0212", "3456", "7890", "123"])
        event = {
            "event": f"{mark}身份证{id_number}，卡号{card}。{mark}",
            "nested": {"card": card, "tag": f"6201021980\U000e0041{mark}0101123X"},
        }
        masked = mask_id_numbers(None, "info", event)
        assert masked["event"] == f"{mark}身份证{MASKED}，卡号622202*********0123。{mark}", mark
        assert masked["nested"] == {
            "card": "622202*********0123",
            "tag": MASKED,
        }, mark
        shown = repr(masked).translate(dict.fromkeys(map(ord, HIDDEN), None))
        assert not ID_LIKE.search(shown), mark
        assert not re.search(r"\d{16}", shown), mark


def test_invisible_characters_beside_shorter_numbers_change_nothing() -> None:
    """Invisible characters between numbers that are none together (a phone number, a
    date, a digest's digits) are left where they are, as they were."""
    digest = _sha256_with_digits("62010219\u200b8001011234")
    texts = [
        "电话\u200b13800138000\u200b",
        "2026\u00ad03\u00ad01",
        "\ufeff{}",
        digest,
        "0.3000000\u200b0000000004",
        "6201\u200b0219\n8001\u200b0112\t34",
    ]
    for text in texts:
        event = {"event": text}
        assert mask_id_numbers(None, "info", event) == event, text
