"""Passkeys over HTTP (TestClient), on SQLite and PostgreSQL: register, list and remove them
under /v1/identity/passkeys, ask for options bound to one submission and open the case with
the answer (POST /v1/cases ``passkey``) instead of a code; a wrong answer is a problem+json
with its own code and changes nothing. The answers are a software passkey's
(tests/soft_authenticator.py)."""

from __future__ import annotations

from typing import Any

from refundry.demo import worked_examples as ex
from tests.api.test_orders_cases import (
    CUSTOMER,
    CUSTOMER_B,
    MERCHANT_1,
    Shop,
    case_body,
    line,
    make_shop,
    shop,
    snapshot,
)
from tests.soft_authenticator import SoftPasskey

__all__ = ["make_shop", "shop"]  # the fixtures, used by name

TWO = ex.order("o-two", [line("T", 30000, quantity=2)], 60000)  # one unit needs the check
ORIGIN = "http://localhost:8000"  # the settings' default relying party


def register(shop: Shop, who: dict[str, str] = CUSTOMER) -> SoftPasskey:
    key = SoftPasskey(rp_id="localhost", origin=ORIGIN)
    options = shop.client.post("/v1/identity/passkeys/registration-options", headers=who)
    assert options.status_code == 200, options.json()
    assert options.json()["options"]["authenticatorSelection"]["userVerification"] == "required"
    made = shop.client.post(
        "/v1/identity/passkeys",
        json={"credential": key.create(options.json()["options"]), "name": "phone"},
        headers=who,
    )
    assert made.status_code == 201, made.json()
    assert made.json()["id"] == key.id
    return key


def options_for(shop: Shop, body: dict[str, Any]) -> dict[str, Any]:
    fields = {k: body[k] for k in ("order_id", "lines", "reason", "kind")}
    r = shop.client.post("/v1/identity/passkeys/assertion-options", json=fields, headers=CUSTOMER)
    assert r.status_code == 200, r.json()
    assert r.json()["expires_in_seconds"] == 120
    options: dict[str, Any] = r.json()["options"]
    return options


def refused(shop: Shop, body: dict[str, Any], answer: Any, code: str) -> None:
    before = snapshot(shop.engine)
    r = shop.client.post("/v1/cases", json={**body, "passkey": answer}, headers=CUSTOMER)
    assert (r.status_code, r.json()["code"]) == (422, code)
    assert r.headers["content-type"].startswith("application/problem+json")
    assert snapshot(shop.engine) == before


def test_a_case_is_opened_with_a_passkey_and_wrong_answers_are_refused(shop: Shop) -> None:
    shop.ingest(TWO)
    key = register(shop)
    listed = shop.client.get("/v1/identity/passkeys", headers=CUSTOMER).json()["items"]
    assert [(p["id"], p["name"], p["last_used_at"]) for p in listed] == [(key.id, "phone", None)]

    body = case_body("o-two", "T")
    no_check = shop.client.post("/v1/cases", json=body, headers=CUSTOMER)
    assert (no_check.status_code, no_check.json()["code"]) == (422, "identity.code_required")

    answer = key.get(options_for(shop, body))
    refused(
        shop, {**body, "reason": "quality_issue"}, answer, "identity.passkey_challenge_mismatch"
    )
    opened = shop.client.post("/v1/cases", json={**body, "passkey": answer}, headers=CUSTOMER)
    assert opened.status_code == 201, opened.json()
    assert shop.sms.sent == []  # no code was texted

    refused(shop, body, answer, "identity.passkey_challenge_used")  # the same answer again
    refused(
        shop,
        body,
        key.get(options_for(shop, body), origin="https://evil.example"),
        "identity.passkey_origin",
    )
    gone = shop.client.delete(f"/v1/identity/passkeys/{key.id}", headers=CUSTOMER)
    assert gone.status_code == 204
    refused(shop, body, key.get({"challenge": "AAAA"}), "identity.passkey_challenge_unknown")
    no_key = shop.client.post(
        "/v1/identity/passkeys/assertion-options",
        json={k: body[k] for k in ("order_id", "lines", "reason", "kind")},
        headers=CUSTOMER,
    )
    assert (no_key.status_code, no_key.json()["code"]) == (422, "identity.no_passkey")


def test_a_passkey_removed_after_its_options_is_refused(shop: Shop) -> None:
    shop.ingest(TWO)
    key = register(shop)
    body = case_body("o-two", "T")
    options = options_for(shop, body)
    assert (
        shop.client.delete(f"/v1/identity/passkeys/{key.id}", headers=CUSTOMER).status_code == 204
    )
    refused(shop, body, key.get(options), "identity.passkey_unknown")


def test_passkeys_are_their_owners_only(shop: Shop) -> None:
    key = register(shop)
    other = shop.client.delete(f"/v1/identity/passkeys/{key.id}", headers=CUSTOMER_B)
    assert (other.status_code, other.json()["code"]) == (404, "identity.passkey_not_found")
    assert shop.client.get("/v1/identity/passkeys", headers=CUSTOMER_B).json()["items"] == []
    merchant = shop.client.post(
        "/v1/identity/passkeys/assertion-options",
        json={k: v for k, v in case_body("o-two", "T").items()},
        headers=MERCHANT_1,
    )
    assert (merchant.status_code, merchant.json()["code"]) == (403, "auth.forbidden")
    bad = shop.client.post(
        "/v1/identity/passkeys", json={"credential": {"id": "x"}}, headers=CUSTOMER
    )
    assert (bad.status_code, bad.json()["code"]) == (422, "request.invalid")
