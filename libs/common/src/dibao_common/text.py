"""What text a request may carry: one rule for every service (ADR 0005, 3 Dec 2026).

Free text (an address, a note, a statement, an audit filter) holds no control character
but the tab, the line feed and the carriage return, and no direction embedding, override
or isolate: a right-to-left override shows the text after it reversed, so a clerk or an
auditor reads another text than the one stored ("Trojan Source"); an escape sequence, a
bell or a form feed breaks a terminal, a log reader and a printed page; PostgreSQL text
holds no NUL. Refused at the field (422), never dropped. Intake's free-text fields and
audit's text filters use it, and the identifiers of a token (``dibao_common.auth``) refuse
the same characters, line breaks too.
"""

from __future__ import annotations

import re

from dibao_common.errors import explain_pattern


def class_of(characters: str) -> str:
    """The inside of a character class matching ``characters``, in ranges: BMP code points
    escaped (``\\u200b-\\u200f``), others written as themselves (``\\u`` takes four hex
    digits in every engine; ``\\U`` and ``\\u{...}`` are not in all of them)."""
    points = sorted({ord(c) for c in characters})
    ranges: list[list[int]] = []
    for point in points:
        if ranges and point == ranges[-1][1] + 1:
            ranges[-1][1] = point
        else:
            ranges.append([point, point])

    def one(point: int) -> str:
        return f"\\u{point:04x}" if point <= 0xFFFF else chr(point)

    return "".join(one(a) if a == b else f"{one(a)}-{one(b)}" for a, b in ranges)


TEXT_CONTROLS = "".join(map(chr, [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20)]))
TEXT_CONTROLS += "".join(map(chr, range(0x7F, 0xA0)))
"""The control characters (general category Cc) but the tab, the line feed and the
carriage return: a NUL (PostgreSQL text holds none), a terminal's escape sequence, a bell,
a form feed (a printer's new page), a vertical tab, C1 controls and NEL."""
DIRECTION_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
"""The direction embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069): a
right-to-left override shows the text after it reversed, so a clerk reads another text
than the one stored ("Trojan Source"). The marks (U+200E, U+200F, U+061C) reorder nothing
but neutral characters next to them, and right-to-left scripts (Uyghur) use them: kept."""
NOT_IN_TEXT = TEXT_CONTROLS + DIRECTION_CONTROLS
"""What no free text of a request holds (ADR 0005, 3 Dec 2026): refused (422 at the
field), not dropped, one rule for every free-text field and text parameter of every
service (intake's names drop the direction controls with every format character and
refuse the control characters, ADR 0016)."""
NOT_IN_TEXT_CLASS = class_of(NOT_IN_TEXT)
""":data:`NOT_IN_TEXT` as the inside of a regular expression's character class, for a
pattern that adds its own conditions (not blank, not empty)."""
TEXT_RULE = (
    "no control character (but a tab or a line break) nor direction embedding, override"
    " or isolate (U+202A-U+202E, U+2066-U+2069)"
)
"""The rule in words, as a refused value is told it (``must hold ...``)."""
PLAIN_TEXT = explain_pattern(f"^[^{NOT_IN_TEXT_CLASS}]*$", f"must hold {TEXT_RULE}")
"""Free text: stored as PostgreSQL text (no NUL), shown and printed as it is stored."""


_NOT_ECHOED = re.compile(f"[\\t\\n\\r{NOT_IN_TEXT_CLASS}]")


def echoable(text: str) -> str:
    """``text`` as a service may show back what a request sent (a problem's ``instance``,
    a path in its ``detail``, a member name in a pointer: ``dibao_common.errors``): each
    character no text holds (:data:`NOT_IN_TEXT`), the tab and the line breaks (no more
    than a token's identifiers hold, ``dibao_common.auth``) written as a URI writes it,
    its UTF-8 bytes percent-encoded (U+202E as ``%E2%80%AE``, a bell as ``%07``); the
    rest as it is. A right-to-left override sent in a path came back as itself, and
    reversed the rest of the problem where a client shows it (3 Dec 2026)."""
    return _NOT_ECHOED.sub(_percent_encoded, text)


def _percent_encoded(match: re.Match[str]) -> str:
    return "".join(f"%{b:02X}" for b in match.group().encode())
