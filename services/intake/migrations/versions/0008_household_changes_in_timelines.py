"""A household change enters the timeline of each of the household's open applications.

Until now a timeline held only events that name their application, so a member's death,
a birth, a move or a new bank account recorded while an application was being
investigated never showed in that application's timeline, though it changes the case (the
household's size, its income per head, the account to be paid). HouseholdUpdated names no
application; intake now adds its entry to every application of the household not yet
decided, as it publishes the change. One event may so have several entries (a household
with an open dibao application and an open one-off one), and the primary key becomes
(ce_id, application_id): still one entry per event and application, which is what makes
a redelivered event (the consumer's ``ON CONFLICT``) a no-op.

Rebuilding the primary key takes the table's ACCESS EXCLUSIVE lock while its index is
built, during which timelines can be neither read nor written (the consumer waits and
carries on): 1.4 s for a million entries on a test instance (two shared cores, load 2.8).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE timeline_entry DROP CONSTRAINT pk_timeline_entry,"
        " ADD CONSTRAINT pk_timeline_entry PRIMARY KEY (ce_id, application_id)"
    )


def downgrade() -> None:
    # Only one entry per event can stay: the household's other applications lose theirs.
    op.execute(
        "DELETE FROM timeline_entry t USING timeline_entry o"
        " WHERE t.ce_id = o.ce_id AND t.application_id > o.application_id"
    )
    op.execute(
        "ALTER TABLE timeline_entry DROP CONSTRAINT pk_timeline_entry,"
        " ADD CONSTRAINT pk_timeline_entry PRIMARY KEY (ce_id)"
    )
