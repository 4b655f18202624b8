"""Flags, integers and dates in requests: a value of another JSON type or format is
refused, as the schema says."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from dibao_intake.api import schemas


def _request_models() -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    todo: list[type[BaseModel]] = [schemas._In]
    while todo:
        model = todo.pop()
        found.append(model)
        todo += model.__subclasses__()
    return [m for m in found if m.model_fields]


def _fields(key: str, value: str) -> list[tuple[type[BaseModel], str]]:
    """Each request model's fields whose published schema has ``key`` ``value`` (one of an
    ``anyOf``'s, for an optional field)."""
    return [
        (model, name)
        for model in _request_models()
        for name, prop in model.model_json_schema(mode="validation")["properties"].items()
        if value in {prop.get(key), *(p.get(key) for p in prop.get("anyOf", []))}
    ]


def _flags() -> list[tuple[type[BaseModel], str]]:
    flags = _fields("type", "boolean")
    assert len(flags) >= 5  # the member's three, custody_agreement, responsible_caseworker
    return flags


@pytest.mark.parametrize(("model", "field"), _flags(), ids=lambda v: getattr(v, "__name__", v))
@pytest.mark.parametrize("value", ["yes", "true", "on", 1, 0, "0"])
def test_a_flag_of_another_type_is_refused(model: type[BaseModel], field: str, value: Any) -> None:
    """StaffIn.responsible_caseworker took "yes", "on" or 1 as true (and named the
    caseworker who gets the township's cases) where the schema says boolean; the other
    flags have refused such values since 199dae5."""
    with pytest.raises(ValidationError) as refused:
        model.model_validate({field: value})
    assert any(e["loc"] == (field,) and e["type"] == "bool_type" for e in refused.value.errors())


def _integers() -> list[tuple[type[BaseModel], str]]:
    integers = _fields("type", "integer")
    assert len(integers) >= 9  # five incomes, the period, value, quantity, area, ...
    return integers


@pytest.mark.parametrize(("model", "field"), _integers(), ids=lambda v: getattr(v, "__name__", v))
@pytest.mark.parametrize("value", [True, False, "1", "100"])
def test_an_integer_of_another_type_is_refused(
    model: type[BaseModel], field: str, value: Any
) -> None:
    """An income of ``true`` was stored as one fen, a period of ``"6"`` as six months: the
    schema says integer, and JSON's true and "6" are not."""
    with pytest.raises(ValidationError) as refused:
        model.model_validate({field: value})
    assert any(e["loc"] == (field,) for e in refused.value.errors())


@pytest.mark.parametrize(("model", "field"), _integers(), ids=lambda v: getattr(v, "__name__", v))
def test_an_integral_number_is_an_integer(model: type[BaseModel], field: str) -> None:
    """JSON Schema counts 1.0 as an integer: it is taken as 1, a fraction is refused."""
    for value, accepted in ((1, True), (1.0, True), (1.5, False)):
        try:
            model.model_validate({field: value})
        except ValidationError as error:
            failed = any(e["loc"] == (field,) for e in error.errors())
        else:
            failed = False
        assert failed is not accepted, (model, field, value)


def _dates() -> list[tuple[type[BaseModel], str]]:
    dates = _fields("format", "date")
    assert len(dates) >= 8  # birth_date, date_of_death, married_on, moved_on (3), ...
    return dates


@pytest.mark.parametrize(("model", "field"), _dates(), ids=lambda v: getattr(v, "__name__", v))
@pytest.mark.parametrize("value", [0, 1772409600, "0", "1772409600", "2026-03-02T00:00:00Z"])
def test_a_date_of_another_type_or_format_is_refused(
    model: type[BaseModel], field: str, value: Any
) -> None:
    """Dates were read as pydantic reads them: 0 or "1772409600" as Unix seconds (1970-01-01,
    2026-03-02), a date-time at midnight as its day, where the schema says format date;
    the fuzzing of the API (test_fuzz.py) sends such values."""
    assert _errors_at(model, field, value)
    assert not _errors_at(model, field, "2026-03-02")  # as the schema writes a date


def _errors_at(model: type[BaseModel], field: str, value: Any) -> list[Any]:
    try:
        model.model_validate({field: value})
    except ValidationError as error:
        return [e for e in error.errors() if e["loc"] == (field,)]
    return []
