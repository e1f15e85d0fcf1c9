"""The OpenAPI document as a client generator reads it, and the reference pages that show it.

``describe`` finishes FastAPI's document in one place:

- every operation's ``operationId`` is its route function's name (``get_order``,
  ``apply_refund``): readable, stable, and unique (``describe`` refuses a duplicate);
- the bearer token's scheme is declared by the dependency that reads it
  (``refundry.api.deps.BEARER``), so each operation that needs a token says so in its own
  ``security``; the others (health probes, the signed inbound webhooks) say ``security: []``;
- every POST takes ``Idempotency-Key`` (refundry/api/idempotency.py documents it);
- every ``201`` answer declares its ``Location`` header;
- every problem+json answer refers to the one ``Problem`` schema (a generator then makes one
  model of it, not one per operation and status).

``/docs`` (Swagger UI) and ``/redoc`` are served from files installed with the project
(fastapi-offline's copies of swagger-ui-dist and redoc, released under their licences), so the
pages work on a machine with no internet.
"""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute

from refundry.api.idempotency import document_idempotency
from refundry.api.schemas_cases import Problem

__all__ = ["describe", "operation_id"]

_LOCATION = {
    "Location": {
        "description": "the created resource",
        "schema": {"type": "string", "format": "uri-reference"},
    }
}


def operation_id(route: APIRoute) -> str:
    """``route``'s operationId: the name of its function (``create_app`` passes this as
    FastAPI's ``generate_unique_id_function``)."""
    return route.name


def describe(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` (FastAPI's document) with the declarations above; refuses two operations with
    one operationId."""
    seen: dict[str, str] = {}
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            name = op.get("operationId", "")
            if name in seen:
                raise RuntimeError(f"operationId {name!r} names {seen[name]} and {method} {path}")
            seen[name] = f"{method} {path}"
            op.setdefault("security", [])
            created = op.get("responses", {}).get("201")
            if created is not None:
                created.setdefault("headers", {}).update(_LOCATION)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema()
    return document_idempotency(doc)
