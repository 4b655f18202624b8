"""A query parameter that takes one value is given once.

Starlette keeps every value of a repeated query parameter, and FastAPI gives a parameter
of one value the last of them: ``?purpose=review&purpose=audit`` read as ``audit``, and
was recorded so on the access record, while a proxy, a log reader or another framework
may take the first. What the caller meant is not known; the request is refused (422
validation-failed at ``/query/<name>``) before anything is read or recorded. A parameter
declared as a list (``list[str]``) takes repeats, as ever (ADR 0005, 3 Dec 2026).

``build_app`` installs :func:`one_value_each` as a dependency of every route of the app,
so every service's routes follow it; a route's own dependencies run after it.
"""

from __future__ import annotations

import types
import weakref
from collections.abc import Iterator
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

_MANY = (list, tuple, set, frozenset)

_single_valued: dict[int, tuple[weakref.ref[Any], frozenset[str]]] = {}
"""By a route's id (an ``APIRoute``, which is not hashable): the route (weakly: an app
built again in a test drops its routes) and the names of its query parameters that take
one value."""


def _takes_many(annotation: Any) -> bool:
    """Whether a parameter of this type takes several values (a list, a tuple, a set),
    through ``Annotated``, ``Optional`` and unions."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _takes_many(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return any(_takes_many(a) for a in get_args(annotation) if a is not type(None))
    target = origin if origin is not None else annotation
    return isinstance(target, type) and issubclass(target, _MANY)


def _query_fields(dependant: Dependant) -> Iterator[tuple[str, Any]]:
    """(name as sent, type) of every query parameter of ``dependant`` and its
    dependencies; a model given as the query's parameters stands for its fields."""
    for field in dependant.query_params:
        annotation = field.field_info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for name, inner in annotation.model_fields.items():
                yield inner.alias or name, inner.annotation
        else:
            yield field.alias, annotation
    for dependency in dependant.dependencies:
        yield from _query_fields(dependency)


def single_valued_query_parameters(route: Any) -> frozenset[str]:
    """The names of ``route``'s query parameters that take one value (computed once)."""
    if route is None:
        return frozenset()
    cached = _single_valued.get(id(route))
    if cached is not None and cached[0]() is route:
        return cached[1]
    dependant = getattr(route, "dependant", None)
    fields = _query_fields(dependant) if isinstance(dependant, Dependant) else iter(())
    found = frozenset(name for name, annotation in fields if not _takes_many(annotation))
    _single_valued[id(route)] = (weakref.ref(route), found)
    return found


async def one_value_each(request: Request) -> None:
    """Refuse (422, a pointer at each) a query parameter of one value given more than once."""
    query = request.query_params
    if len(query.multi_items()) == len(query):
        return  # no name given twice
    single = single_valued_query_parameters(request.scope.get("route"))
    repeated = [name for name in query if name in single and len(query.getlist(name)) > 1]
    if repeated:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", name),
                    "msg": "given more than once: this parameter takes one value",
                    "type": "repeated_parameter",
                }
                for name in repeated
            ]
        )
