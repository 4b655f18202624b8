"""A person's name in its one spelling: what is stored, shown and compared.

Portals type the same name in several code points: the separator of a minority
citizen's name (``买买提·艾力``) as U+00B7, U+2027, U+30FB, U+FF0E, U+2022, U+22C5...,
letters and digits full-width or half-width, white space around or doubled. A person is
their ID number (ADR 0016), so a name typed again is compared with the recorded one: in
two spellings the same person would be refused as "another name". Every name a request
gives (a member, a spouse, an account's holder, a staff member and their relatives) is
taken in the spelling ``normalise_name`` gives, once, at the API boundary.

The separator is U+00B7 MIDDLE DOT, as the 2016 notice of the State Ethnic Affairs
Commission, the Ministry of Public Security and ten other departments on collecting
names in public service systems (民委发〔2016〕33号) requires: "·", GB 13000 U+00B7,
GB 18030 0xA1A4 (also JR/T 0253-2022 §6.1.4 for banks). U+30FB is what GB 2312's
0xA1A4 became in some conversion tables, U+2027 Big5's; the others are look-alikes.
"""

from __future__ import annotations

import re
import unicodedata

NAME_DOT = "\u00b7"
"""The separator of a name's parts: U+00B7 MIDDLE DOT (GB 18030 0xA1A4)."""

DOTS = (
    "\u00b7\u0387\u119e\u16eb\u2022\u2027\u2219\u22c5\u2981\u2e31\u30fb\u318d\ua78f\uff65"
    # Each a raised or centred dot typed for the separator: middle dot, Greek ano teleia,
    # Hangul jungseong araea (what NFKC makes of U+318D), runic single punctuation,
    # bullet, hyphenation point, bullet operator, dot operator, Z notation spot, word
    # separator middle dot, katakana middle dot, Hangul araea (what a Korean input method
    # gives for the dot), sinological dot, half-width katakana middle dot.
)
FULL_STOPS = ".\u2024\u2025\u2026\u3002\ufe12\ufe19\ufe30\ufe52\uff0e\uff61"
"""What NFKC makes one or more full stops of (U+FF0E the full-width one, U+2026 the
ellipsis), and the ideographic full stop a Chinese input method types for "." (U+3002;
U+FF61 and U+FE12 its half-width and vertical forms): the separator between two
characters that are not ASCII (``阿卜杜．热合曼``, ``阿卜杜。热合曼``), a full stop
elsewhere (``J. Smith``)."""
FORMAT_CHARACTERS = "".join(chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Cf")
"""Unicode's format characters (general category Cf): the soft hyphen, zero-width space,
joiner and non-joiner, word joiner, byte order mark, the direction marks, embeddings,
overrides and isolates (U+200E, U+202A-U+202E, U+2066-U+2069), invisible operators, tags.
Pasted along from a chat message, a web page or a spreadsheet, never seen; a direction
override shows the rest of the name reversed."""
HANGUL_FILLERS = "\u115f\u1160\u3164\uffa0"
"""Letters that show as nothing (Default_Ignorable_Code_Point): a name of them is blank."""
INVISIBLE = FORMAT_CHARACTERS + HANGUL_FILLERS
"""Pasted along, never seen, dropped (3 Dec 2026: every format character and the Hangul
fillers; before, the soft hyphen, zero width space, word joiner and byte order mark only)."""
CONTROLS = "".join(map(chr, [*range(0x00, 0x09), *range(0x0E, 0x20), *range(0x7F, 0x85)]))
CONTROLS += "".join(map(chr, range(0x86, 0xA0)))
"""The control characters (C0, DEL, C1) that are no white space: no name holds one (a
terminal's escape sequence, a NUL, a bell); refused, not dropped (ControlCharacterError)."""
WHITE_SPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000"
)
"""Unicode White_Space."""
SEPARATORS = DOTS + FULL_STOPS + INVISIBLE
"""What a name must hold something besides (with white space) to be a name at all."""

_WS = re.escape(WHITE_SPACE)
_NOT_ASCII = rf"[^\x00-\x7f{_WS}{re.escape(NAME_DOT)}]"
_DOT_RUN = re.compile(
    rf"[{_WS}{re.escape(NAME_DOT)}]*{re.escape(NAME_DOT)}[{_WS}{re.escape(NAME_DOT)}]*"
)
_STOP_RUN = re.compile(
    rf"(?<={_NOT_ASCII})[{_WS}.{re.escape(NAME_DOT)}]*\.[{_WS}.{re.escape(NAME_DOT)}]*(?={_NOT_ASCII})"
)
_SPACE_RUN = re.compile(rf"[{_WS}]+")
_CONTROL = re.compile(f"[{re.escape(CONTROLS)}]")
_HAN = "\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U000323af"
"""Chinese characters (CJK unified ideographs and their extensions, compatibility
ideographs, 〇): a name written in them holds no white space (an ID card's never does)."""
_HAN_GAP = re.compile(rf"(?<=[{_HAN}]) (?=[{_HAN}])")
_TO_DOT = str.maketrans(
    dict.fromkeys(DOTS, NAME_DOT)
    | dict.fromkeys(INVISIBLE, None)
    | dict.fromkeys("\u3002\uff61", ".")  # the ideographic full stop, as "." (NFKC keeps it)
)


class EmptyNameError(ValueError):
    """Nothing is left of the name but white space and separators."""


class ControlCharacterError(ValueError):
    """The name holds a control character (C0, DEL, C1) that is no white space."""


def normalise_name(name: str) -> str:
    """``name`` in its one spelling: NFKC (full-width letters and digits, half-width
    katakana, compatibility forms), invisible characters dropped, every separator U+00B7
    without white space around it (a run of them one), white space stripped and each
    run inside one space, none between two Chinese characters. Raises
    ``ControlCharacterError`` when it holds a control character, ``EmptyNameError`` when
    nothing else is left."""
    if _CONTROL.search(name):
        raise ControlCharacterError("must not contain a control character")
    return _spelling(name)


def _spelling(name: str) -> str:
    text = unicodedata.normalize("NFKC", name).translate(_TO_DOT)
    text = _STOP_RUN.sub(NAME_DOT, text)
    text = _DOT_RUN.sub(NAME_DOT, text)
    text = _SPACE_RUN.sub(" ", text).strip(" ")
    # A two-character name padded to three for alignment (王　芳, as many registers and
    # spreadsheets have it) is the name the ID card prints without the space.
    text = _HAN_GAP.sub("", text)
    if not text.strip(NAME_DOT + ". "):
        raise EmptyNameError("must hold a name, not only white space and separators")
    return text


def same_name(recorded: str, given: str) -> bool:
    """Whether ``given`` (in its one spelling) is the ``recorded`` name, a name recorded
    before names were normalised included."""
    try:
        # A name recorded before control characters were refused is compared without them.
        return _spelling(_CONTROL.sub("", recorded)) == given
    except EmptyNameError:
        return False
