"""Orders: ingesting what the shop sends, and reading an order back.

* ``ingest``       one paid order (and its customer) into the store
* ``intake``       the API's ingest: idempotent, racing requests resolved
* ``bulk_import``  refundry import: JSON lines, bad lines reported and skipped
* ``batch_ingest`` a batch of new orders written together, as ``ingest`` one by one would
* ``views``        the order read model and the refund preview for a caller
* ``assets``       what an order touched: units paid, discounts, points, campaigns
* ``lists``        a customer's own orders, newest first (the pages' order list)
* ``fulfilment``   the shop's status updates: shipped, delivered, completed, cancelled
"""

__all__: list[str] = []  # import the modules themselves
