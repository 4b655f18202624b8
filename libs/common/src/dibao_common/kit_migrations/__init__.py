"""The kit tables' migrations, one frozen module per change, which every service's own
migrations call.

The kit's tables (outbox and inbox, idempotency records, webhook ids) live in every
service's database, but no service owns their definition. ``dibao_common.messaging.schema``
and ``dibao_common.http_schema`` say what they are NOW: the metadata the kit queries with,
and what ``dibao_common.db.schema.service_schema`` (each service's Alembic target, and what
``tests/infra/test_schema_drift.py`` compares a migrated database with) holds. The modules
here say what each step DID, in literal DDL, and are never edited once committed: a
migration that built its tables from the current definitions would give a fresh database
an edited table while every deployed one keeps the old, and the drift test, both of whose
sides would have moved, could not see it.

A change to a kit table is therefore three things in one commit: a new module here
(``v0002``, ...) with its ``upgrade()`` and ``downgrade()``; a migration in every service
carrying the table that calls them; and the current definitions updated to match. Leave
any of them out and the drift test fails.
"""
