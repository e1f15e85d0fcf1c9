"""Bulk refunds: a cancelled campaign or a recall refunded over many orders as one durable job.

* ``selection``  what a job selects (campaign, SKU, merchant, paid-at window, a list of order
                 ids), validated, fingerprinted, and the orders it matches
* ``asking``     what the job asks of one order: the units of the selected lines that no
                 refund took and no open case holds (SPEC §4), as a refund request
* ``jobs``       making or finding a job, one batch of its orders per transaction (a savepoint
                 per order), its progress and its per-order outcomes
* ``running``    a job run to its end at a capped rate, with a progress callback
* ``dry_run``    what a job would move, without writing: money per tender kind, claw-backs,
                 coupons, points, reviews, open cases
* ``report``     the CSV report of a job's outcomes
"""

__all__: list[str] = []  # import the modules themselves
