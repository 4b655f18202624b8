"""service_schema: a service's models and the kit's tables, as the one metadata Alembic
compares a service database with (its migrated database: tests/infra/test_schema_drift.py)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from dibao_common.db import NAMING_CONVENTION, service_metadata
from dibao_common.db.schema import KIT_TABLES, service_schema
from dibao_common.messaging.schema import INBOX, OUTBOX

KIT = {table.name for table in KIT_TABLES}


def _models() -> sa.MetaData:
    models = service_metadata()
    sa.Table("household", models, sa.Column("id", sa.Integer, primary_key=True))
    return models


def test_the_models_and_every_kit_table_but_the_dropped() -> None:
    models = _models()
    assert set(service_schema(models).tables) == {"household", *KIT}
    assert set(service_schema(models, dropped={INBOX}).tables) == {"household", *KIT} - {INBOX}
    assert set(models.tables) == {"household"}  # create_all on the models alone is unchanged


def test_the_kit_tables_keep_their_indexes_and_the_naming_convention() -> None:
    schema = service_schema(_models())
    assert schema.naming_convention == NAMING_CONVENTION
    assert {index.name for index in schema.tables[OUTBOX].indexes} == {
        "ix_outbox_message_pending",
        "ix_outbox_message_pending_key",
    }


def test_a_dropped_name_that_is_no_kit_table_is_refused() -> None:
    with pytest.raises(ValueError, match="inbox_messages"):
        service_schema(_models(), dropped={"inbox_messages"})


def test_a_model_table_named_as_a_kit_table_is_refused() -> None:
    models = _models()
    sa.Table(OUTBOX, models, sa.Column("id", sa.Integer, primary_key=True))
    with pytest.raises(ValueError, match=OUTBOX):
        service_schema(models)
