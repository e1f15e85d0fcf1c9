"""The cases' photos through the services, on SQLite and PostgreSQL: the customer's with the
request (counted as evidence by the automatic review), added later, the inspection's with its
result; who may add and see them; refusals that store and change nothing; the local-file
storage."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from refundry.adapters.photos import LocalPhotoStorage, MemoryPhotoStorage
from refundry.domain.errors import RefundryError
from refundry.domain.photos import PhotoLimits
from refundry.services.cases.actions import approve, inspect, receive, ship
from refundry.services.cases.opening import open_case
from refundry.services.cases.photos import (
    add_photos,
    case_photos,
    check_uploads,
    read_photo,
    stage_photos,
    staged_photo,
    store_photos,
)
from refundry.services.cases.process import Actor
from refundry.services.uow import UnitOfWork
from refundry.store.tables import audit_log, photos
from tests.api.conftest import db_snapshot, snapshot_diff
from tests.photo_files import JPEG, WEBP, png
from tests.services.case_world import AGENT, CUSTOMER, MERCHANT, request, world_for

STRANGER = Actor("customer", "c-stranger")
OTHER_MERCHANT = Actor("merchant", "m-9")


@pytest.fixture()
def world(engine: Engine) -> dict[str, Any]:
    made = world_for(engine)
    made["storage"] = MemoryPhotoStorage()
    return made


def _rows(engine: Engine, case_id: str) -> list[Any]:
    with UnitOfWork(engine, readonly=True) as uow:
        return list(
            uow.conn.execute(
                select(photos).where(photos.c.case_id == case_id).order_by(photos.c.created_at)
            )
        )


def _audited(engine: Engine, case_id: str) -> list[dict[str, Any]]:
    with UnitOfWork(engine, readonly=True) as uow:
        found = uow.conn.execute(
            select(audit_log.c.data).where(audit_log.c.action == "case.photo_added")
        ).scalars()
        return [d for d in (json.loads(x) for x in found) if d.get("case_id") == case_id]


def _open_with(world: dict[str, Any], shots: list[bytes]) -> Any:
    desk, storage = world["desk"], world["storage"]
    refs = stage_photos(desk, storage, actor=CUSTOMER, uploads=shots)
    files = [staged_photo(desk.identity_secret, CUSTOMER, r) for r in refs]
    return open_case(
        desk,
        actor=CUSTOMER,
        now=world["clock"](),
        request=request("o-500-100", "X", reason="wrong_item", kind="refund_only"),
        photos=files,
    )


def test_the_requests_photos_are_the_cases_evidence_and_the_review_counts_them(
    world: dict[str, Any],
) -> None:
    shot = png()
    opened = _open_with(world, [shot])
    assert opened.review["rule"] == "wrong_item_with_photo"
    (row,) = _rows(world["engine"], opened.case_id)
    sha = hashlib.sha256(shot).hexdigest()
    assert (row.kind, row.customer_id, row.sha256, row.content_type, row.size) == (
        "customer",
        CUSTOMER.id,
        sha,
        "image/png",
        len(shot),
    )
    assert row.created_by == CUSTOMER.tag
    assert world["storage"].files[sha] == shot
    (entry,) = _audited(world["engine"], opened.case_id)
    assert (entry["photo_id"], entry["kind"], entry["sha256"]) == (row.id, "customer", sha)


def test_without_a_photo_the_evidence_rule_does_not_decide(world: dict[str, Any]) -> None:
    opened = _open_with(world, [])
    assert opened.review["rule"] != "wrong_item_with_photo"
    assert _rows(world["engine"], opened.case_id) == []


def test_a_staged_reference_is_the_customers_own(world: dict[str, Any]) -> None:
    desk = world["desk"]
    (ref,) = stage_photos(desk, world["storage"], actor=CUSTOMER, uploads=[JPEG])
    with pytest.raises(RefundryError) as other:
        staged_photo(desk.identity_secret, STRANGER, ref)
    forged = ref.replace(".jpg.", ".png.")
    with pytest.raises(RefundryError) as changed:
        staged_photo(desk.identity_secret, CUSTOMER, forged)
    assert (other.value.code, changed.value.code) == ("photo.invalid", "photo.invalid")


def _returned(world: dict[str, Any]) -> str:
    desk, now = world["desk"], world["clock"]()
    opened = open_case(desk, actor=CUSTOMER, now=now, request=request("o-500-100", "Y"))
    if opened.state == "under_review":
        approve(desk, opened.case_id, actor=AGENT, now=now)
    ship(desk, opened.case_id, actor=CUSTOMER, now=now, tracking_number="SF1")
    receive(desk, opened.case_id, actor=MERCHANT, now=now)
    return opened.case_id


def test_a_failed_inspection_holds_its_photos_and_everyone_on_the_case_sees_them(
    world: dict[str, Any],
) -> None:
    desk, storage, now = world["desk"], world["storage"], world["clock"]()
    case_id = _returned(world)
    add_photos(desk, storage, case_id, actor=CUSTOMER, now=now, uploads=[WEBP])
    shot = png(rgb=(0, 0, 255))
    # as the merchant's page does, before the inspection
    held = store_photos(storage, check_uploads([shot], desk.photo_limits))
    row = inspect(desk, case_id, actor=MERCHANT, now=now, result="fail", reason="used", photos=held)
    assert row.state == "rejected_after_inspection"
    for reader in (CUSTOMER, MERCHANT, AGENT):
        seen = case_photos(world["engine"], case_id, reader)
        assert [(p.kind, p.content_type) for p in seen] == [
            ("customer", "image/webp"),
            ("inspection", "image/png"),
        ]
        photo, data = read_photo(world["engine"], storage, case_id, seen[1].id, reader)
        assert (photo.kind, data) == ("inspection", shot)
    by_role = [p.by for p in case_photos(world["engine"], case_id, CUSTOMER)]
    by_desk = [p.by for p in case_photos(world["engine"], case_id, AGENT)]
    assert (by_role, by_desk) == (["customer", "merchant"], [CUSTOMER.tag, MERCHANT.tag])


def test_strangers_get_not_found_and_nothing_is_stored_or_changed(
    world: dict[str, Any],
) -> None:
    desk, storage, engine, now = world["desk"], world["storage"], world["engine"], world["clock"]()
    case_id = _returned(world)
    (added,) = add_photos(desk, storage, case_id, actor=CUSTOMER, now=now, uploads=[JPEG])
    before, kept = db_snapshot(engine), dict(storage.files)
    for who in (STRANGER, OTHER_MERCHANT):
        with pytest.raises(RefundryError) as refused:
            add_photos(desk, storage, case_id, actor=who, now=now, uploads=[png()])
        assert refused.value.code == "case.not_found"
        with pytest.raises(RefundryError) as unseen:
            read_photo(engine, storage, case_id, added.id, who)
        assert unseen.value.code == "case.not_found"
    with pytest.raises(RefundryError) as missing:
        read_photo(engine, storage, case_id, "ph_nope", CUSTOMER)
    assert missing.value.code == "photo.not_found"
    assert snapshot_diff(before, db_snapshot(engine)) == ""
    assert storage.files == kept


@pytest.mark.parametrize(
    ("uploads", "code"),
    [
        ([b"<svg onload=alert(1)>"], "photo.unsupported_type"),
        ([JPEG + b"\x00" * 2048], "photo.too_large"),
        ([], "photo.empty"),
        ([JPEG, WEBP, png()], "photo.too_many"),  # 1 held + 3 > 3
    ],
)
def test_a_refused_photo_stores_and_changes_nothing(
    world: dict[str, Any], uploads: list[bytes], code: str
) -> None:
    desk, engine, now = world["desk"], world["engine"], world["clock"]()
    small = type(desk)(
        desk.engine,
        desk.policy,
        desk.process,
        identity_secret=desk.identity_secret,
        photo_limits=PhotoLimits(max_bytes=1024, max_per_case=3),
    )
    storage = world["storage"]
    case_id = _returned(world)
    add_photos(small, storage, case_id, actor=CUSTOMER, now=now, uploads=[png(rgb=(1, 2, 3))])
    before, kept = db_snapshot(engine), dict(storage.files)
    with pytest.raises(RefundryError) as refused:
        add_photos(small, storage, case_id, actor=CUSTOMER, now=now, uploads=uploads)
    assert refused.value.code == code
    assert snapshot_diff(before, db_snapshot(engine)) == ""
    assert storage.files == kept


def test_the_count_is_per_kind(world: dict[str, Any]) -> None:
    desk, engine, now = world["desk"], world["engine"], world["clock"]()
    small = type(desk)(
        desk.engine, desk.policy, desk.process, photo_limits=PhotoLimits(max_per_case=1)
    )
    case_id = _returned(world)
    add_photos(small, world["storage"], case_id, actor=CUSTOMER, now=now, uploads=[JPEG])
    add_photos(small, world["storage"], case_id, actor=AGENT, now=now, uploads=[WEBP])
    with pytest.raises(RefundryError) as refused:
        add_photos(small, world["storage"], case_id, actor=CUSTOMER, now=now, uploads=[png()])
    assert refused.value.code == "photo.too_many"
    assert [r.kind for r in _rows(engine, case_id)] == ["customer", "inspection"]


def test_local_storage_keeps_files_by_hash_and_refuses_other_keys(tmp_path: Path) -> None:
    storage = LocalPhotoStorage(tmp_path / "photos")
    data = png()
    sha = hashlib.sha256(data).hexdigest()
    storage.put(sha, data)
    storage.put(sha, data)  # again: the same file
    assert (tmp_path / "photos" / sha[:2] / sha).read_bytes() == data
    assert storage.get(sha) == data
    assert storage.get("0" * 64) is None
    assert [p.name for p in (tmp_path / "photos" / sha[:2]).iterdir()] == [sha]  # no temp left
    for key in ("../../etc/passwd", "A" * 64, sha + "/x"):
        with pytest.raises(ValueError):
            storage.get(key)
