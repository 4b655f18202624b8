"""Only the next append: the runtime role's INSERT right accepts nothing else.

The runtime role (``<database>_app``) is the appender and the projector, so it keeps
INSERT on the log's tables; until now any row went in. A log row ahead of the size (or a
leaf, a node, a view, a checkpoint ahead of the log) blocked the appender for good (its
frontier lacks subtrees, its next COPY collides, the last checkpoint never verifies) or
planted a decoded view the projector then skipped. Now, for every role, owner included
(a superuser with ``session_replication_role = replica`` skips triggers, as before):

- ``log_entry``: a statement's rows are exactly the indices ``[size, size + n)``, and at
  commit each one has its leaf and every subtree it completes (deferred, per row);
- ``merkle_node``: a leaf only for a stored entry and with the hash of its canonical
  bytes, an inner node only over its two stored children and with their hash;
- ``checkpoint``: only the next one (larger than the last, at most the log's size,
  ``previous_tree_size`` the last's) and with the root of the stored tree at its size;
- ``entry_view``: only views of stored entries, in order from the first without one.

Every refusal is ``check_violation`` (SQLSTATE 23514) naming what was refused.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The leaf's preimage as ``entry.canonical_from_parts`` writes it (and the export's SQL).
_CANONICAL = r"""
    int4send(octet_length(convert_to('dibao.audit.entry.v1', 'UTF8')))
    || convert_to('dibao.audit.entry.v1', 'UTF8')
    || int4send(octet_length(convert_to(e.topic, 'UTF8'))) || convert_to(e.topic, 'UTF8')
    || int4send(e.partition) || int8send(e."offset")
    || CASE WHEN e.record_key IS NULL THEN '\x00'::bytea
            ELSE '\x01'::bytea || int4send(octet_length(e.record_key)) || e.record_key END
    || e.header_block
    || int4send(octet_length(e.payload)) || e.payload
"""

_FUNCTIONS = [
    r"""
    CREATE FUNCTION audit_next_entries() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      lo bigint; hi bigint; n bigint; below bigint;
    BEGIN
      SELECT min(leaf_index), max(leaf_index), count(*) INTO lo, hi, n FROM new_rows;
      IF n = 0 THEN RETURN NULL; END IF;
      SELECT max(leaf_index) INTO below FROM log_entry WHERE leaf_index < lo;
      IF lo <> coalesce(below + 1, 0) OR hi - lo + 1 <> n THEN
        RAISE EXCEPTION 'audit log: entries % to % refused: the next entry is %',
          lo, hi, coalesce(below + 1, 0) USING ERRCODE = 'check_violation';
      END IF;
      RETURN NULL;
    END $$
    """,
    r"""
    CREATE FUNCTION audit_entry_has_its_nodes() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      j bigint := NEW.leaf_index;
      k int := 0;
    BEGIN
      -- Its leaf (level 0), then each subtree whose last leaf it is: one index probe each.
      LOOP
        PERFORM FROM merkle_node WHERE level = k AND index = j >> k;
        IF NOT FOUND THEN
          RAISE EXCEPTION 'audit log: entry % refused: its leaf or a subtree it completes is '
            'missing at commit', j USING ERRCODE = 'check_violation';
        END IF;
        k := k + 1;
        EXIT WHEN ((j + 1) >> k) << k <> j + 1;
      END LOOP;
      RETURN NULL;
    END $$
    """,
    r"""
    CREATE FUNCTION audit_true_nodes() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      bad record;
    BEGIN
      -- Index probes per new node (correlated), never a scan of the stored tables.
      SELECT n.level, n.index INTO bad
      FROM new_rows n
      WHERE n.hash IS DISTINCT FROM CASE
        WHEN n.level = 0 THEN (
          SELECT sha256('\x00'::bytea || CANONICAL)
          FROM log_entry e WHERE e.leaf_index = n.index)
        ELSE sha256('\x01'::bytea
          || (SELECT c.hash FROM merkle_node c
              WHERE c.level = n.level - 1 AND c.index = 2 * n.index)
          || (SELECT c.hash FROM merkle_node c
              WHERE c.level = n.level - 1 AND c.index = 2 * n.index + 1)) END
      LIMIT 1;
      IF FOUND THEN
        RAISE EXCEPTION 'audit log: node (level %, index %) refused: not the hash of a stored %',
          bad.level, bad.index, CASE WHEN bad.level = 0 THEN 'entry' ELSE 'pair of children' END
          USING ERRCODE = 'check_violation';
      END IF;
      RETURN NULL;
    END $$
    """.replace("CANONICAL", _CANONICAL),
    r"""
    CREATE FUNCTION audit_root_at(size bigint) RETURNS bytea LANGUAGE plpgsql STABLE AS $$
    DECLARE
      hashes bytea[] := '{}';
      pos bigint := 0;
      acc bytea;
    BEGIN
      IF size = 0 THEN RETURN sha256(''::bytea); END IF;
      FOR k IN REVERSE 62..0 LOOP
        IF (size >> k) & 1 = 1 THEN
          hashes := hashes || (SELECT hash FROM merkle_node WHERE level = k AND index = pos >> k);
          pos := pos + (1::bigint << k);
        END IF;
      END LOOP;
      acc := hashes[cardinality(hashes)];
      FOR i IN REVERSE cardinality(hashes) - 1..1 LOOP
        acc := sha256('\x01'::bytea || hashes[i] || acc);
      END LOOP;
      RETURN acc;
    END $$
    """,
    r"""
    CREATE FUNCTION audit_next_checkpoint() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      last bigint := (SELECT max(tree_size) FROM checkpoint);
      size bigint := coalesce((SELECT max(leaf_index) + 1 FROM log_entry), 0);
    BEGIN
      IF NEW.tree_size <= coalesce(last, -1) OR NEW.tree_size > size
         OR NEW.previous_tree_size IS DISTINCT FROM last THEN
        RAISE EXCEPTION 'audit log: checkpoint % (previous %) refused: the last is %, the log '
          'has % entries', NEW.tree_size, NEW.previous_tree_size, last, size
          USING ERRCODE = 'check_violation';
      END IF;
      IF NEW.root_hash IS DISTINCT FROM audit_root_at(NEW.tree_size) THEN
        RAISE EXCEPTION 'audit log: checkpoint % refused: not the root of the stored tree',
          NEW.tree_size USING ERRCODE = 'check_violation';
      END IF;
      RETURN NEW;
    END $$
    """,
    r"""
    CREATE FUNCTION audit_next_views() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      lo bigint; hi bigint; n bigint; below bigint;
      size bigint := coalesce((SELECT max(leaf_index) + 1 FROM log_entry), 0);
    BEGIN
      SELECT min(leaf_index), max(leaf_index), count(*) INTO lo, hi, n FROM new_rows;
      IF n = 0 THEN RETURN NULL; END IF;
      SELECT max(leaf_index) INTO below FROM entry_view WHERE leaf_index < lo;
      IF lo <> coalesce(below + 1, 0) OR hi - lo + 1 <> n OR hi >= size THEN
        RAISE EXCEPTION 'audit log: views % to % refused: the next view is of entry %, '
          'the log has % entries', lo, hi, coalesce(below + 1, 0), size
          USING ERRCODE = 'check_violation';
      END IF;
      RETURN NULL;
    END $$
    """,
]

_TRIGGERS = [
    "CREATE TRIGGER log_entry_next AFTER INSERT ON log_entry REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_next_entries()",
    "CREATE CONSTRAINT TRIGGER log_entry_has_its_nodes AFTER INSERT ON log_entry "
    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION audit_entry_has_its_nodes()",
    "CREATE TRIGGER merkle_node_true AFTER INSERT ON merkle_node "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION audit_true_nodes()",
    "CREATE TRIGGER checkpoint_next BEFORE INSERT ON checkpoint "
    "FOR EACH ROW EXECUTE FUNCTION audit_next_checkpoint()",
    "CREATE TRIGGER entry_view_next AFTER INSERT ON entry_view REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_next_views()",
]


def upgrade() -> None:
    for sql in _FUNCTIONS:
        op.execute(sql)
    for sql in _TRIGGERS:
        op.execute(sql)


def downgrade() -> None:
    for table, trigger in (
        ("entry_view", "entry_view_next"),
        ("checkpoint", "checkpoint_next"),
        ("merkle_node", "merkle_node_true"),
        ("log_entry", "log_entry_has_its_nodes"),
        ("log_entry", "log_entry_next"),
    ):
        op.execute(f"DROP TRIGGER {trigger} ON {table}")
    for name in (
        "audit_next_views()",
        "audit_next_checkpoint()",
        "audit_root_at(bigint)",
        "audit_true_nodes()",
        "audit_entry_has_its_nodes()",
        "audit_next_entries()",
    ):
        op.execute(f"DROP FUNCTION {name}")
