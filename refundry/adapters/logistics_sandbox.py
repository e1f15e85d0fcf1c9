"""SandboxLogistics: an in-process carrier for returns that misbehaves the way real ones do.

It books prepaid labels and pickups, honours idempotency keys and refuses addresses it does not
serve (any address containing ``unserved_marker``, ``"UNSERVED"`` by default). Each booking's
``label_created`` scan happens at booking time; the journey starts when the customer hands the
parcel over (``customer_ships``), and the scans then fall due as the clock moves:

    booked at B                 label_created   at B                    location None
    customer_ships at S         picked_up       at S + pickup_after     from_address
                                in_transit      at picked_up + transit_time / 2   the hub
                                delivered       at picked_up + transit_time       to_address
                                (or exception at the same time and place, when asked for)

A due scan becomes a tracking event (ids ``tev_000001``… in the order the scans happened) and is
queued for delivery, twice with probability ``duplicate_event_rate``, in random order with
``reorder_events``. Knobs make calls time out (before or after booking) or fail to connect.
Everything random comes from three generators seeded from ``seed`` (call faults, event delivery,
tracking numbers), so changing one knob does not reshuffle the others: tracking numbers depend
only on the seed and the order of the bookings. Tracking numbers have the UPU S10 shape
(``RR`` + 8 digits + check digit + ``ZZ``). Thread-safe.
"""

from __future__ import annotations

import bisect
import copy
import hashlib
import heapq
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from refundry.adapters.event_queue import Delivery, WebhookQueue
from refundry.adapters.logistics import (
    SERVICES,
    Json,
    LogisticsIdempotencyConflict,
    LogisticsRefused,
    LogisticsTimeout,
    LogisticsUnavailable,
    ReturnBooking,
    ReturnTracking,
    TrackingEvent,
    TrackingStatus,
    booking_from_wire,
    return_object,
    tracking_from_wire,
)

__all__ = [
    "DEFAULT_BASE_COST",
    "BookingOutcome",
    "Ending",
    "LogisticsFault",
    "SandboxLogistics",
    "SandboxReturn",
    "SeenBooking",
    "s10_check_digit",
]

MAX_KEY_LENGTH = 255
DEFAULT_BASE_COST: Mapping[str, int] = {"prepaid_label": 1000, "pickup": 1500}

LogisticsFault = Literal[
    "timeout",  # lost on the way: the carrier never saw the request
    "book_then_time_out",  # the carrier booked the return, the answer was lost
    "unavailable",  # the connection failed: the carrier never saw the request
]
BookingOutcome = Literal[
    "created",  # a new booking
    "replayed",  # the key was known with the same parameters: the same booking back
    "refused",  # not booked (the key stays free)
    "conflict",  # the key was known with other parameters
]
Ending = Literal["delivered", "exception"]

_S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)


def s10_check_digit(serial: str) -> int:
    """The UPU S10 check digit of an 8-digit serial number."""
    if len(serial) != 8 or not serial.isdigit():
        raise ValueError(f"an S10 serial is 8 digits, got {serial!r}")
    check = 11 - sum(int(d) * w for d, w in zip(serial, _S10_WEIGHTS, strict=True)) % 11
    return {10: 0, 11: 5}.get(check, check)


@dataclass(frozen=True, slots=True)
class SandboxReturn:
    """A booked return as the sandbox holds it, for assertions."""

    tracking_number: str
    key: str
    rma: str
    carrier: str
    service: str
    from_address: str
    to_address: str
    cost: int
    label: dict[str, Any] = field(hash=False)
    booked_at: datetime
    shipped_at: datetime | None  # None until ``customer_ships``
    ending: Ending | None  # how the journey ends; None until ``customer_ships``
    status: TrackingStatus  # the latest scan that happened
    events: tuple[TrackingEvent, ...]  # every scan that happened, in order


@dataclass(frozen=True, slots=True)
class SeenBooking:
    """One booking call that reached the carrier (calls lost on the way are not seen)."""

    key: str
    rma: str
    service: str
    from_address: str
    to_address: str
    received_at: datetime
    outcome: BookingOutcome
    tracking_number: str | None
    reason: str | None  # the refusal's code


_Params = tuple[str, str, str, str]  # rma, service, from_address, to_address


@dataclass(slots=True)
class _Return:
    booking: ReturnBooking
    key: str
    params: _Params
    booked_at: datetime
    shipped_at: datetime | None = None
    ending: Ending | None = None
    events: list[TrackingEvent] = field(default_factory=list)

    def wire(self) -> Json:
        rma, _, from_address, to_address = self.params
        return return_object(
            booking=self.booking,
            rma=rma,
            idempotency_key=self.key,
            from_address=from_address,
            to_address=to_address,
            created=self.booked_at,
            events=self.events,
        )


@dataclass(order=True, slots=True)
class _Scan:
    at: datetime
    seq: int
    tracking_number: str = field(compare=False)
    status: TrackingStatus = field(compare=False)
    location: str | None = field(compare=False)


class SandboxLogistics(WebhookQueue[TrackingEvent]):
    """An in-process ``LogisticsProvider``; see the module docstring for its behaviour."""

    def __init__(
        self,
        clock: Callable[[], datetime],
        seed: int = 0,
        *,
        pickup_after: timedelta = timedelta(hours=4),
        transit_time: timedelta = timedelta(days=2),
        duplicate_event_rate: float = 0.0,
        reorder_events: bool = False,
        timeout_rate: float = 0.0,
        book_then_time_out: float = 0.0,
        base_cost: Mapping[str, int] = DEFAULT_BASE_COST,
        carrier: str = "sandbox-post",
        unserved_marker: str = "UNSERVED",
    ) -> None:
        """``timeout_rate`` and ``book_then_time_out`` are probabilities per call,
        ``duplicate_event_rate`` per event. ``base_cost`` lists the services offered and what
        each costs the shop, in minor units; a service missing from it is refused."""
        for name, rate in (
            ("timeout_rate", timeout_rate),
            ("book_then_time_out", book_then_time_out),
            ("duplicate_event_rate", duplicate_event_rate),
        ):
            if not 0 <= rate <= 1:
                raise ValueError(f"{name} must be within [0, 1], got {rate!r}")
        if timeout_rate + book_then_time_out > 1:
            raise ValueError("timeout_rate + book_then_time_out must not exceed 1")
        if pickup_after < timedelta(0) or transit_time < timedelta(0):
            raise ValueError("pickup_after and transit_time must not be negative")
        for service, cost in base_cost.items():
            if service not in SERVICES:
                raise ValueError(f"unknown service {service!r} in base_cost")
            if type(cost) is not int or cost < 0:
                raise ValueError(f"base_cost[{service!r}] must be a non-negative int, got {cost!r}")
        if not carrier or not unserved_marker:
            raise ValueError("carrier and unserved_marker must not be empty")
        self._clock = clock
        self._pickup_after = pickup_after
        self._transit_time = transit_time
        self._duplicate_rate = duplicate_event_rate
        self._reorder = reorder_events
        self._timeout_rate = timeout_rate
        self._book_then_time_out = book_then_time_out
        self._base_cost = dict(base_cost)
        self._carrier = carrier
        self._unserved = unserved_marker
        self._fault_rng = random.Random(f"{seed}:faults")
        self._event_rng = random.Random(f"{seed}:events")
        self._tracking_rng = random.Random(f"{seed}:tracking")
        self._lock = threading.Lock()
        self._returns: dict[str, _Return] = {}  # by tracking number, in booking order
        self._keys: dict[str, str] = {}  # idempotency key -> tracking number
        self._scheduled: list[_Scan] = []  # heap
        self._deliveries: list[Delivery[TrackingEvent]] = []  # sorted: the delivery order
        self._requests: list[SeenBooking] = []
        self._injected: list[LogisticsFault] = []
        self._event_no = 0
        self._seq = 0  # scan and delivery order; breaks ties between scans due together

    def __repr__(self) -> str:
        return (
            f"SandboxLogistics(carrier={self._carrier!r}, pickup_after={self._pickup_after}, "
            f"transit_time={self._transit_time}, timeout_rate={self._timeout_rate}, "
            f"book_then_time_out={self._book_then_time_out}, "
            f"duplicate_event_rate={self._duplicate_rate}, reorder_events={self._reorder})"
        )

    # -- set-up -------------------------------------------------------------------------

    def inject(self, *faults: LogisticsFault) -> None:
        """Force the next booking calls to fail like this, one fault per call, before the rates."""
        with self._lock:
            self._injected.extend(faults)

    # -- LogisticsProvider --------------------------------------------------------------

    def book_return(
        self, *, rma: str, service: str, from_address: str, to_address: str, key: str
    ) -> ReturnBooking:
        if not key or len(key) > MAX_KEY_LENGTH:
            raise ValueError(f"key must be 1..{MAX_KEY_LENGTH} characters")
        if not rma:
            raise ValueError("rma must not be empty")
        with self._lock:
            now = self.now()
            self._settle(now)
            fault = self._next_fault()
            if fault == "timeout":
                raise LogisticsTimeout("sandbox: the request timed out before reaching the carrier")
            if fault == "unavailable":
                raise LogisticsUnavailable("sandbox: connection refused")
            booking = self._book(now, key, (rma, service, from_address, to_address))
            if fault == "book_then_time_out":
                raise LogisticsTimeout(
                    "sandbox: the carrier booked the return, the answer was lost"
                )
            return booking

    def track(self, tracking_number: str) -> ReturnTracking | None:
        """What the carrier knows now of a return: its scans so far; None if unknown."""
        with self._lock:
            self._settle(self.now())
            found = self._returns.get(tracking_number)
            return None if found is None else tracking_from_wire(found.wire())

    def return_wire(self, tracking_number: str) -> Json | None:
        """The return object as the carrier's API shows it now (what ``track`` reads and the
        HTTP sandbox serves); None if unknown."""
        with self._lock:
            self._settle(self.now())
            found = self._returns.get(tracking_number)
            return None if found is None else found.wire()

    # -- the parcel's journey -----------------------------------------------------------

    def customer_ships(self, tracking_number: str, *, ending: Ending = "delivered") -> datetime:
        """The customer drops the parcel off, or the courier collects it: the journey starts
        now. Returns when it ends (``delivered``, or ``exception`` when asked for)."""
        with self._lock:
            now = self.now()
            found = self._returns.get(tracking_number)
            if found is None:
                raise ValueError(f"no return booked under tracking number {tracking_number!r}")
            if found.shipped_at is not None:
                raise ValueError(f"{tracking_number} was already shipped at {found.shipped_at}")
            found.shipped_at, found.ending = now, ending
            _, _, from_address, to_address = found.params
            picked_up = now + self._pickup_after
            ends = picked_up + self._transit_time
            self._schedule(picked_up, tracking_number, "picked_up", from_address)
            self._schedule(
                picked_up + self._transit_time / 2,
                tracking_number,
                "in_transit",
                f"{self._carrier} sorting centre",
            )
            self._schedule(ends, tracking_number, ending, to_address)
            self._settle(now)
            return ends

    # -- webhooks -----------------------------------------------------------------------

    def pending_events(self) -> tuple[TrackingEvent, ...]:
        """Due deliveries, in the order ``deliver`` will hand them out (duplicates included)."""
        return self._due()

    # -- for tests ----------------------------------------------------------------------

    @property
    def bookings(self) -> tuple[SandboxReturn, ...]:
        """Every booked return, in booking order, with its scans so far."""
        with self._lock:
            self._settle(self.now())
            return tuple(
                SandboxReturn(
                    tracking_number=r.booking.tracking_number,
                    key=r.key,
                    rma=r.params[0],
                    carrier=r.booking.carrier,
                    service=r.booking.service,
                    from_address=r.params[2],
                    to_address=r.params[3],
                    cost=r.booking.cost,
                    label=copy.deepcopy(r.booking.label),
                    booked_at=r.booked_at,
                    shipped_at=r.shipped_at,
                    ending=r.ending,
                    status=r.events[-1].status,
                    events=tuple(r.events),
                )
                for r in self._returns.values()
            )

    @property
    def requests(self) -> tuple[SeenBooking, ...]:
        """Every booking call that reached the carrier, in order."""
        with self._lock:
            return tuple(self._requests)

    # -- inside the lock ----------------------------------------------------------------

    def _next_fault(self) -> LogisticsFault | None:
        if self._injected:
            return self._injected.pop(0)
        if self._timeout_rate == 0 and self._book_then_time_out == 0:
            return None
        draw = self._fault_rng.random()
        if draw < self._timeout_rate:
            return "timeout"
        if draw < self._timeout_rate + self._book_then_time_out:
            return "book_then_time_out"
        return None

    def _book(self, now: datetime, key: str, params: _Params) -> ReturnBooking:
        known = self._keys.get(key)
        if known is not None:
            found = self._returns[known]
            if found.params != params:
                self._seen(now, key, params, "conflict", None, "idempotency_key_reused")
                raise LogisticsIdempotencyConflict(
                    f"key {key!r} was used with other parameters {found.params!r}"
                )
            self._seen(now, key, params, "replayed", known, None)
            return booking_from_wire(found.wire())
        refusal = self._refusal(params)
        if refusal is not None:
            reason, message, param = refusal
            self._seen(now, key, params, "refused", None, reason)
            raise LogisticsRefused(message, reason=reason, field=param)
        rma, service, _, _ = params
        tracking_number = self._new_tracking_number()
        booking = ReturnBooking(
            carrier=self._carrier,
            service=service,
            tracking_number=tracking_number,
            cost=self._base_cost[service],
            label=self._label(now, rma, service, tracking_number),
        )
        self._returns[tracking_number] = _Return(booking, key, params, now)
        self._keys[key] = tracking_number
        self._seen(now, key, params, "created", tracking_number, None)
        self._schedule(now, tracking_number, "label_created", None)
        self._settle(now)
        return booking_from_wire(self._returns[tracking_number].wire())

    def _refusal(self, params: _Params) -> tuple[str, str, str] | None:
        _, service, from_address, to_address = params
        if service not in self._base_cost:
            offered = ", ".join(sorted(self._base_cost))
            return (
                "service_not_offered",
                f"{service!r} is not offered ({offered})",
                "service",
            )
        for param, address in (("from_address", from_address), ("to_address", to_address)):
            if not address.strip():
                return "address_invalid", f"{param} is empty", param
            if self._unserved in address:
                return "address_not_served", f"{self._carrier} does not serve {address!r}", param
        return None

    def _new_tracking_number(self) -> str:
        while True:
            serial = f"{self._tracking_rng.randrange(10**8):08d}"
            number = f"RR{serial}{s10_check_digit(serial)}ZZ"
            if number not in self._returns:
                return number

    def _label(self, now: datetime, rma: str, service: str, tracking_number: str) -> dict[str, Any]:
        if service == "pickup":
            slot = (now + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)
            return {
                "kind": "pickup",
                "rma": rma,
                "slot_start": slot.isoformat(),
                "slot_end": (slot + timedelta(hours=4)).isoformat(),
            }
        digest = hashlib.sha256(tracking_number.encode()).hexdigest()
        return {
            "kind": "prepaid_label",
            "rma": rma,
            "url": f"https://labels.{self._carrier}.invalid/{tracking_number}.pdf",
            "drop_off_code": f"{int(digest[:12], 16) % 10**6:06d}",
        }

    def _schedule(
        self, at: datetime, tracking_number: str, status: TrackingStatus, location: str | None
    ) -> None:
        self._seq += 1
        heapq.heappush(self._scheduled, _Scan(at, self._seq, tracking_number, status, location))

    def _settle(self, now: datetime) -> None:
        while self._scheduled and self._scheduled[0].at <= now:
            scan = heapq.heappop(self._scheduled)
            self._event_no += 1
            event = TrackingEvent(
                event_id=f"tev_{self._event_no:06d}",
                tracking_number=scan.tracking_number,
                status=scan.status,
                occurred_at=scan.at,
                location=scan.location,
            )
            self._returns[scan.tracking_number].events.append(event)
            copies = 2 if self._event_rng.random() < self._duplicate_rate else 1
            for _ in range(copies):
                self._seq += 1
                rank = self._event_rng.randrange(1 << 32) if self._reorder else 0
                bisect.insort(self._deliveries, Delivery(rank, self._seq, event))

    def _seen(
        self,
        now: datetime,
        key: str,
        params: _Params,
        outcome: BookingOutcome,
        tracking_number: str | None,
        reason: str | None,
    ) -> None:
        rma, service, from_address, to_address = params
        self._requests.append(
            SeenBooking(
                key, rma, service, from_address, to_address, now, outcome, tracking_number, reason
            )
        )
