"""Refunds: previewing and applying a plan exactly once, and what its money does afterwards.

* ``apply``           preview_refund / apply_refund: one transaction, plan.stale, idempotency
* ``state``           the plan's inputs read from the store (order, history, customer snapshot)
* ``effects``         every effect of an applied plan stored, one handler per EffectKind
* ``ledger``          the double-entry postings of points, wallet, growth and tenders
* ``batch``           rows of one apply written together
* ``memo``            per-process memos between a preview and its apply
* ``gateway_events``  the gateway's final word on a tender (webhooks)
* ``failed_refunds``  an agent retries a refused refund or sends it to the wallet
* ``views``           what a case's refund did: money per tender with its state, the effects
* ``resource``        refunds as a resource: one refund, a page of refunds, apply for an order
* ``reversal``        a 极速退款's units the inspection refused, undone (refund_reversals)
* ``debts``           a later refund of the order nets a reversed 极速退款's case debt
"""

__all__: list[str] = []  # import the modules themselves
