"""Every secret a dibao process reads (kit and services) has no default and refuses
placeholders: a deployment that forgets one fails at startup instead of running on it."""

from __future__ import annotations

import importlib

import pytest
from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings

from dibao_common.testing.stack import SERVICES

KIT = ["settings", "auth", "bank", "crypto", "calendar", "db.alembic_env"]
MODULES = [f"dibao_common.{m}" for m in KIT] + [f"dibao_{s}.settings" for s in SERVICES]


def _settings_classes() -> set[type[BaseSettings]]:
    found = set()
    for module in map(importlib.import_module, MODULES):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseSettings):
                found.add(value)
    return found - {BaseSettings}


def _declares(cls: type[BaseSettings], name: str) -> bool:
    return name in vars(cls).get("__annotations__", {})


INHERITED = sorted(
    (
        (cls, name)
        for cls in _settings_classes()
        for name, field in cls.model_fields.items()
        if field.annotation is SecretStr
    ),
    key=lambda found: (found[0].__qualname__, found[1]),
)
# Each secret is validated on the class that declares it (a composed class may fail on
# another field's default first: intake's personal-data keys are read when not given).
SECRETS = [(cls, name) for cls, name in INHERITED if _declares(cls, name)]


def test_the_known_secrets_are_found() -> None:
    names = {name for _, name in SECRETS}
    assert {
        "bank_webhook_secret",
        "keys",
        "hash_key",
        "audit_signing_key",
        "idempotency_fingerprint_keys",
    } <= names


@pytest.mark.parametrize(
    ("cls", "name"), INHERITED, ids=[f"{cls.__name__}.{name}" for cls, name in INHERITED]
)
def test_a_composed_class_keeps_every_secret_required(cls: type[BaseSettings], name: str) -> None:
    assert cls.model_fields[name].is_required(), f"{cls.__name__}.{name} has a default"


@pytest.mark.parametrize(
    ("cls", "name"), SECRETS, ids=[f"{cls.__name__}.{name}" for cls, name in SECRETS]
)
@pytest.mark.parametrize("placeholder", ["", "changeme", " Secret ", "TODO"])
def test_a_secret_has_no_default_and_refuses_placeholders(
    cls: type[BaseSettings], name: str, placeholder: str
) -> None:
    assert cls.model_fields[name].is_required(), f"{cls.__name__}.{name} has a default"
    with pytest.raises(ValidationError) as refused:
        cls.model_validate({name: placeholder})
    mine = [e for e in refused.value.errors() if e["loc"] == (name,)]
    assert mine, refused.value.errors()
    assert "placeholder" in mine[0]["msg"]
