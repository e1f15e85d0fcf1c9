"""schemathesis over the OpenAPI document: no server error, and every answer as documented.

Every operation is fuzzed (schemathesis' generated path parameters, query strings and bodies),
each generated request sent four times: with an agent's and with Alice's token, once with the
generated path parameters and once with Alice's real objects in their place (so requests reach
past the 404s into the services). Checks, in two runs so that an
undocumented status cannot hide a server error: ``not_a_server_error``,
``response_schema_conformance`` and ``content_type_conformance``; then
``status_code_conformance`` (every status answered is in the document).
Derandomized and small (``MAX_EXAMPLES`` per operation), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import tempfile
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from refundry.api.app import create_app
from refundry.settings import Settings
from tests.api.conftest import AGENT, ALICE, SECRET, World, bearer

MAX_EXAMPLES = 12

# Operations fuzzed only for their refusal of unsigned bodies: a valid request needs the
# HMAC signature over the raw body (Refundry-Signature), which generated data cannot carry;
# signed webhooks are covered by the routes' own tests. Their 401s are still checked here.
SIGNED_WEBHOOKS = {("POST", "/v1/webhooks/gateway"), ("POST", "/v1/webhooks/logistics")}

# Two runs per operation, so a missing status in the document does not hide a server error.
CONFORMANCE = [not_a_server_error, response_schema_conformance, content_type_conformance]
DOCUMENTED_STATUS = [status_code_conformance]


def _operations() -> list[tuple[str, str]]:
    """(METHOD, path) of every operation, read at collection from an app on a scratch file."""
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(
            Settings(database_url=f"sqlite:///{tmp}/unused.sqlite", secret=SECRET, dev=True),
            schema_check=False,
        )
        loaded = schemathesis.openapi.from_asgi("/openapi.json", app)
        return sorted((r.ok().method.upper(), r.ok().path) for r in loaded.get_all_operations())


@pytest.mark.parametrize(
    "checks",
    [pytest.param(CONFORMANCE, id="conformance"), pytest.param(DOCUMENTED_STATUS, id="status")],
)
@pytest.mark.parametrize(
    ("method", "path"), [pytest.param(m, p, id=f"{m} {p}") for m, p in _operations()]
)
def test_api_conforms_to_its_schema(
    module_world: World, method: str, path: str, checks: list[Any]
) -> None:
    loaded = schemathesis.openapi.from_asgi("/openapi.json", module_world.app)
    operation = loaded[path][method]
    signed = (method, path) in SIGNED_WEBHOOKS
    ids = module_world.ids()

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Any) -> None:
        generated = dict(case.path_parameters or {})
        real = {name: str(ids[name]) for name in generated if name in ids}
        for path_parameters in (generated, {**generated, **real}):
            case.path_parameters = path_parameters
            for headers in (bearer("agent", AGENT), bearer("customer", ALICE)):
                case.call_and_validate(headers={} if signed else headers, checks=checks)
            if not real:
                break

    fuzz()
