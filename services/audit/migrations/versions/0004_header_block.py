"""Headers kept as the exact bytes the leaf hashes (``header_block``), not as JSON.

The block is ``u32(n) {field(name) field(value)}*n`` sorted by (name, value), the middle
of the canonical entry (ADR 0006): exports and checks no longer re-encode anything. The
existing rows are converted in place by the rewrite of ALTER TABLE (DDL, so the
append-only trigger does not apply); a downgrade gives the sorted headers back as JSON.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION audit_header_block(h jsonb) RETURNS bytea
        LANGUAGE sql IMMUTABLE AS $$
          SELECT int4send(jsonb_array_length(h)) || coalesce(string_agg(
              int4send(octet_length(convert_to(e->>0, 'UTF8'))) || convert_to(e->>0, 'UTF8')
              || int4send(octet_length(decode(e->>1, 'base64'))) || decode(e->>1, 'base64'),
              ''::bytea ORDER BY convert_to(e->>0, 'UTF8'), decode(e->>1, 'base64')), ''::bytea)
          FROM jsonb_array_elements(h) AS e
        $$
        """
    )
    op.execute(
        "ALTER TABLE log_entry ALTER COLUMN headers TYPE bytea USING audit_header_block(headers)"
    )
    op.execute("ALTER TABLE log_entry RENAME COLUMN headers TO header_block")
    op.execute("DROP FUNCTION audit_header_block(jsonb)")


def downgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION audit_header_json(b bytea) RETURNS jsonb
        LANGUAGE plpgsql IMMUTABLE AS $$
        DECLARE
          n int := (get_byte(b, 0) << 24) | (get_byte(b, 1) << 16)
                   | (get_byte(b, 2) << 8) | get_byte(b, 3);
          p int := 4;
          len int;
          name bytea;
          val bytea;
          out jsonb := '[]'::jsonb;
        BEGIN
          FOR i IN 1..n LOOP
            len := (get_byte(b, p) << 24) | (get_byte(b, p + 1) << 16)
                   | (get_byte(b, p + 2) << 8) | get_byte(b, p + 3);
            name := substring(b FROM p + 5 FOR len);
            p := p + 4 + len;
            len := (get_byte(b, p) << 24) | (get_byte(b, p + 1) << 16)
                   | (get_byte(b, p + 2) << 8) | get_byte(b, p + 3);
            val := substring(b FROM p + 5 FOR len);
            p := p + 4 + len;
            out := out || jsonb_build_array(jsonb_build_array(
              convert_from(name, 'UTF8'), replace(encode(val, 'base64'), E'\\n', '')));
          END LOOP;
          RETURN out;
        END $$
        """
    )
    op.execute("ALTER TABLE log_entry RENAME COLUMN header_block TO headers")
    op.execute(
        "ALTER TABLE log_entry ALTER COLUMN headers TYPE jsonb USING audit_header_json(headers)"
    )
    op.execute("DROP FUNCTION audit_header_json(bytea)")
