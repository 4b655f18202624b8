"""One person is the responsible caseworker of one township.

A township's responsible caseworker is its own staff ("one person, one township", the
division of work of the seed documents; ADR 0009, 2 Dec 2026): cases are assigned by
token subject, and a caseworker's own household is recognised by their ID number. Two
partial unique indexes over the active responsible caseworkers hold it in the database, one
on ``subject`` and one on ``id_hash``, beside the one per township (0002). The service
refuses such a naming first (409 ``caseworker-of-another-township``); the indexes refuse
one made at the same time in two townships.

The upgrade changes no row: were someone on file as the responsible caseworker of two
townships, the indexes could not be built and the upgrade refuses (RuntimeError naming the
roster entries by id, no personal data). Which township keeps them is for an administrator
to decide, through the roster (name someone else, or take them off it: published as
StaffRosterChanged), not for a migration to guess. Nothing in this code wrote such rows
before except through two townships' namings, which the demo loader does not do.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHERE = "responsible_caseworker AND active"

TWICE = """
SELECT s.id::text FROM staff_member AS s
WHERE s.responsible_caseworker AND s.active AND EXISTS (
    SELECT 1 FROM staff_member AS o
    WHERE o.responsible_caseworker AND o.active AND o.id <> s.id
      AND (o.subject = s.subject OR o.id_hash = s.id_hash)
)
ORDER BY s.township_code, s.id
"""
"""The active responsible caseworkers' entries that name one person twice."""


def upgrade() -> None:
    twice = [row[0] for row in op.get_bind().execute(sa.text(TWICE))]
    if twice:
        shown = ", ".join(twice[:6])
        raise RuntimeError(
            f"0013 refused: {len(twice)} active roster entries name one person (by subject"
            f" or ID number) the responsible caseworker of more than one township ({shown}"
            f"{', ...' if len(twice) > 6 else ''}); keep one township per person through the"
            " roster (name someone else, or deactivate the entry), then upgrade"
        )
    for column in ("subject", "id_hash"):
        op.create_index(
            f"uq_staff_member_caseworker_{column}",
            "staff_member",
            [column],
            unique=True,
            postgresql_where=sa.text(WHERE),
        )


def downgrade() -> None:
    for column in ("subject", "id_hash"):
        op.drop_index(f"uq_staff_member_caseworker_{column}", table_name="staff_member")
