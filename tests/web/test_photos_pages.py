"""The cases' photos on the pages over HTTP (TestClient), on SQLite and PostgreSQL: photos
attached on the request form go through "check your answers" (and would through the code
step) as signed references and are the case's from its opening; the customer's case page
shows them and takes more; the merchant's inspection takes photos with a failed result; the
desk's case page shows the evidence. Strangers get 404, a refused photo changes nothing."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from refundry.adapters.photos import MemoryPhotoStorage
from refundry.services.cases.photos import case_photos
from tests.api.conftest import db_snapshot, snapshot_diff
from tests.photo_files import JPEG, png
from tests.web.conftest import OTHER, THRESHOLD, Shop, csrf_of, signed_in
from tests.web.test_desk import DESK, add_agent, desk_sign_in
from tests.web.test_merchant import MERCHANT_NAME, add_merchants, returned_case

ANSWERS = {"units.X": "0", "units.Y": "1", "reason": "quality_issue", "kind": "refund_only"}
SVG = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"


def _memory(shop: Shop) -> MemoryPhotoStorage:
    storage = MemoryPhotoStorage()
    shop.app.state.ctx.runtime.photos = storage
    return storage


def _preview(client: TestClient, files: list[tuple[str, Any]]) -> Any:
    form = client.get(f"/orders/{THRESHOLD}/request?line=Y")
    assert 'enctype="multipart/form-data"' in form.text
    assert 'type="file" id="photos" name="photos"' in form.text
    return client.post(
        f"/orders/{THRESHOLD}/request/preview",
        data={**ANSWERS, "csrf_token": csrf_of(form.text)},
        files=files,
    )


def _hidden(html: str, name: str) -> list[str]:
    return re.findall(rf'name="{name}" value="([^"]*)"', html)


def test_photos_attached_on_the_request_form_are_the_cases_from_its_opening(
    shop: Shop,
) -> None:
    storage = _memory(shop)
    client = signed_in(shop.client())
    shot = png(rgb=(0, 128, 0))
    preview = _preview(client, [("photos", ("a.png", shot, "image/png"))])
    assert preview.status_code == 200, preview.text
    assert '<dd id="photo-count">1 attached</dd>' in preview.text
    (ref,) = _hidden(preview.text, "photo")
    assert len(storage.files) == 1  # stored at this step, held by no case yet
    done = client.post(
        f"/orders/{THRESHOLD}/request/submit",
        data={**ANSWERS, "description": "", "photo": ref, "csrf_token": csrf_of(preview.text)},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    case_id = done.headers["location"].split("/")[2].split("?")[0]
    (photo,) = case_photos(shop.engine, case_id, DESK)
    assert (photo.kind, photo.content_type, photo.size) == ("customer", "image/png", len(shot))
    page = client.get(f"/cases/{case_id}")
    url = f"/cases/{case_id}/photos/{photo.id}"
    assert f'<img src="{url}" alt="Customer\'s photo 1"' in page.text
    got = client.get(url)
    assert (got.status_code, got.content, got.headers["content-type"]) == (200, shot, "image/png")
    assert got.headers["content-security-policy"] == "default-src 'none'"
    stranger = signed_in(shop.client(), OTHER)
    assert stranger.get(url).status_code == 404


def test_a_reference_made_up_or_taken_from_another_customer_is_refused(shop: Shop) -> None:
    _memory(shop)
    client = signed_in(shop.client())
    preview = _preview(client, [("photos", ("a.png", png(), "image/png"))])
    (ref,) = _hidden(preview.text, "photo")
    other = signed_in(shop.client(), OTHER)
    before = db_snapshot(shop.engine)
    for who, sent in ((client, ref[:-4] + "0000"), (other, ref)):
        page = who.get(f"/orders/{THRESHOLD}/request")
        got = who.post(
            f"/orders/{THRESHOLD}/request/submit",
            data={**ANSWERS, "photo": sent, "csrf_token": csrf_of(page.text)},
        )
        assert got.status_code in (404, 422), got.text  # Bob: not his order at all
    assert snapshot_diff(before, db_snapshot(shop.engine)) == ""


def test_a_picture_that_is_not_one_is_refused_on_the_form_and_nothing_is_stored(
    shop: Shop,
) -> None:
    storage = _memory(shop)
    client = signed_in(shop.client())
    before = db_snapshot(shop.engine)
    got = _preview(client, [("photos", ("cat.png", SVG, "image/png"))])
    assert got.status_code == 422
    assert "Photos must be JPEG, PNG or WebP pictures" in got.text
    assert storage.files == {}
    assert snapshot_diff(before, db_snapshot(shop.engine)) == ""


def test_a_merchant_fails_an_inspection_with_photos_and_the_desk_sees_the_evidence(
    shop: Shop,
) -> None:
    _memory(shop)
    add_merchants(shop)
    add_agent(shop)
    case_id = returned_case(shop)
    merchant = shop.client()
    desk_sign_in(merchant, name=MERCHANT_NAME)
    page = f"/merchant/cases/{case_id}"
    merchant.post(f"{page}/receive", data={"csrf_token": csrf_of(merchant.get(page).text)})
    form = merchant.get(page).text
    assert 'id="inspect-photos" name="photos"' in form
    before = db_snapshot(shop.engine)
    refused = merchant.post(
        f"{page}/inspect",
        data={"result": "fail", "reason": "scratched", "csrf_token": csrf_of(form)},
        files=[("photos", ("x.png", SVG, "image/png"))],
    )
    assert refused.status_code == 415 and "This was refused; nothing changed" in refused.text
    assert snapshot_diff(before, db_snapshot(shop.engine)) == ""
    done = merchant.post(
        f"{page}/inspect",
        data={"result": "fail", "reason": "scratched", "csrf_token": csrf_of(form)},
        files=[("photos", ("a.png", png(), "image/png")), ("photos", ("b.jpg", JPEG, "x/y"))],
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    shots = case_photos(shop.engine, case_id, DESK)
    assert sorted((p.kind, p.content_type) for p in shots) == [
        ("inspection", "image/jpeg"),
        ("inspection", "image/png"),
    ]
    agent = shop.client()
    desk_sign_in(agent)
    desk = agent.get(f"/desk/cases/{case_id}").text
    evidence = desk.split('<section aria-labelledby="evidence-heading" id="evidence">')[1]
    evidence = evidence.split("</section>")[0]
    assert "Photos of the inspection" in evidence
    for p in shots:
        assert f'src="/cases/{case_id}/photos/{p.id}"' in evidence
    (shown,) = [p for p in shots if p.content_type == "image/png"]
    assert agent.get(f"/cases/{case_id}/photos/{shown.id}").content == png()


def test_the_customer_adds_photos_on_the_case_page(shop: Shop) -> None:
    _memory(shop)
    case_id = returned_case(shop)
    client = signed_in(shop.client())
    page = client.get(f"/cases/{case_id}").text
    assert f'action="/cases/{case_id}/photos" enctype="multipart/form-data"' in page
    added = client.post(
        f"/cases/{case_id}/photos",
        data={"csrf_token": csrf_of(page)},
        files=[("photos", ("a.png", png(), "image/png"))],
        follow_redirects=False,
    )
    assert (added.status_code, added.headers["location"]) == (303, f"/cases/{case_id}?photos=1")
    assert "Your photos were added." in client.get(added.headers["location"]).text
    refused = client.post(
        f"/cases/{case_id}/photos",
        data={"csrf_token": csrf_of(page)},
        files=[("photos", ("a.png", SVG, "image/png"))],
    )
    assert refused.status_code == 415
    assert "Photos must be JPEG, PNG or WebP pictures" in refused.text
    no_token = client.post(
        f"/cases/{case_id}/photos", files=[("photos", ("a.png", png(), "image/png"))]
    )
    assert no_token.status_code == 403
    assert len(case_photos(shop.engine, case_id, DESK)) == 1
