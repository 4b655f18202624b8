"""Why an accepted application was assigned to nobody.

An accepted application is assigned to its township's responsible caseworker, unless the
household is the caseworker's own or holds a relative of theirs (flagged: the county
assigns it). A caseworker on the roster without their own ID number cannot be matched to
their household, so they were assigned their own case (ADR 0009); since this revision
they are assigned none while their number is not on file. ``unassigned_reason`` says why
an accepted application has no caseworker: ``caseworker_related``,
``caseworker_not_identified`` or ``no_caseworker`` (the township has none). It is written
with the application (the submission's one statement) and published in its
ApplicationSubmitted (``unassigned_reason``).

Backfill, from what was published: an application's ApplicationSubmitted carries the
reason (field 20) wherever the code that accepted it knew one, and its timeline entry,
written in the same statement as the application (ADR 0012), keeps it as a detail
(``details.unassigned_reason``, the same three words). Each unassigned application whose
submission entry names a reason takes it: those accepted after this revision, then taken
down to 0010 and up again, get back exactly the reason they had. The reason is not guessed
from the rest of the row: a flagged application may be assigned (the relation is another
staff member's), and the township's roster and its caseworker may have changed since, so
applications accepted before this revision (whose events name no reason) stay NULL. One
UPDATE in the revision's transaction (0003 reads the timeline alike): unassigned
applications are few, the column's addition holds the table's lock anyway, and running it
again writes the same values. The CHECKs admit the three reasons only, and none beside an
assigned caseworker.

Downgrade drops the column only when nothing is lost by it: it refuses (RuntimeError,
naming how many and a few application ids) while an application holds a reason that its
submission's timeline entry does not name, since upgrading again could not give it back.
Such a row is not written by this code (the reason and the entry are one statement); were
one there, an operator decides what to do with it before downgrading.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


PUBLISHED = """
    SELECT t.details ->> 'unassigned_reason' AS reason FROM timeline_entry AS t
    WHERE t.application_id = u.id AND t.ce_type = 'dibao.intake.ApplicationSubmitted.v1'
      AND t.details ->> 'unassigned_reason' IN ('caseworker_related',
          'caseworker_not_identified', 'no_caseworker')
    ORDER BY t.occurred_at, t.ce_id LIMIT 1
"""
"""What the ApplicationSubmitted of application ``u`` named as its ``reason``, read from its
timeline entry by the application's index (an application is submitted once: the first
entry, should one ever have been written twice); no row when it named none."""

BACKFILL = f"""
UPDATE application AS a SET unassigned_reason = p.reason
FROM application AS u CROSS JOIN LATERAL ({PUBLISHED}) AS p
WHERE a.id = u.id AND u.assigned_caseworker IS NULL AND u.accepted_on IS NOT NULL
  AND u.unassigned_reason IS DISTINCT FROM p.reason
"""  # noqa: S608 - fixed text

UNRECOVERABLE = f"""
SELECT u.id FROM application AS u LEFT JOIN LATERAL ({PUBLISHED}) AS p ON true
WHERE u.unassigned_reason IS NOT NULL AND u.unassigned_reason IS DISTINCT FROM p.reason
ORDER BY u.id
"""  # noqa: S608 - fixed text
"""Applications whose reason the upgrade could not give back (see ``downgrade``)."""


def upgrade() -> None:
    op.add_column("application", sa.Column("unassigned_reason", sa.Text))
    op.execute(BACKFILL)
    op.create_check_constraint(
        "unassigned_reason",
        "application",
        "unassigned_reason IN ('caseworker_related', 'caseworker_not_identified', 'no_caseworker')",
    )
    op.create_check_constraint(
        "unassigned_has_no_caseworker",
        "application",
        "unassigned_reason IS NULL OR assigned_caseworker IS NULL",
    )


def downgrade() -> None:
    lost = [row[0] for row in op.get_bind().execute(sa.text(UNRECOVERABLE))]
    if lost:
        shown = ", ".join(str(i) for i in lost[:5])
        raise RuntimeError(
            f"0011 downgrade refused: {len(lost)} application(s) hold an unassigned_reason"
            f" that their ApplicationSubmitted's timeline entry does not name ({shown}"
            f"{', ...' if len(lost) > 5 else ''}); dropping the column would lose it"
        )
    op.drop_constraint(
        op.f("ck_application_unassigned_has_no_caseworker"), "application", type_="check"
    )
    op.drop_constraint(op.f("ck_application_unassigned_reason"), "application", type_="check")
    op.drop_column("application", "unassigned_reason")
