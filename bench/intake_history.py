"""A district's history, written into the intake benchmark's database before it measures.

A submission in production lands in tables that already hold years of households,
applications, documents and timeline entries. On the empty tables a benchmark would
otherwise start from, each minute's inserts cross autovacuum's thresholds for every table
(50 rows plus a tenth of the table for ANALYZE), so that a vacuum and an analyze of each
ran during every timed minute, and every ANALYZE made all 20 pooled connections plan the
submission's statements again (bench/README.md, fourth session of 30 Nov). With the
tables at a district's size those passes come as rarely as they would in production, and
the planner sees the statistics of a real table.

The rows are made by PostgreSQL itself (``generate_series``), not through the API: they are
the setting, not the measurement. Each past household has two people (the head and a
spouse, born 1972-1996: of marriageable and working age when they joined and today, so
unemployed within the rules of ADR 0016 and 0021), a current bank account, four documents
and one application with two income declarations, its four documents and three timeline
entries; a tenth of the applications
were returned and a tenth withdrawn, the rest are open. An idempotency record is kept for
each (the kit keeps them for 7 days). The baseline's table gets as many rows of the same
size as the benchmark's bodies, so that neither server writes into an empty table.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

# Who recorded the past (the benchmark's own rows are the bench clerk's).
HISTORY_CLERK = "history-clerk"

# One statement per table, from a temporary table of the households' ids ($1: the regions,
# $2: how many); @clerk is the history clerk.
_STATEMENTS = tuple(
    statement.replace("@clerk", f"'{HISTORY_CLERK}'")
    for statement in (
        """
CREATE TEMPORARY TABLE past ON COMMIT DROP AS
SELECT n,
       gen_random_uuid() AS household_id, gen_random_uuid() AS head_id,
       gen_random_uuid() AS spouse_id, gen_random_uuid() AS application_id,
       gen_random_uuid() AS account_id,
       (CAST($1 AS text[]))[1 + n % cardinality(CAST($1 AS text[]))] AS region_code,
       now() - make_interval(days => 1 + n % 1500) AS at
FROM generate_series(1, $2) AS n
""",
        """
INSERT INTO person (id, id_hash, hash_key_id, id_number_cipher, masked_id, name, birth_date,
                    sex, created_at)
SELECT id, encode(sha256(convert_to(CAST(id AS text), 'UTF8')), 'hex'), 'k1',
       sha256(convert_to(CAST(id AS text), 'UTF8')),
       '6201**********' || lpad(CAST(n % 10000 AS text), 4, '0'),
       '历史' || n, date '1972-01-01' + (n * 37) % 9000, sex, at
FROM past, LATERAL (VALUES (head_id, 'male'), (spouse_id, 'female')) AS x(id, sex)
""",
        """
INSERT INTO household (id, region_code, area_type, address, status, head_person_id, version,
                       created_at, created_by, updated_at)
SELECT household_id, region_code, CASE WHEN n % 4 < 2 THEN 'urban' ELSE 'rural' END,
       '历史地址 ' || n, 'active', head_id, 1, at, @clerk, at
FROM past
""",
        """
INSERT INTO household_member (id, household_id, person_id, relationship, disability_grade,
    seriously_ill, employment_status, student, counted, exclusion_reason, exclusion_note,
    active, joined_on, left_on, left_reason)
SELECT gen_random_uuid(), household_id, id, relationship, 'none', n % 7 = 0, 'unemployed',
       false, true, NULL, NULL, true, CAST(at AS date), NULL, NULL
FROM past, LATERAL (VALUES (head_id, 'head'), (spouse_id, 'spouse')) AS x(id, relationship)
""",
        """
CREATE TEMPORARY TABLE past_document ON COMMIT DROP AS
SELECT gen_random_uuid() AS id, household_id, application_id, document_type, at, n, k
FROM past, LATERAL (VALUES (1, 'application_form'), (2, 'id_card'),
                           (3, 'household_register'), (4, 'verification_authorisation'))
                   AS x(k, document_type)
""",
        """
INSERT INTO document (id, household_id, person_id, document_type, sha256, size_bytes,
                      media_type, uploaded_by, created_at)
SELECT id, household_id, NULL, document_type,
       encode(sha256(convert_to(CAST(id AS text), 'UTF8')), 'hex'), 40000 + (n * k) % 90000,
       'application/pdf', @clerk, at
FROM past_document
""",
        """
INSERT INTO bank_account (id, household_id, number_cipher, number_hash, masked_number,
    bank_code, bank_name, holder_name, holder_person_id, custody_agreement,
    custody_document_id, custodian_subject, created_at, superseded_at)
SELECT account_id, household_id, sha256(convert_to(CAST(account_id AS text), 'UTF8')),
       encode(sha256(convert_to(CAST(account_id AS text), 'UTF8')), 'hex'),
       '6228 **** **** ' || lpad(CAST(n % 10000 AS text), 4, '0'), 'ABC',
       '中国农业银行', '历史' || n, head_id, false, NULL, NULL, at, NULL
FROM past
""",
        """
INSERT INTO application (id, household_id, region_code, kind, channel, status,
    applicant_person_id, statement, reason, requested_amount_fen,
    individual_inclusion_person_id, bank_account_id, staff_related, staff_relation_note,
    assigned_caseworker, missing_items, submitted_at, submitted_by, accepted_on,
    withdrawn_at, withdrawal_reason, withdrawal_cause)
SELECT application_id, household_id, region_code, 'dibao', 'counter', status, head_id,
       '家庭收入低于当地低保标准', NULL, NULL, NULL, account_id, false, NULL,
       CASE WHEN status = 'returned' THEN NULL ELSE 'cw-' || left(region_code, 9) END,
       CASE WHEN status = 'returned'
            THEN CAST('[{"description": "income proof", "field": null}]' AS jsonb)
            ELSE CAST('[]' AS jsonb) END,
       at, @clerk,
       CASE WHEN status = 'returned' THEN NULL ELSE CAST(at AS date) END,
       CASE WHEN status = 'withdrawn' THEN at + interval '3 days' END,
       CASE WHEN status = 'withdrawn' THEN 'moved away' END,
       CASE WHEN status = 'withdrawn' THEN 'applicant_request' END
FROM (SELECT *, CASE n % 10 WHEN 0 THEN 'returned' WHEN 1 THEN 'withdrawn'
                            ELSE 'submitted' END AS status FROM past) AS p
""",
        """
INSERT INTO application_income (application_id, person_id, wage_fen, operating_fen,
    property_fen, transfer_fen, other_fen, period_months, note)
SELECT application_id, id, (n % 9000) * 10, 0, 0, (n % 1000) * 29, 0, 12, NULL
FROM past, LATERAL (VALUES (head_id), (spouse_id)) AS x(id)
""",
        """
INSERT INTO application_document (application_id, document_id)
SELECT application_id, id FROM past_document
""",
        """
INSERT INTO timeline_entry (ce_id, application_id, ce_type, ce_source, occurred_at, actor,
                            summary, details, recorded_at)
SELECT gen_random_uuid(), application_id, ce_type, ce_source, at + step, @clerk,
       summary, CAST('{"kind": "dibao", "channel": "counter"}' AS jsonb), at + step
FROM past, LATERAL (VALUES
    ('dibao.intake.ApplicationSubmitted.v1', 'dibao/intake', interval '0 s',
     'Application submitted'),
    ('dibao.intake.ApplicationAccepted.v1', 'dibao/intake', interval '1 ms',
     'Application accepted'),
    ('dibao.assessment.CaseOpened.v1', 'dibao/assessment', interval '2 s', 'Case opened'))
    AS x(ce_type, ce_source, step, summary)
""",
        """
INSERT INTO idempotency_record (scope, key, fingerprint, state, claim_token, claimed_at,
    completed_at, response_status, response_headers, response_body)
SELECT 'POST /applications ' || @clerk, CAST(application_id AS text),
       encode(sha256(convert_to(CAST(household_id AS text), 'UTF8')), 'hex'), 'completed',
       gen_random_uuid(), now() - make_interval(secs => n % 600000),
       now() - make_interval(secs => n % 600000),
       201, CAST('{"content-type": "application/json"}' AS jsonb),
       convert_to(repeat('x', 1800), 'UTF8')
FROM past
""",
    )
)


async def prefill(
    dsn: str, households: int, *, regions: tuple[str, ...], baseline_body: dict[str, Any]
) -> dict[str, int]:
    """``households`` past households with their applications in intake's tables, as many
    rows in the baseline's; then VACUUM ANALYZE and a CHECKPOINT, so that the timed phases
    start from a database in its steady state. Returns the row count of each table."""
    conn = await asyncpg.connect(dsn)
    try:
        if households > 0:
            async with conn.transaction():
                await conn.execute(_STATEMENTS[0], list(regions), households)
                for statement in _STATEMENTS[1:]:
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO baseline_submission (id, received_at, body)"
                    " SELECT gen_random_uuid(), now() - make_interval(secs => n),"
                    " CAST($1 AS jsonb) FROM generate_series(1, $2) AS n",
                    json.dumps(baseline_body),
                    households,
                )
        await conn.execute("VACUUM (ANALYZE)")
        await conn.execute("CHECKPOINT")
        rows = await conn.fetch(
            "SELECT relname, n_live_tup FROM pg_stat_user_tables ORDER BY relname"
        )
        return {r["relname"]: int(r["n_live_tup"]) for r in rows}
    finally:
        await conn.close()
