"""pytest plugin loaded for the whole suite (``-p dibao_common.testing.plugin``).

`make test` starts an isolated PostgreSQL and Kafka and exports where they are:
``DIBAO_TEST_PG_DSN``, ``DIBAO_TEST_KAFKA_BOOTSTRAP`` and ``DIBAO_TEST_DB_PREFIX``.
Integration tests ask for the ``stack`` fixture; without those variables they fail
loudly rather than skip, so a green run always means the real servers were used.
"""

from __future__ import annotations

import os

import pytest

from dibao_common.testing.stack import SERVICES, TestStack

# Hundreds of apps are built in this one process: freezing each one's startup heap
# (dibao_common.heap) would keep their garbage for good.
os.environ.setdefault("DIBAO_GC_FREEZE", "0")

# Fixture modules of the kit, one per concern (each owns its fixtures).
pytest_plugins = [
    "dibao_common.testing.kafka_fixtures",
    "dibao_common.testing.auth_fixtures",
    "dibao_common.testing.db_fixtures",
    "dibao_common.testing.clock_fixtures",
    "dibao_common.testing.background_check",
]


def _stack_from_env() -> TestStack | None:
    dsn = os.environ.get("DIBAO_TEST_PG_DSN")
    bootstrap = os.environ.get("DIBAO_TEST_KAFKA_BOOTSTRAP")
    if not dsn or not bootstrap:
        return None
    return TestStack(
        pg_admin_dsn=dsn,
        kafka_bootstrap=bootstrap,
        db_prefix=os.environ.get("DIBAO_TEST_DB_PREFIX", "dibao_test"),
    )


@pytest.fixture(scope="session")
async def stack() -> TestStack:
    """The real servers, with every service database recreated and migrated to head once."""
    found = _stack_from_env()
    if found is None:
        pytest.fail(
            "no test stack: run the suite with `make test` (or `make test ARGS=<path>`), "
            "which starts PostgreSQL and Kafka and sets DIBAO_TEST_PG_DSN and "
            "DIBAO_TEST_KAFKA_BOOTSTRAP"
        )
    for service in SERVICES:
        await found.recreate_database(service)
        await found.migrate(service)
    return found
