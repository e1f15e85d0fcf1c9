"""Hostile text and numbers into every string and integer field of every operation (issue 16
point 3), at the HTTP level, on SQLite and PostgreSQL, as each role.

The operations and their fields are read from the OpenAPI document: every path parameter, query
parameter and body field (nested ones too, and the order document's own fields for
``POST /v1/orders``) whose type is a string or an integer. Hypothesis picks an operation, a
field, a role (or none) and a hostile value — lone surrogates, NUL and other control characters,
very long strings, huge and negative integers, a value of the other type, or bytes that are not
UTF-8 — and puts it in an otherwise plain request. Whatever the answer:

* it is never a server error (5xx);
* a refusal is problem+json whose ``code`` docs/errors.md lists and whose status the OpenAPI
  document lists for that operation;
* a refusal changes no table (every table's rows hashed before and after).

Derandomized, ``EXAMPLES`` per backend on one shared world (tests/api/conftest.py).
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select, text

from refundry.store.tables import metadata
from tests.api.conftest import ADMIN, AGENT, ALICE, M1, SECRET, World, _line, bearer, order_doc
from tests.test_error_codes import _documented

EXAMPLES = 250

TEXT = [
    "\ud800",
    "a\udfffb",
    "\x00",
    "ord\x00x",
    "\x01\x02\x03",
    "\x1b[31mred",
    "\x7f",
    "\u2028\u2029",
    "\ufeff",
    "",
    " ",
    "a" * 65,
    "長" * 2001,
    "a" * 20_000,
    "𝕏" * 70,
    "../../etc/passwd",
    "' OR 1=1 --",
    "%00",
    "\\u0000",
]
INTEGERS = [2**31, -(2**31) - 1, 2**63, -(2**63) - 1, 10**30, -1, 0, 2**31 - 1]
NOT_UTF8 = b"\xff\xfe\xc3("  # a marker: the bytes go into the body as they are
HOSTILE = st.sampled_from(TEXT) | st.sampled_from(INTEGERS) | st.just(NOT_UTF8)
ROLES = [("customer", ALICE), ("merchant", M1), ("agent", AGENT), ("admin", ADMIN), None]
# Refusals that write on purpose: a wrong one-time code counts towards the lock.
WRITING_REFUSALS = {"identity.code_wrong", "identity.locked"}
PLACEHOLDER = "\u0001not-utf8\u0001"
SIGNED = {"/v1/webhooks/gateway", "/v1/webhooks/logistics"}


def _resolve(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [_resolve(o, doc) for o in schema[key]]
            real = [o for o in options if o.get("type") != "null"]
            return real[0] if real else options[0]
    if "allOf" in schema:
        return _resolve(schema["allOf"][0], doc)
    return schema


def _sample(schema: dict[str, Any], doc: dict[str, Any]) -> Any:
    """A plain value of ``schema``: required properties only, the first enum value."""
    s = _resolve(schema, doc)
    if "enum" in s:
        return s["enum"][0]
    if "const" in s:
        return s["const"]
    kind = s.get("type")
    if kind == "object":
        props = s.get("properties", {})
        return {name: _sample(props[name], doc) for name in s.get("required", []) if name in props}
    if kind == "array":
        return [_sample(s["items"], doc)] if s.get("minItems", 0) > 0 else []
    if kind == "integer":
        return max(1, int(s.get("minimum", 1)))
    if kind == "boolean":
        return False
    if kind == "number":
        return 1
    return "x-plain-1"


def _leaves(
    schema: dict[str, Any], doc: dict[str, Any], path: tuple[Any, ...] = (), depth: int = 0
) -> list[tuple[Any, ...]]:
    """Paths to every string or integer field under ``schema``."""
    s = _resolve(schema, doc)
    kind = s.get("type")
    if kind == "object" and depth < 4:
        out = []
        for name, prop in s.get("properties", {}).items():
            out += _leaves(prop, doc, (*path, name), depth + 1)
        return out
    if kind == "array" and depth < 4:
        return _leaves(s["items"], doc, (*path, 0), depth + 1)
    if kind in ("string", "integer") or "enum" in s:
        return [path]
    return []


def _value_leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _value_leaves(v, (*path, k))]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in _value_leaves(v, (*path, i))]
    if isinstance(value, bool):
        return []
    return [path] if isinstance(value, (str, int)) else []


def _body_schema_at(schema: dict[str, Any], doc: dict[str, Any], path: tuple[Any, ...]) -> Any:
    s = _resolve(schema, doc)
    for step in path:
        s = _resolve(s["items"] if isinstance(step, int) else s["properties"][step], doc)
    return s


def _put(body: Any, path: tuple[Any, ...], value: Any, schema: Any, doc: dict[str, Any]) -> Any:
    """``body`` with ``value`` at ``path``, creating the containers on the way."""
    body = copy.deepcopy(body)
    node = body
    for i, step in enumerate(path[:-1]):
        here = _body_schema_at(schema, doc, path[: i + 1]) if schema else None
        if isinstance(step, int):
            if not node:
                node.append(_sample(here, doc) if here else {})
            node = node[0]
        else:
            if step not in node or not isinstance(node[step], (dict, list)):
                node[step] = _sample(here, doc) if here else {}
            node = node[step]
    last = path[-1]
    if isinstance(last, int):
        if node:
            node[0] = value
        else:
            node.append(value)
    else:
        node[last] = value
    return body


def _operations(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every (operation, field) there is to fuzz."""
    targets = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if path in SIGNED:
                continue
            params = op.get("parameters", [])
            base: Any = None
            schema = None
            content = op.get("requestBody", {}).get("content", {}).get("application/json")
            if content:
                schema = content["schema"]
                base = _sample(schema, doc)
            leaves: list[tuple[str, Any]] = []
            for p in params:
                if p["in"] in ("path", "query"):
                    leaves.append((p["in"], p["name"]))
            if path == "/v1/orders" and method == "post":
                base = {"order": order_doc("ord-fuzz", "cust-fuzz", [_line("ln-f", M1, 1000)])}
                leaves += [("body", leaf) for leaf in _value_leaves(base)]
                schema = None
            elif schema is not None:
                leaves += [("body", leaf) for leaf in _leaves(schema, doc)]
            for where, name in leaves:
                targets.append(
                    {
                        "method": method.upper(),
                        "path": path,
                        "params": params,
                        "base": base,
                        "schema": schema,
                        "where": where,
                        "name": name,
                        "statuses": {int(s) for s in op.get("responses", {}) if s.isdigit()},
                    }
                )
    return targets


def _encode(value: Any) -> str:
    if isinstance(value, bytes):
        return "".join(f"%{b:02X}" for b in value)
    raw = str(value).encode("utf-8", "surrogatepass")
    return quote(raw, safe="")


def _snapshot(engine: Engine) -> dict[str, str]:
    out = {}
    with engine.connect() as conn:
        for name, table in sorted(metadata.tables.items()):
            rows = sorted(repr(tuple(r)) for r in conn.execute(select(table)))
            out[name] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
        out["alembic_version"] = str(conn.execute(text("SELECT * FROM alembic_version")).all())
    return out


def test_hostile_values_in_every_field_are_refused_cleanly(module_world: World) -> None:
    world = module_world
    doc = world.client.get("/openapi.json").json()
    targets = _operations(doc)
    assert len({(t["method"], t["path"]) for t in targets}) >= 20  # every operation with a field
    ids = world.ids()
    documented = _documented()

    @given(
        target=st.sampled_from(targets),
        value=HOSTILE,
        role=st.sampled_from(ROLES),
    )
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(target: dict[str, Any], value: Any, role: tuple[str, str] | None) -> None:
        path = target["path"]
        query: list[str] = []
        for p in target["params"]:
            is_target = target["where"] == p["in"] and target["name"] == p["name"]
            if p["in"] == "path":
                plain = ids.get(p["name"], "x-plain-1")
                path = path.replace("{" + p["name"] + "}", _encode(value if is_target else plain))
            elif p["in"] == "query" and is_target:
                query.append(f"{p['name']}={_encode(value)}")
        url = path + ("?" + "&".join(query) if query else "")
        body: bytes | None = None
        if target["base"] is not None:
            doc_body = target["base"]
            if target["where"] == "body":
                hostile = PLACEHOLDER if isinstance(value, bytes) else value
                doc_body = _put(doc_body, target["name"], hostile, target["schema"], doc)
            body = json.dumps(doc_body).encode()  # ASCII: a lone surrogate goes as \\ud800
            if isinstance(value, bytes):
                body = body.replace(json.dumps(PLACEHOLDER).encode(), b'"' + value + b'"')
        headers = {"content-type": "application/json"}
        if role is not None:
            headers |= bearer(*role, secret=SECRET)
        before = _snapshot(world.engine)
        r = world.client.request(target["method"], url, content=body, headers=headers)
        where = f"{target['method']} {url[:120]} {target['where']}:{target['name']} {role}"
        assert r.status_code < 500, f"{where}: {r.status_code} {r.text[:300]}"
        if r.status_code < 400:
            return
        assert r.headers["content-type"] == "application/problem+json", where
        code = r.json()["code"]
        assert code in documented, f"{where}: {code} is not in docs/errors.md"
        assert r.status_code in target["statuses"], (
            f"{where}: {r.status_code} {code} is not in the OpenAPI document"
        )
        if code not in WRITING_REFUSALS:
            after = _snapshot(world.engine)
            changed = [t for t in before if before[t] != after.get(t)]
            assert not changed, f"{where}: {r.status_code} {code} changed {changed}"

    fuzz()
