"""Delivering one outbox notification to every channel the customer chose.

``ChannelNotifier.send(message, key=outbox_key)`` (a ``Notifier``):

1. reads the customer's ``customer_contacts`` row: phone, email and ``channels`` (a JSON list
   of ``in_app``/``sms``/``email``, in that customer's order of preference). No row means
   ``["in_app"]``; an empty list means the customer asked for nothing and nothing is sent.
   ``identity.code`` (a one-time code proving the phone) always goes by SMS only.
2. skips every channel already recorded for this key in ``notification_deliveries``, so a
   retried outbox message never reaches a channel twice;
3. renders the template in the message's locale (the message's ``order_id``/``refund_id``/
   ``case_id`` fill params the producer left out, and a missing ``currency`` is the order's);
4. delivers to each remaining channel and records ``(key, channel)`` right after that
   channel's success. SMS and email get the outbox key as their idempotency key (SMS provider
   dedupe, email Message-ID), the inbox its own unique key, so a crash between a send and its
   record resends at most once, and receivers recognise the repeat.

A channel that fails does not stop the others; once all were tried, ``DeliveryFailed`` is raised
and the relay retries the message later, when only the failed channels are tried again. A channel
the customer chose but has no address for (``sms`` without a phone) is skipped and logged.
Rendering errors (unknown template, missing parameter) are raised before anything is sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from refundry.adapters.inbox import InboxNotifier
from refundry.domain.errors import RefundryError
from refundry.notifications.templates import render
from refundry.services.ports import EmailSender, SmsSender
from refundry.store.tables import customer_contacts, notification_deliveries, orders

__all__ = ["CHANNELS", "DEFAULT_CHANNELS", "ChannelNotifier", "DeliveryFailed"]

log = logging.getLogger(__name__)

CHANNELS = ("in_app", "sms", "email")
DEFAULT_CHANNELS = ("in_app",)
SMS_ONLY = frozenset({"identity.code"})  # never in an inbox or a mailbox


class DeliveryFailed(RefundryError):
    """Some channels failed (the others were delivered and recorded); retry the message."""

    code = "notification.delivery_failed"

    def __init__(self, key: str, failures: dict[str, BaseException]) -> None:
        listed = "; ".join(f"{ch}: {type(e).__name__}: {e}" for ch, e in failures.items())
        super().__init__(f"notification {key}: {listed}")
        self.key = key
        self.failures = failures


class ChannelNotifier:
    def __init__(
        self,
        engine: Engine,
        *,
        sms: SmsSender,
        email: EmailSender,
        inbox: InboxNotifier,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._sms = sms
        self._email = email
        self._inbox = inbox
        self._clock = clock

    def send(self, message: dict[str, Any], *, key: str) -> None:
        failed = self.send_many([(message, key)]).get(key)
        if failed is not None:
            raise failed

    def send_many(self, messages: list[tuple[dict[str, Any], str]]) -> dict[str, Exception]:
        """``send`` for each (message, key), in order; returns the failures by key (a
        ``DeliveryFailed`` naming the failed channels, or the rendering's error) instead of
        raising them. The contacts and what was delivered before are read by one statement
        each, and the inbox rows and every delivery's record are written by one transaction
        after the SMS and emails went out: a crash before it sends those again under their keys
        (the providers' dedupe), as a crash between a send and its record always could."""
        if not messages:
            return {}
        contacts = self._contacts({str(m["customer_id"]) for m, _ in messages})
        done = self._delivered([key for _, key in messages])
        inbox: list[tuple[dict[str, Any], str]] = []
        records: list[dict[str, Any]] = []
        failed: dict[str, Exception] = {}
        for message, key in messages:
            customer_id = str(message["customer_id"])
            template = str(message["template"])
            phone, email, channels = self._chosen(contacts.get(customer_id), customer_id, template)
            pending = [ch for ch in channels if (key, ch) not in done]
            if not pending:
                continue
            try:
                # Rendered even for the inbox alone (which renders on display): a message that
                # cannot be rendered fails here, on every channel alike, before anything is sent.
                rendered = render(template, self._params(message), message.get("locale"))
            except Exception as exc:
                failed[key] = exc
                continue
            failures: dict[str, BaseException] = {}
            for channel in pending:
                try:
                    if channel == "in_app":
                        inbox.append((message, key))
                    elif channel == "sms":
                        if not phone:
                            raise _NoAddress("the customer has no phone number")
                        self._sms.send(phone=phone, text=rendered.text, key=key)
                    else:
                        if not email:
                            raise _NoAddress("the customer has no email address")
                        self._email.send(
                            to=email, subject=rendered.subject, body=rendered.text, key=key
                        )
                except _NoAddress as exc:
                    if template in SMS_ONLY:
                        failures[channel] = exc
                    else:
                        log.warning("notification %s: %s channel skipped: %s", key, channel, exc)
                    continue
                except Exception as exc:
                    log.warning("notification %s: %s failed: %s", key, channel, exc)
                    failures[channel] = exc
                    continue
                records.append(
                    {
                        "key": key,
                        "channel": channel,
                        "customer_id": customer_id,
                        "at": self._clock(),
                    }
                )
            if failures:
                failed[key] = DeliveryFailed(key, failures)
                failed[key].__cause__ = next(iter(failures.values()))
        if inbox or records:
            with self._engine.begin() as conn:
                self._inbox.write(conn, inbox)
                dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
                # a concurrent delivery of the same key may have recorded it first
                conn.execute(
                    dialect.insert(notification_deliveries).on_conflict_do_nothing(), records
                )
        return failed

    # -- reading ------------------------------------------------------------------------------

    def _contacts(self, customer_ids: set[str]) -> dict[str, Any]:
        c = customer_contacts.c
        with self._engine.connect() as conn:
            return {
                str(r.customer_id): r
                for r in conn.execute(
                    select(c.customer_id, c.phone, c.email, c.channels).where(
                        c.customer_id.in_(sorted(customer_ids))
                    )
                )
            }

    @staticmethod
    def _chosen(
        row: Any, customer_id: str, template: str
    ) -> tuple[str | None, str | None, list[str]]:
        """The customer's phone, email and chosen channels for this template."""
        if template in SMS_ONLY:
            return (row.phone if row else None), None, ["sms"]
        if row is None:
            return None, None, list(DEFAULT_CHANNELS)
        chosen: list[str] = []
        for ch in json.loads(row.channels or "[]"):
            if ch not in CHANNELS:
                log.warning("customer %s: unknown channel %r ignored", customer_id, ch)
            elif ch not in chosen:
                chosen.append(ch)
        return row.phone, row.email, chosen

    def _delivered(self, keys: list[str]) -> set[tuple[str, str]]:
        d = notification_deliveries.c
        with self._engine.connect() as conn:
            return {
                (str(r.key), str(r.channel))
                for r in conn.execute(select(d.key, d.channel).where(d.key.in_(keys)))
            }

    def _params(self, message: dict[str, Any]) -> dict[str, Any]:
        params: dict[str, Any] = {
            name: message[name]
            for name in ("order_id", "refund_id", "case_id")
            if message.get(name) is not None
        }
        params.update(message.get("params") or {})
        if params.get("currency") is None and message.get("order_id"):
            with self._engine.connect() as conn:
                currency = conn.execute(
                    select(orders.c.currency).where(orders.c.id == message["order_id"])
                ).scalar()
            if currency:
                params["currency"] = currency
        return params


class _NoAddress(Exception):
    pass
