"""The environment a service process gets in tests: the stack's database and broker plus
test values for every kit secret (matching the test token key and bank secret)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from dibao_common.testing.auth_fixtures import auth_settings_values, bank_settings_values
from dibao_common.testing.stack import TestStack


def _test_key(label: str) -> str:
    # Deterministic per label, so a test that restarts a service reads its old ciphertexts.
    return base64.b64encode(hashlib.sha256(f"dibao-test-{label}".encode()).digest()).decode()


TEST_FINGERPRINT_KEYS = _test_key("idempotency-fingerprint")
"""``DIBAO_IDEMPOTENCY_FINGERPRINT_KEYS`` in tests: one key, public, for tests only."""


def fingerprint_key_for_tests() -> bytes:
    """The key the tests' records are fingerprinted with (``TEST_FINGERPRINT_KEYS``)."""
    return base64.b64decode(TEST_FINGERPRINT_KEYS)


def common_secret_values() -> dict[str, Any]:
    """``CommonSettings`` secret field values for tests (for composed settings)."""
    return {"idempotency_fingerprint_keys": TEST_FINGERPRINT_KEYS}


def kit_secret_env() -> dict[str, str]:
    """``DIBAO_*`` values of every secret the kit's settings read."""
    env = {f"DIBAO_{k.upper()}": str(v) for k, v in common_secret_values().items()}
    env |= {f"DIBAO_{k.upper()}": str(v) for k, v in auth_settings_values().items()}
    env |= {f"DIBAO_{k.upper()}": str(v) for k, v in bank_settings_values().items()}
    env |= {
        "DIBAO_PII_KEYS": f"t1:{_test_key('pii-1')}",
        "DIBAO_PII_ACTIVE_KEY_ID": "t1",
        "DIBAO_PII_HASH_KEY": _test_key("pii-hash"),
        "DIBAO_AUDIT_SIGNING_KEY": _test_key("audit-signing"),
    }
    return env


def service_env(stack: TestStack, service: str) -> dict[str, str]:
    """Everything a service's settings read from the environment, for the test stack."""
    return kit_secret_env() | {
        "DIBAO_SERVICE_NAME": service,
        "DIBAO_ENVIRONMENT": "test",
        "DIBAO_DATABASE_URL": stack.database_url(service),
        "DIBAO_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
    }
