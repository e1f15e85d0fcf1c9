"""A case's photos over the API (TestClient), on SQLite and PostgreSQL: added as multipart by
the case's customer, listed and read back as the type found in their bytes with headers that
keep the browser from doing anything else with them; refusals by type, size and count are
problem+json with their codes and change nothing; a body of photos may be larger than the
API's JSON limit, on the upload path only."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from refundry.domain.photos import PhotoLimits
from tests.api.conftest import ALICE, BOB, M1, M2, World, bearer, db_snapshot, snapshot_diff
from tests.photo_files import JPEG, png

ALICE_TOKEN = bearer("customer", ALICE)


def _add(world: World, case_id: str, data: bytes, headers: dict[str, str], **kw: str) -> Any:
    sent = (kw.get("name", "photo.png"), data, kw.get("type", "image/png"))
    return world.client.post(f"/v1/cases/{case_id}/photos", headers=headers, files={"photo": sent})


def test_the_customer_adds_a_photo_and_reads_it_back_as_its_own_type(world: World) -> None:
    case_id = world.case_alice_m1
    data = png(rgb=(10, 20, 30))
    # the part says text/html and the name .html: the bytes say PNG, and PNG it is
    r = _add(world, case_id, data, ALICE_TOKEN, name="x.html", type="text/html")
    assert r.status_code == 201, r.text
    added = r.json()
    assert r.headers["location"] == added["url"] == f"/v1/cases/{case_id}/photos/{added['id']}"
    assert (added["kind"], added["content_type"], added["size"], added["by"]) == (
        "customer",
        "image/png",
        len(data),
        "customer",
    )
    assert added["sha256"] == hashlib.sha256(data).hexdigest()
    listed = world.client.get(f"/v1/cases/{case_id}/photos", headers=ALICE_TOKEN).json()
    assert [p["id"] for p in listed["items"]] == [added["id"]]
    got = world.client.get(added["url"], headers=ALICE_TOKEN)
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-type"] == "image/png"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["content-disposition"] == f'inline; filename="{added["id"]}.png"'
    assert got.headers["content-security-policy"] == "default-src 'none'"


def test_merchants_read_a_mixed_cases_photos_but_only_the_desk_adds_to_it(world: World) -> None:
    case_id, photo_id = world.case_alice_mixed, world.photo_alice
    for merchant in (M1, M2):
        got = world.client.get(
            f"/v1/cases/{case_id}/photos/{photo_id}", headers=bearer("merchant", merchant)
        )
        assert got.status_code == 200 and got.content == png()
    before = db_snapshot(world.engine)
    r = _add(world, case_id, JPEG, bearer("merchant", M1))
    assert (r.status_code, r.json()["code"]) == (403, "case.not_your_lines")
    assert snapshot_diff(before, db_snapshot(world.engine)) == ""
    r = _add(world, case_id, JPEG, bearer("agent", "agent-li"))
    assert r.status_code == 201 and r.json()["kind"] == "inspection"


def test_bob_gets_404_on_alices_photo(world: World) -> None:
    url = f"/v1/cases/{world.case_alice_mixed}/photos/{world.photo_alice}"
    r = world.client.get(url, headers=bearer("customer", BOB))
    assert (r.status_code, r.json()["code"]) == (404, "case.not_found")
    r = world.client.get(
        f"/v1/cases/{world.case_bob}/photos/{world.photo_alice}", headers=bearer("customer", BOB)
    )
    assert (r.status_code, r.json()["code"]) == (404, "photo.not_found")  # not Bob's case's


def test_refused_photos_are_problems_with_their_codes_and_change_nothing(world: World) -> None:
    ctx = world.app.state.ctx
    ctx.desk = dataclasses.replace(
        ctx.desk, photo_limits=PhotoLimits(max_bytes=2048, max_per_case=2)
    )
    case_id = world.case_alice_m1
    assert _add(world, case_id, png(), ALICE_TOKEN).status_code == 201
    svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"
    for data, status, code in (
        (svg, 415, "photo.unsupported_type"),
        (JPEG + b"\x00" * 2048, 413, "photo.too_large"),
        (b"", 422, "photo.empty"),
    ):
        before = db_snapshot(world.engine)
        r = _add(world, case_id, data, ALICE_TOKEN)
        assert (r.status_code, r.json()["code"]) == (status, code)
        assert r.headers["content-type"] == "application/problem+json"
        assert snapshot_diff(before, db_snapshot(world.engine)) == ""
    assert _add(world, case_id, JPEG, ALICE_TOKEN).status_code == 201
    before = db_snapshot(world.engine)
    r = _add(world, case_id, png(rgb=(9, 9, 9)), ALICE_TOKEN)
    assert (r.status_code, r.json()["code"]) == (409, "photo.too_many")
    assert snapshot_diff(before, db_snapshot(world.engine)) == ""


def test_a_photo_body_may_exceed_the_json_limit_on_the_upload_path_only(world: World) -> None:
    big = png() + b"\x00" * (300 * 1024)  # over max_body_bytes (256 KiB), under 8 MiB
    r = _add(world, world.case_alice_m1, big, ALICE_TOKEN)
    # taken; what follows the PNG's end chunk is not kept (domain/photos.py strip_metadata)
    assert r.status_code == 201 and r.json()["size"] == len(png())
    r = world.client.post(
        f"/v1/cases/{world.case_alice_m1}/cancel", headers=ALICE_TOKEN, content=big
    )
    assert (r.status_code, r.json()["code"]) == (413, "request.too_large")
