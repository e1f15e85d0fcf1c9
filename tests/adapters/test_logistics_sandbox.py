"""SandboxLogistics: bookings, idempotency, refusals, faults, the parcel's journey, threads."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from refundry.adapters.clock import ManualClock
from refundry.adapters.logistics import (
    LogisticsIdempotencyConflict,
    LogisticsProvider,
    LogisticsRefused,
    LogisticsTimeout,
    LogisticsUnavailable,
    ReturnBooking,
    ReturnTracking,
    TrackingEvent,
)
from refundry.adapters.logistics_sandbox import SandboxLogistics, SandboxReturn, s10_check_digit

from .conftest import START

PICKUP = timedelta(hours=4)
TRANSIT = timedelta(days=2)
HOME = "12 Rue des Lilas, 75011 Paris"
WAREHOUSE = "Returns dock 3, 69007 Lyon"
HUB = "sandbox-post sorting centre"
SEED_1 = ["RR295390834ZZ", "RR042382291ZZ", "RR703312655ZZ", "RR999211991ZZ", "RR815062175ZZ"]


def carrier(clock: ManualClock, seed: int = 1, **knobs: object) -> SandboxLogistics:
    knobs.setdefault("pickup_after", PICKUP)
    knobs.setdefault("transit_time", TRANSIT)
    return SandboxLogistics(clock, seed, **knobs)  # type: ignore[arg-type]


def book(
    logistics: LogisticsProvider,
    key: str,
    *,
    rma: str = "RMA-1",
    service: str = "prepaid_label",
    from_address: str = HOME,
    to_address: str = WAREHOUSE,
) -> ReturnBooking:
    return logistics.book_return(
        rma=rma, service=service, from_address=from_address, to_address=to_address, key=key
    )


def statuses(events: list[TrackingEvent] | tuple[TrackingEvent, ...]) -> list[str]:
    return [e.status for e in events]


@pytest.fixture
def logistics(clock: ManualClock) -> SandboxLogistics:
    return carrier(clock)


def test_the_sandbox_implements_the_protocol(logistics: SandboxLogistics) -> None:
    assert isinstance(logistics, LogisticsProvider)


def test_a_prepaid_label_is_booked_with_a_tracking_number_cost_and_label(
    logistics: SandboxLogistics,
) -> None:
    assert book(logistics, "k1") == ReturnBooking(
        carrier="sandbox-post",
        service="prepaid_label",
        tracking_number="RR295390834ZZ",
        cost=1000,
        label={
            "kind": "prepaid_label",
            "rma": "RMA-1",
            "url": "https://labels.sandbox-post.invalid/RR295390834ZZ.pdf",
            "drop_off_code": "591888",
        },
    )


def test_a_pickup_costs_its_base_cost_and_has_a_slot_the_next_morning(
    clock: ManualClock,
) -> None:
    logistics = carrier(clock, base_cost={"prepaid_label": 650, "pickup": 1990})
    booked = book(logistics, "k1", service="pickup")
    assert (booked.service, booked.cost) == ("pickup", 1990)
    assert booked.label == {
        "kind": "pickup",
        "rma": "RMA-1",
        "slot_start": "2024-06-02T09:00:00+00:00",
        "slot_end": "2024-06-02T13:00:00+00:00",
    }
    assert book(logistics, "k2").cost == 650


def test_tracking_numbers_come_from_the_seed_and_the_booking_order_only(
    clock: ManualClock,
) -> None:
    plain = carrier(clock)
    assert [book(plain, f"k{i}").tracking_number for i in range(5)] == SEED_1
    noisy = carrier(clock, duplicate_event_rate=0.7, reorder_events=True, timeout_rate=0.5)
    numbers = []
    for i in range(5):
        while True:
            try:
                numbers.append(book(noisy, f"k{i}").tracking_number)
                break
            except LogisticsTimeout:
                pass
    assert numbers == SEED_1
    assert book(carrier(clock, seed=2), "k0").tracking_number == "RR380545047ZZ"
    for number in SEED_1:
        assert int(number[10]) == s10_check_digit(number[2:10])


def test_the_s10_check_digit_matches_the_upu_example() -> None:
    assert s10_check_digit("47312482") == 9  # RR473124829GB in UPU S10
    assert s10_check_digit("00000000") == 5  # 11 - 0 → 5
    assert s10_check_digit("00000001") == 4
    with pytest.raises(ValueError):
        s10_check_digit("1234567")


def test_the_same_key_books_once_and_answers_the_same_booking(
    logistics: SandboxLogistics,
) -> None:
    first = book(logistics, "k1")
    assert {book(logistics, "k1") for _ in range(4)} == {first}
    assert [b.tracking_number for b in logistics.bookings] == ["RR295390834ZZ"]
    assert Counter(r.outcome for r in logistics.requests) == {"created": 1, "replayed": 4}


def test_a_key_reused_with_other_parameters_is_a_conflict_and_books_nothing(
    logistics: SandboxLogistics,
) -> None:
    book(logistics, "k1")
    with pytest.raises(LogisticsIdempotencyConflict) as err:
        book(logistics, "k1", service="pickup")
    assert err.value.code == "logistics.idempotency_conflict"
    assert len(logistics.bookings) == 1
    assert [r.outcome for r in logistics.requests] == ["created", "conflict"]


@pytest.mark.parametrize(
    ("changes", "reason", "field", "message"),
    [
        (
            {"from_address": "Farm 9, UNSERVED valley"},
            "address_not_served",
            "from_address",
            "sandbox-post does not serve 'Farm 9, UNSERVED valley'",
        ),
        (
            {"to_address": "UNSERVED island depot"},
            "address_not_served",
            "to_address",
            "sandbox-post does not serve 'UNSERVED island depot'",
        ),
        ({"from_address": "  "}, "address_invalid", "from_address", "from_address is empty"),
        (
            {"service": "courier"},
            "service_not_offered",
            "service",
            "'courier' is not offered (pickup, prepaid_label)",
        ),
    ],
)
def test_refusals_carry_the_carriers_reason_and_book_nothing(
    logistics: SandboxLogistics,
    changes: dict[str, str],
    reason: str,
    field: str,
    message: str,
) -> None:
    with pytest.raises(LogisticsRefused) as err:
        book(logistics, "k1", **changes)
    refused = err.value
    assert (refused.code, refused.reason, refused.field, refused.message) == (
        "logistics.refused",
        reason,
        field,
        message,
    )
    assert logistics.bookings == ()
    assert [(r.outcome, r.reason) for r in logistics.requests] == [("refused", reason)]


def test_a_service_missing_from_base_cost_is_not_offered(clock: ManualClock) -> None:
    labels_only = carrier(clock, base_cost={"prepaid_label": 1000})
    with pytest.raises(LogisticsRefused) as err:
        book(labels_only, "k1", service="pickup")
    assert err.value.reason == "service_not_offered"


def test_a_refusal_leaves_the_key_free_for_a_corrected_booking(
    logistics: SandboxLogistics,
) -> None:
    with pytest.raises(LogisticsRefused):
        book(logistics, "k1", from_address="UNSERVED hamlet")
    assert book(logistics, "k1").tracking_number == "RR295390834ZZ"
    assert [r.outcome for r in logistics.requests] == ["refused", "created"]


def test_a_timeout_before_the_carrier_books_nothing_and_a_retry_books(
    logistics: SandboxLogistics,
) -> None:
    logistics.inject("timeout")
    with pytest.raises(LogisticsTimeout) as err:
        book(logistics, "k1")
    assert err.value.code == "logistics.timeout"
    assert (logistics.bookings, logistics.requests) == ((), ())
    assert book(logistics, "k1").tracking_number == "RR295390834ZZ"


def test_a_lost_answer_after_booking_is_resolved_by_a_retry_with_the_same_key(
    logistics: SandboxLogistics,
) -> None:
    logistics.inject("book_then_time_out")
    with pytest.raises(LogisticsTimeout):
        book(logistics, "k1")
    assert [b.tracking_number for b in logistics.bookings] == ["RR295390834ZZ"]
    assert book(logistics, "k1").tracking_number == "RR295390834ZZ"
    assert len(logistics.bookings) == 1
    assert [r.outcome for r in logistics.requests] == ["created", "replayed"]


def test_unavailable_reaches_nothing(logistics: SandboxLogistics) -> None:
    logistics.inject("unavailable")
    with pytest.raises(LogisticsUnavailable) as err:
        book(logistics, "k1")
    assert (err.value.code, logistics.requests) == ("logistics.unavailable", ())


def test_timeout_rates_are_reproducible_from_the_seed(clock: ManualClock) -> None:
    def run() -> list[str]:
        flaky = carrier(clock, seed=5, timeout_rate=0.3, book_then_time_out=0.2)
        outcomes = []
        for i in range(12):
            try:
                book(flaky, f"k{i}")
                outcomes.append("ok")
            except LogisticsTimeout as exc:
                outcomes.append("lost" if "booked" in exc.message else "timeout")
        return outcomes

    first = run()
    assert first == run()
    assert Counter(first) == {"ok": 5, "timeout": 5, "lost": 2}


def test_label_created_is_due_at_booking_and_the_journey_waits_for_the_customer(
    logistics: SandboxLogistics, clock: ManualClock
) -> None:
    number = book(logistics, "k1").tracking_number
    assert logistics.pending_events() == (
        TrackingEvent("tev_000001", number, "label_created", START, None),
    )
    clock.advance(timedelta(days=5))
    assert statuses(logistics.pending_events()) == ["label_created"]
    assert logistics.bookings[0].status == "label_created"


def test_the_journey_falls_due_scan_by_scan_as_the_clock_moves(
    logistics: SandboxLogistics, clock: ManualClock
) -> None:
    number = book(logistics, "k1").tracking_number
    clock.advance(timedelta(hours=1))
    shipped = START + timedelta(hours=1)
    assert logistics.customer_ships(number) == shipped + PICKUP + TRANSIT
    got: list[TrackingEvent] = []
    assert logistics.deliver_due(got.append) == 1

    clock.advance(PICKUP - timedelta(microseconds=1))
    assert logistics.deliver_due(got.append) == 0
    clock.advance(timedelta(microseconds=1))
    assert logistics.deliver_due(got.append) == 1
    clock.advance(TRANSIT / 2)
    assert logistics.deliver_due(got.append) == 1
    assert logistics.track(number) is not None
    assert logistics.track(number).status == "in_transit"  # type: ignore[union-attr]
    clock.advance(TRANSIT / 2)
    assert logistics.deliver_due(got.append) == 1
    assert got == [
        TrackingEvent("tev_000001", number, "label_created", START, None),
        TrackingEvent("tev_000002", number, "picked_up", shipped + PICKUP, HOME),
        TrackingEvent("tev_000003", number, "in_transit", shipped + PICKUP + TRANSIT / 2, HUB),
        TrackingEvent("tev_000004", number, "delivered", shipped + PICKUP + TRANSIT, WAREHOUSE),
    ]
    assert logistics.track(number) == ReturnTracking(
        rma="RMA-1", booking=book(logistics, "k1"), status="delivered", events=tuple(got)
    )
    assert logistics.deliver_due(got.append) == 0


def test_a_journey_can_end_in_an_exception_at_the_destination(
    logistics: SandboxLogistics, clock: ManualClock
) -> None:
    number = book(logistics, "k1").tracking_number
    logistics.customer_ships(number, ending="exception")
    clock.advance(PICKUP + TRANSIT)
    got: list[TrackingEvent] = []
    logistics.deliver_due(got.append)
    assert statuses(got) == ["label_created", "picked_up", "in_transit", "exception"]
    assert (got[-1].occurred_at, got[-1].location) == (START + PICKUP + TRANSIT, WAREHOUSE)
    assert logistics.bookings[0].ending == "exception"


def test_shipping_an_unknown_or_already_shipped_parcel_is_a_mistake(
    logistics: SandboxLogistics,
) -> None:
    with pytest.raises(ValueError, match="no return booked under tracking number 'RR1'"):
        logistics.customer_ships("RR1")
    number = book(logistics, "k1").tracking_number
    logistics.customer_ships(number)
    with pytest.raises(ValueError, match="already shipped"):
        logistics.customer_ships(number)


def three_journeys(clock: ManualClock, **knobs: object) -> SandboxLogistics:
    """Three returns shipped an hour apart; then the clock runs until all are delivered."""
    logistics = carrier(clock, seed=3, **knobs)
    for i in range(3):
        logistics.customer_ships(book(logistics, f"k{i}", rma=f"RMA-{i}").tracking_number)
        clock.advance(timedelta(hours=1))
    clock.advance(PICKUP + TRANSIT)
    return logistics


def test_well_behaved_knobs_deliver_every_scan_once_in_time_order(clock: ManualClock) -> None:
    logistics = three_journeys(clock)
    got: list[TrackingEvent] = []
    assert logistics.deliver_due(got.append) == 12
    assert [e.occurred_at for e in got] == sorted(e.occurred_at for e in got)
    assert [e.event_id for e in got] == [f"tev_{n:06d}" for n in range(1, 13)]
    assert [(e.tracking_number, e.status) for e in got][:5] == [
        (logistics.bookings[0].tracking_number, "label_created"),
        (logistics.bookings[1].tracking_number, "label_created"),
        (logistics.bookings[2].tracking_number, "label_created"),
        (logistics.bookings[0].tracking_number, "picked_up"),
        (logistics.bookings[1].tracking_number, "picked_up"),
    ]


def test_duplicate_rate_delivers_some_scans_twice_with_the_same_event_id(
    clock: ManualClock,
) -> None:
    logistics = three_journeys(clock, duplicate_event_rate=0.5)
    got: list[TrackingEvent] = []
    assert logistics.deliver_due(got.append) == 17
    assert [e.event_id[-2:] for e in got] == [
        "01", "01", "02", "02", "03", "03", "04", "04", "05", "05",
        "06", "07", "08", "09", "10", "11", "12",
    ]  # fmt: skip
    assert {e.event_id for e in got} == {f"tev_{n:06d}" for n in range(1, 13)}
    twice = [e for e in got if e.event_id == "tev_000002"]
    assert twice[0] == twice[1]


def test_every_scan_twice_at_rate_one(clock: ManualClock) -> None:
    logistics = three_journeys(clock, duplicate_event_rate=1.0)
    got: list[TrackingEvent] = []
    assert logistics.deliver_due(got.append) == 24
    assert set(Counter(e.event_id for e in got).values()) == {2}


def test_reordering_shuffles_the_delivery_but_not_the_scans(clock: ManualClock) -> None:
    in_order: list[TrackingEvent] = []
    three_journeys(ManualClock(START)).deliver_due(in_order.append)
    logistics = three_journeys(clock, reorder_events=True)
    got: list[TrackingEvent] = []
    assert logistics.deliver_due(got.append) == 12
    assert [e.event_id[-2:] for e in got] == [
        "06", "09", "01", "12", "10", "04", "08", "02", "05", "11", "07", "03",
    ]  # fmt: skip
    assert sorted(got, key=lambda e: e.event_id) == in_order
    first = logistics.bookings[0]
    assert statuses(first.events) == ["label_created", "picked_up", "in_transit", "delivered"]


def test_the_label_created_scan_comes_before_shipping_even_when_reordered(
    clock: ManualClock,
) -> None:
    logistics = carrier(clock, reorder_events=True)
    number = book(logistics, "k1").tracking_number
    got: list[TrackingEvent] = []
    logistics.deliver_due(got.append)
    logistics.customer_ships(number)
    clock.advance(PICKUP + TRANSIT)
    logistics.deliver_due(got.append)
    assert got[0].status == "label_created"
    assert sorted(statuses(got[1:])) == ["delivered", "in_transit", "picked_up"]


def test_a_delivery_the_sink_refuses_stays_queued_and_comes_again(
    logistics: SandboxLogistics,
) -> None:
    book(logistics, "k1")
    book(logistics, "k2")

    def refuse(event: TrackingEvent) -> None:
        raise ConnectionError(event.event_id)

    with pytest.raises(ConnectionError):
        logistics.deliver_due(refuse)
    got: list[TrackingEvent] = []
    assert logistics.deliver(got.append) == 1
    assert logistics.deliver(got.append, limit=5) == 1
    assert [e.event_id for e in got] == ["tev_000001", "tev_000002"]


def test_the_bookings_view_shows_each_return_with_its_scans(
    logistics: SandboxLogistics, clock: ManualClock
) -> None:
    number = book(logistics, "k1", service="pickup").tracking_number
    logistics.customer_ships(number)
    clock.advance(PICKUP)
    (booked,) = logistics.bookings
    assert booked == SandboxReturn(
        tracking_number=number,
        key="k1",
        rma="RMA-1",
        carrier="sandbox-post",
        service="pickup",
        from_address=HOME,
        to_address=WAREHOUSE,
        cost=1500,
        label=booked.label,
        booked_at=START,
        shipped_at=START,
        ending="delivered",
        status="picked_up",
        events=(
            TrackingEvent("tev_000001", number, "label_created", START, None),
            TrackingEvent("tev_000002", number, "picked_up", START + PICKUP, HOME),
        ),
    )
    booked.label["kind"] = "changed by a test"
    assert logistics.bookings[0].label["kind"] == "pickup"
    assert logistics.track("RR000000000ZZ") is None


def test_knobs_are_checked(clock: ManualClock) -> None:
    for knobs in (
        {"timeout_rate": 1.5},
        {"duplicate_event_rate": -0.1},
        {"timeout_rate": 0.6, "book_then_time_out": 0.6},
        {"pickup_after": timedelta(-1)},
        {"base_cost": {"courier": 100}},
        {"base_cost": {"pickup": 15.0}},
    ):
        with pytest.raises(ValueError):
            SandboxLogistics(clock, 0, **knobs)
    with pytest.raises(ValueError):
        book(carrier(clock), "")


# -- threads ---------------------------------------------------------------------------------


def test_many_threads_with_different_keys_get_different_seeded_tracking_numbers(
    clock: ManualClock,
) -> None:
    logistics = carrier(clock)
    start = threading.Barrier(40)

    def one(i: int) -> str:
        start.wait()
        return book(logistics, f"k{i}", rma=f"RMA-{i}").tracking_number

    with ThreadPoolExecutor(max_workers=40) as pool:
        numbers = list(pool.map(one, range(40)))
    serial = carrier(ManualClock(START))
    expected = {book(serial, f"x{i}").tracking_number for i in range(40)}
    assert set(numbers) == expected
    assert len(expected) == 40
    assert Counter(r.outcome for r in logistics.requests) == {"created": 40}


def test_many_threads_retrying_one_key_book_once(clock: ManualClock) -> None:
    logistics = carrier(clock)
    start = threading.Barrier(30)

    def one(_: int) -> ReturnBooking:
        start.wait()
        return book(logistics, "same")

    with ThreadPoolExecutor(max_workers=30) as pool:
        bookings = set(pool.map(one, range(30)))
    assert [b.tracking_number for b in bookings] == ["RR295390834ZZ"]
    assert Counter(r.outcome for r in logistics.requests) == {"created": 1, "replayed": 29}


def test_threads_shipping_and_delivering_at_once_lose_and_repeat_nothing(
    clock: ManualClock,
) -> None:
    logistics = carrier(clock, pickup_after=timedelta(0), transit_time=timedelta(0))
    numbers = [book(logistics, f"k{i}", rma=f"RMA-{i}").tracking_number for i in range(30)]
    got: list[TrackingEvent] = []
    lock = threading.Lock()

    def sink(event: TrackingEvent) -> None:
        with lock:
            got.append(event)

    start = threading.Barrier(12)

    def shipper(part: int) -> None:
        start.wait()
        for number in numbers[part::6]:
            logistics.customer_ships(number)

    def deliverer(_: int) -> None:
        start.wait()
        for _ in range(50):
            logistics.deliver(sink, limit=3)

    with ThreadPoolExecutor(max_workers=12) as pool:
        jobs = [pool.submit(shipper, p) for p in range(6)]
        jobs += [pool.submit(deliverer, d) for d in range(6)]
        for job in jobs:
            job.result()
    logistics.deliver_due(sink)
    assert len(got) == 120
    assert set(Counter(e.event_id for e in got).values()) == {1}
    for booked in logistics.bookings:
        assert statuses(booked.events) == ["label_created", "picked_up", "in_transit", "delivered"]
