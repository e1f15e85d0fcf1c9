"""The case list reads a page of cases with a fixed number of queries (issue 15 point 3: it
read each case's transitions and refunds apart, ~2 queries a case), and each listed case's
refunds are the ones its own view shows; on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import event

from tests.api.conftest import ADMIN, AGENT, M1, World, bearer, order_doc

AS_AGENT = bearer("agent", AGENT)
CAROL = "cust-carol"


def _small_refund_case(world: World, order_id: str) -> None:
    """A case the rules approve at once (refund only, under the small-amount rule's 100.00),
    so it names its refund."""
    line = {"id": "ln-1", "sku": "SKU-1", "title": "Cup", "merchant_id": M1, "quantity": 1}
    doc = order_doc(order_id, CAROL, [{**line, "unit_price": 3000}])
    shop = bearer("admin", ADMIN)
    assert world.client.post("/v1/orders", headers=shop, json={"order": doc}).status_code == 201
    ask = {"order_id": order_id, "lines": [{"line_id": "ln-1", "quantity": 1}]}
    ask |= {"reason": "quality_issue", "kind": "refund_only"}
    opened = world.client.post("/v1/cases", headers=bearer("customer", CAROL), json=ask)
    assert opened.status_code == 201, opened.text
    assert opened.json()["refund_id"], opened.json()


def _listed(world: World, headers: dict[str, str]) -> tuple[list[dict[str, object]], int]:
    seen: list[str] = []

    def record(conn: object, cursor: object, sql: str, *args: object) -> None:
        seen.append(sql)

    event.listen(world.engine, "before_cursor_execute", record)
    try:
        answer = world.client.get("/v1/cases", headers=headers)
    finally:
        event.remove(world.engine, "before_cursor_execute", record)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, object]] = answer.json()["items"]
    return items, len(seen)


def test_a_page_of_cases_is_read_with_a_fixed_number_of_queries(world: World) -> None:
    for n in range(2):
        _small_refund_case(world, f"ord-carol-{n}")
    for headers in (AS_AGENT, bearer("merchant", M1)):
        items, queries = _listed(world, headers)
        assert len(items) >= 3
        assert sum(1 for item in items if item["refunds"]) >= 2
        # the cases, their transitions naming refunds, the refunds; a merchant's own lines
        # are still read per case (one query each)
        extra = len(items) if headers is not AS_AGENT else 0
        assert queries <= 3 + extra, queries
        for item in items:
            alone = world.client.get(f"/v1/cases/{item['id']}", headers=headers).json()
            assert item["refunds"] == alone["refunds"], item["id"]
            assert item == {k: alone[k] for k in item}, item["id"]
