"""Webhooks to the shop, by the Standard Webhooks specification (docs/webhooks.md).

Not the gateway's and the carrier's webhooks to refundry (services/refunds/gateway_events.py,
adapters/webhook_signing.py): these go out, to endpoints the shop's admin registers.

- catalogue: every event type, in one place, and how a domain event of the outbox becomes the
  webhook events the shop receives (their ids, bodies)
- endpoints: register, list, disable / enable, rotate the secret, delete (admin only)
- fanout: a domain event the relay took from the outbox → its events and one delivery per
  subscribed endpoint (the relay calls it before publishing the event)
- delivery: the sender (signing with the ``standardwebhooks`` library, retries with
  exponential backoff and jitter, disabling an endpoint after repeated failures)
- log: the delivery log per endpoint; replay of one event or a time range
"""
