"""A marriage a person brings from the household they moved out of (ADR 0016, 3 Dec 2026,
helper hAE): the move out ends the couple's life there, not the marriage; a divorce, a
death, or the partner's later marriage there does."""

from __future__ import annotations

import uuid
from datetime import date

from dibao_intake.domain.changes import (
    Marriages,
    PastChange,
    carried_marriage_dealt_with,
    marriage_taken_along,
    marriages_in_household,
    married_in_another_household,
)
from dibao_intake.domain.codes import ChangeKind

HEAD, LODGER, SON, BRIDE, OTHER = (uuid.uuid4() for _ in range(5))
LEFT = date(2025, 12, 1)


def _change(kind: ChangeKind, on: date, **details: object) -> PastChange:
    return PastChange(kind.value, on, {k: str(v) for k, v in details.items()})


MARRIED = _change(ChangeKind.MARRIAGE, date(2025, 7, 1), person_id=HEAD, spouse_person_id=LODGER)


def test_the_spouse_the_move_out_names_is_the_partner_taken_along() -> None:
    """The head's wife moves out: the move out names the head as the spouse left behind;
    she is married to him still, by the registry."""
    moved = _change(ChangeKind.MOVE_OUT, LEFT, person_id=LODGER, spouse_person_id=HEAD)
    assert marriage_taken_along([moved], person_id=LODGER, left_on=LEFT) == HEAD
    # The household's own reading is unchanged: there the move out ends the marriage.
    here = marriages_in_household([MARRIED, moved], head_person_id=HEAD, left_as={})
    assert here.ended_on[HEAD] == LEFT
    assert HEAD not in here.married_to


def test_a_marriage_recorded_between_members_is_taken_along() -> None:
    """Two members married here (the son and the lodger); the son moves out, the move out
    naming nobody (he is neither head nor the head's spouse): the marriage recorded is."""
    married = _change(ChangeKind.MARRIAGE, date(2025, 7, 1), person_id=SON, spouse_person_id=BRIDE)
    moved = _change(ChangeKind.MOVE_OUT, LEFT, person_id=SON)
    assert marriage_taken_along([married, moved], person_id=SON, left_on=LEFT) == BRIDE
    # Another member's move out, another day: not the son's.
    assert marriage_taken_along([married, moved], person_id=BRIDE, left_on=LEFT) is None
    assert marriage_taken_along([married, moved], person_id=SON, left_on=date(2025, 11, 1)) is None


def test_a_divorce_a_death_or_the_partners_later_marriage_ends_it() -> None:
    """Divorced before the move out, or the partner dead or married again since: nothing
    is taken along. A marriage to a spouse living elsewhere names nobody the registry
    knows."""
    moved = _change(ChangeKind.MOVE_OUT, LEFT, person_id=LODGER)
    divorced = _change(
        ChangeKind.DIVORCE, date(2025, 10, 1), person_id=HEAD, spouse_person_id=LODGER
    )
    assert marriage_taken_along([MARRIED, divorced, moved], person_id=LODGER, left_on=LEFT) is None
    assert marriage_taken_along([MARRIED, moved], person_id=LODGER, left_on=LEFT) == HEAD
    died = _change(ChangeKind.DEATH, date(2026, 1, 9), person_id=HEAD, new_head_person_id=SON)
    assert marriage_taken_along([MARRIED, moved, died], person_id=LODGER, left_on=LEFT) is None
    again = _change(ChangeKind.MARRIAGE, date(2026, 2, 1), person_id=HEAD, spouse_person_id=OTHER)
    assert marriage_taken_along([MARRIED, moved, again], person_id=LODGER, left_on=LEFT) is None
    away = _change(ChangeKind.MARRIAGE, date(2025, 7, 1), person_id=LODGER)
    assert marriage_taken_along([away, moved], person_id=LODGER, left_on=LEFT) is None


def test_the_new_household_deals_with_it_by_a_divorce_a_spouse_death_or_a_marriage() -> None:
    """In the household joined since, a divorce naming the member alone, the spouse's death
    or a marriage of theirs recorded there leaves the marriage taken along behind."""
    nothing = Marriages({}, {})
    assert not carried_marriage_dealt_with(nothing, LODGER)
    for kind in (ChangeKind.DIVORCE, ChangeKind.SPOUSE_DEATH, ChangeKind.MARRIAGE):
        record = marriages_in_household(
            [_change(kind, date(2026, 1, 20), person_id=LODGER)],
            head_person_id=OTHER,
            left_as={},
        )
        assert carried_marriage_dealt_with(record, LODGER), kind


def test_the_refusal_names_the_other_household_by_its_masked_reference_alone() -> None:
    found = married_in_another_household(
        "/member/relationship", "the member", "620123-****-6848", joining=True
    )
    assert found.pointer == "/member/relationship"
    assert "620123-****-6848" in found.detail
    assert "move them in first" in found.detail
    kept = married_in_another_household(
        "/person_id", "the member", "620123-****-6848", joining=False
    )
    assert "move them in" not in kept.detail
