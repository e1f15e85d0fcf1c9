"""OneHopRoute answers an endpoint's model as it stands (refundry/api/routing.py): the bytes are
FastAPI's own — the model dumped, validated again and written by its JSON response — for the
answers the routes give, on SQLite and PostgreSQL; a route that sets its status on a
``Response`` keeps it."""

from __future__ import annotations

import inspect
import json
from typing import Any

from fastapi import Response
from pydantic import BaseModel

from refundry.api.money import money_context
from refundry.api.routing import answers_of
from refundry.api.schemas_cases import CaseDetail, CaseList, PlanView
from tests.api.conftest import (
    ADMIN,
    AGENT,
    ALICE,
    ALICE_MIXED,
    LINE_ALICE_M1,
    World,
    bearer,
    order_doc,
)

AS_AGENT = bearer("agent", AGENT)


def _as_fastapi_writes_it(model: type[BaseModel], body: bytes) -> bytes:
    """What FastAPI answers for an endpoint returning the model ``body`` is the JSON of."""
    returned = model.model_validate_json(body, context=money_context(None))
    again = model.model_validate(returned.model_dump(by_alias=True), context=money_context(None))
    content = again.model_dump(mode="json", by_alias=True)
    text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.encode("utf-8")


def test_the_answers_are_fastapis_own_bytes(world: World) -> None:
    ask: dict[str, Any] = {"lines": [{"line_id": LINE_ALICE_M1, "quantity": 1}]}
    ask |= {"reason": "quality_issue", "kind": "refund_only"}
    for model, answer in (
        (CaseList, world.client.get("/v1/cases", headers=AS_AGENT)),
        (CaseList, world.client.get("/v1/cases", headers=bearer("customer", ALICE))),
        (CaseDetail, world.client.get(f"/v1/cases/{world.case_alice_mixed}", headers=AS_AGENT)),
        (
            PlanView,
            world.client.post(
                f"/v1/orders/{ALICE_MIXED}/refund-preview", headers=AS_AGENT, json=ask
            ),
        ),
    ):
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/json"
        assert answer.content == _as_fastapi_writes_it(model, answer.content), model.__name__
        assert "x-request-id" in answer.headers


def test_a_route_that_sets_its_status_is_answered_by_fastapi(world: World) -> None:
    line = {"id": "ln-r", "sku": "S", "title": "T", "merchant_id": "m-1", "quantity": 1}
    doc = order_doc("ord-routing", ALICE, [{**line, "unit_price": 1000}])
    shop = bearer("admin", ADMIN)
    first = world.client.post("/v1/orders", headers=shop, json={"order": doc})
    again = world.client.post("/v1/orders", headers=shop, json={"order": doc})
    assert first.status_code == 201, first.text  # the route's status
    assert again.status_code == 200, again.text  # set on its Response: the same order again
    assert again.headers["location"] == "/v1/orders/ord-routing"
    assert again.json() == first.json()


def test_only_a_plain_model_route_is_answered_as_it_stands() -> None:
    def plain() -> None: ...

    def with_response(response: Response) -> None: ...

    assert (
        answers_of(inspect.signature(plain, eval_str=True), {"response_model": CaseList})
        is not None
    )
    assert (
        answers_of(inspect.signature(plain, eval_str=True), {"response_model": CaseList}).status
        == 200
    )  # type: ignore[union-attr]
    created = answers_of(
        inspect.signature(plain, eval_str=True), {"response_model": CaseList, "status_code": 201}
    )
    assert created is not None and created.status == 201
    assert (
        answers_of(inspect.signature(with_response, eval_str=True), {"response_model": CaseList})
        is None
    )
    assert (
        answers_of(inspect.signature(plain, eval_str=True), {"response_model": list[CaseList]})
        is None
    )
    shaped = {"response_model": CaseList, "response_model_exclude_none": True}
    assert answers_of(inspect.signature(plain, eval_str=True), shaped) is None
